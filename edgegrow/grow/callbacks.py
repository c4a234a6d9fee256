"""Hooks into a grow run: code of your own called after every epoch, every growth event and at the end.

``grow(..., callbacks=[...])`` calls, on each callback, the methods it has of:

- ``on_run_start(info: RunStart)``: once, before the first optimizer step (also on a resumed run, with
  ``info.resumed``, the step it goes on from and ``info.log``, the rows recorded before it: a row a
  killed run had saved but not yet reported is in there);
- ``on_epoch_end(row: EpochRow)``: after every finished epoch of growing or retraining (the row written
  to ``log.jsonl``, with the training and validation loss and accuracy, learning rate, MACs, the
  training compute so far and the model's predicted cost);
- ``on_growth(row: GrowthRow)``: after every growth event (what was chosen, the widths and depth after
  it, the predicted cost, usage of the budget, seconds spent choosing);
- ``on_rollback(rollback: Rollback)``: a NaN or infinite loss after a growth event rolled the run back to
  just before it (``rollback.step``): every row a callback heard from that step on is undone, and
  ``rollback.log`` holds the rows as they now stand (the event is retried, or growth stops);
- ``on_run_end(summary: Summary)``: once, with the run's summary.

A callback is any object with some of these methods (``GrowCallback`` has them all, doing nothing, to
subclass). Callbacks observe: they are given copies of records and must not edit the model. An
exception in a callback ends the run like any other error; the run folder stays resumable from its
last finished epoch (an exception in ``on_run_end`` comes after the run is finished and written).

``TensorBoardLog`` writes those rows as TensorBoard scalars (``pip install "edgegrow[tensorboard]"``).
Every run folder also holds them as CSV (``epochs.csv``, ``growth.csv``), without any callback.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .run_folder import EpochRow, GrowthRow, RunLog, Summary

HOOKS = ("on_run_start", "on_epoch_end", "on_growth", "on_rollback", "on_run_end")


@dataclass(frozen=True)
class RunStart:
    """What a callback learns when a run starts: its folder (None without one), method, target and
    budget, the run's length in optimizer steps and epochs, and where it starts from."""

    out_dir: Path | None
    method: str
    target: str
    budget: dict
    epochs: int
    steps_per_epoch: int
    total_steps: int  # of the growth phase's schedule (the whole run's)
    grow_steps: int  # where the growth phase stops: total_steps, or with ``restart`` its search epochs' end
    phase: str  # "grow" or "retrain"
    step: int  # 0, or the step a resumed run goes on from (in its phase)
    resumed: bool
    log: RunLog  # the rows before this start: none for a fresh run (its seed row comes by on_growth),
    # or all a resumed run had recorded


@dataclass(frozen=True)
class Rollback:
    """A growth event undone: the run is back at optimizer ``step`` of the growth phase with ``log``."""

    step: int
    log: RunLog


class GrowCallback:
    """A callback that does nothing; override the hooks you need (see the module docstring)."""

    def on_run_start(self, info: RunStart) -> None:
        pass

    def on_epoch_end(self, row: EpochRow) -> None:
        pass

    def on_growth(self, row: GrowthRow) -> None:
        pass

    def on_rollback(self, rollback: Rollback) -> None:
        pass

    def on_run_end(self, summary: Summary) -> None:
        pass


def check_callbacks(callbacks) -> list:
    """The callbacks as a list; ValueError for one that has none of the hooks (a typo, or a function
    where an object was meant)."""
    callbacks = list(callbacks or ())
    for callback in callbacks:
        if not any(callable(getattr(callback, hook, None)) for hook in HOOKS):
            raise ValueError(f"callback {callback!r} has none of the hooks {', '.join(HOOKS)}; subclass "
                             "edgegrow.grow.GrowCallback and override the ones you need")
    return callbacks


def call(callbacks: list, hook: str, value: Any) -> None:
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if callable(method):
            method(value)


def tensorboard_writer_class():
    """torch's ``SummaryWriter``; ValueError with the install command where tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError('TensorBoard logging needs the tensorboard package: pip install "edgegrow[tensorboard]"'
                         ) from None
    return SummaryWriter


class TensorBoardLog(GrowCallback):
    """TensorBoard scalars of a grow run, in ``log_dir``, indexed by optimizer step over the whole run
    (retraining's steps follow the growth phase's).

    Per epoch: ``{phase}/train_loss``, ``train_accuracy``, ``validation_loss``, ``validation_accuracy``,
    ``learning_rate``, ``macs``, ``mac_epochs`` and ``predicted/<metric>`` (``phase`` is ``grow`` or
    ``retrain``). Per growth event: ``growth/depth``, ``growth/width/<group>``, ``growth/usage/<metric>``,
    ``growth/predicted_decrease``, ``growth/seconds`` and ``growth/chosen/<kind>``. Every start makes
    TensorBoard drop what an earlier run in ``log_dir`` logged (``purge_step`` 0) and writes a resumed
    run's recorded rows again; a rollback drops what was logged from the event's step on and writes the
    rows that stand again. So the curves are the run's log exactly: no doubled stretch, no row lost
    between a save and a kill, no event that was undone.
    """

    def __init__(self, log_dir: str | Path):
        self._writer_class = tensorboard_writer_class()
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_run_start(self, info: RunStart) -> None:
        self.writer = self._writer_class(str(self.log_dir), purge_step=0)
        self._first_step = {"grow": 0, "retrain": info.grow_steps}
        self._replay(info.log.rows)

    def on_rollback(self, rollback: Rollback) -> None:
        self.writer.close()
        self.writer = self._writer_class(str(self.log_dir), purge_step=rollback.step)
        self._replay([row for row in rollback.log.rows if row.row == "epoch" and row.phase == "grow"
                      and row.step >= rollback.step])

    def _replay(self, rows) -> None:
        for row in rows:
            (self.on_epoch_end if row.row == "epoch" else self.on_growth)(row)

    def _scalar(self, tag: str, value, step: int) -> None:
        if value is not None and self.writer is not None:
            self.writer.add_scalar(tag, float(value), step)

    def on_epoch_end(self, row: EpochRow) -> None:
        step = self._first_step[row.phase] + row.step
        for name in ("train_loss", "train_accuracy", "validation_loss", "validation_accuracy", "learning_rate",
                     "macs", "mac_epochs"):
            self._scalar(f"{row.phase}/{name}", getattr(row, name), step)
        for metric, value in row.predicted.items():
            self._scalar(f"{row.phase}/predicted/{metric}", value, step)
        self.writer.flush()

    def on_growth(self, row: GrowthRow) -> None:
        self._scalar("growth/depth", row.depth, row.step)
        for group, width in row.widths.items():
            self._scalar(f"growth/width/{group}", width, row.step)
        for metric, share in row.usage.items():
            self._scalar(f"growth/usage/{metric}", share, row.step)
        for kind, count in row.chosen.items():
            self._scalar(f"growth/chosen/{kind}", count, row.step)
        self._scalar("growth/predicted_decrease", row.predicted_decrease, row.step)
        self._scalar("growth/seconds", row.growth_seconds, row.step)
        self.writer.flush()

    def on_run_end(self, summary: Summary) -> None:
        if self.writer is not None:
            self.writer.close()
