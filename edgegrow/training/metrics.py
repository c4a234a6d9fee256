"""Evaluation of a classifier on a split: loss, top-1 accuracy, per-class accuracy, confusion matrix."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.task_data import Split
from .device import model_device


@dataclass
class Evaluation:
    """``confusion[i, j]`` counts examples of true class i predicted as j. Accuracies are in [0, 1]."""

    loss: float
    accuracy: float
    per_class_accuracy: list[float | None]  # None for a class with no example in the split
    confusion: torch.Tensor
    class_names: list[str]

    def format_confusion(self) -> str:
        width = max(5, max(len(n) for n in self.class_names) + 1)
        header = " " * width + "".join(f"{n[:6]:>7}" for n in self.class_names)
        rows = [f"{name:<{width}}" + "".join(f"{int(v):>7}" for v in row)
                for name, row in zip(self.class_names, self.confusion)]
        return "\n".join([header, *rows])


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, class_names: list[str], *, batch_size: int = 512) -> Evaluation:
    """Evaluate ``model`` in eval mode (its mode is restored afterwards)."""
    if len(split) == 0:
        raise ValueError("cannot evaluate on an empty split")
    classes = len(class_names)
    was_training = model.training
    model.eval()
    total_loss, confusion = 0.0, torch.zeros(classes, classes, dtype=torch.long, device="cpu")
    device = model_device(model)
    try:
        for start, inputs in zip(range(0, len(split), batch_size),
                                 split.batches(torch.arange(len(split), device="cpu"), batch_size)):
            inputs = inputs.to(device)
            labels = split.labels[start: start + batch_size]
            logits = model(inputs)
            total_loss += nn.functional.cross_entropy(logits, labels.to(device), reduction="sum").item()
            predicted = logits.argmax(dim=1).cpu()
            pairs = torch.bincount(labels * classes + predicted, minlength=classes * classes)
            confusion += pairs.view(classes, classes)
    finally:
        model.train(was_training)
    support = confusion.sum(dim=1)
    per_class = [(confusion[i, i] / support[i]).item() if support[i] else None for i in range(classes)]
    return Evaluation(total_loss / len(split), (confusion.diag().sum() / len(split)).item(), per_class,
                      confusion, list(class_names))
