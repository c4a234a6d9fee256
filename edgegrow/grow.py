"""The grow loop: train a seed, then score → select under the budget → apply → fine-tune, until the
budget is spent or nothing lowers the loss; then a final fine-tune.

``grow(model, task, target, budget, config, out_dir)`` is the library API behind ``edgegrow grow``.
Each step's share of the budget is capped (``growth_rate``: the binding metric's usage may grow by
that factor per step), so the network grows gradually and is trained between steps. The run folder
holds:

- ``steps.jsonl``: one row per phase (seed, each growth step, final) — widths and depth, predicted
  cost and budget usage, train and validation loss and accuracy, seconds spent choosing growth and
  seconds spent training, candidates scored and chosen;
- ``checkpoint.pt``: the model after the last finished phase (``load_checkpoint``; ``--resume``);
- ``epoch.pt``: while a phase trains, the model, optimizer and random state after its last finished
  epoch, so ``--resume`` after a kill (Ctrl-C or SIGKILL) loses at most one epoch and continues as
  the uninterrupted run would have;
- ``summary.json``: the final model's cost, usage, test accuracy and why growth stopped;
- ``run.json``: what reproduces the run: the versions of Python, torch, numpy and edgegrow, the seed,
  the whole config, the budget, the task and its data, and the SHA-256 of the target profile. The same
  command with the same seed gives the same architecture and metrics on CPU (same thread count).

Guarantees: a seed that already exceeds a budget is an error before any training; the model after
every step fits every limit (``fit_to_budget`` checks the grown model's full estimate). A growth step
after which the loss turns NaN or infinite is rolled back and tried again with ε quartered and the
learning rate halved (said in the log, kept in ``checkpoint.pt`` and ``summary.json`` as
``numerical_faults``); after ``NUMERICAL_RETRIES`` such retries growth stops and the run finishes
with the last good model. A final fine-tune that diverges keeps the model from before it.
"""
from __future__ import annotations

import copy
import hashlib
import json
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from cost_models import CostReport, KernelCostModel, LatencyModel, Target, load_target

from .atomic import write_atomically
from .checkpoint import CUSTOM_FAMILY, Checkpoint, load_checkpoint, save_checkpoint
from .data.task_data import TaskData
from .growth import find_channel_groups, group_width, growable_groups
from .growth.budget import Budget, metric_value
from .growth.candidates import Candidate, apply_candidates
from .growth.random_growth import RANDOM_METHODS, random_candidates
from .growth.selection import fit_to_budget, select_candidates
from .growth.splitting_candidates import SPLIT_METHODS, splitting_candidates
from .training import TrainConfig, TrainProgress, evaluate, make_optimizer, train
from .training.train import NON_FINITE

METHODS = (*SPLIT_METHODS, "firefly", *RANDOM_METHODS)
EPOCH_CHECKPOINT = "epoch.pt"
UNREACHABLE_USAGE = 0.01  # a budget the run cannot fill to this share is refused as a mistake
NUMERICAL_RETRIES = 2  # growth steps rolled back for a NaN or infinite loss before growth stops
METHOD_ALIASES = {"random": "random-split"}


class NumericalFault(RuntimeError):
    """Training diverged (NaN or infinite loss) where no rollback can help: the seed's own training."""


@dataclass(frozen=True)
class GrowConfig:
    """How to grow. Epoch counts are full passes over the training split."""

    method: str = "fast-split"
    seed_epochs: int = 8
    epochs_per_step: int = 3
    final_epochs: int = 8
    growth_rate: float = 1.0  # per step the binding budget's usage may grow by this factor (1.0: double)
    max_steps: int = 12
    min_usage: float = 0.85  # below this share of the binding budget growth goes on even if nothing helps
    stop_usage: float = 0.97  # at or above this share growth stops
    batch_size: int = 64
    learning_rate: float = 1e-2
    score_batches: int = 4  # training batches the candidates are scored on
    epsilon: float = 0.1  # split perturbation, relative to the neuron's fan-in norm
    fast_steps: int = 30  # Rayleigh-quotient steps of the fast eigen-solver
    weight_bound: float = 2.0  # Σ|ω| of signed splitting's offspring
    firefly_steps: int = 30  # training steps of Firefly's perturbations
    firefly_new_fraction: float = 0.5  # new-neuron candidates per group, as a share of its width
    firefly_layers: bool = True  # propose new layers (deeper) as well
    seed: int = 0

    def __post_init__(self):
        method = METHOD_ALIASES.get(self.method, self.method)
        if method not in METHODS:
            raise ValueError(f"unknown growth method {self.method!r}; choose one of {', '.join(METHODS)}")
        object.__setattr__(self, "method", method)
        for name in ("seed_epochs", "epochs_per_step", "final_epochs", "max_steps", "score_batches", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "final_epochs" else 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.growth_rate > 0:
            raise ValueError(f"growth_rate must be > 0, got {self.growth_rate!r}")
        if not 0 < self.min_usage <= self.stop_usage <= 1:
            raise ValueError("need 0 < min_usage <= stop_usage <= 1")

    @classmethod
    def quick(cls, **overrides) -> GrowConfig:
        """A short run (a few minutes on a laptop core): fewer epochs, steps and scoring batches."""
        settings = dict(seed_epochs=2, epochs_per_step=1, final_epochs=2, max_steps=6, score_batches=2,
                        fast_steps=10, firefly_steps=10)
        settings.update(overrides)
        return cls(**settings)


@dataclass
class GrowResult:
    model: nn.Module
    history: list[dict]
    report: CostReport
    usage: dict[str, float]
    test_accuracy: float | None
    stopped_by: str
    out_dir: Path | None


def model_widths(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    return {g.name: group_width(model, g) for g in growable_groups(find_channel_groups(model, example))}


def model_depth(model: nn.Module) -> int:
    """Weighted layers: convolutions (dense and depthwise) and fully connected layers."""
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


class _Run:
    """State of one grow run: the model, its cost model, the log and the checkpoint."""

    def __init__(self, model, task, target, budget, config, out_dir, family, seed_options, log):
        self.model, self.task, self.target, self.budget, self.config = model, task, target, budget, config
        self.out_dir, self.family, self.seed_options, self.log = out_dir, family, seed_options, log
        self.example = torch.zeros(1, *task.input_shape)
        self.latency_model = LatencyModel(target)
        self.loss_fn = nn.CrossEntropyLoss()
        self.edits: list[dict] = []
        self.history: list[dict] = []
        self.costs: dict[tuple, KernelCostModel] = {}
        self.task_source: dict = {}
        self.numerical_faults: list[dict] = []  # growth steps rolled back, and the settings lowered after each
        # a network of the user's own is rebuilt from its seed (checkpoint.rebuild): keep it as given
        self.seed = copy.deepcopy(model) if family == CUSTOM_FAMILY else None

    def cost(self, model: nn.Module | None = None) -> KernelCostModel:
        """The cost model of ``model`` (default: the run's), reused while its layer shapes are the same:
        tracing is most of a cost model's price, and weights do not change the cost."""
        model = model or self.model
        key = tuple((name, tuple(tensor.shape)) for name, tensor in model.state_dict().items())
        if key not in self.costs:
            if len(self.costs) >= 4:
                self.costs.pop(next(iter(self.costs)))
            self.costs[key] = KernelCostModel(model, self.example, self.target, self.latency_model)
        return self.costs[key]

    def train_config(self, epochs: int, seed_offset: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=self.config.batch_size, learning_rate=self.config.learning_rate,
                           seed=self.config.seed * 1009 + seed_offset)

    def train_phase(self, phase: str, step: int, epochs: int, seed_offset: int, progress: bool,
                    resumed: Checkpoint | None = None, phase_meta: dict | None = None):
        """Train one phase, saving ``epoch.pt`` (with ``phase_meta``: what a resumed phase needs to
        know of its growth step) after each epoch; with ``resumed`` (an ``epoch.pt`` of this phase)
        continue after its last epoch."""
        config = self.train_config(epochs, seed_offset)
        optimizer = make_optimizer(self.model, config)
        progress_state = None
        if resumed is not None:
            optimizer.load_state_dict(resumed.tensors["optimizer"])
            progress_state = TrainProgress.from_dict(resumed.tensors["progress"])
        rows_before = len(self.history)

        def save_epoch(state: TrainProgress) -> None:
            if self.out_dir is None:
                return
            meta = {"phase": phase, "step": step, "rows_before": rows_before, "epochs_done": len(state.history),
                    "epochs": epochs, "numerical_faults": self.numerical_faults, **_run_settings(self),
                    **(phase_meta or {})}
            save_checkpoint(self.out_dir / EPOCH_CHECKPOINT, self.model,
                            Checkpoint(self.family, self.seed_options, self.edits, meta,
                                       {"optimizer": optimizer.state_dict(), "progress": state.to_dict()}))

        return train(self.model, self.task, config, optimizer=optimizer, progress=progress,
                     on_epoch_state=save_epoch, resume=progress_state)

    def score_batches(self, step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.config.seed * 7919 + step)
        order = torch.randperm(len(self.task.train), generator=generator)
        size = min(self.config.batch_size, len(order))
        batches = []
        for index in range(self.config.score_batches):
            chosen = order[index * size:(index + 1) * size]
            if len(chosen) == 0:
                break
            batches.append((self.task.train.inputs[chosen], self.task.train.labels[chosen]))
        return batches

    def record(self, phase: str, step: int, training, growth_seconds: float, training_seconds: float,
               extra: dict | None = None) -> dict:
        report = self.cost().report
        last = training.history[-1] if training is not None and training.history else None
        row = {
            "phase": phase, "step": step, "widths": model_widths(self.model, self.example),
            "depth": model_depth(self.model),
            "predicted": {"latency_ms": report.latency_ms, "energy_mj": report.energy_mj, "macs": report.macs,
                          "params": report.parameters, "sram_kb": report.sram_bytes / 1024,
                          "flash_kb": report.flash_bytes / 1024},
            "usage": self.budget.usage(report),
            "train_loss": last.train_loss if last else None, "train_accuracy": last.train_accuracy if last else None,
            "validation_loss": last.validation_loss if last else None,
            "validation_accuracy": last.validation_accuracy if last else None,
            "growth_seconds": growth_seconds, "training_seconds": training_seconds,
            "epochs": training.as_dicts() if training is not None else [],
        }
        row.update(extra or {})
        self.history.append(row)
        return row

    def save(self, phase: str, step: int, stopped_by: str | None = None) -> None:
        if self.out_dir is None:
            return
        meta = {"phase": phase, "step": step, "stopped_by": stopped_by, "config": asdict(self.config),
                "budget": dict(self.budget.limits), "target": self.target.name, "task": self.task.name,
                "class_names": self.task.class_names, "input_shape": list(self.task.input_shape),
                "preprocessing": self.task.preprocessing, "task_source": self.task_source, "history": self.history,
                "numerical_faults": self.numerical_faults}
        save_checkpoint(self.out_dir / "checkpoint.pt", self.model,
                        Checkpoint(self.family, self.seed_options, self.edits, meta))
        write_atomically(self.out_dir / "steps.jsonl", "".join(json.dumps(row) + "\n" for row in self.history))
        (self.out_dir / EPOCH_CHECKPOINT).unlink(missing_ok=True)  # that phase is in checkpoint.pt now

    def roll_back(self, step: int, before: tuple[nn.Module, list[dict]], epoch: int) -> str | None:
        """Undo growth step ``step`` after its loss diverged in ``epoch``; lower ε and the learning
        rate for the retry, or return why growth stops after ``NUMERICAL_RETRIES`` retries."""
        self.model, self.edits = before
        self.model.train()
        if self.out_dir is not None:
            (self.out_dir / EPOCH_CHECKPOINT).unlink(missing_ok=True)
        fault = {"phase": "grow", "step": step, "epoch": epoch, "epsilon": self.config.epsilon,
                 "learning_rate": self.config.learning_rate}
        if sum(f["phase"] == "grow" for f in self.numerical_faults) >= NUMERICAL_RETRIES:
            self.numerical_faults.append(fault)
            self.log(f"  step {step}: the loss became NaN or infinite in epoch {epoch} after growth again; rolled "
                     f"the step back and stopped growing ({NUMERICAL_RETRIES} retries spent)")
            return "numerical fault: the loss diverged after growth"
        self.config = replace(self.config, epsilon=self.config.epsilon / 4, learning_rate=self.config.learning_rate / 2)
        fault.update(retry_epsilon=self.config.epsilon, retry_learning_rate=self.config.learning_rate)
        self.numerical_faults.append(fault)
        self.log(f"  step {step}: the loss became NaN or infinite in epoch {epoch} after growth; rolled the step "
                 f"back, trying again with ε {self.config.epsilon:g} and learning rate {self.config.learning_rate:g}")
        return None

    # -- one growth step -----------------------------------------------------------------------
    def candidates(self, step: int, batches) -> list[Candidate]:
        config, method = self.config, self.config.method
        if method in SPLIT_METHODS:
            return splitting_candidates(self.model, self.example, batches, self.loss_fn, method=method,
                                        epsilon=config.epsilon, fast_steps=config.fast_steps,
                                        weight_bound=config.weight_bound, seed=config.seed + step)
        if method in RANDOM_METHODS:
            return random_candidates(self.model, self.example, method=method, epsilon=config.epsilon,
                                     generator=torch.Generator().manual_seed(config.seed * 31 + step))
        from .growth.firefly import firefly_candidates

        now = self.cost().report

        def cost_of_layer(grown: nn.Module) -> dict[str, float]:
            after = self.cost(grown).report
            return {m: metric_value(after, m) - metric_value(now, m) for m in self.budget.limits}

        return firefly_candidates(self.model, batches[0][0], batches, self.loss_fn,
                                  new_fraction=config.firefly_new_fraction, layers=config.firefly_layers,
                                  steps=config.firefly_steps,
                                  generator=torch.Generator().manual_seed(config.seed + step),
                                  cost_of_layer=cost_of_layer)

    def grow_step(self, step: int) -> tuple[list[Candidate], int, str | None]:
        """Score, select and apply; returns (applied candidates, candidates scored, reason to stop or None)."""
        cost_model = self.cost()
        _, usage = self.budget.binding(cost_model.report)
        cap = min(1.0, usage * (1 + self.config.growth_rate))
        batches = self.score_batches(step)
        candidates = self.candidates(step, batches)
        if not candidates:
            return [], 0, "no growable channel group has candidates"
        helpful = any(c.predicted_decrease > 0 for c in candidates)
        if not helpful and usage >= self.config.min_usage:
            return [], len(candidates), "no candidate lowers the loss"
        # The step's room is spent: helpful candidates first (most decrease per cost), then the least
        # harmful (S2D's splitting-stable neurons: a near-copy that training then differentiates).
        chosen = []
        # Whole vector blocks first; when no group's next block fits, single channels finish the budget.
        for channel_step in dict.fromkeys((self.target.channel_step, 1)):
            chosen = select_candidates(self.model, self.example, candidates, cost_model, self.budget, usage_cap=cap,
                                       allow_non_positive=True, channel_step=channel_step)
            if chosen:
                break
        if not chosen:
            return [], len(candidates), "no candidate fits the remaining budget"
        selection = fit_to_budget(self.model, batches[0][0], chosen, lambda m: self.cost(m).report, self.budget,
                                  usage_cap=cap)
        if not selection.chosen:
            return [], len(candidates), "no candidate fits the remaining budget"
        self.edits.extend(apply_candidates(self.model, selection.chosen, batches[0][0]))
        return selection.chosen, len(candidates), None


def check_seed_suits_task(model: nn.Module, task: TaskData, example: torch.Tensor) -> None:
    """ValueError, before any training, for a seed growth cannot use on ``task``: its input shape
    does not run, its outputs are not one per class, or no channel group can grow."""
    groups = find_channel_groups(model, example)  # ValueError naming the shape if the input does not run
    modes = {module: module.training for module in model.modules()}
    model.eval()
    with torch.no_grad():
        outputs = model(example)
    for module, training in modes.items():
        module.train(training)
    classes = len(task.class_names)
    if outputs.dim() != 2 or outputs.shape[1] != classes:
        raise ValueError(f"the seed outputs shape {tuple(outputs.shape[1:])} per example but task {task.name!r} has "
                         f"{classes} classes: build the seed with {classes} outputs (num_classes={classes})")
    if not growable_groups(groups):
        reasons = sorted({reason for group in groups for reason in group.reasons})
        raise ValueError("the seed has no growable channel group, so growth has nothing to widen ("
                         + ("; ".join(reasons[:3]) or "no channel groups") + "): see `edgegrow groups` or "
                         "find_channel_groups(model, x) and each group's reasons")


def check_budget_reachable(report: CostReport, budget: Budget, config: GrowConfig) -> None:
    """ValueError for a budget so far above the seed's cost that no run of ``config`` comes near it
    (1 %): each step multiplies the binding usage by at most 1 + growth_rate, so max_steps steps
    reach at most (1 + growth_rate) ** max_steps times the seed's usage. A budget merely out of
    reach is allowed: growth stops at max_steps and the log says how much was used."""
    reach = (1 + config.growth_rate) ** config.max_steps
    usage = budget.usage(report)
    if usage and max(usage.values()) * reach < UNREACHABLE_USAGE:
        metric = max(usage, key=usage.get)
        raise ValueError(f"budget {metric}={budget.limits[metric]:g} is {1 / usage[metric]:.3g}x the seed's cost "
                         f"({metric_value(report, metric):.4g}), beyond the {reach:,.0f}x that {config.max_steps} "
                         f"steps at growth_rate {config.growth_rate:g} can reach: lower the budget, or raise "
                         "max_steps or growth_rate")


def check_seed_fits(report: CostReport, budget: Budget) -> None:
    """ValueError naming every limit the seed's ``report`` exceeds (checked before any training)."""
    over = budget.violations(report)
    if over:
        raise ValueError(f"the seed already exceeds the budget on {report.target} ({'; '.join(over)}): "
                         "raise the budget or start from a smaller seed")


def grow(model: nn.Module, task: TaskData, target: Target | str, budget: Budget, config: GrowConfig = GrowConfig(),
         out_dir: str | Path | None = None, *, family: str | None = None, seed_options: dict | None = None,
         resume: bool = False, progress: bool = False, log: Callable[[str], None] = print,
         task_source: dict | None = None) -> GrowResult:
    """Grow ``model`` (a seed built by ``build_seed(family, **seed_options)``, or with ``family`` None a
    network of your own) on ``task`` to ``budget``.

    A network of your own is recorded as family ``custom``: its checkpoint loads with
    ``load_checkpoint(path, seed=...)`` and ``resume`` needs the same seed passed again as ``model``.

    ``task_source`` (``Task.source``: the task name and data folder) is recorded in the checkpoint
    so ``edgegrow export`` can reload the same data. With ``resume``, the run in ``out_dir``
    continues from its checkpoint (which must be of the same method, target, budget and task);
    otherwise ``out_dir`` must not already hold a run.
    """
    target = load_target(target) if isinstance(target, str) else target
    out_dir = Path(out_dir) if out_dir is not None else None
    if family is None:
        family, seed_options = CUSTOM_FAMILY, {"input_shape": list(task.input_shape), **(seed_options or {})}
    run = _Run(model, task, target, budget, config, out_dir, family, seed_options or {}, log)
    run.task_source = task_source or {}
    check_seed_suits_task(model, task, run.example)
    seed_report = run.cost().report
    check_seed_fits(seed_report, budget)
    check_budget_reachable(seed_report, budget, config)
    start_step, phase, in_phase = 0, None, None
    if out_dir is not None:
        start_step, phase, in_phase = _prepare_run_dir(run, resume)
    model = run.model
    stopped_by = None

    def resumed(name: str, at: int) -> Checkpoint | None:
        """The ``epoch.pt`` of phase (name, at), if the run was killed while training it (once: a
        phase rolled back and tried again starts afresh)."""
        nonlocal in_phase
        if in_phase is not None and (in_phase.meta["phase"], in_phase.meta["step"]) == (name, at):
            found, in_phase = in_phase, None
            return found
        return None

    if phase is None:  # train the seed
        started = time.perf_counter()
        training = run.train_phase("seed", 0, config.seed_epochs, 0, progress, resumed=resumed("seed", 0))
        if training.stopped_by == NON_FINITE:
            raise NumericalFault(f"the seed's training loss became NaN or infinite in epoch {len(training.history)} "
                                 f"at learning rate {run.config.learning_rate:g}: lower learning_rate (in a --config "
                                 "file) or check the data for NaN or huge values")
        row = run.record("seed", 0, training, 0.0, time.perf_counter() - started)
        log(_describe_row(row))
        run.save("seed", 0)
        phase = "seed"
    elif phase == "final":
        stopped_by = run.history[-1].get("stopped_by")
    else:
        stopped_by = _last_stop(run.history)

    step = start_step
    while phase != "final" and stopped_by is None and step < config.max_steps:
        usage = run.budget.binding(run.cost().report)[1]
        if usage >= config.stop_usage:
            stopped_by = "budget spent"
            break
        step += 1
        started = time.perf_counter()
        partial = resumed("grow", step)
        if partial is not None:  # grown already, and trained some epochs: go on training
            growth, reason, growth_seconds = partial.meta["growth"], None, partial.meta["growth_seconds"]
            scored = growth["candidates"]
        else:
            before = copy.deepcopy(run.model), list(run.edits)  # to roll back to if the loss diverges
            applied, scored, reason = run.grow_step(step)
            growth_seconds = time.perf_counter() - started
            growth = {"candidates": scored, "chosen": dict(Counter(c.kind for c in applied)),
                      "predicted_decrease": sum(c.predicted_decrease for c in applied)}
        if reason is not None:
            stopped_by = reason
            run.history.append({"phase": "stop", "step": step, "stopped_by": reason, "growth_seconds": growth_seconds,
                                "candidates": scored})
            run.save("grow", step, reason)
            break
        started = time.perf_counter()
        training = run.train_phase("grow", step, config.epochs_per_step, step, progress, partial,
                                   {"growth_seconds": growth_seconds, "growth": growth})
        if training.stopped_by == NON_FINITE:
            if partial is not None:  # resumed mid-phase: the model from before this growth step is checkpoint.pt's
                previous, record = load_checkpoint(out_dir / "checkpoint.pt", seed=run.seed)
                before = previous, list(record.edits)
            stopped_by = run.roll_back(step, before, len(training.history))
            model = run.model
            if stopped_by is not None:
                break
            step -= 1
            continue
        row = run.record("grow", step, training, growth_seconds, time.perf_counter() - started, growth)
        log(_describe_row(row))
        run.save("grow", step)
    if stopped_by is None:
        stopped_by = "max_steps reached" if step >= config.max_steps else "budget spent"

    if phase != "final":
        started = time.perf_counter()
        before = copy.deepcopy(run.model)
        training = run.train_phase("final", step, config.final_epochs, 10_000, progress,
                                   resumed=resumed("final", step)) if config.final_epochs else None
        if training is not None and training.stopped_by == NON_FINITE:
            run.model = model = before
            log(f"note: the final fine-tune's loss became NaN or infinite in epoch {len(training.history)}; "
                "kept the model from before it")
            run.numerical_faults.append({"phase": "final", "step": step, "epoch": len(training.history)})
            training = None  # the diverged epochs describe no model the run keeps
        row = run.record("final", step, training, 0.0, time.perf_counter() - started, {"stopped_by": stopped_by})
        log(_describe_row(row))
    report = run.cost().report
    violations = budget.violations(report)
    if violations:  # fit_to_budget makes this impossible; a failure here is a bug, not a user mistake
        raise RuntimeError(f"grown model exceeds the budget: {'; '.join(violations)}")
    test_accuracy = evaluate(model, task.test, task.class_names).accuracy if len(task.test) else None
    binding, usage = budget.binding(report)
    if usage < config.min_usage:
        log(f"note: the grown model uses {usage:.0%} of the {binding} budget (stopped: {stopped_by})")
    run.save("final", step, stopped_by)
    if out_dir is not None:
        summary = {"method": config.method, "target": target.name, "budget": dict(budget.limits),
                   "stopped_by": stopped_by, "steps": step, "usage": budget.usage(report), "binding": binding,
                   "predicted": run.history[-1]["predicted"], "widths": run.history[-1]["widths"],
                   "depth": run.history[-1]["depth"], "test_accuracy": test_accuracy,
                   "numerical_faults": run.numerical_faults,
                   "growth_seconds": sum(r.get("growth_seconds", 0.0) for r in run.history),
                   "training_seconds": sum(r.get("training_seconds", 0.0) or 0.0 for r in run.history)}
        write_atomically(out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
        _write_report(out_dir, model, log)
    return GrowResult(model, run.history, report, budget.usage(report), test_accuracy, stopped_by, out_dir)


def _write_report(out_dir: Path, model: nn.Module, log: Callable[[str], None]) -> None:
    """The run's report.html. The run itself is done and saved by now, so a report that cannot be
    drawn is said, not raised: the model and its logs must not be lost to a plotting problem."""
    from .report import write_report

    try:
        write_report(out_dir, model=model)
    except Exception as error:  # noqa: BLE001 — see the docstring; 'edgegrow report' retries and raises
        log(f"note: report.html not written ({type(error).__name__}: {error}); run 'edgegrow report {out_dir}'")


def _last_stop(history: list[dict]) -> str | None:
    return history[-1].get("stopped_by") if history and history[-1].get("phase") == "stop" else None


def _prepare_run_dir(run: _Run, resume: bool) -> tuple[int, str | None, Checkpoint | None]:
    """Check the run folder and, with ``resume``, load its state: (step, phase) of the last finished
    phase (0, None: none finished) and the ``epoch.pt`` of the phase that was training, if any."""
    checkpoint_path, epoch_path = run.out_dir / "checkpoint.pt", run.out_dir / EPOCH_CHECKPOINT
    if not resume:
        if checkpoint_path.exists() or epoch_path.exists():
            raise ValueError(f"{run.out_dir} already holds a grow run; pass --resume to continue it "
                             "or choose another --out")
        run.out_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(run.out_dir / "run.json", json.dumps(_run_record(run), indent=1) + "\n")
        return 0, None, None
    if not checkpoint_path.exists() and not epoch_path.exists():
        raise ValueError(f"nothing to resume: {checkpoint_path} does not exist (run without --resume to start)")
    seed = run.seed
    step, phase, finished_meta = 0, None, {}
    if checkpoint_path.exists():
        model, checkpoint = load_checkpoint(checkpoint_path, seed=seed)
        finished_meta = checkpoint.meta
        _check_same_run(run, checkpoint.meta)
        run.model, run.edits = model, list(checkpoint.edits)
        run.history = list(checkpoint.meta.get("history", []))
        step, phase = int(checkpoint.meta.get("step", 0)), checkpoint.meta.get("phase")
    in_phase = None
    if epoch_path.exists() and phase != "final":
        model, partial = load_checkpoint(epoch_path, seed=seed)
        if partial.meta.get("rows_before") == len(run.history):  # the phase after the last finished one
            _check_same_run(run, partial.meta)
            run.model, run.edits, in_phase = model, list(partial.edits), partial
    run.model.train()
    faults = (in_phase.meta if in_phase is not None else finished_meta).get("numerical_faults")
    if faults:  # steps rolled back before the kill: go on with the lowered settings
        run.numerical_faults = list(faults)
        retries = [fault for fault in faults if "retry_epsilon" in fault]
        if retries:
            run.config = replace(run.config, epsilon=retries[-1]["retry_epsilon"],
                                 learning_rate=retries[-1]["retry_learning_rate"])
    recorded = _read_json(run.out_dir / "run.json")
    profile = _profile_sha256(run.target)
    if recorded and recorded.get("target_profile_sha256") not in (None, profile):
        run.log(f"note: the {run.target.name} profile changed since this run started ({run.target.path}): "
                "costs from here on come from the new one, so the run is no longer reproducible from run.json")
    where = f"after {phase} step {step}" if phase is not None else "from the start"
    if in_phase is not None:
        where += (f", in {in_phase.meta['phase']} step {in_phase.meta['step']} after epoch "
                  f"{in_phase.meta['epochs_done']} of {in_phase.meta['epochs']}")
    run.log(f"resuming {run.out_dir} {where}")
    return step, phase, in_phase


def _profile_sha256(target: Target) -> str | None:
    path = Path(target.path) if target.path else None
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _run_record(run: _Run) -> dict:
    """run.json: what it takes to run this again and get the same network."""
    import numpy

    from . import __version__

    return {"edgegrow": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "numpy": numpy.__version__, "platform": platform.platform(), "machine": platform.machine(),
            "torch_threads": torch.get_num_threads(), "command": sys.argv, "seed": run.config.seed,
            "config": asdict(run.config), "family": run.family, "seed_options": run.seed_options,
            "target": run.target.name, "target_profile": run.target.path,
            "target_profile_sha256": _profile_sha256(run.target), "budget": dict(run.budget.limits),
            "task": run.task.name, "task_source": run.task_source}


def _run_settings(run: _Run) -> dict:
    return {"method": run.config.method, "target": run.target.name, "budget": dict(run.budget.limits),
            "task": run.task.name}


def _check_same_run(run: _Run, meta: dict) -> None:
    expected = _run_settings(run)
    found = {"method": meta.get("config", {}).get("method", meta.get("method")), "target": meta.get("target"),
             "budget": meta.get("budget"), "task": meta.get("task")}
    differing = [f"{key} {found[key]!r} (now {expected[key]!r})" for key in expected if found[key] != expected[key]]
    if differing:
        raise ValueError(f"{run.out_dir} holds a run with another {', '.join(differing)}; resume with the same "
                         "settings or choose another --out")


def _describe_row(row: dict) -> str:
    widths = "/".join(str(w) for w in row["widths"].values())
    accuracy = row.get("validation_accuracy")
    accuracy = "n/a" if accuracy is None else f"{accuracy:.1%}"
    usage = max(row["usage"].values())
    return (f"{row['phase']:>5} {row['step']:>2}: widths {widths}, depth {row['depth']}, "
            f"{row['predicted']['latency_ms']:.4f} ms, {row['predicted']['macs']:,} MACs, budget {usage:.0%}, "
            f"val {accuracy} (grow {row['growth_seconds']:.1f} s, train {row['training_seconds']:.1f} s)")
