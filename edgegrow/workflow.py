"""The end-to-end workflow: from device budgets to deployable, benchmarked models and a report, in one call.

``run_workflow`` does what a user would do by hand with the six commands, in order:

1. **data**: the task's data; for ``kws`` by default the synthetic set, made with espeak-ng on the
   first run and reused from the cache afterwards (``edgegrow data kws``);
2. **profile**: this machine's latency table as the ``host`` target, measured with the quick grid
   (``edgegrow profile --target host --quick``) into the user's targets folder, or reused from
   there when it was measured before, so every later command sees the same ``host``;
3. **grow**, once per deployment: a seed to a budget on ``host`` (latency) and on a microcontroller
   target (latency, SRAM and flash); a budget not given is the reference network's predicted cost
   on that target (DS-CNN-S ×0.5 for keyword spotting, MobileNetV2 ×0.35 for images);
4. **baselines**: the family's uniformly scaled networks trained from scratch for as many epochs as
   the longer grow run trained, for the accuracy-against-cost plot;
5. **export** each grown network to ONNX, TFLite float and int8 and a C array, verified in
   onnxruntime, ai-edge-litert and TFLite Micro (``edgegrow export``);
6. **bench** the exports: ONNX and TFLite on this machine against the host prediction, and the int8
   file in TFLite Micro against the microcontroller's predicted SRAM (``edgegrow bench``);
7. **report**: each run's ``report.html`` with baselines and measurements, and ``index.html`` with
   ``workflow.json`` over both.

Output layout (``out``)::

    index.html  workflow.json  baselines.json
    runs/host/ runs/<mcu>/           steps.jsonl, checkpoint.pt, summary.json, report.html
    exported/host/ exported/<mcu>/   model.onnx, model_int8.onnx, model.tflite, model_int8.tflite,
                                     model_int8.cc/.h, labels.txt, model_card.json/.md, pipeline.py
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import torch

from cost_models import estimate, load_target
from cost_models.target import Target, user_targets_folder

from .atomic import write_atomically
from .baseline import RestartAt, UniformBaseline, largest_fitting_uniform, seed_width_for, train_baseline
from .grow import GrowConfig, Summary, TensorBoardLog, check_seed_fits, grow, growth_events
from .grow.callbacks import tensorboard_writer_class
from .grow.growth_step import predicted_costs
from .growth.budget import Budget
from .models.registry import TASKS
from .tasks import Task, load_task
from .training import resolve_device
from .training.distributed import barrier, broadcast_object, current_world, rank_zero_first

HOST = "host"
DEFAULT_MCU_TARGET = "cortex-m4f-120mhz"
MCU_METRICS = ("latency_ms", "sram_kb", "flash_kb")
HOST_METRICS = ("latency_ms",)


@dataclass(frozen=True)
class WorkflowConfig:
    """How much work each step does. ``grow`` is every grow run's config (``edgegrow grow``'s defaults);
    ``seed_width`` is the seed each run grows from (``edgegrow.baseline.seed_width_for``: ``"auto"``,
    half the width of the largest uniform network that fits that run's budget; ``"seed"``, the
    family's few-channel seed; or a width multiplier); ``fair_baseline`` trains, per deployment, the
    largest uniform network that fits its budget with the grow run's training compute; ``tensorboard``
    writes each grow run's TensorBoard scalars to its ``tensorboard`` folder. ``quick()`` is a smoke run
    of the same path."""

    grow: GrowConfig = GrowConfig()
    seed_width: float | str | None = "auto"
    baseline_widths: tuple[float, ...] | None = None  # None: the family's (Family.baseline_widths); () for none
    fair_baseline: bool = True
    formats: str = "all"
    calibration_examples: int = 300
    bench_runs: int = 200
    bench_warmup: int = 20
    tensorboard: bool = False

    @classmethod
    def quick(cls, grow: GrowConfig | None = None, **overrides) -> WorkflowConfig:
        settings = dict(grow=grow or GrowConfig.quick(), calibration_examples=100, bench_runs=50, bench_warmup=5)
        settings.update(overrides)
        return cls(**settings)

    @property
    def seed(self) -> int:
        return self.grow.seed


@dataclass
class Deployment:
    """One device and the budget a network is grown to for it, with what each step made of it."""

    name: str  # "host" or the microcontroller target's name: the run and export folder names
    target: Target
    budget: Budget
    run_dir: Path | None = None
    export_dir: Path | None = None
    grown: Summary | None = None  # the run's summary
    fair: dict = field(default_factory=dict)  # the largest fitting uniform network at equal training compute
    export: dict = field(default_factory=dict)  # accuracy, files, arena from the model card
    benchmarks: list[dict] = field(default_factory=list)

    def describe(self) -> list[str]:
        """What ``edgegrow workflow`` prints for this device: budget and usage, the kept network, its
        predicted against measured cost, and the fair uniform baseline."""
        grown, export = self.grown, self.export
        predicted, accuracy = grown.predicted, export.get("accuracy", {})
        used = ", ".join(f"{metric} {share:.0%}" for metric, share in grown.usage.items())
        lines = [f"{self.target.name}: {self.budget.describe()} (used: {used}; growth: {grown.stopped_by})",
                 f"  {grown.kept}: widths {'/'.join(str(w) for w in grown.widths.values())}, depth {grown.depth}, "
                 f"{predicted['macs']:,} MACs; test accuracy {_percent(grown.test_accuracy)}, "
                 f"int8 {_percent(accuracy.get('tflite-int8'))}"]
        host_bench = next((b for b in self.benchmarks if b["runtime"] == "onnxruntime"), None)
        if self.target.kind == "mcu":
            arena = (export.get("tflm") or {}).get("arena_bytes")
            int8_bytes = export.get("files", {}).get("tflite-int8", {}).get("bytes")
            lines.append(f"  predicted: {predicted['latency_ms']:.4g} ms, SRAM {predicted['sram_kb']:.1f} KiB, flash "
                         f"{predicted['flash_kb']:.1f} KiB; measured: TFLite Micro arena {_kib(arena)}, "
                         f"int8 file {_kib(int8_bytes)}")
        elif host_bench is not None:
            lines.append(f"  latency: {predicted['latency_ms']:.4f} ms predicted, "
                         f"{host_bench['latency_ms_median']:.4f} ms measured (onnxruntime, median)")
        if self.fair:
            fair = self.fair
            lines.append(f"  against {fair['name']}, the largest uniform network within the budget, trained with the "
                         f"same compute ({fair['epochs']:.1f} epochs): test {_percent(fair.get('test_accuracy'))}, "
                         f"grown {_points(fair.get('test_difference'))} (1 seed; bench/grow_vs_uniform.py has the "
                         "spread)")
        return lines


@dataclass
class WorkflowResult:
    out_dir: Path
    index: Path | None  # index.html (None on every rank of a torchrun job but rank 0, which writes it)
    deployments: list[Deployment]
    baselines: list[dict]
    seconds: dict[str, float]  # per step

    def describe(self) -> str:
        """What ``edgegrow workflow`` prints at the end: each device's outcome, the time per step, and
        where the results are."""
        blocks = ["\n".join(deployment.describe()) for deployment in self.deployments]
        steps = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in self.seconds.items() if step != "total")
        blocks.append(f"{self.seconds['total']:.0f} s in all ({steps})\n"
                      f"results: {self.out_dir}\n  open {self.index}\n  runs, reports: {self.out_dir / 'runs'}\n"
                      f"  deployable files: {self.out_dir / 'exported'}")
        return "\n\n".join(blocks)


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.1%}"


def _points(difference: float | None) -> str:
    """An accuracy difference (a share) in percentage points."""
    return "n/a" if difference is None else f"{100 * difference:+.1f} points"


def _kib(size_bytes: int | None) -> str:
    return "n/a" if size_bytes is None else f"{size_bytes / 1024:.1f} KiB"


def run_workflow(task: str = "kws", *, data: str | Path | None = None, family: str | None = None,
                 out: str | Path | None = None, cache_dir: str | Path | None = None,
                 host_budget: dict[str, float] | None = None, mcu_target: str = DEFAULT_MCU_TARGET,
                 mcu_budget: dict[str, float] | None = None, config: WorkflowConfig = WorkflowConfig(),
                 reprofile: bool = False, progress: bool = True, log: Callable[[str], None] = print,
                 callbacks_for: Callable[[str], list] | None = None) -> WorkflowResult:
    """Run the whole workflow (see the module docstring) into ``out`` and return where everything is.

    ``host_budget`` / ``mcu_budget``: ``{metric: limit}`` (metrics as ``edgegrow grow --budget``);
    a budget not given is the reference network's predicted latency on host, and its latency, SRAM
    and flash on the microcontroller. ``reprofile`` measures ``host`` again even when a profile exists.
    ``callbacks_for(deployment_name)``: the callbacks of that deployment's grow run (``edgegrow.grow.
    callbacks``; deployment names are ``host`` and the microcontroller target's name).

    Raises:
        ValueError: bad input (unknown task, family or target, a malformed budget, a budget the seed
            already exceeds, an ``out`` folder that already holds results), before anything slow runs
            where it can be checked early.
    """
    from .export import export_checkpoint
    from .export.exporter import parse_formats

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    parse_formats(config.formats)
    if config.tensorboard:
        tensorboard_writer_class()  # a missing package is said now, not after the data and the profile
    resolve_device(config.grow.device)  # and a device this machine lacks
    mcu = load_target(mcu_target)
    if mcu.kind != "mcu":
        raise ValueError(f"--mcu-target {mcu_target!r} is a {mcu.kind} profile, not a microcontroller; "
                         "choose one from 'edgegrow targets' whose kind is mcu")
    host_limits = Budget(dict(host_budget)) if host_budget else None
    mcu_limits = Budget(dict(mcu_budget)) if mcu_budget else None
    # under torchrun: rank 0 makes the data, the profile and every file; the grow runs and the baselines
    # train on all ranks (edgegrow.training.distributed); the others wait while rank 0 exports and benches
    world = current_world()
    if not world.main:
        log, progress = (lambda line: None), False
    out = Path(out) if out is not None else Path("runs") / datetime.now().strftime(f"{task}-%Y%m%d-%H%M%S")
    out = Path(broadcast_object(str(out), world))  # one folder, whatever each rank's clock says
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} already holds results; choose another --out (or delete it)")
    barrier(world)  # every rank has looked before rank 0 writes
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    step = time.perf_counter()
    loaded = rank_zero_first(world, lambda: load_task_data(task, data, family, cache_dir, progress, log))
    seconds["data"] = time.perf_counter() - step

    step = time.perf_counter()
    host = rank_zero_first(world, lambda: ensure_host_profile(reprofile=reprofile and world.main, progress=progress,
                                                               log=log))  # measured once, by rank 0
    seconds["profile"] = time.perf_counter() - step

    example = torch.zeros(1, *loaded.data.input_shape)
    reference = reference_model(loaded)
    deployments = [
        Deployment(HOST, host, host_limits or reference_budget(reference, example, host, HOST_METRICS)),
        Deployment(mcu.name, mcu, mcu_limits or reference_budget(reference, example, mcu, MCU_METRICS)),
    ]
    seeds = {}
    for deployment in deployments:  # a seed over a budget is bad input: say so before any training
        seeds[deployment.name] = loaded.with_seed_width(
            seed_width_for(loaded, deployment.target, deployment.budget, config.seed_width))
        check_seed_fits(estimate(seeds[deployment.name].seed().eval(), example, deployment.target), deployment.budget)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)

    step = time.perf_counter()
    for deployment in deployments:
        deployment.run_dir = out / "runs" / deployment.name
        log(f"\n[grow] a {loaded.family} seed on {deployment.target.name} to {deployment.budget.describe()} "
            f"by {config.grow.for_family(loaded.family).method} → {deployment.run_dir}")
        torch.manual_seed(config.seed)
        seeded = seeds[deployment.name]
        callbacks = [TensorBoardLog(deployment.run_dir / "tensorboard")] if config.tensorboard else []
        result = grow(seeded.seed(), loaded.data, deployment.target, deployment.budget, config.grow,
                      deployment.run_dir, family=loaded.family, seed_options=seeded.seed_options, progress=progress,
                      log=log, task_source=loaded.source, callbacks=[*callbacks, *(callbacks_for(deployment.name)
                                                                                    if callbacks_for else ())])
        deployment.grown = result.summary
    seconds["grow"] = time.perf_counter() - step

    step = time.perf_counter()
    widths = loaded.family_record.baseline_widths if config.baseline_widths is None else config.baseline_widths
    baselines = train_baselines(loaded, widths, [d.target for d in deployments], config, progress, log)
    if config.fair_baseline:
        for deployment in deployments:
            deployment.fair = train_fair_baseline(loaded, deployment, config, progress, log)
            baselines.append({**deployment.fair, "name": f"{deployment.fair['name']} (fits {deployment.name})"})
    seconds["baselines"] = time.perf_counter() - step
    if not world.main:  # the training is done; rank 0 alone exports, benches and reports
        barrier(world)
        return WorkflowResult(out, None, deployments, baselines, seconds)
    write_atomically(out / "baselines.json", json.dumps(baselines, indent=1) + "\n")

    step = time.perf_counter()
    for deployment in deployments:
        deployment.export_dir = out / "exported" / deployment.name
        log(f"\n[export] {deployment.run_dir} → {deployment.export_dir}")
        result = export_checkpoint(deployment.run_dir, deployment.export_dir, formats=config.formats,
                                   cache_dir=cache_dir, progress=progress, log=log,
                                   calibration_examples=config.calibration_examples)
        deployment.export = {"accuracy": result.card["accuracy"], "files": result.card["files"],
                             "tflm": result.card.get("tflm"), "seconds": result.seconds}
    seconds["export"] = time.perf_counter() - step

    step = time.perf_counter()
    for deployment in deployments:
        deployment.benchmarks = bench_export(deployment, host, config, log)
    seconds["bench"] = time.perf_counter() - step

    step = time.perf_counter()
    from .report import write_report
    from .report.workflow_report import write_index

    for deployment in deployments:
        report = write_report(deployment.run_dir, export_dir=deployment.export_dir,
                              baselines=baselines_for(baselines, deployment.target.name))
        log(f"[report] {report}")
    seconds["report"] = time.perf_counter() - step
    seconds["total"] = time.perf_counter() - started
    summary = workflow_summary(task, loaded, out, deployments, baselines, seconds, config)
    write_atomically(out / "workflow.json", json.dumps(summary, indent=1, default=str) + "\n")
    index = write_index(out, summary)
    barrier(world)
    return WorkflowResult(out, index, deployments, baselines, seconds)


# -- steps -------------------------------------------------------------------------------------------
def load_task_data(task: str, data, family, cache_dir, progress: bool, log) -> Task:
    """The task's data (for ``kws`` without ``data``: the default synthetic set, made on first use), saying
    where it comes from."""
    if task == "kws" and data is None:
        from .data.synthesize_kws import default_kws_folder, ensure_default_kws_set

        log(f"[data] the default KWS set: {default_kws_folder(cache_dir)}")
        report = ensure_default_kws_set(cache_dir, progress=progress)
        log(f"  {'reused' if report.reused else f'synthesised in {report.seconds:.0f} s'}: "
            f"{sum(report.clips.values())} clips")
    loaded = load_task(task, data, family=family, cache_dir=cache_dir, progress=progress)
    log(f"[data] {loaded.data.summary()}")
    return loaded


def ensure_host_profile(*, reprofile: bool = False, progress: bool = True,
                        log: Callable[[str], None] = print) -> Target:
    """The ``host`` target measured on this machine: the profile in the user's targets folder (where
    ``edgegrow profile --target host`` writes) if there is one, else a new one measured on the quick
    grid (about half a minute) and written there, where every later command finds it."""
    from cost_models import profiler

    path = user_targets_folder() / f"{HOST}.json"
    if path.is_file() and not reprofile:
        target = load_target(str(path))
        log(f"[profile] reusing this machine's host profile {path} ({target.description}); "
            "--reprofile measures it again")
        return target
    log(f"[profile] measuring this machine's latency table (quick grid) → {path}")
    measurements = path.with_name(path.name + ".measurements.jsonl")
    if reprofile and measurements.exists():
        measurements.unlink()  # the profiler rebuilds from old measurements otherwise
    from .progress import counter_bar

    with counter_bar("kernels", enabled=progress) as advance:
        profiler.profile_here(HOST, path, threads=1, quick=True, progress=advance)
    return load_target(str(path))


def reference_model(loaded: Task) -> torch.nn.Module:
    """The family's reference network (``Family.reference_width``) sized for the loaded data."""
    return loaded.family_record.network(loaded.data.num_classes, loaded.data.input_shape)


def reference_budget(reference: torch.nn.Module, example: torch.Tensor, target: Target,
                     metrics: tuple[str, ...]) -> Budget:
    """A budget of ``metrics`` at the reference network's predicted cost on ``target``."""
    report = estimate(reference.eval(), example, target)
    costs = {"latency_ms": report.latency_ms, "sram_kb": report.sram_bytes / 1024,
             "flash_kb": report.flash_bytes / 1024}
    return Budget({metric: costs[metric] for metric in metrics})


def baseline_costs(model: torch.nn.Module, example: torch.Tensor, targets: list[Target]) -> dict[str, dict]:
    """A baseline's predicted cost on each target, by target name."""
    return {target.name: predicted_costs(estimate(model.eval(), example, target)) for target in targets}


def shrink_schedule(grow_config: GrowConfig, train_examples: int) -> tuple[list[int], float]:
    """(optimizer steps of every scheduled growth event, factor) of a grow run with ``grow_config``
    (its family's settings filled in) on ``train_examples``; ([], 1.0) when it does not shrink."""
    if grow_config.shrink == 1.0:
        return [], 1.0
    return [event.step for event in growth_events(grow_config, grow_config.steps_per_epoch(train_examples))], \
        grow_config.shrink


def recipe_shrink(loaded: Task, config: WorkflowConfig) -> tuple[list[int], float]:
    """The grow runs' shrink steps, (optimizer steps of every scheduled growth event, factor), for a
    baseline trained with the same recipe. bench/grow_vs_uniform.py: the uniform DS-CNN trained with
    them beat the plain one by +0.3 to +1.5 points (median of 3 seeds, four budgets), and grown networks
    were level with it (−0.1 … +0.1) or behind (−1.6), so a baseline without them flatters growth."""
    return shrink_schedule(config.grow.for_family(loaded.family), len(loaded.data.train))


def recipe_restart(loaded: Task, config: WorkflowConfig) -> RestartAt | None:
    """The grow runs' restart (``GrowConfig.restart``: at the search's end, the weights blended with a fresh
    draw by ``restart_keep``, a new optimizer and schedule) for a baseline trained with the same recipe;
    None when they grow in place. bench/grow_vs_uniform.py: the uniform DS-CNN given the shrink steps and
    this restart was level with the restarted grow runs, so a baseline without it flatters growth."""
    grow = config.grow.for_family(loaded.family, len(loaded.data.train))
    if not grow.restart:
        return None
    return RestartAt(grow.search_steps(len(loaded.data.train)), grow.restart_keep, grow.seed)


def train_baselines(loaded: Task, widths, targets: list[Target], config: WorkflowConfig, progress: bool,
                    log: Callable[[str], None]) -> list[dict]:
    """The family at each width multiplier, trained from scratch with the grow runs' schedule for as many
    epochs (``config.grow.train_config()``), their shrink steps (``recipe_shrink``) and restart
    (``recipe_restart``) on the same data, with validation and test accuracy and predicted cost per
    target: the points of the accuracy-against-cost plot."""
    baselines = []
    example = torch.zeros(1, *loaded.data.input_shape)
    for width in widths:
        torch.manual_seed(config.seed)
        model = loaded.uniform(width)
        started = time.perf_counter()
        trained = train_baseline(UniformBaseline(width, model), loaded, config.grow.train_config(),
                                 shrink=recipe_shrink(loaded, config), restart=recipe_restart(loaded, config),
                                 progress=progress)
        name = f"{loaded.family} ×{width:g}"
        baselines.append({"name": name, "width_multiplier": width, "epochs": trained.epochs,
                          "accuracy": trained.validation_accuracy, "validation_accuracy": trained.validation_accuracy,
                          "test_accuracy": trained.test_accuracy, "costs": baseline_costs(model, example, targets),
                          "seconds": time.perf_counter() - started})
        log(f"[baseline] {name}: validation {trained.validation_accuracy:.1%}, {trained.epochs:g} epochs, "
            f"{time.perf_counter() - started:.0f} s")
    return baselines


def train_fair_baseline(loaded: Task, deployment: Deployment, config: WorkflowConfig, progress: bool,
                        log: Callable[[str], None]) -> dict:
    """The largest uniform network that fits the deployment's budget, trained with the grow run's schedule, shrink
    steps (``recipe_shrink``), restart (``recipe_restart``) and training compute (its MAC-epochs: growing, and retraining when it retrained), against the network the run
    kept: the differences are kept minus baseline."""
    torch.manual_seed(config.seed)  # before the network is built, so its initial weights come from the seed
    fair = largest_fitting_uniform(loaded, deployment.target, deployment.budget)
    grown = deployment.grown
    started = time.perf_counter()
    trained = train_baseline(fair, loaded, config.grow.train_config(), mac_epochs=grown.mac_epochs,
                             shrink=recipe_shrink(loaded, config), restart=recipe_restart(loaded, config),
                             progress=progress)
    example = torch.zeros(1, *loaded.data.input_shape)
    result = {"name": fair.name, "width_multiplier": fair.width_multiplier, "epochs": trained.epochs,
              "mac_epochs": trained.mac_epochs, "usage": fair.usage, "accuracy": trained.validation_accuracy,
              "validation_accuracy": trained.validation_accuracy, "test_accuracy": trained.test_accuracy,
              "costs": baseline_costs(fair.model, example, [deployment.target]),
              "seconds": time.perf_counter() - started}
    for split in ("validation", "test"):
        ours, theirs = getattr(grown, f"{split}_accuracy"), result[f"{split}_accuracy"]
        result[f"{split}_difference"] = None if ours is None or theirs is None else ours - theirs
    log(f"[baseline] {fair.name}, the largest uniform network within {deployment.name}'s budget, at the grown run's "
        f"training compute ({trained.epochs:.1f} epochs): test {_percent(trained.test_accuracy)}; grown "
        f"{_percent(grown.test_accuracy)}")
    return result


def baselines_for(baselines: list[dict], target: str) -> list[dict]:
    """The baselines in the report's form for one target: name, accuracy and that target's costs."""
    return [{"name": b["name"], "accuracy": b["accuracy"], **b["costs"][target]} for b in baselines
            if target in b["costs"]]


def bench_export(deployment: Deployment, host: Target, config: WorkflowConfig,
                 log: Callable[[str], None]) -> list[dict]:
    """Benchmark the deployment's export: float ONNX and TFLite and int8 TFLite on this machine against
    the host prediction; for a microcontroller also the int8 file in TFLite Micro against its SRAM."""
    from .export.benchmark import benchmark

    files = deployment.export.get("files", {})
    plan = [(fmt, runtime, host.name) for fmt, runtime in
            (("onnx", "onnxruntime"), ("tflite", "litert"), ("tflite-int8", "litert")) if fmt in files]
    if deployment.target.kind == "mcu" and "tflite-int8" in files:
        plan.append(("tflite-int8", "tflm", deployment.target.name))
    results = []
    for fmt, runtime, target in plan:
        path = deployment.export_dir / files[fmt]["path"]
        result = benchmark(path, runtime, target=target, warmup=config.bench_warmup, runs=config.bench_runs)
        log(f"[bench] {path.name} in {runtime}: fast {result.latency_ms_fast:.4f} ms, median "
            f"{result.latency_ms_median:.4f} ms" + ("" if result.trusted else " (too noisy to trust)")
            + (f", arena {result.arena_bytes:,} B" if result.arena_bytes else "")
            + (f" (predicted on {target}: {result.prediction.latency_ms:.4f} ms)"
               if result.prediction is not None and result.prediction.latency_ms and runtime != "tflm" else ""))
        results.append({"format": fmt, **result.to_dict()})
    return results


def workflow_summary(task: str, loaded: Task, out: Path, deployments: list[Deployment], baselines: list[dict],
                     seconds: dict[str, float], config: WorkflowConfig) -> dict:
    """What ``workflow.json`` holds and ``index.html`` shows."""
    return {
        "task": task, "family": loaded.family, "data": loaded.data.summary(), "source": loaded.source,
        "created": datetime.now().isoformat(timespec="seconds"), "out_dir": str(out.resolve()),
        "config": asdict(config), "seconds": seconds, "baselines": baselines,
        "deployments": [{
            "name": d.name, "target": d.target.name, "target_kind": d.target.kind,
            "target_description": d.target.description, "budget": dict(d.budget.limits),
            "run_dir": str(d.run_dir.relative_to(out)), "export_dir": str(d.export_dir.relative_to(out)),
            "report": str((d.run_dir / "report.html").relative_to(out)), "grown": asdict(d.grown), "fair": d.fair,
            "export": d.export,
            "benchmarks": d.benchmarks,
        } for d in deployments],
    }
