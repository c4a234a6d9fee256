"""The fair baseline of a grown network: the family's reference network uniformly scaled to the largest
width multiplier whose predicted cost fits every limit of the budget, trained with the same schedule
for the same epochs or the same training compute.

The predicted cost is not monotone in the width: a latency table is a staircase in channels, and
onnxruntime's blocked layout makes some widths much faster than narrower ones (on an x86 profile a
DS-CNN at 42 channels is predicted 3.7× slower than at 48, and a 1-channel one slower than an 8-channel
one). So the search walks a geometric grid of multipliers from ×1/64 to ×8 and then scans from the
widest grid point that fits up to twice it, in steps of 1 % or of one channel of the fastest-growing
layer, whichever is finer, keeping the widest multiplier that fits. (It used to bisect above that grid
point and try +2 … +16 %, which on that profile stopped at 40 channels where 48 fit, and so gave
growth a weaker baseline than the budget allows.) The scan takes at most MAX_SCAN_STEPS steps, so a
layer gaining more channels than that is scanned more coarsely and the widest fitting width can be
missed by a few per cent (MobileNetV1 on this machine's host profile at 1 ms: ×1.19 found where ×1.25
fits; scanning it channel by channel took 797 estimates and 128 s, this 33 s). A fitting width beyond
twice the widest fitting grid point is not looked for.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from cost_models import CostReport, Target, count_macs, estimate, load_target

from .grow.growth_step import blend_with_fresh, shrink_convolutions
from .growth.budget import Budget
from .tasks import Task
from .training import TrainConfig, Training, TrainResult, evaluate

LOWEST, HIGHEST, GRID = 1 / 64, 8.0, 48  # the multipliers searched: a geometric grid (a step of ×1.14), then
SCAN_STEP, SCAN_RANGE = 0.01, 2.0  # every 1 % (or every channel) above the widest fitting grid point, up to twice it
# per-channel steps for a layer gaining up to 160 channels, coarser above: each new architecture costs an
# estimate (a MobileNetV1 ×1.25 scanned per channel took 797 estimates, 128 s)
MAX_SCAN_STEPS = 160


@dataclass
class UniformBaseline:
    """A uniform network: its multiplier, the (untrained) model and, for the largest fitting one, its
    predicted cost and budget usage."""

    width_multiplier: float
    model: nn.Module
    report: CostReport | None = None
    usage: dict[str, float] | None = None

    @property
    def name(self) -> str:
        return f"uniform ×{self.width_multiplier:.3g}"


def _widths(model: nn.Module) -> list[int]:
    """Output channels / features of every convolution and linear layer, in order."""
    return [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
            for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _architecture(model: nn.Module) -> tuple:
    return tuple(tuple(p.shape) for p in model.state_dict().values())


def largest_fitting_uniform(task: Task, target: Target | str, budget: Budget, *,
                            at_most: float = HIGHEST) -> UniformBaseline:
    """The largest width multiplier of ``task``'s family (``Task.uniform``), at most ``at_most``, whose
    predicted cost on ``target`` fits every limit of ``budget``. ValueError if not even ×1/64 fits."""
    target = load_target(target) if isinstance(target, str) else target
    example = torch.zeros(1, *task.data.input_shape)
    reports: dict[tuple, CostReport] = {}  # by architecture: several multipliers round to the same widths

    def fits(multiplier: float) -> bool:
        with torch.device("meta"):  # shapes alone: no memory and no initialisation, the same predicted cost
            model = task.uniform(multiplier)
        key = _architecture(model)
        if key not in reports:
            reports[key] = estimate(model.eval(), example.to("meta"), target)
        return not budget.violations(reports[key])

    grid = [LOWEST * (HIGHEST / LOWEST) ** (i / (GRID - 1)) for i in range(GRID)]
    grid = [multiplier for multiplier in grid if multiplier <= at_most]
    fitting = [i for i, multiplier in enumerate(grid) if fits(multiplier)]
    if not fitting:
        raise ValueError(f"no uniform {task.family} fits the budget {budget.describe()} on {target.name} at any width "
                         f"from ×{LOWEST:g} to ×{HIGHEST:g}")
    low = grid[fitting[-1]]
    best = low
    # The staircase's dips: scan from the widest fitting grid point up to twice it, in steps small enough
    # to reach every width of the layer that grows fastest (one step per channel it gains), at least 1 %.
    with torch.device("meta"):
        gained = max((after - before for before, after in zip(_widths(task.uniform(low)),
                                                               _widths(task.uniform(low * SCAN_RANGE)))), default=0)
    steps = min(MAX_SCAN_STEPS, max(round((SCAN_RANGE - 1) / SCAN_STEP), gained))
    for step in range(1, steps + 1):
        candidate = low * (1 + (SCAN_RANGE - 1) * step / steps)
        if candidate > min(HIGHEST, at_most):
            break
        if fits(candidate):
            best = candidate
    if low < at_most <= low * SCAN_RANGE and fits(at_most):  # the cap itself, which the steps may straddle
        best = at_most
    model = task.uniform(best)  # the one network built with weights
    report = reports[_architecture(model)]
    return UniformBaseline(best, model, report, budget.usage(report))


SEED_WIDTHS = ("auto", "seed")  # --seed-width's words: half the fitting uniform width; the family's seed shape


def seed_width_for(task: Task, target: Target | str, budget: Budget, seed_width: float | str | None) -> float | None:
    """The width multiplier of the seed to grow from (None: the family's few-channel seed shape).

    ``"auto"`` is the largest multiplier, at most half the largest fitting uniform network's, whose own
    network fits the budget: growth then starts at a quarter or so of the budget's cost and at least
    doubles every layer, the range in which growing trains as well as training from scratch
    (bench/growth_ablation.py; a 1/8-width seed pays a warm-start penalty). Half the multiplier itself
    is usually that; on a latency staircase it can cost more than the whole budget (on an
    onnxruntime CPU profile a DS-CNN of 18 channels is predicted twice as slow as one of 36), and the
    seed then steps down to the widest width below it that fits. When no uniform network fits,
    ``"auto"`` falls back to the family's seed. ``"seed"`` or None: the
    family's seed shape; a number: that multiplier."""
    if seed_width == "auto":
        try:
            return auto_seed_width(task, target, budget, largest_fitting_uniform(task, target, budget))
        except ValueError:  # not even the narrowest uniform network fits: the family's seed is smaller still
            return None
    if seed_width in (None, "seed"):
        return None
    if isinstance(seed_width, str):
        raise ValueError(f"seed width must be a width multiplier, 'auto' or 'seed', got {seed_width!r}")
    return seed_width


def auto_seed_width(task: Task, target: Target | str, budget: Budget, fair: UniformBaseline) -> float:
    """``--seed-width auto`` given the largest fitting uniform network ``fair``: the widest multiplier, at
    most half of fair's, whose network fits the budget (see ``seed_width_for``)."""
    return largest_fitting_uniform(task, target, budget, at_most=fair.width_multiplier / 2).width_multiplier


@dataclass
class TrainedBaseline:
    """A uniform baseline after training: how long, how much compute, how accurate."""

    name: str
    width_multiplier: float
    epochs: float  # optimizer steps / steps per epoch (fractional at equal compute)
    mac_epochs: float
    validation_accuracy: float | None
    test_accuracy: float | None
    training: TrainResult
    restarted: bool = False  # whether a RestartAt was made


@dataclass(frozen=True)
class RestartAt:
    """A restart inside a baseline's training, as a grow run's ``restart`` makes one: after ``step``
    optimizer steps of the run's schedule, the weights are blended with a fresh draw
    (``growth_step.blend_with_fresh`` with ``keep``, the draw ``loop.reinitialise`` makes for a run of
    ``seed``) and the remaining steps train with a new optimizer and schedule of their own."""

    step: int
    keep: float
    seed: int


def train_baseline(baseline: UniformBaseline, task: Task, config: TrainConfig, *, mac_epochs: float | None = None,
                   shrink: tuple[list[int], float] = ((), 1.0), restart: RestartAt | None = None,
                   progress: bool = False) -> TrainedBaseline:
    """Train ``baseline.model`` with ``config``'s schedule: for ``config.epochs`` epochs, or with
    ``mac_epochs`` for as many optimizer steps as that training compute buys at the baseline's MACs
    (Σ MACs × examples / training-set size, the measure ``EpochRow.mac_epochs`` uses). ``shrink``:
    (optimizer steps, factor) at which to scale the convolutions as a grow run's events do
    (``GrowConfig.shrink``), for the control that is the grow protocol without growth. ``restart``:
    the grow run's restart too (``RestartAt``; its second stretch shrinks at the same steps counted
    from the restart), for the control that is a restarted grow run without growth; none is made when
    the baseline's steps end at or before it or leave no more than its warm-up after it
    (``TrainedBaseline.restarted`` says whether it was). ``training`` is then the second stretch's
    result; ``epochs`` and ``mac_epochs`` count both."""
    from .grow.loop import reinitialise

    data = task.data
    macs = count_macs(baseline.model.eval(), torch.zeros(1, *data.input_shape)).total
    steps_per_epoch = math.ceil(len(data.train) / config.batch_size)
    if mac_epochs is not None:
        total = max(1, round(mac_epochs / macs * steps_per_epoch))
    else:
        total = config.steps or config.epochs * steps_per_epoch
    if restart is not None and restart.step < 1:
        raise ValueError(f"a restart needs at least one step before it, got step {restart.step}")
    if restart is not None and total - restart.step <= config.warmup_epochs * steps_per_epoch:
        restart = None  # the baseline ends before the run's search would, or leaves no room after its warm-up
    stretches = [(config if mac_epochs is None else replace(config, steps=total), total)]
    if restart is not None:
        stretches = [(config, restart.step), (replace(config, steps=total - restart.step), total - restart.step)]
    samples = 0
    for index, (stretch, steps) in enumerate(stretches):
        if index:  # the restart: the fresh draw on the CPU, where the grow loop makes it
            fresh = reinitialise(copy.deepcopy(baseline.model).cpu(), restart.seed)
            baseline.model.load_state_dict(blend_with_fresh(fresh, baseline.model, restart.keep).state_dict())
        if stretch.steps is not None:
            stretch = replace(stretch, epochs=max(1, math.ceil(stretch.steps / steps_per_epoch)))
        training = Training(baseline.model, data, stretch, progress=progress)
        shrink_steps, factor = shrink
        for step in shrink_steps:
            if step < steps:
                training.run(step)
                shrink_convolutions(baseline.model, factor)
        result = training.result(training.run(steps))
        samples += result.samples_seen
    epochs_trained = samples / len(data.train)
    validation = evaluate(baseline.model, data.validation, data.class_names).accuracy if len(data.validation) else None
    test = evaluate(baseline.model, data.test, data.class_names).accuracy if len(data.test) else None
    return TrainedBaseline(baseline.name, baseline.width_multiplier, epochs_trained, macs * epochs_trained,
                           validation, test, result, restarted=len(stretches) == 2)
