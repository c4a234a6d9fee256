"""The data of a classification task as tensors in memory, split into train, validation and test."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Split:
    """Inputs (N, C, H, W) float32 and labels (N,) int64 of one split.

    ``epoch_inputs``, when set, gives the inputs of training epoch ``e`` (fresh augmentation per
    epoch); otherwise every epoch sees ``inputs``. ``augment_batch``, when set, transforms each
    training batch (random crops and flips of images) with the generator it is given.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    epoch_inputs: Callable[[int], torch.Tensor] | None = None
    augment_batch: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def inputs_for_epoch(self, epoch: int) -> torch.Tensor:
        return self.inputs if self.epoch_inputs is None else self.epoch_inputs(epoch)

    def class_counts(self, classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=classes).tolist()


@dataclass
class TaskData:
    """A task ready for training: splits, class names, the input shape, and how inputs were made.

    ``preprocessing`` holds the exact parameters needed to reproduce the inputs on a device (the
    MFCC settings, the image size and normalisation). ``skipped`` counts files left out, by reason.
    """

    name: str
    class_names: list[str]
    train: Split
    validation: Split
    test: Split
    preprocessing: dict = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.inputs.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> str:
        """A few lines: sizes of the splits, what was skipped and why, notes."""
        lines = [f"{self.name}: {self.num_classes} classes, input {self.input_shape}, "
                 f"train {len(self.train)} / validation {len(self.validation)} / test {len(self.test)}"]
        lines += [f"  skipped {count} file(s): {reason}" for reason, count in self.skipped.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)
