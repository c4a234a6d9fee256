"""Training a classifier on a TaskData: one optimizer and one learning-rate schedule over the whole run,
advanced step by step, with a reproducible seed, a progress bar, and a per-epoch history.

``Training`` is the run itself. It can stop at any optimizer step and go on from there, which is what
growth needs: a grow run is one ``Training`` whose model is edited between two steps (the edit carries
the optimizer's state, see ``edgegrow.growth.optimizer_state``), never a new optimizer or a restarted
schedule. ``state_dict()`` holds everything besides the model that continuing needs (optimizer, step,
random state, the epoch's running sums, the history), so a run saved at any step and loaded again
goes on exactly as if it had not stopped: the batch order and augmentation of step ``s`` depend only
on the seed and ``s``. ``train()`` is the one-call form for a fixed network.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import nn

from ..argument_checks import check_finite, check_positive_integer, check_share
from ..data.task_data import TaskData
from ..progress import progress_bar
from .device import check_device_name, model_device, resolve_device
from .distributed import (all_reduce_sum, broadcast_buffers, check_batch_divisible, current_world, data_parallel,
                          parameter_signature, synced_batch_norm)
from .metrics import Evaluation, evaluate

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "one-cycle", "constant", "step")
NON_FINITE = "non-finite loss"  # why Training.run stopped when a batch's loss was NaN or infinite
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``epochs`` are full passes over the training split; ``warmup_epochs`` of them ramp
    the learning rate up linearly before the schedule (``cosine``: to zero at the end; ``one-cycle``:
    linear up over the warm-up, then cosine down to 1/25 of the peak; ``step``: ×0.1 at 50 % and 75 %).
    ``steps``, when given, is the run's length in optimizer steps instead (a baseline trained with a
    given training compute); the schedule then spans those steps. ``max_seconds`` and ``max_samples``
    stop early (quick runs); None means no limit. ``device``: where to train (``auto``, ``cpu``,
    ``cuda``, ``cuda:N``, ``mps``; ``auto`` is a CUDA GPU where there is one, see
    ``edgegrow.training.device``): ``Training`` moves the model there. ``sync_batch_norm``: in a torchrun
    job, BatchNorm normalises with the global batch's statistics, which makes the run the one a single
    process makes, at a cost (two waits for every process per BatchNorm per step: on 2 CPU processes
    here 2.4× slower, ``bench/distributed_training.py``); False (the default, as plain DDP): with each
    process's own share of the batch."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    schedule: Literal["cosine", "one-cycle", "constant", "step"] = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    steps: int | None = None
    max_seconds: float | None = None
    max_samples: int | None = None
    device: str = "auto"
    sync_batch_norm: bool = False

    def __post_init__(self):
        check_device_name(self.device)
        if not isinstance(self.sync_batch_norm, bool):
            raise ValueError(f"sync_batch_norm must be True or False, got {self.sync_batch_norm!r}")
        check_positive_integer("epochs", self.epochs)
        check_positive_integer("batch_size", self.batch_size)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose {', '.join(SCHEDULES)}")
        check_finite("learning_rate", self.learning_rate, above=0)
        check_finite("weight_decay", self.weight_decay, at_least=0)
        check_finite("momentum", self.momentum, at_least=0)
        check_finite("warmup_epochs", self.warmup_epochs, at_least=0)
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs:g}) must be fewer than epochs ({self.epochs})")
        check_share("label_smoothing", self.label_smoothing, allow_zero=True, allow_one=False)
        if self.steps is not None:
            check_positive_integer("steps", self.steps)
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


def learning_rate_factor(config: TrainConfig, progress: float, warmup: float | None = None) -> float:
    """Multiplier of the base learning rate at ``progress`` ∈ [0, 1] of training; ``warmup`` is the
    warm-up's share of the run (default ``warmup_epochs / epochs``)."""
    warmup = config.warmup_epochs / config.epochs if warmup is None else warmup
    if warmup > 0 and progress < warmup:
        return min(1.0, (progress + 1e-3) / warmup)
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "step":
        return 0.1 ** sum(progress >= milestone for milestone in (0.5, 0.75))
    span = max(1e-9, 1 - warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / span)))
    if config.schedule == "one-cycle":
        floor = 1 / 25
        return floor + (1 - floor) * cosine
    return cosine


def batch_generator(seed: int, epoch: int, batch: int, rank: int = 0) -> torch.Generator:
    """The generator of one training batch's augmentation: it depends on nothing but its position (and in a
    torchrun job the rank whose share it augments), so a run continued from any step sees the same
    augmented batches as one that never stopped."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 100_003 + batch + 1 + 7_919 * rank)


class Training:
    """One training run of ``config`` on ``data``, advanced with ``run(until_step)``.

    Args:
        optimizer: continue with this optimizer (its state is kept; every param group's learning
            rate follows the schedule); default: a new one from ``config``.
        loss_function: ``(logits, labels) -> loss``; default cross-entropy with ``config``'s label smoothing.
        progress: a progress bar per epoch on a terminal.
        on_epoch: called with each finished epoch's record.
    """

    def __init__(self, model: nn.Module, data: TaskData, config: TrainConfig, *,
                 optimizer: torch.optim.Optimizer | None = None, loss_function: LossFunction | None = None,
                 progress: bool = False, on_epoch: Callable[[EpochRecord], None] | None = None):
        if len(data.train) == 0:
            raise ValueError("cannot train on an empty training split")
        self.model, self.data, self.config = model, data, config
        self.world = current_world()  # one process, or this rank of a torchrun job (see .distributed)
        check_batch_divisible(config.batch_size, self.world)
        self._parallel: tuple[tuple, nn.Module] | None = None  # (parameter signature, DDP wrapper)
        model.to(resolve_device(config.device))  # in place: an optimizer built over it keeps its parameters
        self.optimizer = optimizer if optimizer is not None else make_optimizer(model, config)
        self.loss_function = loss_function or nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.progress, self.on_epoch = progress, on_epoch
        self.steps_per_epoch = math.ceil(len(data.train) / config.batch_size)
        self.total_steps = config.steps or config.epochs * self.steps_per_epoch
        self.warmup_share = min(0.999, config.warmup_epochs * self.steps_per_epoch / self.total_steps)
        self.step = 0
        self.learning_rate_scale = 1.0  # lowered after a numerical fault
        self.history: list[EpochRecord] = []
        self.samples_seen = 0
        self.seconds = 0.0
        self._sums = [0.0, 0, 0]  # the current epoch's loss sum, correct and seen
        self._order: tuple | None = None  # (epoch, permutation[, this rank's share of it])
        self._stream: list | None = None  # [epoch, next batch, iterator of batch inputs]
        torch.manual_seed(config.seed)

    @property
    def epoch(self) -> int:
        """Finished epochs (the one in progress is ``epoch + 1``)."""
        return self.step // self.steps_per_epoch

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    def learning_rate(self, step: int | None = None) -> float:
        step = self.step if step is None else step
        return self.config.learning_rate * self.learning_rate_scale * learning_rate_factor(
            self.config, step / self.total_steps, self.warmup_share)

    def run(self, until_step: int | None = None) -> str:
        """Train up to optimizer step ``until_step`` (default: the end of the run). Returns why it
        stopped: ``"until"`` (reached ``until_step`` before the end), ``"epochs"`` (the run is done),
        ``NON_FINITE`` (the batch at ``self.step`` gave a NaN or infinite loss; nothing was applied),
        ``"max_seconds"`` or ``"max_samples"``."""
        config = self.config
        until = self.total_steps if until_step is None else min(until_step, self.total_steps)
        started = time.perf_counter()
        bar = None
        try:
            while self.step < until:
                epoch, batch = divmod(self.step, self.steps_per_epoch)
                if bar is None:
                    bar = progress_bar(range(batch, self.steps_per_epoch), enabled=self.progress,
                                       description=f"epoch {epoch + 1}/{config.epochs}")
                order = self._epoch_order(epoch)
                batch_size = min(config.batch_size, len(order) - batch * config.batch_size)  # the global batch's
                shard = self._shard(epoch, order)[batch * (config.batch_size // self.world.size):][
                    :(batch_size + self.world.size - 1 - self.world.rank) // self.world.size]
                y = self.data.train.labels[shard]  # a rank's share of a last batch smaller than the job is empty
                x = self._batch_inputs(epoch, batch, order) if len(shard) else torch.zeros(0, *self.data.input_shape)
                if self.data.train.augment_batch is not None:
                    x = self.data.train.augment_batch(x, batch_generator(config.seed, epoch, batch, self.world.rank))
                device = model_device(self.model)  # the data stays in host memory; each batch goes over
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                self.model.train()
                for group in self.optimizer.param_groups:
                    group["lr"] = self.learning_rate() * group.get("lr_scale", 1.0)
                with synced_batch_norm(self.model, self.world, enabled=config.sync_batch_norm):
                    logits = self._forward_model()(x)
                loss = self.loss_function(logits, y) if len(y) else logits.sum() * 0.0
                correct = (logits.argmax(dim=1) == y).sum().item()
                finite = bool(torch.isfinite(loss))
                loss_sum = loss.item() * len(y) if finite else 0.0
                # one all-reduce says to every rank whether any rank's loss was not finite, and the batch's sums
                faults, loss_sum, correct, seen = all_reduce_sum([float(not finite), loss_sum, correct, len(y)],
                                                                 self.world)
                if faults:  # the weights would be ruined from here on: say so, do not go on
                    return NON_FINITE
                self.optimizer.zero_grad(set_to_none=True)
                # DDP averages the ranks' gradients: weighted by each rank's share, that is the global batch's mean
                (loss * (len(y) * self.world.size / seen) if self.world.parallel else loss).backward()
                self.optimizer.step()
                self.step += 1
                self._sums[0] += loss_sum
                self._sums[1] += int(correct)
                self._sums[2] += int(seen)
                self.samples_seen += int(seen)
                next(bar, None)
                if self.step % self.steps_per_epoch == 0 or self.step == self.total_steps:
                    self.seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    self._end_epoch()
                    bar = None
                elapsed = self.seconds + time.perf_counter() - started
                if config.max_samples is not None and self.samples_seen >= config.max_samples:
                    return self._stop_early("max_samples")
                if config.max_seconds is not None and all_reduce_sum([float(elapsed >= config.max_seconds)],
                                                                     self.world)[0]:
                    return self._stop_early("max_seconds")
        finally:
            self.seconds += time.perf_counter() - started
        return "epochs" if self.finished else "until"

    def _stop_early(self, reason: str) -> str:
        if self._sums[2]:  # record the partial epoch, so the history says what was trained
            self._end_epoch()
        return reason

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """The order of the training examples in ``epoch``: from the seed and the epoch alone."""
        if self._order is None or self._order[0] != epoch:
            generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
            order = torch.randperm(len(self.data.train), generator=generator, device="cpu")  # the data is in host memory
            self._order = (epoch, order)
        return self._order[1]

    def _shard(self, epoch: int, order: torch.Tensor) -> torch.Tensor:
        """This rank's examples of ``epoch`` in training order: examples ``rank, rank + size, …`` of each
        global batch (all of ``order`` in one process)."""
        if not self.world.parallel:
            return order
        if len(self._order) < 3:
            size, rank = self.config.batch_size, self.world.rank
            cuts = [order[start: start + size][rank::self.world.size] for start in range(0, len(order), size)]
            self._order = (*self._order, torch.cat(cuts))
        return self._order[2]

    def _batch_inputs(self, epoch: int, batch: int, order: torch.Tensor) -> torch.Tensor:
        """This rank's inputs of batch ``batch`` of ``epoch``, read in order from the split's batch stream (a
        Dataset's DataLoader reads ahead); a stream is started where the run is (after a resume)."""
        if self._stream is None or self._stream[:2] != [epoch, batch]:
            shard = self._shard(epoch, order)
            self._stream = [epoch, batch, self.data.train.batches(shard, self.config.batch_size // self.world.size,
                                                                  batch, epoch)]
        self._stream[1] += 1
        return next(self._stream[2])

    def _forward_model(self) -> nn.Module:
        """The model, or in a torchrun job its DDP wrapper, rebuilt after an edit changed the parameters."""
        if not self.world.parallel:
            return self.model
        signature = parameter_signature(self.model)
        if self._parallel is None or self._parallel[0] != signature:
            self._parallel = (signature, data_parallel(self.model, self.config.sync_batch_norm))
        return self._parallel[1]

    def _end_epoch(self) -> None:
        loss_sum, correct, seen = self._sums
        self._sums = [0.0, 0, 0]
        if not self.config.sync_batch_norm:  # a torchrun job's ranks evaluate (and save) rank 0's statistics
            broadcast_buffers(self.model, self.world)
        validation: Evaluation | None = None
        if len(self.data.validation):
            validation = evaluate(self.model, self.data.validation, self.data.class_names)
        record = EpochRecord(
            epoch=len(self.history) + 1, train_loss=loss_sum / max(1, seen), train_accuracy=correct / max(1, seen),
            validation_loss=validation.loss if validation else None,
            validation_accuracy=validation.accuracy if validation else None,
            learning_rate=self.learning_rate(self.step - 1), samples_seen=self.samples_seen, seconds=self.seconds,
        )
        self.history.append(record)
        if self.on_epoch is not None:
            self.on_epoch(record)

    def state_dict(self) -> dict:
        """What continuing needs besides the model: tensors and plain values only (for ``torch.save``
        with ``weights_only`` loading)."""
        return {"optimizer": self.optimizer.state_dict(), "step": self.step, "samples_seen": self.samples_seen,
                "seconds": self.seconds, "sums": list(self._sums), "learning_rate_scale": self.learning_rate_scale,
                "history": [asdict(record) for record in self.history], "rng_state": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (``state_dict()`` of a run of the same config, with the model as it was
        then and this run's optimizer built over it in the same parameter order)."""
        if state["step"] > self.total_steps:
            raise ValueError(f"cannot continue after step {state['step']} of a {self.total_steps}-step run")
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.samples_seen, self.seconds = int(state["step"]), int(state["samples_seen"]), state["seconds"]
        self._sums = list(state["sums"])
        self.learning_rate_scale = float(state["learning_rate_scale"])
        self.history = [EpochRecord(**record) for record in state["history"]]
        torch.set_rng_state(state["rng_state"])

    def result(self, stopped_by: str) -> TrainResult:
        return TrainResult(list(self.history), stopped_by, self.seconds, self.samples_seen)


def train(
    model: nn.Module,
    data: TaskData,
    config: TrainConfig = TrainConfig(),
    *,
    optimizer: torch.optim.Optimizer | None = None,
    loss_function: LossFunction | None = None,
    progress: bool = True,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data.train`` for ``config.epochs``, evaluating on ``data.validation`` after
    every epoch (see ``Training`` for the arguments)."""
    training = Training(model, data, config, optimizer=optimizer, loss_function=loss_function, progress=progress,
                        on_epoch=on_epoch)
    return training.result(training.run())
