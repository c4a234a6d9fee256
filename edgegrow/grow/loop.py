"""The grow loop: one training run with growth events inside it, then, if asked, the found architecture
retrained from scratch, and the better of the two by validation accuracy.

``grow(model, task, target, budget, config, out_dir)`` is the library API behind ``edgegrow grow``:

1. train the seed with the run's one optimizer and learning-rate schedule (``GrowConfig``: warm-up,
   then cosine over all ``epochs``);
2. at each growth event (``schedule.growth_events``: every ``growth_every`` epochs until
   ``growth_end``), the method proposes candidates, selection keeps the most predicted loss decrease
   per unit of the target's cost under the event's share of the budget, and they are applied to the
   model in place (``growth_step.grow_step``); the optimizer is the same object before and after,
   its state following the edit; training goes on at the same step of the same schedule;
3. after the last epoch, the grown model is evaluated; with ``retrain`` its architecture is trained
   again from fresh weights with the same schedule, its convolutions shrunk by ``shrink`` at every
   scheduled event's step as the grow run's were (the recipe without growth), and the run keeps the
   better of the two on the validation split (never the test split). With ``restart`` (DS-CNN's
   default where the data allows, ``GrowConfig.for_family``) the growth phase ends with growth
   (``GrowConfig.search_epochs``) and that retraining gets the run's remaining epochs, so the whole run
   costs one run's compute; it starts from the grown weights blended with fresh ones
   (``GrowConfig.restart_keep``, ``growth_step.blend_with_fresh``) rather than from fresh weights alone.

Guarantees: a seed that already exceeds a budget is refused before any training, and the model after
every event fits every limit (``fit_to_budget`` checks the grown model's full estimate). A NaN or
infinite loss within an epoch after a growth event rolls the run back to just before the event and
retries it with ε quartered and the learning rate halved (said in the log, recorded as
``numerical_faults``); after ``NUMERICAL_RETRIES`` retries growth stops and training goes on with the
network from before the event. A loss that diverges later keeps the model of the last finished epoch.
With ``out_dir``, the run can be killed at any moment and ``resume=True`` continues after its last
finished epoch as if it had never stopped (same events, same losses); see ``run_folder`` for the files.
"""
from __future__ import annotations

import copy
import hashlib
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from cost_models import CostReport, Target, load_target

from ..checkpoint import CUSTOM_FAMILY, Checkpoint, load_checkpoint, rebuild, save_checkpoint
from ..data.task_data import TaskData
from ..growth.budget import Budget
from ..training import Training, evaluate, make_optimizer
from ..training.device import resolve_device
from ..training.distributed import barrier, broadcast_object, current_world
from ..training.train import NON_FINITE, LossFunction
from . import run_folder as files
from .callbacks import Rollback, RunStart, call, check_callbacks
from .checks import check_budget_reachable, check_seed_fits, check_seed_suits_task
from .config import GrowConfig
from .growth_step import (
    CostCache,
    blend_with_fresh,
    grow_step,
    model_depth,
    model_widths,
    predicted_costs,
    shrink_convolutions,
)
from .run_folder import EpochRow, GrowthRow, Outcome, RunFolder, RunLog, RunMeta, Summary
from .schedule import GrowthEvent, growth_events

NUMERICAL_RETRIES = 2  # growth events rolled back for a NaN or infinite loss before growth stops


class NumericalFault(RuntimeError):
    """Training diverged (NaN or infinite loss) where no rollback can help: the seed's own training."""


@dataclass
class GrowResult:
    model: nn.Module  # the kept model (grown, or retrained with ``retrain``)
    log: RunLog
    summary: Summary
    report: CostReport
    out_dir: Path | None

    @property
    def usage(self) -> dict[str, float]:
        return self.summary.usage

    @property
    def test_accuracy(self) -> float | None:
        return self.summary.test_accuracy

    @property
    def stopped_by(self) -> str:
        return self.summary.stopped_by


@dataclass
class _State:
    """Everything a run is at one moment besides its Training: saved together with it, restored together."""

    phase: str = "grow"  # "grow", then "retrain" when asked
    edits: list[dict] = field(default_factory=list)
    log: RunLog = field(default_factory=RunLog)
    events_done: int = 0  # growth events of the schedule already taken (applied or passed)
    growth_stopped_by: str | None = None
    faults: list[dict] = field(default_factory=list)
    mac_epochs: float = 0.0
    settings: dict = field(default_factory=dict)  # GrowConfig as lowered by retries
    last_event_step: int | None = None  # step of the latest event that changed the network
    grown: dict | None = None  # Outcome of the grown network, once the growth phase is done
    retrain_shrinks_done: int = 0  # scheduled event steps the retraining has shrunk its convolutions at

    def to_meta(self) -> dict:
        meta = asdict(self)
        meta["log"] = self.log.to_dicts()
        return meta

    @classmethod
    def from_meta(cls, meta: dict, where: str) -> _State:
        values = {key: meta[key] for key in cls.__dataclass_fields__ if key in meta}
        values["log"] = RunLog.from_dicts(meta.get("log", []), where)
        return cls(**values)


@dataclass
class _Snapshot:
    """A run at one moment, in memory: the model, the training state and the rest, all copied."""

    model: nn.Module
    training: dict
    state: _State


class _Run:
    """One grow run: its fixed inputs and its changing model, training and state."""

    def __init__(self, model, task, target, budget, config, folder, family, seed_options, log, progress,
                 task_source, callbacks=(), loss_function=None):
        self.task, self.target, self.budget, self.base_config = task, target, budget, config
        self.folder, self.family, self.seed_options, self.log, self.progress = (folder, family, seed_options, log,
                                                                                progress)
        self.task_source = task_source
        # in a torchrun job every rank runs this; rank 0 alone decides growth, writes, logs and calls back
        self.world = current_world()
        if not self.world.main:
            self.log, self.progress = (lambda line: None), False
        # on the run's device, as the model (Training moves it there)
        self.example = torch.zeros(1, *task.input_shape, device=resolve_device(config.device))
        self.costs = CostCache(target, self.example)
        self.loss_fn = loss_function or nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.callbacks = check_callbacks(callbacks)  # on every rank: a wrong one stops them all alike
        if not self.world.main:
            self.callbacks = []
        # a network of the user's own is rebuilt from its seed (checkpoint.rebuild): keep it as given
        self.seed = copy.deepcopy(model) if family == CUSTOM_FAMILY else None
        self.seed_usage = budget.binding(self.costs.report(model))[1]
        self.state = _State(settings=config.to_dict())
        self.events: list[GrowthEvent] = []
        self.grown_model: nn.Module | None = None
        self.training = self._training(model)
        self.before_growth: _Snapshot | None = None
        self.last_epoch: _Snapshot | None = None
        self._segment = (0, 0)  # (samples_seen, mac_epochs) where the current constant-MACs stretch began

    # -- settings ---------------------------------------------------------------------------------
    @property
    def config(self) -> GrowConfig:
        return GrowConfig.from_dict(self.state.settings)

    @property
    def model(self) -> nn.Module:
        return self.training.model

    @property
    def grow_steps(self) -> int:
        """Optimizer steps of the growth phase: the whole run's, or with ``restart`` its search epochs'."""
        epochs = self.base_config.search_epochs if self.base_config.restart else self.base_config.epochs
        return epochs * self.training.steps_per_epoch

    def _training(self, model: nn.Module) -> Training:
        config = self.base_config.train_config()
        if self.state.phase == "retrain" and self.base_config.restart:  # the rest of the run's epochs
            config = replace(config, epochs=config.epochs - self.base_config.search_epochs)
        optimizer = make_optimizer(model, config)
        for group in optimizer.param_groups:
            group["newborn_state"] = self.base_config.newborn_state
        return Training(model, self.task, config, optimizer=optimizer, loss_function=self.loss_fn,
                        progress=self.progress, on_epoch=self._epoch_done)

    # -- snapshots -------------------------------------------------------------------------------
    def snapshot(self) -> _Snapshot:
        return _Snapshot(copy.deepcopy(self.model), copy.deepcopy(self.training.state_dict()),
                         copy.deepcopy(self.state))

    def restore(self, snapshot: _Snapshot) -> None:
        model = copy.deepcopy(snapshot.model)
        self.state = copy.deepcopy(snapshot.state)
        self.training = self._training(model)
        self.training.load_state_dict(copy.deepcopy(snapshot.training))
        self._start_segment()

    def save(self, name: str, snapshot: _Snapshot | None = None) -> None:
        """Write ``snapshot`` (default: the run now) as the run folder's file ``name``."""
        if self.folder is None or not self.world.main:
            return
        current = snapshot is None
        snapshot = snapshot or _Snapshot(self.model, self.training.state_dict(), self.state)
        save_checkpoint(self.folder.file(name), snapshot.model,
                        Checkpoint(self.family, self.seed_options, snapshot.state.edits,
                                   {**snapshot.state.to_meta(), **self._meta_common()},
                                   {"training": snapshot.training}))
        if current:
            self.folder.write_log(snapshot.state.log)

    def load(self, name: str) -> _Snapshot:
        model, checkpoint = load_checkpoint(self.folder.file(name), seed=self.seed)
        _check_same_run(self, checkpoint.meta, self.folder.file(name))
        return _Snapshot(model, checkpoint.tensors["training"],
                         _State.from_meta(checkpoint.meta, str(self.folder.file(name))))

    def _meta_common(self) -> dict:
        return asdict(RunMeta(self.task.name, list(self.task.class_names), list(self.task.input_shape),
                              self.task.preprocessing, self.task_source, self.target.name, dict(self.budget.limits),
                              self.base_config.method, self.base_config.to_dict()))

    # -- bookkeeping ------------------------------------------------------------------------------
    def _start_segment(self) -> None:
        self._segment = (self.training.samples_seen, self.state.mac_epochs)

    def _macs_now(self) -> int:
        return self.costs.report(self.model).macs

    def _mac_epochs_now(self) -> float:
        samples, mac_epochs = self._segment
        return mac_epochs + self._macs_now() * (self.training.samples_seen - samples) / len(self.task.train)

    def _epoch_done(self, record) -> None:
        self.state.mac_epochs = self._mac_epochs_now()
        self._start_segment()
        report = self.costs.report(self.model)
        self.state.log.rows.append(EpochRow(**asdict(record), phase=self.state.phase, step=self.training.step,
                                            macs=report.macs, mac_epochs=self.state.mac_epochs,
                                            predicted=predicted_costs(report)))
        accuracy = "n/a" if record.validation_accuracy is None else f"{record.validation_accuracy:.1%}"
        self.log(f"  {self.state.phase} epoch {record.epoch}/{self.training.config.epochs}: train loss "
                 f"{record.train_loss:.4f}, validation {accuracy}, lr {record.learning_rate:.3g}")
        self.last_epoch = self.snapshot()
        self.save(files.STATE)
        call(self.callbacks, "on_epoch_end", copy.deepcopy(self.state.log.rows[-1]))

    def growth_row(self, event: int, step: int, result=None, seconds: float = 0.0, cap: float | None = None,
                   stopped_by: str | None = None) -> GrowthRow:
        report = self.costs.report(self.model)
        row = GrowthRow(event, step, step / self.training.steps_per_epoch, model_widths(self.model, self.example),
                        model_depth(self.model), predicted_costs(report), self.budget.usage(report), cap,
                        result.scored if result else 0, result.chosen if result else {},
                        result.predicted_decrease if result else 0.0, seconds, stopped_by)
        self.state.log.rows.append(row)
        return row

    # -- one growth event ---------------------------------------------------------------------------
    def grow_at(self, event: GrowthEvent) -> None:
        self.state.mac_epochs = self._mac_epochs_now()
        self._start_segment()
        self.before_growth = self.snapshot()
        if self.world.main:
            self._grow_at(event)
        if self.world.parallel:  # rank 0's grown network, optimizer state and record, taken up by every rank
            self.restore(broadcast_object(self.snapshot() if self.world.main else None, self.world))

    def _grow_at(self, event: GrowthEvent) -> None:
        started = time.perf_counter()
        usage = self.budget.binding(self.costs.report(self.model))[1]
        self.state.events_done = event.number
        if usage >= self.config.stop_usage:
            self.state.growth_stopped_by = "budget spent"
            self.log(f"  growth stops before event {event.number}: {usage:.0%} of the budget used")
            return
        cap = event.usage_cap(self.seed_usage)
        result = grow_step(self.model, self.task, self.example, self.budget, self.costs, self.config, event.number,
                           event.count, cap, self.loss_fn, self.training.optimizer)
        self.state.edits.extend(result.edits)
        if result.applied:
            self.state.last_event_step = event.step
            self.save(files.BEFORE_GROWTH, self.before_growth)
        if result.stopped_by:
            self.state.growth_stopped_by = result.stopped_by
        self._start_segment()
        row = self.growth_row(event.number, event.step, result, time.perf_counter() - started, cap, result.stopped_by)
        self.log(_describe_growth(row, self.training.steps_per_epoch))
        call(self.callbacks, "on_growth", copy.deepcopy(row))

    # -- faults -----------------------------------------------------------------------------------
    def recover(self) -> bool:
        """After a NaN or infinite loss at ``training.step``: roll back and retry the latest growth event,
        or stop growing, or keep the last finished epoch. Returns whether training goes on."""
        step, epoch = self.training.step, self.training.epoch + 1
        last = self.state.last_event_step
        if self.state.phase == "grow" and last is not None and step - last <= self.training.steps_per_epoch \
                and self.before_growth is not None:
            retries = sum(fault.get("retry", False) for fault in self.state.faults)
            fault = {"phase": "grow", "event_step": last, "step": step, "epoch": epoch,
                     "epsilon": self.config.epsilon, "learning_rate_scale": self.training.learning_rate_scale}
            self.restore(self.before_growth)
            call(self.callbacks, "on_rollback", Rollback(last, copy.deepcopy(self.state.log)))
            if retries >= NUMERICAL_RETRIES:
                self.state.faults.append({**fault, "retry": False})
                self.state.growth_stopped_by = "numerical fault: the loss diverged after growth"
                self.state.events_done = len(self.events)  # no event after this one either
                self.log(f"  the loss became NaN or infinite in epoch {epoch} after growth again; rolled the event "
                         f"back and stopped growing ({NUMERICAL_RETRIES} retries spent)")
                return True
            self.state.settings = self.config.lowered().to_dict()
            self.training.learning_rate_scale /= 2
            self.state.faults.append({**fault, "retry": True, "retry_epsilon": self.config.epsilon,
                                      "retry_learning_rate_scale": self.training.learning_rate_scale})
            self.log(f"  the loss became NaN or infinite in epoch {epoch} after growth; rolled the event back, "
                     f"trying again with ε {self.config.epsilon:g} and the learning rate halved")
            return True
        if not self.training.history or (self.state.phase == "grow" and not self.state.edits):
            what = "the seed's" if self.state.phase == "grow" else "the retrained network's"
            raise NumericalFault(f"{what} training loss became NaN or infinite in epoch {epoch} at learning rate "
                                 f"{self.training.learning_rate():g}: lower learning_rate (--lr) or check the data "
                                 "for NaN or huge values")
        if self.last_epoch is not None:
            self.restore(self.last_epoch)
        self.state.faults.append({"phase": self.state.phase, "step": step, "epoch": epoch})
        if self.state.phase == "grow" and self.state.growth_stopped_by is None:
            self.state.growth_stopped_by = "numerical fault: training diverged"
        self.log(f"note: the loss became NaN or infinite in {self.state.phase} epoch {epoch}; kept the model from the "
                 "end of the epoch before and stopped training")
        return False


def grow(model: nn.Module, task: TaskData, target: Target | str, budget: Budget, config: GrowConfig = GrowConfig(),
         out_dir: str | Path | None = None, *, family: str | None = None, seed_options: dict | None = None,
         resume: bool = False, progress: bool = False, log: Callable[[str], None] = print,
         task_source: dict | None = None, callbacks=(), loss_function: LossFunction | None = None) -> GrowResult:
    """Grow ``model`` (a seed built by ``build_seed(family, **seed_options)``, or with ``family`` None a
    network of your own) on ``task`` to ``budget`` (see the module docstring).

    A network of your own is recorded as family ``custom``: its checkpoint loads with
    ``load_checkpoint(path, seed=...)`` and ``resume`` needs the same seed passed again as ``model``.
    ``task_source`` (``Task.source``) is recorded so ``edgegrow export`` can reload the same data. With
    ``resume``, the run in ``out_dir`` continues (it must be of the same method, target, budget and
    task); otherwise ``out_dir`` must not already hold a run.

    ``callbacks``: objects whose ``on_run_start``, ``on_epoch_end``, ``on_growth`` and ``on_run_end`` are
    called as the run goes (``edgegrow.grow.callbacks``; not called for a folder that holds a finished
    run). ``loss_function``: ``(logits, labels) -> scalar loss`` to train with and to score growth
    candidates with (default: cross-entropy with ``config.label_smoothing``); validation and test
    report cross-entropy and accuracy whatever it is. A run resumed with a loss of its own needs the
    same loss passed again: it is code, not recorded in the run folder.
    """
    target = load_target(target) if isinstance(target, str) else target
    if family is None:
        family, seed_options = CUSTOM_FAMILY, {"input_shape": list(task.input_shape), **(seed_options or {})}
    # the family's measured settings where config leaves them None
    short_restart = config.no_restart_reason(family, len(task.train)) if config.for_family(family).restart else None
    config = config.for_family(family, len(task.train))
    if short_restart:
        log(f"note: growing in place, not restarting after growth (the family's default): {short_restart}")
    folder = RunFolder(out_dir) if out_dir is not None else None
    run = _Run(model, task, target, budget, config, folder, family, seed_options or {}, log, progress,
               task_source or {}, callbacks, loss_function)
    check_seed_suits_task(model, task, run.example)
    seed_report = run.costs.report(model)
    check_seed_fits(seed_report, budget)
    run.events = growth_events(config, run.training.steps_per_epoch)
    check_budget_reachable(seed_report, budget, len(run.events))
    if folder is not None and _prepare(run, resume):
        return _finished(run)
    fresh = not run.state.log.rows
    if fresh:
        run.growth_row(0, 0)  # the seed
    call(run.callbacks, "on_run_start", RunStart(
        folder.path if folder else None, config.method, run.target.name, dict(budget.limits), config.epochs,
        run.training.steps_per_epoch, run.training.total_steps, run.grow_steps, run.state.phase, run.training.step,
        not fresh,
        copy.deepcopy(run.state.log) if not fresh else files.RunLog()))
    if fresh:
        call(run.callbacks, "on_growth", copy.deepcopy(run.state.log.rows[0]))

    if run.state.phase == "grow":
        _train_phase(run)
        run.state.grown = asdict(_outcome(run))
        run.grown_model = copy.deepcopy(run.model)
        _save_model(run, files.GROWN, "grown")
        if config.retrain or config.restart:
            run.state.phase = "retrain"
            restarted = _fresh(run)
            if config.restart:
                restarted = blend_with_fresh(restarted, run.model, run.config.restart_keep)
            run.training = run._training(restarted)
            run.last_epoch = run.before_growth = None
            run.state.mac_epochs = 0.0
            run._start_segment()
            run.save(files.STATE)
            shrinks = (f", convolutions ×{run.config.shrink:g} at the events' steps" if run.config.shrink != 1.0
                       else "")
            if config.restart:
                run.log(f"growth is over: training the found architecture from {run.config.restart_start} for the run's last "
                        f"{run.training.config.epochs} epochs (its own warm-up and schedule{shrinks})")
            else:
                run.log(f"retraining the found architecture from scratch ({config.epochs} epochs, the same "
                        f"schedule{shrinks})")
    if run.state.phase == "retrain":
        _train_phase(run)
        _save_model(run, files.RETRAINED, "retrained")
    return _finish(run)


def _train_phase(run: _Run) -> None:
    """Train the current phase to its end: the growth phase stops at each due event to grow, the
    retraining at each scheduled event's step to shrink its convolutions as growth did."""
    end = run.grow_steps if run.state.phase == "grow" else run.training.total_steps  # restart: the search's end
    while run.training.step < end:
        event = shrink_at = None
        growing = run.state.phase == "grow" and run.state.growth_stopped_by is None
        if growing and run.state.events_done < len(run.events):
            event = run.events[run.state.events_done]
        if run.state.phase == "retrain" and run.config.shrink != 1.0 \
                and run.state.retrain_shrinks_done < len(run.events) \
                and run.events[run.state.retrain_shrinks_done].step < end:  # a restart's shorter run: those before its end
            shrink_at = run.events[run.state.retrain_shrinks_done].step
        stop = event.step if event is not None else shrink_at
        outcome = run.training.run(end if stop is None else min(stop, end))
        if outcome == NON_FINITE:
            if run.recover():
                continue
            break
        if event is not None and run.training.step == event.step:
            run.grow_at(event)
        if shrink_at is not None and run.training.step == shrink_at:
            shrink_convolutions(run.model, run.config.shrink)
            run.state.retrain_shrinks_done += 1
    run.state.mac_epochs = run._mac_epochs_now()
    run._start_segment()
    if run.state.phase == "grow" and run.state.growth_stopped_by is None:
        run.state.growth_stopped_by = "growth_end reached"


def _outcome(run: _Run) -> Outcome:
    task = run.task
    validation = evaluate(run.model, task.validation, task.class_names).accuracy if len(task.validation) else None
    test = evaluate(run.model, task.test, task.class_names).accuracy if len(task.test) else None
    return Outcome(validation, test, run.training.epoch, run.training.seconds, run.state.mac_epochs)


def _fresh(run: _Run) -> nn.Module:
    """The found architecture with freshly initialised weights."""
    return reinitialise(rebuild(run.family, run.seed_options, run.state.edits, run.seed), run.base_config.seed)


def reinitialise(model: nn.Module, seed: int) -> nn.Module:
    """``model`` with fresh weights (each layer's own ``reset_parameters``, BatchNorm statistics reset),
    drawn as ``--retrain`` draws them for a run of ``seed``; in training mode."""
    torch.manual_seed(seed * 1009 + 1)
    for module in model.modules():
        if hasattr(module, "reset_parameters") and module is not model:
            module.reset_parameters()
        if hasattr(module, "reset_running_stats"):
            module.reset_running_stats()
    return model.train()


def _save_model(run: _Run, name: str, which: str) -> None:
    if run.folder is None or not run.world.main:
        return
    meta = {**run._meta_common(), "model": which, "stopped_by": run.state.growth_stopped_by,
            "events": sum(1 for row in run.state.log.growth if row.event and row.chosen)}
    save_checkpoint(run.folder.file(name), run.model, Checkpoint(run.family, run.seed_options, run.state.edits, meta))


def _finish(run: _Run) -> GrowResult:
    """Evaluate, keep the better model by validation accuracy, write checkpoint.pt, summary and report."""
    retrained = _outcome(run) if run.state.phase == "retrain" else None
    grown = Outcome(**run.state.grown)
    kept = "grown"
    model = run.model
    if retrained is not None:
        if (retrained.validation_accuracy or 0) > (grown.validation_accuracy or 0):
            kept = "retrained"
        else:
            model = run.grown_model or load_checkpoint(run.folder.file(files.GROWN), seed=run.seed)[0]
    report = run.costs.report(model)
    binding, usage = run.budget.binding(report)
    violations = run.budget.violations(report)
    if violations:  # fit_to_budget makes this impossible; a failure here is a bug, not a user mistake
        raise RuntimeError(f"grown model exceeds the budget: {'; '.join(violations)}")
    outcome = retrained if kept == "retrained" else grown
    model = model.cpu()  # the kept model on the CPU, whatever device it trained on (export, ONNX, TFLite read it there)
    growth_rows = run.state.log.growth
    summary = Summary(
        method=run.base_config.method, target=run.target.name, budget=dict(run.budget.limits),
        stopped_by=run.state.growth_stopped_by or "growth_end reached",
        events=sum(1 for row in growth_rows if row.event and row.chosen), usage=run.budget.usage(report),
        binding=binding, predicted=predicted_costs(report), widths=model_widths(model, run.example),
        depth=model_depth(model), test_accuracy=outcome.test_accuracy,
        validation_accuracy=outcome.validation_accuracy, numerical_faults=run.state.faults,
        growth_seconds=sum(row.growth_seconds for row in growth_rows),
        training_seconds=grown.training_seconds + (retrained.training_seconds if retrained else 0.0),
        mac_epochs=grown.mac_epochs + (retrained.mac_epochs if retrained else 0.0), kept=kept, grown=grown,
        retrained=retrained)
    if usage < run.base_config.min_usage:
        run.log(f"note: the grown model uses {usage:.0%} of the {binding} budget (growth: {summary.stopped_by})")
    if run.folder is not None and run.world.main:
        meta = {**run._meta_common(), "model": kept, "stopped_by": summary.stopped_by, "events": summary.events}
        save_checkpoint(run.folder.file(files.CHECKPOINT), model,
                        Checkpoint(run.family, run.seed_options, run.state.edits, meta))
        run.folder.write_log(run.state.log)
        run.folder.write_summary(summary)
        for name in (files.STATE, files.BEFORE_GROWTH):
            run.folder.file(name).unlink(missing_ok=True)
        _write_report(run.folder.path, model, run.log)
    call(run.callbacks, "on_run_end", copy.deepcopy(summary))
    return GrowResult(model, run.state.log, summary, report, run.folder.path if run.folder else None)


def _finished(run: _Run) -> GrowResult:
    """A finished run folder, returned as it is (the model on the CPU, as a run that just finished)."""
    model, _ = load_checkpoint(run.folder.file(files.CHECKPOINT), seed=run.seed)
    log, summary = files.read_run(run.folder.path)
    run.log(f"{run.folder.path} holds a finished run; returned as it is")
    return GrowResult(model, log, summary, run.costs.report(model), run.folder.path)


def _write_report(out_dir: Path, model: nn.Module, log: Callable[[str], None]) -> None:
    """The run's report.html. The run itself is done and saved by now, so a report that cannot be
    drawn is said, not raised: the model and its logs must not be lost to a plotting problem."""
    from ..report import write_report

    try:
        write_report(out_dir, model=model)
    except Exception as error:  # noqa: BLE001 — see the docstring; 'edgegrow report' retries and raises
        log(f"note: report.html not written ({type(error).__name__}: {error}); run 'edgegrow report {out_dir}'")


# -- the run folder ------------------------------------------------------------------------------------
def _prepare(run: _Run, resume: bool) -> bool:
    """Check the run folder; start it, or with ``resume`` load its state. Returns whether the run there
    is already finished."""
    folder = run.folder
    if not resume:
        if folder.holds_run():
            raise ValueError(f"{folder.path} already holds a grow run; pass --resume to continue it "
                             "or choose another --out")
        barrier(run.world)  # every rank of a torchrun job has looked before rank 0 writes
        if run.world.main:
            folder.path.mkdir(parents=True, exist_ok=True)
            folder.write_record(_run_record(run))
        return False
    if folder.finished():
        _check_same_run(run, load_checkpoint(folder.file(files.CHECKPOINT), seed=run.seed)[1].meta,
                        folder.file(files.CHECKPOINT))
        return True
    if not folder.file(files.STATE).exists():
        raise ValueError(f"nothing to resume in {folder.path}: it has no {files.STATE} (run without --resume to start)")
    run.last_epoch = run.load(files.STATE)
    if folder.file(files.BEFORE_GROWTH).exists():
        run.before_growth = run.load(files.BEFORE_GROWTH)
    run.restore(run.last_epoch)
    recorded = folder.read_record()
    profile = _profile_sha256(run.target)
    if recorded and recorded.get("target_profile_sha256") not in (None, profile):
        run.log(f"note: the {run.target.name} profile changed since this run started ({run.target.path}): "
                "costs from here on come from the new one, so the run is no longer reproducible from run.json")
    run.log(f"resuming {folder.path} in its {run.state.phase} phase after epoch {run.training.epoch} of "
            f"{run.training.config.epochs}")
    return False


def _profile_sha256(target: Target) -> str | None:
    path = Path(target.path) if target.path else None
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else None


def _run_record(run: _Run) -> dict:
    """run.json: what it takes to run this again and get the same network."""
    import numpy

    from .. import __version__

    return {"edgegrow": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "numpy": numpy.__version__, "platform": platform.platform(), "machine": platform.machine(),
            "torch_threads": torch.get_num_threads(), "command": sys.argv, "seed": run.base_config.seed,
            "config": run.base_config.to_dict(), "family": run.family, "seed_options": run.seed_options,
            "target": run.target.name,
            "target_profile": str(Path(run.target.path).resolve()) if run.target.path else None,
            "target_profile_sha256": _profile_sha256(run.target), "budget": dict(run.budget.limits),
            "task": run.task.name, "task_source": run.task_source}


def _check_same_run(run: _Run, meta: dict, path: Path) -> None:
    recorded = RunMeta.from_dict(meta, str(path))
    expected = {"method": run.base_config.method, "target": run.target.name, "budget": dict(run.budget.limits),
                "task": run.task.name}
    found = {"method": recorded.method, "target": recorded.target, "budget": recorded.budget, "task": recorded.task}
    differing = [f"{key} {found[key]!r} (now {expected[key]!r})" for key in expected if found[key] != expected[key]]
    if differing:
        raise ValueError(f"{run.folder.path} holds a run with another {', '.join(differing)}; resume with the same "
                         "settings or choose another --out")


def _describe_growth(row: GrowthRow, steps_per_epoch: int) -> str:
    widths = "/".join(str(w) for w in row.widths.values())
    usage = max(row.usage.values())
    what = ", ".join(f"{n} {kind}" for kind, n in row.chosen.items()) or "nothing applied"
    stop = f"; growth stops: {row.stopped_by}" if row.stopped_by else ""
    return (f"growth event {row.event} at epoch {row.epoch:.2f}: {what}; widths {widths}, depth {row.depth}, "
            f"{row.predicted['latency_ms']:.4f} ms, {row.predicted['macs']:,} MACs, budget {usage:.0%} "
            f"(cap {row.usage_cap:.0%}, {row.growth_seconds:.1f} s){stop}")

