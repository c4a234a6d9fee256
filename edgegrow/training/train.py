"""Training a classifier on a TaskData: optimizer and schedule choices, a time and sample budget,
a reproducible seed, a progress bar, and a per-epoch history."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import nn

from ..data.task_data import TaskData
from ..progress import progress_bar
from .metrics import Evaluation, evaluate


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``max_seconds`` and ``max_samples`` stop early (quick runs); None means no limit."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    schedule: Literal["cosine", "constant", "step"] = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    max_seconds: float | None = None
    max_samples: int | None = None

    def __post_init__(self):
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose adam, adamw or sgd")
        if self.schedule not in ("cosine", "constant", "step"):
            raise ValueError(f"unknown schedule {self.schedule!r}; choose cosine, constant or step")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite number > 0, got {self.learning_rate!r}")
        for name in ("max_seconds", "max_samples"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 (or None for no limit), got {value!r}")


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    validation_loss: float | None
    validation_accuracy: float | None
    learning_rate: float
    samples_seen: int
    seconds: float


NON_FINITE = "non-finite loss"  # TrainResult.stopped_by when a batch's loss was NaN or infinite


@dataclass
class TrainProgress:
    """Where an interrupted ``train`` call stood after its last finished epoch: with the optimizer's
    state (passed as ``optimizer``), enough to continue exactly as if it had not stopped."""

    history: list[EpochRecord]
    rng_state: torch.Tensor  # torch's global generator (dropout) at the end of that epoch

    def to_dict(self) -> dict:
        return {"history": [asdict(record) for record in self.history], "rng_state": self.rng_state}

    @classmethod
    def from_dict(cls, data: dict) -> TrainProgress:
        return cls([EpochRecord(**record) for record in data["history"]], data["rng_state"])


@dataclass
class TrainResult:
    history: list[EpochRecord] = field(default_factory=list)
    stopped_by: str = "epochs"  # or "max_seconds", "max_samples", NON_FINITE
    seconds: float = 0.0
    samples_seen: int = 0

    def as_dicts(self) -> list[dict]:
        return [asdict(record) for record in self.history]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=config.momentum > 0)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)


def learning_rate_factor(config: TrainConfig, progress: float) -> float:
    """Multiplier of the base learning rate at ``progress`` ∈ [0, 1] of training."""
    warmup = config.warmup_epochs / config.epochs
    if warmup > 0 and progress < warmup:
        return (progress + 1e-3) / warmup
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "step":
        return 0.1 ** sum(progress >= milestone for milestone in (0.5, 0.75))
    span = max(1e-9, 1 - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / span)))


def train(
    model: nn.Module,
    data: TaskData,
    config: TrainConfig = TrainConfig(),
    *,
    optimizer: torch.optim.Optimizer | None = None,
    progress: bool = True,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    on_epoch_state: Callable[[TrainProgress], None] | None = None,
    resume: TrainProgress | None = None,
) -> TrainResult:
    """Train ``model`` on ``data.train``, evaluating on ``data.validation`` after every epoch.

    Args:
        optimizer: continue with this optimizer (its state is kept; every param group's learning
            rate follows ``config``'s schedule); default: a new one from ``config``.
        on_epoch: called with each epoch's record (for logs).
        on_epoch_state: called after each epoch with what ``resume`` needs (for checkpoints).
        resume: continue an interrupted call of the same config after its last finished epoch
            (with the model and ``optimizer`` as they were then): the epochs, learning rates,
            batches and random numbers are those of an uninterrupted call.
    """
    torch.manual_seed(config.seed)
    if optimizer is None:
        optimizer = make_optimizer(model, config)
    loss_function = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    result = TrainResult()
    started = time.perf_counter()
    batches_per_epoch = math.ceil(len(data.train) / config.batch_size)
    total_steps = config.epochs * batches_per_epoch
    first_epoch = 0
    if resume is not None and resume.history:
        if len(resume.history) > config.epochs:
            raise ValueError(f"cannot resume after epoch {len(resume.history)} of a {config.epochs}-epoch run")
        torch.set_rng_state(resume.rng_state)
        result.history = list(resume.history)
        result.samples_seen = resume.history[-1].samples_seen
        started -= resume.history[-1].seconds
        first_epoch = len(resume.history)
    step = first_epoch * batches_per_epoch
    for epoch in range(first_epoch, config.epochs):
        model.train()
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        inputs = data.train.inputs_for_epoch(epoch)
        order = torch.randperm(len(data.train), generator=generator)
        loss_sum, correct, seen = 0.0, 0, 0
        batches = progress_bar(range(batches_per_epoch), description=f"epoch {epoch + 1}/{config.epochs}",
                               enabled=progress)
        for batch in batches:
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * learning_rate_factor(config, step / total_steps)
            index = order[batch * config.batch_size: (batch + 1) * config.batch_size]
            x, y = inputs[index], data.train.labels[index]
            if data.train.augment_batch is not None:
                x = data.train.augment_batch(x, generator)
            logits = model(x)
            loss = loss_function(logits, y)
            if not torch.isfinite(loss):  # the weights are ruined from here on: say so, do not go on
                result.stopped_by = NON_FINITE
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(dim=1) == y).sum().item()
            seen += len(y)
            result.samples_seen += len(y)
            elapsed = time.perf_counter() - started
            if config.max_samples is not None and result.samples_seen >= config.max_samples:
                result.stopped_by = "max_samples"
            elif config.max_seconds is not None and elapsed >= config.max_seconds:
                result.stopped_by = "max_seconds"
            if result.stopped_by != "epochs":
                break
        validation: Evaluation | None = None
        if len(data.validation):
            validation = evaluate(model, data.validation, data.class_names)
        record = EpochRecord(
            epoch=epoch + 1, train_loss=loss_sum / max(1, seen), train_accuracy=correct / max(1, seen),
            validation_loss=validation.loss if validation else None,
            validation_accuracy=validation.accuracy if validation else None,
            learning_rate=optimizer.param_groups[0]["lr"], samples_seen=result.samples_seen,
            seconds=time.perf_counter() - started,
        )
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if on_epoch_state is not None and result.stopped_by == "epochs":
            on_epoch_state(TrainProgress(list(result.history), torch.get_rng_state()))
        if result.stopped_by != "epochs":
            break
    result.seconds = time.perf_counter() - started
    return result
