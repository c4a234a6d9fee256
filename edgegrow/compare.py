"""Which device, and what each budget buys on it: grow for several targets at a ladder of budgets.

``compare_targets`` answers what a product team asks before it buys a board (seed 002's point: choose
the hardware together with the network). For every target it grows a network at each rung of a
ladder of budgets. A rung is a width multiplier of the family's reference network (DS-CNN-S for
keyword spotting): its budget on a target is that network's predicted cost there, in latency, and on
a microcontroller also in SRAM and flash, so rung ×0.5 buys on every device what DS-CNN-S ×0.5 costs
on it. Limits given with ``budget`` (e.g. ``sram_kb=64``) and a device's own SRAM and flash cap every
rung.

Every grown network's cost on its device is predicted by the device's cost model, and measured where
this machine can measure it: on ``host`` (this machine) the float ONNX file's median latency in
onnxruntime; on a microcontroller the int8 TFLite file's TFLite Micro arena (SRAM) and its size
(flash), with its int8 test accuracy. Energy is never measured. The result says, per device and
metric, which figures are measured and which predicted, and from what.

Given an accuracy target, ``Comparison.cheapest`` picks for every device the cheapest rung whose
network reaches it on the validation split (never the test split), and the cheapest device: by the
unit prices given, else by one cost metric.

Output layout (``out``)::

    comparison.json  comparison.html
    runs/<target>/x<rung>/       each grow run: steps.jsonl, checkpoint.pt, summary.json
    exported/<target>/x<rung>/   the file measured, with its model card

``comparison.json`` (format ``FORMAT``) is rewritten after every rung, so a killed comparison
continues with ``resume=True``: finished rungs are kept, a rung killed mid-run resumes its grow run.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path

import torch

from cost_models import estimate, load_target
from cost_models.target import Target, user_targets_folder
from cost_models.whole_model_calibration import calibration_status

from .atomic import write_atomically
from .baseline import seed_width_for
from .grow import GrowConfig, grow
from .grow.growth_step import predicted_costs
from .grow.run_folder import SUMMARY, RunFolder
from .growth.budget import Budget
from .models.registry import TASKS
from .tasks import Task
from .training import resolve_device
from .training.distributed import current_world
from .workflow import HOST, ensure_host_profile, load_task_data

FORMAT = "edgegrow-comparison/1"
COMPARISON = "comparison.json"
REPORT = "comparison.html"
DEFAULT_TARGETS = (HOST, "cortex-m4f-120mhz", "cortex-m7-480mhz")
COST_METRICS = ("latency_ms", "energy_mj", "sram_kb", "flash_kb")
RANK_METRICS = COST_METRICS
COST_NAMES = {"latency_ms": "latency (ms)", "energy_mj": "energy per inference (mJ)", "sram_kb": "SRAM (KiB)",
              "flash_kb": "flash (KiB)"}
RUNG_METRICS = {"mcu": ("latency_ms", "sram_kb", "flash_kb")}  # what a rung limits; other kinds: latency alone
CAPACITY_FIELDS = {"sram_kb": "sram_bytes", "flash_kb": "flash_bytes"}  # a device's own limits (Target fields)


@dataclass(frozen=True)
class CompareConfig:
    """How much work each rung does. ``grow`` is every grow run's config (``edgegrow grow``'s defaults);
    ``ladder`` the rungs, width multipliers of the family's reference network whose predicted cost on
    a target is that rung's budget there (None: the family's ``baseline_widths``, the uniform networks
    the workflow trains, e.g. ×0.25, ×0.5 and ×1 of DS-CNN-S); ``seeds`` how many grow runs each rung gets (random seeds
    ``grow.seed``, ``grow.seed + 1``, …: a rung's figures are their medians); ``seed_width`` as
    ``WorkflowConfig``'s; ``measure`` exports each grown network and measures it where this machine can
    (see the module docstring)."""

    grow: GrowConfig = GrowConfig()
    ladder: tuple[float, ...] | None = None
    seeds: int = 1
    seed_width: float | str | None = "auto"
    measure: bool = True
    calibration_examples: int = 300
    bench_runs: int = 200
    bench_warmup: int = 20

    def __post_init__(self):
        if self.ladder is not None:
            object.__setattr__(self, "ladder", check_ladder(self.ladder))
        if not (self.seed_width in (None, "auto", "seed") or (
                isinstance(self.seed_width, (int, float)) and not isinstance(self.seed_width, bool)
                and 0 < self.seed_width <= 8)):
            raise ValueError(f"seed width must be auto, seed or a width multiplier in (0, 8], got {self.seed_width!r}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"need 1 or more seeds per rung, got {self.seeds!r}")
        if self.bench_runs < 1 or self.bench_warmup < 0 or self.calibration_examples < 1:
            raise ValueError("need bench_runs >= 1, bench_warmup >= 0 and calibration_examples >= 1")

    @classmethod
    def quick(cls, grow: GrowConfig | None = None, **overrides) -> CompareConfig:
        """A smoke comparison: GrowConfig.quick's short runs, fewer timed runs."""
        settings = dict(grow=grow or GrowConfig.quick(), calibration_examples=100, bench_runs=50, bench_warmup=5)
        settings.update(overrides)
        return cls(**settings)


def check_ladder(ladder) -> tuple[float, ...]:
    """The rungs sorted; ValueError for none, one out of (0, 4] or one given twice."""
    ladder = tuple(ladder)
    if not ladder:
        raise ValueError("the ladder has no rung; e.g. --ladder 0.25,0.5,1")
    for width in ladder:
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) \
                or not 0 < width <= 4:
            raise ValueError(f"ladder rungs are width multipliers of the reference network in (0, 4], got {width!r}")
    if len({f"{width:g}" for width in ladder}) != len(ladder):  # a rung's folder is named x{width:g}
        raise ValueError(f"the ladder repeats a rung: {', '.join(f'{w:g}' for w in ladder)}")
    return tuple(sorted(float(width) for width in ladder))


@dataclass
class GrownRun:
    """One grow run of a rung (one random seed): its network, accuracy and cost on the device.

    Accuracies are shares (0.9 = 90 %) of the float network, ``int8_test_accuracy`` the int8 file's
    where one was exported. ``predicted`` holds every metric of ``COST_METRICS`` (None where the
    device has no model of it); ``measured`` the ones measured here, ``measured_by`` how."""

    seed: int
    run_dir: str  # relative to the comparison's folder
    widths: dict = field(default_factory=dict)
    depth: int | None = None
    macs: int | None = None
    params: int | None = None
    validation_accuracy: float | None = None
    test_accuracy: float | None = None
    int8_test_accuracy: float | None = None
    predicted: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)
    measured_by: dict = field(default_factory=dict)
    export_dir: str | None = None
    not_measured: str | None = None  # why a measurement this device allows was not made
    seconds: float = 0.0


@dataclass
class Point:
    """One device at one rung: its budget and the grow runs made for it. Its accuracies and costs are
    the medians over those runs (a cost counts as measured when every run's was)."""

    target: str
    rung: float  # the reference network's width multiplier whose cost is this budget
    budget: dict[str, float]
    skipped: str | None = None  # why no network was grown at this rung (e.g. no seed fits a cap)
    runs: list[GrownRun] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"×{self.rung:g}"

    @property
    def grown(self) -> bool:
        return self.skipped is None and self.test_accuracy is not None

    @property
    def validation_accuracy(self) -> float | None:
        return _median([run.validation_accuracy for run in self.runs])

    @property
    def test_accuracy(self) -> float | None:
        return _median([run.test_accuracy for run in self.runs])

    @property
    def int8_test_accuracy(self) -> float | None:
        return _median([run.int8_test_accuracy for run in self.runs])

    @property
    def test_range(self) -> tuple[float, float] | None:
        """(lowest, highest) test accuracy over the runs; None without runs."""
        values = [run.test_accuracy for run in self.runs if run.test_accuracy is not None]
        return (min(values), max(values)) if values else None

    @property
    def macs(self) -> float | None:
        return _median([run.macs for run in self.runs])

    @property
    def predicted(self) -> dict[str, float | None]:
        return {metric: _median([run.predicted.get(metric) for run in self.runs]) for metric in COST_METRICS}

    @property
    def measured(self) -> dict[str, float]:
        return {metric: _median([run.measured[metric] for run in self.runs]) for metric in COST_METRICS
                if self.runs and all(metric in run.measured for run in self.runs)}

    @property
    def not_measured(self) -> str | None:
        return next((run.not_measured for run in self.runs if run.not_measured), None)

    def cost(self, metric: str) -> float | None:
        """The measured value of ``metric`` where there is one, else the predicted one (None: neither)."""
        value = self.measured.get(metric)
        return self.predicted.get(metric) if value is None else value

    def to_dict(self) -> dict:
        """The point as saved: its fields, and the medians it is shown and chosen by."""
        return {**asdict(self), "median": {"validation_accuracy": self.validation_accuracy,
                                           "test_accuracy": self.test_accuracy,
                                           "int8_test_accuracy": self.int8_test_accuracy,
                                           "predicted": self.predicted, "measured": self.measured}}

    @classmethod
    def from_dict(cls, values: dict) -> Point:
        runs = [GrownRun(**{f.name: run[f.name] for f in fields(GrownRun) if f.name in run})
                for run in values.get("runs", [])]
        return cls(values["target"], values["rung"], values["budget"], values.get("skipped"), runs)


@dataclass
class Device:
    """A target of the comparison and, per metric of ``COST_METRICS``, where its figures come from."""

    name: str
    kind: str
    description: str
    sources: dict[str, str] = field(default_factory=dict)  # metric → "measured: …", "predicted: …" or "no model: …"

    def measured(self, metric: str) -> str:
        """"all" when every grown rung's ``metric`` is measured, "some" when only some are, else ""."""
        source = self.sources.get(metric, "")
        return "all" if source.startswith("measured:") else "some" if source.startswith("measured at") else ""


@dataclass
class Choice:
    """The answer to "which device and budget reach this accuracy most cheaply"."""

    accuracy: float  # the target, a share of the validation split
    rank_by: str  # the metric devices are ranked by when no price is given for them
    prices: dict[str, float]
    per_device: dict[str, Point | None]  # each device's cheapest rung that reaches the target (None: none does)
    best: Point | None
    best_validation: dict[str, float | None]  # each device's highest validation accuracy, for the misses
    unranked: list[str] = field(default_factory=list)  # devices that reach it, unpriced, with no rank_by figure
    unpriced: list[str] = field(default_factory=list)  # devices that reach it without a price, when others have one

    def describe(self) -> str:
        lines = [f"to reach {self.accuracy:.1%} validation accuracy (the float network's; the int8 file's test "
                 "accuracy is in the table):"]
        for name, point in self.per_device.items():
            if point is None:
                best = self.best_validation.get(name)
                lines.append(f"  {name}: no rung reaches it (best {_percent(best)})")
            else:
                price = f", {self.prices[name]:g} per unit" if name in self.prices else ""
                lines.append(f"  {name}: {point.label} — {_costs(point)}{price}; validation "
                             f"{_percent(point.validation_accuracy)}, test {_percent(point.test_accuracy)}")
        if self.best is None:
            lines.append("no device reaches it at these budgets: raise the ladder (--ladder) or lower --accuracy")
        else:
            how = "the lowest unit price" if self.best.target in self.prices else \
                f"the lowest {COST_NAMES[self.rank_by]}"
            lines.append(f"cheapest: {self.best.target} at {self.best.label} ({how})")
        if self.unpriced:
            lines.append(f"not compared by price, having none: {', '.join(self.unpriced)}")
        elif self.unranked:
            lines.append(f"not ranked, having no {self.rank_by} figure: {', '.join(self.unranked)}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "rank_by": self.rank_by, "prices": self.prices,
                "per_device": {name: None if p is None else {"target": p.target, "rung": p.rung}
                               for name, p in self.per_device.items()},
                "best": None if self.best is None else {"target": self.best.target, "rung": self.best.rung},
                "best_validation": self.best_validation, "unranked": self.unranked, "unpriced": self.unpriced}


@dataclass
class Comparison:
    """Everything a comparison made: the devices, every rung's point, and where the files are."""

    out_dir: Path
    task: str
    family: str
    data: str
    validation_examples: int
    test_examples: int
    devices: list[Device]
    points: list[Point]
    config: dict  # the settings that decide the results (a resumed comparison must have the same)
    seconds: float = 0.0
    report: Path | None = None
    choice: Choice | None = None
    rungs: tuple[float, ...] = ()  # the ladder: config's, or the family's when config's is None

    def points_of(self, target: str) -> list[Point]:
        return [point for point in self.points if point.target == target]

    def cheapest(self, accuracy: float, *, rank_by: str = "latency_ms",
                 prices: Mapping[str, float] | None = None) -> Choice:
        """For each device the cheapest grown rung (by ``rank_by``) whose validation accuracy is at least
        ``accuracy`` (a share), and the cheapest device: the lowest of ``prices`` (unit prices by
        target name) among the devices that reach it and have one, else the lowest ``rank_by``."""
        check_accuracy_target(accuracy)
        if rank_by not in RANK_METRICS:
            raise ValueError(f"cannot rank by {rank_by!r}; choose one of {', '.join(RANK_METRICS)}")
        prices = check_prices(prices, [device.name for device in self.devices])
        per_device, best_validation = {}, {}
        for device in self.devices:
            grown = [p for p in self.points_of(device.name) if p.grown and p.validation_accuracy is not None]
            best_validation[device.name] = max((p.validation_accuracy for p in grown), default=None)
            reaching = [p for p in grown if p.validation_accuracy >= accuracy]
            per_device[device.name] = min(reaching, key=lambda p: _rank_key(p, rank_by), default=None)
        reached = [p for p in per_device.values() if p is not None]
        priced = [p for p in reached if p.target in prices]
        if priced:
            best = min(priced, key=lambda p: (prices[p.target], _rank_key(p, rank_by)))
        else:
            ranked = [p for p in reached if p.cost(rank_by) is not None]
            best = min(ranked, key=lambda p: _rank_key(p, rank_by), default=None)
        unranked = [p.target for p in reached if p.target not in prices and p.cost(rank_by) is None]
        unpriced = [p.target for p in reached if p.target not in prices] if priced else []
        return Choice(accuracy, rank_by, prices, per_device, best, best_validation, unranked, unpriced)

    def describe(self) -> str:
        """What ``edgegrow compare`` prints: one row per rung, where each device's figures come from, the
        answer for an accuracy target, and where the files are."""
        seeds = self.config.get("seeds", 1)
        lines = [f"{self.task} ({self.family}): validation {self.validation_examples} examples, test "
                 f"{self.test_examples} (one test example is {100 / max(self.test_examples, 1):.2g} points); "
                 + ("one seed per rung" if seeds == 1 else f"medians of {seeds} seeds per rung, test [lowest, "
                                                          "highest]"), "",
                 f"{'target':<20} {'rung':<6} {'valid.':>6} {'test':>6} {'int8':>6}  {'latency ms':<19} "
                 f"{'energy mJ':<10} {'SRAM KiB':<14} {'flash KiB':<14} widths"]
        for point in self.points:
            if not point.grown:
                lines.append(f"{point.target:<20} {point.label:<6} skipped: {point.skipped}")
                continue
            lines.append(
                f"{point.target:<20} {point.label:<6} {_percent(point.validation_accuracy):>6} "
                f"{_percent(point.test_accuracy):>6} {_percent(point.int8_test_accuracy):>6}  "
                f"{_pair(point, 'latency_ms'):<19} {_pair(point, 'energy_mj'):<10} {_pair(point, 'sram_kb'):<14} "
                f"{_pair(point, 'flash_kb'):<14} {' | '.join(_widths(run) for run in point.runs)}"
                + (f"  test [{_percent(point.test_range[0])}, {_percent(point.test_range[1])}]"
                   if len(point.runs) > 1 else ""))
        lines += ["", "predicted → measured where measured. Where the figures come from:"]
        for device in self.devices:
            lines.append(f"  {device.name}: " + "; ".join(f"{metric} {source}"
                                                          for metric, source in device.sources.items()))
        not_measured = sorted({f"{p.target}: {p.not_measured}" for p in self.points if p.not_measured})
        lines += [f"  not measured, {reason}" for reason in not_measured]
        if self.choice is not None:
            lines += ["", self.choice.describe()]
        lines += ["", f"{self.seconds:.0f} s; results: {self.out_dir}"]
        if self.report is not None:
            lines.append(f"  open {self.report}")
        return "\n".join(lines)

    def to_dict(self, *, finished: bool = True) -> dict:
        return {"format": FORMAT, "finished": finished, "task": self.task, "family": self.family, "data": self.data,
                "validation_examples": self.validation_examples, "test_examples": self.test_examples,
                "config": self.config, "rungs": list(self.rungs), "seconds": self.seconds,
                "devices": [asdict(device) for device in self.devices],
                "points": [point.to_dict() for point in self.points],
                "choice": None if self.choice is None else self.choice.to_dict()}

    def save(self, *, finished: bool = True) -> Path:
        path = self.out_dir / COMPARISON
        write_atomically(path, json.dumps(self.to_dict(finished=finished), indent=1) + "\n")
        return path


def read_comparison(folder: str | Path) -> dict:
    """``comparison.json`` of a comparison folder, checked to be one; ValueError naming the problem."""
    path = Path(folder) / COMPARISON
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{folder} holds no {COMPARISON}: it is not a comparison made by 'edgegrow compare'") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} cannot be read: {error}") from None
    if not isinstance(values, dict) or values.get("format") != FORMAT:
        raise ValueError(f"{path} is not a comparison of format {FORMAT}")
    return values


def check_prices(prices: Mapping[str, float] | None, names: Sequence[str]) -> dict[str, float]:
    """``prices`` as a dict; ValueError for a price of a target not compared or one not a number >= 0."""
    prices = dict(prices or {})
    unknown = [name for name in prices if name not in names]
    if unknown:
        raise ValueError(f"a price is given for {unknown[0]!r}, which is not compared; the targets are "
                         f"{', '.join(names)}")
    for name, price in prices.items():
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price < 0:
            raise ValueError(f"the price of {name} must be a number >= 0, got {price!r}")
    return prices


def check_accuracy_target(accuracy: float) -> None:
    if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 < accuracy <= 1:
        raise ValueError(f"the accuracy target is a share in (0, 1] (0.9 for 90 %), got {accuracy!r}")


def compare_targets(targets: Sequence[str] = DEFAULT_TARGETS, task: str = "kws", *, data: str | Path | None = None,
                    family: str | None = None, out: str | Path | None = None, cache_dir: str | Path | None = None,
                    budget: Mapping[str, float] | None = None, config: CompareConfig = CompareConfig(),
                    accuracy: float | None = None, rank_by: str = "latency_ms",
                    prices: Mapping[str, float] | None = None, resume: bool = False, progress: bool = True,
                    log: Callable[[str], None] = print) -> Comparison:
    """Grow a network for every target at every rung of ``config.ladder`` (None: the family's baseline
    widths), measure what can be measured,
    write ``comparison.json`` and ``comparison.html`` to ``out`` and return the comparison (see the module
    docstring). ``budget``: ``{metric: limit}`` that caps every rung on every target. ``accuracy`` (a
    share of the validation split), ``rank_by`` and ``prices`` (unit prices by target name): the question
    ``Comparison.cheapest`` answers in the result. ``resume``: continue a comparison killed in ``out``.

    Raises:
        ValueError: bad input (unknown task or target, a target named twice, a malformed budget or one a
            target cannot check, an accuracy or price out of range, an ``out`` that already holds results
            without ``resume`` or another comparison's with it), before anything slow runs.
    """
    started = time.perf_counter()
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    given = [name.strip() for name in targets if name.strip()]
    if not given:
        raise ValueError("no target to compare; e.g. --targets host,cortex-m4f-120mhz")
    if accuracy is not None:
        check_accuracy_target(accuracy)
    if rank_by not in RANK_METRICS:
        raise ValueError(f"cannot rank by {rank_by!r}; choose one of {', '.join(RANK_METRICS)}")
    caps = Budget(dict(budget)) if budget else None
    if current_world().size > 1:
        raise ValueError("edgegrow compare runs in one process; run it without torchrun (its grow runs are small)")
    resolve_device(config.grow.device)
    loaded_targets = {}  # by the profile's own name (a target may be given as a profile file)
    for name in given:
        target = _host_profile() if name == HOST else load_target(name)  # unknown names said now
        canonical = HOST if target is None else target.name
        if canonical in loaded_targets:
            raise ValueError(f"target {canonical} is named twice")
        loaded_targets[canonical] = target
    names = list(loaded_targets)
    prices = check_prices(prices, names)
    _check_caps(caps, loaded_targets)
    out = Path(out) if out is not None else Path("runs") / datetime.now().strftime(f"compare-{task}-%Y%m%d-%H%M%S")
    plan = _plan(names, task, data, family, caps, config)
    saved = _check_out(out, plan, resume)  # the killed comparison --resume continues, if any
    log(f"[compare] {', '.join(names)} → {out}" + (" (resumed)" if resume and out.is_dir() else ""))

    loaded = load_task_data(task, data, family, cache_dir, progress, log)
    if HOST in names and loaded_targets[HOST] is None:  # not measured yet: measured now
        loaded_targets[HOST] = ensure_host_profile(progress=progress, log=log)
    devices = [_device(loaded_targets[name]) for name in names]
    ladder = config.ladder or check_ladder(loaded.family_record.baseline_widths)
    out.mkdir(parents=True, exist_ok=True)
    comparison = Comparison(out, task, loaded.family, loaded.data.summary().splitlines()[0],
                            len(loaded.data.validation), len(loaded.data.test), devices, [], plan, rungs=ladder)
    if saved is None:
        comparison.save(finished=False)  # from now on the folder is a comparison --resume continues
    earlier = float(saved.get("seconds") or 0.0) if saved else 0.0  # before it was killed
    begun = _begun_points(saved) if saved else {}
    for name in names:
        target = loaded_targets[name]
        for rung in ladder:
            point, seeded = begun.get((name, rung)), None  # seeded: the task with the rung's seed network
            if point is None:
                point, seeded = _plan_point(loaded, target, rung, caps, config, log)
            comparison.points.append(point)
            for seed in _seeds(config):
                if point.skipped is None and seed not in {run.seed for run in point.runs}:
                    seeded = seeded or _seeded_task(loaded, target, Budget(point.budget), config)
                    point.runs.append(_grow_run(loaded, seeded, target, point, seed, config, out, cache_dir, progress,
                                                log))
                comparison.seconds = earlier + time.perf_counter() - started
                comparison.save(finished=False)
    for device in comparison.devices:
        device.sources = _sources(loaded_targets[device.name], comparison.points_of(device.name))
    if accuracy is not None:
        comparison.choice = comparison.cheapest(accuracy, rank_by=rank_by, prices=prices)
    from .report.compare_report import write_comparison_report

    comparison.report = write_comparison_report(comparison)
    comparison.seconds = earlier + time.perf_counter() - started
    comparison.save()
    return comparison


# -- planning ------------------------------------------------------------------------------------------
def _plan(names: list[str], task: str, data, family, caps: Budget | None, config: CompareConfig) -> dict:
    """What decides a comparison's results: a resumed one must have the same."""
    return {"targets": names, "task": task, "data": None if data is None else str(Path(data).resolve()),
            "family": family, "budget": None if caps is None else dict(caps.limits),
            "ladder": None if config.ladder is None else list(config.ladder), "seeds": config.seeds,
            "seed_width": config.seed_width, "measure": config.measure, "grow": asdict(config.grow),
            "calibration_examples": config.calibration_examples, "bench_runs": config.bench_runs,
            "bench_warmup": config.bench_warmup}


def _check_out(out: Path, plan: dict, resume: bool) -> dict | None:
    """ValueError for an ``out`` a comparison cannot go to; with ``resume``, the saved comparison there
    (None when there is none yet)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; choose a folder")
    holds = out.is_dir() and any(out.iterdir())
    if not resume:
        if holds:
            raise ValueError(f"{out} already holds results; choose another --out, delete it, or continue a killed "
                             "comparison with --resume")
        return None
    if not holds:
        return None  # nothing to resume: a fresh comparison
    saved = read_comparison(out)
    if json.loads(json.dumps(plan)) != saved.get("config"):
        changed = sorted(key for key in plan if json.loads(json.dumps(plan.get(key))) != saved["config"].get(key))
        raise ValueError(f"{out} holds a comparison made with other settings ({', '.join(changed)}); --resume "
                         "continues only the same comparison")
    return saved


def _begun_points(saved: dict) -> dict[tuple[str, float], Point]:
    """The points a killed comparison (its saved ``comparison.json``) began, with the runs it finished, by
    (target, rung)."""
    points = [Point.from_dict(values) for values in saved.get("points", [])]
    return {(point.target, point.rung): point for point in points}


def has_energy_model(target: Target) -> bool:
    """Whether ``target``'s profile predicts energy: a power figure, or energy per MAC and per byte."""
    return target.active_power_mw.value is not None or (
        target.energy_pj_per_mac is not None and target.energy_pj_per_byte is not None)


def _host_profile() -> Target | None:
    """This machine's profile where ``edgegrow profile --target host`` wrote it; None if not measured yet."""
    path = user_targets_folder() / f"{HOST}.json"
    return load_target(str(path)) if path.is_file() else None


def _check_caps(caps: Budget | None, targets: Mapping[str, Target | None]) -> None:
    """ValueError for an energy cap on a target that cannot predict energy; ``None`` is a host profile not
    measured yet, which will have no power figure."""
    if caps is None or "energy_mj" not in caps.limits:
        return
    names = [name for name, target in targets.items() if target is None or not has_energy_model(target)]
    if names:
        raise ValueError(f"--budget energy_mj cannot be checked on {', '.join(names)}: the profile has no power "
                         "figure (give it a power_w, or leave energy out of --budget)")


def rung_budget(target: Target, reference_cost: dict, caps: Budget | None) -> Budget:
    """A rung's budget on ``target``: the reference network's predicted cost there in the rung's metrics
    (``RUNG_METRICS``), each limit capped by ``caps`` and the device's own SRAM and flash, plus every
    other limit of ``caps``."""
    limits = {metric: reference_cost[metric] for metric in RUNG_METRICS.get(target.kind, ("latency_ms",))}
    for metric, limit in (caps.limits.items() if caps is not None else ()):
        limits[metric] = min(limit, limits.get(metric, math.inf))
    for metric, name in CAPACITY_FIELDS.items():
        capacity = getattr(target, name).value
        if capacity is not None and metric in limits:
            limits[metric] = min(limits[metric], capacity / 1024)
    return Budget(limits)


def _seeds(config: CompareConfig) -> range:
    return range(config.grow.seed, config.grow.seed + config.seeds)


def _seeded_task(loaded: Task, target: Target, budget: Budget, config: CompareConfig) -> Task:
    """The task with the seed a rung's runs grow from (``config.seed_width`` for that budget)."""
    return loaded.with_seed_width(seed_width_for(loaded, target, budget, config.seed_width))


def _plan_point(loaded: Task, target: Target, rung: float, caps: Budget | None, config: CompareConfig,
                log: Callable[[str], None]) -> tuple[Point, Task]:
    """The point of one rung on one target (its budget, or why nothing can grow to it), and the task with
    the seed its runs grow from."""
    example = torch.zeros(1, *loaded.data.input_shape)
    with torch.device("meta"):  # the reference network's shapes are its cost
        reference = loaded.uniform(rung)
    budget = rung_budget(target, predicted_costs(estimate(reference.eval(), example, target)), caps)
    point = Point(target.name, rung, dict(budget.limits))
    seeded = _seeded_task(loaded, target, budget, config)
    over = budget.violations(estimate(seeded.seed().eval(), example, target))
    if over:  # nothing narrower is cheaper on this device (a latency staircase), or a cap is below every seed
        fixed = isinstance(config.seed_width, float | int)
        why = (f"the seed ×{config.seed_width:g} (--seed-width) is over it" if fixed
               else f"on {target.name} no network narrower than the rung's own costs less, or a --budget cap is below "
                    "every seed")
        point.skipped = f"no seed fits this budget ({'; '.join(over)}): {why}"
        log(f"[compare] {target.name} {point.label}: skipped: {point.skipped}")
    return point, seeded


def _grow_run(loaded: Task, seeded: Task, target: Target, point: Point, seed: int, config: CompareConfig, out: Path,
              cache_dir, progress: bool, log: Callable[[str], None]) -> GrownRun:
    """Grow, from ``seeded``'s seed, and measure the network of one rung on one target with one random seed."""
    started = time.perf_counter()
    budget = Budget(point.budget)
    relative = Path("runs") / target.name / f"x{point.rung:g}" / f"seed{seed}"
    run = GrownRun(seed, str(relative))
    run_dir = out / relative
    log(f"\n[compare] {target.name} {point.label}, seed {seed}: a {loaded.family} seed to {budget.describe()} "
        f"→ {run_dir}")
    folder = RunFolder(run_dir)
    if folder.file(SUMMARY).is_file():
        summary = folder.read_summary()  # finished before a kill, between the run and its record here
    else:
        grow_config = replace(config.grow, seed=seed)
        torch.manual_seed(seed)
        summary = grow(seeded.seed(), loaded.data, target, budget, grow_config, run_dir, family=loaded.family,
                       seed_options=seeded.seed_options, progress=progress, log=log, task_source=loaded.source,
                       resume=folder.holds_run()).summary  # killed before its first epoch ended: starts again
    run.widths, run.depth = dict(summary.widths), summary.depth
    run.macs, run.params = summary.predicted.get("macs"), summary.predicted.get("params")
    run.validation_accuracy, run.test_accuracy = summary.validation_accuracy, summary.test_accuracy
    run.predicted = {metric: summary.predicted.get(metric) for metric in COST_METRICS}
    if config.measure:
        _measure(run, target, out, config, cache_dir, log)
    run.seconds = time.perf_counter() - started
    log(f"[compare] {target.name} {point.label}, seed {seed}: test {_percent(run.test_accuracy)}")
    return run


# -- measuring -----------------------------------------------------------------------------------------
def measurement_plan(target: Target) -> tuple[str, str | None] | None:
    """(export format, runtime to time it in or None) that measures ``target`` here, or None when this
    machine cannot measure it: ``host`` is this machine (its latency, in the runtime it was profiled
    with); a microcontroller's SRAM and flash are the int8 file's TFLite Micro arena and size, whatever
    the board; other devices are elsewhere."""
    if target.name == HOST:
        runtime = target.runtime.split()[0].lower()
        if runtime == "onnxruntime":
            return "onnx", "onnxruntime"
        if runtime in ("tflite", "litert", "ai-edge-litert"):
            return "tflite", "litert"
        return None
    if target.kind == "mcu":
        return "tflite-int8", None
    return None


def _measure(run: GrownRun, target: Target, out: Path, config: CompareConfig, cache_dir,
             log: Callable[[str], None]) -> None:
    from .export import export_checkpoint
    from .export.benchmark import benchmark
    from .export.exporter import ExportError

    plan = measurement_plan(target)
    if plan is None:
        return
    fmt, runtime = plan
    relative = Path("exported") / Path(run.run_dir).relative_to("runs")
    export_dir = out / relative
    try:
        card = json.loads((export_dir / "model_card.json").read_text()) if export_dir.is_dir() else None
        if card is None:
            card = export_checkpoint(out / run.run_dir, export_dir, formats=[fmt], cache_dir=cache_dir,
                                     progress=False, log=lambda line: None,
                                     calibration_examples=config.calibration_examples).card
        run.export_dir = str(relative)
        file = card["files"][fmt]
        if runtime is not None:
            result = benchmark(export_dir / file["path"], runtime, target=None, warmup=config.bench_warmup,
                               runs=config.bench_runs)
            run.measured["latency_ms"] = result.latency_ms_median
            run.measured_by["latency_ms"] = f"{runtime} median of {config.bench_runs} runs on this machine" + (
                "" if result.trusted else " (too noisy to trust)")
        if fmt == "tflite-int8":
            run.int8_test_accuracy = card["accuracy"].get("tflite-int8")
            arena = (card.get("tflm") or {}).get("arena_bytes")
            if arena is not None:
                run.measured["sram_kb"] = arena / 1024
                run.measured_by["sram_kb"] = "TFLite Micro arena of the int8 file"
            run.measured["flash_kb"] = file["bytes"] / 1024
            run.measured_by["flash_kb"] = "size of the int8 .tflite file"
    except (ImportError, ExportError, OSError, ValueError) as error:  # e.g. the tflite extra not installed
        run.not_measured = f"{fmt}: {str(error).splitlines()[0]}"
        log(f"[compare] {target.name}: {run.run_dir} not measured: {run.not_measured}")


def _device(target: Target) -> Device:
    return Device(target.name, target.kind, target.description)


def _sources(target: Target, points: list[Point]) -> dict[str, str]:
    """Per metric, where the device's figures come from."""
    latency = ("predicted from the latency table measured on this machine" if target.measured and target.name == HOST
               else f"predicted from a measured latency table ({target.runtime})" if target.measured
               else f"predicted ({calibration_status(target)})")
    sources = {"latency_ms": latency,
               "energy_mj": ("predicted (energy per MAC and per byte moved)"
                             if target.energy_pj_per_mac is not None and target.energy_pj_per_byte is not None
                             else "predicted (power × latency)" if has_energy_model(target)
                             else "no model (the profile has no power figure)"),
               "sram_kb": "predicted (peak activations plus the runtime's own)",
               "flash_kb": "predicted (weights plus model overhead)"}
    grown = [p for p in points if p.grown]
    for metric in COST_METRICS:
        hows = sorted({run.measured_by[metric] for p in grown for run in p.runs if metric in run.measured_by})
        measured = sum(metric in p.measured for p in grown)
        if hows and measured == len(grown):
            sources[metric] = f"measured: {'; '.join(hows)} (predicted beside it)"
        elif hows:
            sources[metric] = (f"measured at {measured} of {len(grown)} rungs ({'; '.join(hows)}), predicted at the "
                               "others (a run there was not measured)")
    return sources


# -- formatting ----------------------------------------------------------------------------------------
def _median(values: list) -> float | None:
    """The median of ``values``; None when any is None or there is none."""
    if not values or any(value is None for value in values):
        return None
    return statistics.median(values)


def _widths(run: GrownRun) -> str:
    return "/".join(str(width) for width in run.widths.values())


def _rank_key(point: Point, metric: str) -> tuple:
    cost = point.cost(metric)
    return (math.inf if cost is None else cost, point.rung)


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.1%}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _pair(point: Point, metric: str) -> str:
    predicted, measured = point.predicted.get(metric), point.measured.get(metric)
    return _number(predicted) if measured is None else f"{_number(predicted)} → {_number(measured)}"


def _costs(point: Point) -> str:
    parts = []
    for metric, unit in (("latency_ms", "ms"), ("energy_mj", "mJ"), ("sram_kb", "KiB SRAM"), ("flash_kb", "KiB flash")):
        value = point.cost(metric)
        if value is not None:
            parts.append(f"{value:.4g} {unit}{' (measured)' if metric in point.measured else ''}")
    return ", ".join(parts)

