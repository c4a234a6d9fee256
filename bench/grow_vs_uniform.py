"""Grown networks against the largest uniformly scaled network that fits the same budget, at equal epochs,
at equal training compute, and with the found architecture retrained from scratch.

Settings (bench/growth_data.py makes the data; one point of test accuracy is ≥ 17 test examples):

- ``kws-host-{a,b,c}``: DS-CNN on the large synthetic KWS set to three CPU latency budgets that fall
  between the steps of the latency staircase, so no uniform width fills them. They are priced with a
  pinned, measured onnxruntime profile (bench/targets/x86-vm-onnxruntime.json), not this machine's
  ``host`` profile, which ``edgegrow profile`` and the workflow re-measure: the settings' widths would
  move with it (they did: a re-profile moved kws-host-a's uniform network from 24 to 32 channels);
- ``kws-m4f``: the same task to a Cortex-M4F latency + SRAM + flash budget;
- ``image-m4f``: MobileNetV2 on 62 characters rendered from held-out font families (32×32 grey) under
  a Cortex-M4F SRAM (and latency) limit. Its networks are underfit at 20 epochs (training accuracy
  82–83 % at the last epoch) and train to about 94 % at 40: give it ``--epochs 40`` (its own ``--work``)
  for equal-compute comparisons that are not mostly "who trains longer"; at 40 the uniform network
  still gains about a point from 8 more epochs, at 80 it gains 0.1–0.5 from 13–16 more (3 seeds,
  ``bench/results/grow_vs_uniform_image_80_epochs.json``), so ``--epochs 80`` compares converged
  networks (about 12 minutes a run on one CPU core);
- ``image-user-m4f``: issue 17's hand-written CNN (``user_network.py``: a residual block, a
  squeeze-and-excitation gate, a concatenation of two Hardswish branches and a ReLU block, every width
  ``32 × width multiplier``), registered as a family of its own, on the same characters to a Cortex-M4F
  latency + SRAM + flash budget that falls between 16 and 17 channels (``methods --methods-setting
  image-user-m4f``).

Per setting and seed:

1. ``uniform``: the family's reference network at the largest width multiplier whose predicted cost
   fits every limit (``edgegrow.baseline.largest_fitting_uniform``), trained from scratch with the
   run's schedule for ``EPOCHS`` epochs;
2. ``grown``: ``edgegrow.grow.grow`` with the default GrowConfig (``--method``) and ``retrain=True``, from
   the seed ``--seed-width auto`` picks (about half the uniform network's width multiplier), for the
   same ``EPOCHS`` in one schedule;
   its summary holds the grown network and the found architecture retrained from scratch (with the
   grow run's shrink steps since 2026-12-04; without them before);
3. ``uniform-compute``: the uniform network trained with the grown run's training compute (Σ MACs ×
   examples over the run, growing and retraining), for as many optimizer steps as that buys at its MACs;
4. ``uniform-shrink``: the uniform network for ``EPOCHS`` with the grown run's shrink events (its
   convolutions scaled by ``GrowConfig.shrink`` at every growth event's step) and nothing else: the
   grow protocol without growth, which tells what shrinking alone does for any network;
5. ``retrained-shrink`` (only when ``--kinds`` names it): the grown run's architecture (its ``grown.pt``)
   from fresh weights with the same shrink steps, against uniform-shrink: the architectures alone
   compared. Since 2026-12-04 ``--retrain`` itself trains with the shrink steps, so for new grow runs
   this equals the grown run's ``retrained``; it re-derives that for runs made before.
6. ``restarted`` (when ``--kinds`` names it): ``grow`` with ``restart=True`` instead of ``retrain``, growth
   as search within one run: growing until ``growth_end`` (5 of the 20 epochs), then the found
   architecture for the other 15 from its grown weights blended with fresh ones
   (``GrowConfig.restart_keep``, ``--restart-keep``; 0 is fresh weights, as all runs before 2026-12-05),
   so the run's epochs and compute are one run's; ``uniform-compute-restarted``,
   ``uniform-shrink-compute-restarted`` and ``uniform-recipe-compute-restarted``: the uniform network with
   that run's whole training compute, without the shrink steps, with them, and with them and the same
   restart (``baseline.RestartAt``: the grow run's recipe, growth alone left out).

Comparisons (median over seeds of the per-seed difference, in points of test accuracy): equal epochs
(grown − uniform), equal training compute (grown − uniform-compute, and kept − uniform-compute with the
compute of growing and retraining), found architecture retrained (retrained − uniform), and grown −
uniform-shrink (when ``--kinds`` includes it). The run also reports which of grown and retrained the
validation split kept.
Per method (``methods``): every growth method in ``--methods`` on ``--methods-setting`` for ``--seeds``,
each grown run (no retrain) with its own ``uniform-compute-METHOD`` run, so each method is compared at
equal epochs and at its own equal training compute, with its growth overhead (seconds choosing growth
over the run's wall time) and the widths it ends with. Settings were chosen on the validation split; the
test split is reported.

    python bench/grow_vs_uniform.py run [--settings kws-host-a kws-m4f] [--seeds 0 1 2] [--jobs 2]
    python bench/grow_vs_uniform.py methods [--methods tiny random-new] [--seeds 0 1 2] [--jobs 2]
    python bench/grow_vs_uniform.py report     # table, JSON and the Pareto plot (SVG)

One result file per run under --work, so the benchmark resumes where it stopped and can run in parts.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from growth_data import fonts_folder, kws_folder  # noqa: E402
import user_network  # noqa: E402  (registers the family "user-cnn" in every process of the benchmark)
from provenance import commit  # noqa: E402

from cost_models import Target, load_target  # noqa: E402
from edgegrow.baseline import (  # noqa: E402
    RestartAt,
    UniformBaseline,
    auto_seed_width,
    largest_fitting_uniform,
    train_baseline,
)
from edgegrow.checkpoint import Checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from edgegrow.grow.loop import reinitialise  # noqa: E402
from edgegrow.grow.run_folder import GROWN  # noqa: E402
from edgegrow.grow import GrowConfig, grow  # noqa: E402
from edgegrow.grow.methods import METHODS  # noqa: E402
from edgegrow.growth.budget import Budget  # noqa: E402
from edgegrow.tasks import Task  # noqa: E402
from edgegrow.training import resolve_device  # noqa: E402
from edgegrow.workflow import shrink_schedule  # noqa: E402

EPOCHS = 20
KINDS = ("uniform", "grown", "uniform-compute", "uniform-shrink", "retrained-shrink", "restarted",
         "uniform-compute-restarted", "uniform-shrink-compute-restarted", "uniform-recipe-compute-restarted")
DEFAULT_KINDS = KINDS[:4]  # the others only when --kinds names them
REQUIRED = KINDS[:3]  # the three comparisons; uniform-shrink is a control that --kinds may leave out


@dataclass(frozen=True)
class Setting:
    name: str
    task: str  # "kws" or "image"
    target: str
    budget: dict[str, float]
    about: str
    family: str = ""  # the network family; "" is the task's: DS-CNN for kws, MobileNetV2 for image

    @property
    def network_family(self) -> str:
        return self.family or {"kws": "ds-cnn", "image": "mobilenet-v2"}[self.task]


BENCH = Path(__file__).resolve().parent
CPU_PROFILE = "targets/x86-vm-onnxruntime.json"  # relative to bench/; see the module docstring
SETTINGS = {s.name: s for s in (
    Setting("kws-host-a", "kws", CPU_PROFILE, {"latency_ms": 0.036}, "DS-CNN, CPU latency between 32 and 36 channels"),
    Setting("kws-host-b", "kws", CPU_PROFILE, {"latency_ms": 0.046},
            "DS-CNN, CPU latency: 40 channels fit with 0.1 % to spare (between 36 and 40 before the cost-model "
            "fixes of 2026-12-05)"),
    Setting("kws-host-c", "kws", CPU_PROFILE, {"latency_ms": 0.060}, "DS-CNN, CPU latency between 48 and 52 channels"),
    Setting("kws-m4f", "kws", "cortex-m4f-120mhz", {"latency_ms": 60.0, "sram_kb": 13.0, "flash_kb": 19.0},
            "DS-CNN, Cortex-M4F latency + SRAM + flash"),
    Setting("image-m4f", "image", "cortex-m4f-120mhz", {"sram_kb": 90.0, "latency_ms": 80.0},
            "MobileNetV2 on font characters, Cortex-M4F SRAM (and latency)"),
    Setting("image-user-m4f", "image", "cortex-m4f-120mhz", {"latency_ms": 135.0, "sram_kb": 40.0, "flash_kb": 40.0},
            "issue 17's user-style CNN on font characters, Cortex-M4F latency + SRAM + flash",
            family=user_network.FAMILY),
)}


ISSUE_16_SETTINGS = ("kws-host-a", "kws-host-b", "kws-host-c", "kws-m4f", "image-m4f")


def target_of(setting: Setting) -> Target:
    """The setting's cost profile: a shipped target by name, or a profile file under bench/."""
    return load_target(str(BENCH / setting.target) if setting.target.endswith(".json") else setting.target)


def profile_sha256(target: Target) -> str:
    return hashlib.sha256(Path(target.path).read_bytes()).hexdigest()


def check_same_profile(work: Path, setting: Setting) -> None:
    """Refuse to add runs priced with another profile to a setting's results in ``work`` (results
    from before profiles were recorded count as another profile: start another --work folder)."""
    current = profile_sha256(target_of(setting))
    for path in sorted(work.glob(f"{setting.name}-*.json")):
        recorded = json.loads(path.read_text()).get("target_profile_sha256")
        if recorded != current:
            raise SystemExit(f"{path} was priced with another {setting.target} profile than the one here "
                             f"(sha256 {str(recorded)[:12]} vs {current[:12]}); use another --work folder")


KWS_FEATURES: str | None = None  # --kws-features: the large KWS set's features file, for a machine without the clips


def load(setting: Setting) -> Task:
    """The setting's task with its data (cached after the first load)."""
    if setting.task == "kws" and KWS_FEATURES is not None:
        from edgegrow.data.speech_commands import load_kws_features

        data = load_kws_features(KWS_FEATURES)
        options = {"num_classes": data.num_classes, "input_shape": list(data.input_shape)}
        return Task(data, "ds-cnn", options, {"task": "kws", "data": None, "family": "ds-cnn"})
    if setting.task == "kws":
        from edgegrow.tasks import load_task

        return load_task("kws", kws_folder(), progress=False)
    from edgegrow.data.images import ImageTaskConfig, load_image_folder

    data = load_image_folder(fonts_folder(), ImageTaskConfig(resolution=32, channels=1, flips=False, max_shift=2))
    options = {"num_classes": data.num_classes, "input_shape": list(data.input_shape)}
    family = setting.network_family
    return Task(data, family, options, {"task": "image", "data": str(fonts_folder()), "family": family})


SHRINK = GrowConfig.shrink  # the dataclass default: None, the family's (GrowConfig.for_family)
RESTART_KEEP = GrowConfig.restart_keep


def config_for(seed: int, method: str) -> GrowConfig:
    return GrowConfig(method=method, epochs=EPOCHS, seed=seed, retrain=True, shrink=SHRINK, restart_keep=RESTART_KEEP)


def set_run_settings(epochs: int, shrink: float | None, restart_keep: float = GrowConfig.restart_keep) -> None:
    """A quick look at fewer epochs, or another ``--shrink`` or ``--restart-keep`` (the recorded results
    are at ``EPOCHS`` and each family's shrink; use another --work folder for other settings)."""
    global EPOCHS, SHRINK, RESTART_KEEP
    EPOCHS, SHRINK, RESTART_KEEP = epochs, shrink, restart_keep


def result_path(work: Path, setting: str, seed: int, kind: str) -> Path:
    return work / f"{setting}-{seed}-{kind}.json"


def run_one(setting: Setting, seed: int, kind: str, work: Path, task: Task, method: str) -> dict:
    path = result_path(work, setting.name, seed, kind)
    budget = Budget(setting.budget)
    target = target_of(setting)
    torch.manual_seed(seed)  # the uniform network's initial weights are drawn here: from the seed, not the process
    fair = largest_fitting_uniform(task, target, budget)
    config = config_for(seed, method).for_family(task.family)
    if kind != "grown":  # the methods phase's runs time growth alone
        config = replace(config, retrain=False, restart=kind == "restarted")
    started = time.perf_counter()
    if kind.startswith("grown") or kind == "restarted":
        seed_width = auto_seed_width(task, target, budget, fair)  # as `--seed-width auto`: about half of fair's
        grown_task = task.with_seed_width(seed_width)
        run_dir = work / f"{setting.name}-{seed}-{kind}-run"
        shutil.rmtree(run_dir, ignore_errors=True)
        torch.manual_seed(seed)
        result = grow(grown_task.seed(), task.data, target, budget, config, run_dir, family=task.family,
                      seed_options=grown_task.seed_options, log=lambda line: None, task_source=task.source)
        summary = result.summary
        row = {"kind": kind, "method": config.method, "shrink": config.shrink, "restart": config.restart,
               "restart_keep": config.restart_keep if config.restart else None,
               "seed_width": seed_width,
               "summary": asdict(summary),
               "predicted": summary.predicted, "usage": summary.usage, "widths": summary.widths,
               "depth": summary.depth, "growth_seconds": summary.growth_seconds,
               "wall_seconds": time.perf_counter() - started}
    else:
        torch.manual_seed(seed)
        mac_epochs, shrink = None, ((), 1.0)
        if kind.endswith("compute-restarted"):  # a restarted run's compute is the whole run's
            grown = json.loads(result_path(work, setting.name, seed, "restarted").read_text())
            mac_epochs = grown["summary"]["mac_epochs"]
        elif kind.startswith("uniform-compute"):  # uniform-compute-METHOD matches the methods phase's grown-METHOD
            grown_kind = "grown" + kind[len("uniform-compute"):]
            grown = json.loads(result_path(work, setting.name, seed, grown_kind).read_text())
            mac_epochs = grown["summary"]["grown"]["mac_epochs"]
        if kind == "uniform-shrink" and config.shrink == 1.0:  # the control is the uniform run itself
            row = {**json.loads(result_path(work, setting.name, seed, "uniform").read_text()), "kind": kind,
                   "same_as": "uniform (shrink 1)"}
            path.write_text(json.dumps(row, indent=1))
            print(f"{setting.name} seed {seed} {kind}: shrink 1, the uniform run", flush=True)
            return row
        record = Checkpoint(task.family, {**task.seed_options, "width_multiplier": fair.width_multiplier}, [],
                            {"kind": kind})
        usage, predicted = fair.usage, {"latency_ms": fair.report.latency_ms, "macs": fair.report.macs,
                                        "sram_kb": fair.report.sram_bytes / 1024,
                                        "flash_kb": fair.report.flash_bytes / 1024}
        if kind in ("uniform-shrink", "retrained-shrink", "uniform-shrink-compute-restarted",
                    "uniform-recipe-compute-restarted"):
            shrink = shrink_schedule(config, len(task.data.train))
        restart = None
        if kind == "uniform-recipe-compute-restarted":  # the restarted run's restart, at the same step
            restart = RestartAt(config.search_steps(len(task.data.train)), grown.get("restart_keep") or 0.0,
                                config.seed)
        if kind == "retrained-shrink":  # the grown run's architecture, fresh weights, the uniform+shrink recipe
            fair, record, usage, predicted = _found_architecture(work, setting, seed, fair)
        trained = train_baseline(fair, task, config.train_config(), mac_epochs=mac_epochs, shrink=shrink,
                                 restart=restart)
        save_checkpoint(work / f"{setting.name}-{seed}-{kind}.pt", fair.model, record)
        row = {"kind": kind, "width_multiplier": fair.width_multiplier, "epochs": trained.epochs,
               "restart": {**asdict(restart), "made": trained.restarted} if restart is not None else None,
               "mac_epochs": trained.mac_epochs, "validation_accuracy": trained.validation_accuracy,
               "test_accuracy": trained.test_accuracy, "usage": usage, "predicted": predicted,
               "wall_seconds": time.perf_counter() - started}
    device = resolve_device(config.device)
    row.update(setting=setting.name, seed=seed, torch_threads=torch.get_num_threads(), commit=commit(),
               target_profile_sha256=profile_sha256(target), device=str(device),
               device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu")
    path.write_text(json.dumps(row, indent=1))
    accuracy = row.get("test_accuracy", row.get("summary", {}).get("test_accuracy"))
    print(f"{setting.name} seed {seed} {kind}: test {accuracy:.1%}, {row['wall_seconds']:.0f} s", flush=True)
    return row


def _found_architecture(work: Path, setting: Setting, seed: int, fair: UniformBaseline):
    """The grown run's network (its grown.pt) with fresh weights drawn as ``--retrain`` draws them, for
    ``retrained-shrink``: the found architecture trained with the shrink steps the uniform+shrink control
    gets, so the two differ in architecture alone."""
    grown = json.loads(result_path(work, setting.name, seed, "grown").read_text())
    model, record = load_checkpoint(work / f"{setting.name}-{seed}-grown-run" / GROWN)
    record = Checkpoint(record.family, record.seed_options, record.edits, {"kind": "retrained-shrink"})
    return (UniformBaseline(fair.width_multiplier, reinitialise(model, seed)), record, grown["usage"],
            grown["predicted"])


def plan(args) -> list[tuple[str, int, str]]:
    work = Path(args.work)
    todo = []
    for name in args.settings:
        check_same_profile(work, SETTINGS[name])
    for seed in args.seeds:
        for name in args.settings:
            for kind in (k for k in KINDS if k in args.kinds):  # equal compute needs the grown run first
                path = result_path(work, name, seed, kind)
                if not path.exists():
                    todo.append((name, seed, kind))
                elif kind == "restarted":
                    recorded = json.loads(path.read_text()).get("restart_keep") or 0.0
                    if recorded != args.restart_keep:
                        raise SystemExit(f"{path} was made with restart_keep {recorded:g}, not --restart-keep "
                                         f"{args.restart_keep:g}; give each value its own --work")
    return todo


def _features_args(args) -> list[str]:
    return ["--kws-features", args.kws_features] if args.kws_features else []


def run_all(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.jobs > 1 and not args.pairs:  # one process per (setting, seed), a job per core
        pairs = sorted({(name, seed) for name, seed, _ in plan(args)}, key=lambda p: (p[0].startswith("image"), p))
        queues = [pairs[job::args.jobs] for job in range(args.jobs)]
        processes = [subprocess.Popen([sys.executable, __file__, "run", "--work", str(work), "--jobs", "1",
                                       "--epochs", str(args.epochs), *_features_args(args),
                                       *(["--method", args.method] if args.method is not None else []),
                                       *(["--shrink", str(args.shrink)] if args.shrink is not None else []),
                                       "--restart-keep", str(args.restart_keep),
                                       "--kinds", *args.kinds, "--pairs", *[f"{n}@{s}" for n, s in queue]])
                     for queue in queues if queue]
        for process in processes:
            process.wait()
        return
    torch.set_num_threads(args.threads)
    pairs = [(name, int(seed)) for name, seed in (p.rsplit("@", 1) for p in args.pairs)] if args.pairs else \
        sorted({(name, seed) for name, seed, _ in plan(args)})
    tasks: dict[str, Task] = {}
    for name, seed in pairs:
        setting = SETTINGS[name]
        task = tasks.setdefault(setting.network_family, load(setting))
        for kind in (k for k in KINDS if k in args.kinds):
            if not result_path(work, name, seed, kind).exists():
                run_one(setting, seed, kind, work, task, args.method)


def methods(args) -> None:
    """Every method in ``--methods`` on ``--methods-setting`` for ``--seeds``: the grown run (no retrain)
    and the uniform network trained with that run's training compute, so each method gets its own
    equal-compute comparison (issue 17's per-method table). With ``--jobs 2`` one process per seed
    queue; results are one file per run, so it resumes."""
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    setting = SETTINGS[args.methods_setting]
    check_same_profile(work, setting)
    todo = [(seed, method) for seed in args.seeds for method in args.methods
            if not all(result_path(work, setting.name, seed, f"{kind}-{method}").exists()
                       for kind in ("grown", "uniform-compute"))]
    if args.jobs > 1 and not args.pairs:
        queues = [todo[job::args.jobs] for job in range(args.jobs)]
        processes = [subprocess.Popen([sys.executable, __file__, "methods", "--work", str(work), "--jobs", "1",
                                       "--epochs", str(args.epochs), "--methods-setting", setting.name,
                                       *_features_args(args),
                                       *(["--shrink", str(args.shrink)] if args.shrink is not None else []),
                                       "--restart-keep", str(args.restart_keep),
                                       "--pairs", *[f"{method}@{seed}" for seed, method in queue]])
                     for queue in queues if queue]
        for process in processes:
            process.wait()
        return
    torch.set_num_threads(args.threads)
    if args.pairs:
        todo = [(int(seed), method) for method, seed in (p.rsplit("@", 1) for p in args.pairs)]
    task = load(setting)
    for seed, method in todo:
        for kind in (f"grown-{method}", f"uniform-compute-{method}"):
            if not result_path(work, setting.name, seed, kind).exists():
                run_one(setting, seed, kind, work, task, method)


def method_table(rows: list[dict]) -> list[dict]:
    """Per (setting, method) of the methods phase: median over seeds of grown test accuracy, of grown −
    uniform at equal epochs and at equal compute (each seed against its own uniform runs), the growth
    share of wall time and the widths each seed ended with."""
    runs = {(r["setting"], r["seed"], r["kind"]): r for r in rows}
    table = []
    for setting, method in sorted({(r["setting"], r["method"]) for r in rows if r["kind"].startswith("grown-")}):
        per_seed = []
        for (name, seed, kind), row in sorted(runs.items(), key=lambda item: item[0][1]):
            if name != setting or kind != f"grown-{method}":
                continue
            compute = runs.get((name, seed, f"uniform-compute-{method}"))
            uniform = runs.get((name, seed, "uniform"))
            grown = row["summary"]["grown"]["test_accuracy"]
            per_seed.append({
                "seed": seed, "grown_test": grown, "growth_share": growth_share(row), "widths": row["widths"],
                "depth": row["depth"], "usage": max(row["usage"].values()),
                "equal_epochs": grown - uniform["test_accuracy"] if uniform else math.nan,
                "equal_compute": grown - compute["test_accuracy"] if compute else math.nan,
                "uniform_compute_epochs": compute["epochs"] if compute else math.nan})
        entry = {"setting": setting, "method": method, "seeds": [p["seed"] for p in per_seed], "per_seed": per_seed}
        for key in ("grown_test", "growth_share", "equal_epochs", "equal_compute", "usage"):
            values = [p[key] for p in per_seed if not math.isnan(p[key])]
            entry[f"{key}_median"] = statistics.median(values) if values else math.nan
            entry[f"{key}_range"] = [min(values), max(values)] if values else [math.nan, math.nan]
        table.append(entry)
    return table


MISSING = {"test_accuracy": math.nan}  # a run not made: its differences are NaN and left out of the statistics


def _values(per_seed: list[dict], key: str) -> list[float]:
    return [p[key] for p in per_seed if not math.isnan(p[key])]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _paired(values: list[float]) -> dict:
    """Mean and standard error over seeds of a per-seed difference, and in how many seeds the first was
    ahead: beside the median, what 8 seeds can say that 3 cannot."""
    error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return {"mean": statistics.mean(values) if values else math.nan, "standard_error": error,
            "ahead": sum(x > 0 for x in values), "behind": sum(x < 0 for x in values), "seeds": len(values)}


RESTARTED_KEYS = ("restarted_test", "restarted_compute_share", "restarted_equal_compute",
                  "restarted_minus_uniform_shrink_compute", "restarted_minus_uniform_recipe_compute",
                  "restarted_equal_epochs", "restarted_minus_retrained_shrink",
                  "restarted_minus_grown_validation")


def _restarted(runs: dict, name: str, seed: int, uniform: dict, found_shrunk: dict) -> dict:
    """A seed's ``restarted`` figures (NaN where its runs are missing): the kept network's test accuracy,
    its whole run's compute over the uniform network's 20 epochs, its differences from the uniform
    network at equal compute (without the shrink steps, with them, and with them and the same restart:
    the recipe without growth), at equal epochs, and from the found
    architecture retrained for all 20 epochs (``retrained-shrink``: what the 5 searching epochs cost),
    and its validation accuracy against the network grown in place (the split the protocol is chosen on)."""
    restarted = runs.get((name, seed, "restarted"))
    if restarted is None:
        return dict.fromkeys(RESTARTED_KEYS, math.nan)
    test = restarted["summary"]["test_accuracy"]
    grown = runs.get((name, seed, "grown"))
    grown_validation = grown["summary"]["grown"]["validation_accuracy"] if grown else math.nan
    return {"restarted_test": test,
            "restarted_compute_share": restarted["summary"]["mac_epochs"] / uniform["mac_epochs"],
            "restarted_equal_compute":
                test - runs.get((name, seed, "uniform-compute-restarted"), MISSING)["test_accuracy"],
            "restarted_minus_uniform_shrink_compute":
                test - runs.get((name, seed, "uniform-shrink-compute-restarted"), MISSING)["test_accuracy"],
            "restarted_minus_uniform_recipe_compute":
                test - runs.get((name, seed, "uniform-recipe-compute-restarted"), MISSING)["test_accuracy"],
            "restarted_equal_epochs": test - uniform["test_accuracy"],
            "restarted_minus_retrained_shrink": test - found_shrunk["test_accuracy"],
            "restarted_minus_grown_validation": restarted["summary"]["validation_accuracy"] - grown_validation}


def _restart_keeps(runs: dict, name: str, seeds: list[int]) -> list[float]:
    """The restart_keep values of a setting's ``restarted`` runs (0: fresh weights, as before it existed)."""
    return sorted({runs[(name, seed, "restarted")].get("restart_keep") or 0.0 for seed in seeds
                   if (name, seed, "restarted") in runs})


def restarted_table(runs: dict, settings_in_table: set[str]) -> list[dict]:
    """Settings with ``restarted`` runs but not the main table's three comparisons (their ``grown`` runs
    were made elsewhere or not at all): per seed the ``restarted`` figures against this folder's
    uniform runs, and per figure the median, mean ± standard error and seeds ahead/behind."""
    table = []
    for name in SETTINGS:
        seeds = sorted(seed for (n, seed, kind) in runs if n == name and kind == "restarted"
                       and (n, seed, "uniform") in runs)
        if name in settings_in_table or not seeds:
            continue
        per_seed = [{"seed": seed, "uniform_test": runs[(name, seed, "uniform")]["test_accuracy"],
                     **_restarted(runs, name, seed, runs[(name, seed, "uniform")],
                                  runs.get((name, seed, "retrained-shrink"), MISSING))} for seed in seeds]
        entry = {"setting": name, "seeds": seeds, "restart_keep": _restart_keeps(runs, name, seeds),
                 "per_seed": per_seed}
        for key in ("uniform_test", *RESTARTED_KEYS):
            entry[f"{key}_median"] = _median(_values(per_seed, key))
            entry[f"{key}_paired"] = _paired(_values(per_seed, key))
        table.append(entry)
    return table


def growth_share(row: dict) -> float:
    """Time choosing growth / wall time of the grow run itself: a run with ``--retrain`` also trained the
    found architecture from scratch, and that time is left out (counting it halved the share)."""
    retrained = (row["summary"].get("retrained") or {}).get("training_seconds", 0.0)
    return row["growth_seconds"] / (row["wall_seconds"] - retrained)


def report(args) -> None:
    work = Path(args.work)
    rows = [json.loads(path.read_text()) for path in sorted(work.glob("*.json"))]
    runs = {(r["setting"], r["seed"], r["kind"]): r for r in rows}
    table = []
    for name, setting in SETTINGS.items():
        seeds = sorted({s for (n, s, k) in runs if n == name and k == "uniform-compute"
                        and all((n, s, kind) in runs for kind in REQUIRED)})
        if not seeds:
            continue
        per_seed = []
        for seed in seeds:
            grown = runs[(name, seed, "grown")]["summary"]
            uniform, compute = runs[(name, seed, "uniform")], runs[(name, seed, "uniform-compute")]
            shrunk = runs.get((name, seed, "uniform-shrink"), MISSING)
            found_shrunk = runs.get((name, seed, "retrained-shrink"), MISSING)
            per_seed.append({
                "seed": seed, "grown_test": grown["grown"]["test_accuracy"],
                "retrained_test": grown["retrained"]["test_accuracy"], "kept": grown["kept"],
                "kept_test": grown["test_accuracy"], "uniform_test": uniform["test_accuracy"],
                "uniform_compute_test": compute["test_accuracy"], "uniform_compute_epochs": compute["epochs"],
                "uniform_shrink_test": shrunk["test_accuracy"],
                "minus_uniform_shrink": grown["grown"]["test_accuracy"] - shrunk["test_accuracy"],
                "retrained_shrink_test": found_shrunk["test_accuracy"],
                "retrained_shrink_minus_uniform_shrink": found_shrunk["test_accuracy"] - shrunk["test_accuracy"],
                "equal_epochs": grown["grown"]["test_accuracy"] - uniform["test_accuracy"],
                "equal_compute": grown["grown"]["test_accuracy"] - compute["test_accuracy"],
                "retrained": grown["retrained"]["test_accuracy"] - uniform["test_accuracy"],
                "kept_equal_epochs": grown["test_accuracy"] - uniform["test_accuracy"],
                "grown_validation": grown["grown"]["validation_accuracy"],
                "uniform_validation": uniform["validation_accuracy"],
                "grown_usage": max(grown["usage"].values()), "uniform_usage": max(uniform["usage"].values()),
                "grown_widths": runs[(name, seed, "grown")]["widths"], "uniform_width": uniform["width_multiplier"],
                "grown_mac_epochs": grown["grown"]["mac_epochs"], "uniform_mac_epochs": uniform["mac_epochs"],
                "growth_share": growth_share(runs[(name, seed, "grown")]),
                **_restarted(runs, name, seed, uniform, found_shrunk),
            })

        def median(key):
            return _median(_values(per_seed, key))

        def spread(key):
            v = _values(per_seed, key)
            return [min(v), max(v)] if v else [math.nan, math.nan]

        def paired(key):
            return _paired(_values(per_seed, key))

        table.append({"setting": name, "about": setting.about, "target": setting.target,
                      "target_profile_sha256": runs[(name, seeds[0], "uniform")].get("target_profile_sha256"),
                      "budget": setting.budget,
                      "seeds": seeds, **{f"{key}_median": median(key) for key in (
                          "grown_test", "retrained_test", "uniform_test", "uniform_compute_test",
                          "uniform_shrink_test", "equal_epochs", "equal_compute", "retrained", "kept_equal_epochs",
                          "minus_uniform_shrink", "retrained_shrink_test", "retrained_shrink_minus_uniform_shrink",
                          "grown_usage", "uniform_usage", "growth_share",
                          "uniform_compute_epochs", *RESTARTED_KEYS)},
                      **{f"{key}_range": spread(key)
                         for key in ("equal_epochs", "equal_compute", "retrained", "minus_uniform_shrink")},
                      **{f"{key}_paired": paired(key)
                         for key in ("equal_epochs", "equal_compute", "retrained", "minus_uniform_shrink",
                                     "retrained_shrink_minus_uniform_shrink", *RESTARTED_KEYS[2:])},
                      "devices": sorted({str(runs[(name, seed, kind)].get("device", "cpu"))
                                         for seed in seeds for kind in KINDS if (name, seed, kind) in runs}),
                      "shrink": sorted({runs[(name, seed, "grown")].get("shrink") for seed in seeds}, key=str),
                      "restart_keep": _restart_keeps(runs, name, seeds),
                      "method": sorted({runs[(name, seed, "grown")]["method"] for seed in seeds}),
                      "kept": [p["kept"] for p in per_seed], "per_seed": per_seed})
    per_method = method_table(rows)
    restarted_only = restarted_table(runs, {t["setting"] for t in table})
    for t in restarted_only:
        print(f"{t['setting']} (restarted runs only, seeds {t['seeds']}): uniform {100 * t['uniform_test_median']:.1f} %, "
              f"restarted {100 * t['restarted_test_median']:.1f} %, compute {t['restarted_compute_share_median']:.2f}× "
              "uniform's; " + "; ".join(
                  f"{label} {100 * t[key + '_median']:+.1f} ({t[key + '_paired']['ahead']}/{t[key + '_paired']['behind']})"
                  for key, label in (("restarted_equal_compute", "− uniform, equal compute"),
                                     ("restarted_minus_uniform_shrink_compute", "− uniform+shrink, equal compute"),
                                     ("restarted_minus_uniform_recipe_compute", "− uniform+recipe, equal compute"),
                                     ("restarted_equal_epochs", "− uniform, equal epochs"))))
    print(f"{'setting':<12}{'uniform':>9}{'grown':>8}{'retrain':>9}  {'Δ epochs':>10}{'Δ compute':>11}"
          f"{'Δ retrain':>11}{'Δ u+shrink':>12}   usage grown/uniform   kept")
    for t in table:
        print(f"{t['setting']:<12}{100 * t['uniform_test_median']:>8.1f}%{100 * t['grown_test_median']:>7.1f}%"
              f"{100 * t['retrained_test_median']:>8.1f}%  {100 * t['equal_epochs_median']:>+9.1f} "
              f"{100 * t['equal_compute_median']:>+10.1f} {100 * t['retrained_median']:>+10.1f}"
              f"{100 * t['minus_uniform_shrink_median']:>+11.1f}   "
              f"{t['grown_usage_median']:.0%}/{t['uniform_usage_median']:.0%}   {','.join(t['kept'])}")
        print("            mean ± standard error (seeds ahead/behind): " + "; ".join(
            f"{label} {100 * t[key + '_paired']['mean']:+.2f} ± {100 * t[key + '_paired']['standard_error']:.2f} "
            f"({t[key + '_paired']['ahead']}/{t[key + '_paired']['behind']})"
            for key, label in (("equal_epochs", "Δ epochs"), ("equal_compute", "Δ compute"),
                               ("retrained", "Δ retrain"), ("minus_uniform_shrink", "Δ u+shrink"),
                               ("retrained_shrink_minus_uniform_shrink", "retrained+shrink − u+shrink"))
            if t[key + "_paired"]["seeds"]))
        if t["restarted_equal_compute_paired"]["seeds"]:
            print("            restarted (growth as search in one run): test " +
                  f"{100 * t['restarted_test_median']:.1f} %, compute {t['restarted_compute_share_median']:.2f}× "
                  "uniform's; " + "; ".join(
                      f"{label} {100 * t[key + '_median']:+.1f} (mean {100 * t[key + '_paired']['mean']:+.2f} ± "
                      f"{100 * t[key + '_paired']['standard_error']:.2f}, {t[key + '_paired']['ahead']}/"
                      f"{t[key + '_paired']['behind']})"
                      for key, label in (("restarted_equal_compute", "− uniform, equal compute"),
                                         ("restarted_minus_uniform_shrink_compute", "− uniform+shrink, equal compute"),
                                         ("restarted_equal_epochs", "− uniform, equal epochs"),
                                         ("restarted_minus_retrained_shrink", "− found arch. retrained 20 epochs"),
                                         ("restarted_minus_grown_validation", "validation − grown in place"))
                      if t[key + "_paired"]["seeds"]))
    for m in per_method:
        print(f"{m['method']:<13} on {m['setting']} (seeds {m['seeds']}): grown {100 * m['grown_test_median']:.1f} %, "
              f"Δ epochs {100 * m['equal_epochs_median']:+.1f}, Δ compute {100 * m['equal_compute_median']:+.1f}, "
              f"{m['growth_share_median']:.1%} of wall time choosing growth")
    out = Path(args.out)
    out.write_text(json.dumps({"benchmark": "grow_vs_uniform", "commit": commit(),
                               "runs_made_at": sorted({str(r.get("commit")) for r in rows}),
                               "torch": torch.__version__, "epochs": EPOCHS,
                               "config": config_for(0, args.method).to_dict(),
                               "settings": {n: asdict(s) for n, s in SETTINGS.items()}, "table": table,
                               "methods": per_method, "restarted_only": restarted_only}, indent=1) + "\n")
    if not table:  # a methods-only folder: no setting with the three comparisons to plot
        print(f"wrote {out} (no Pareto plot: no setting here has the uniform, grown and uniform-compute runs)")
        return
    plot = Path(args.plot) if args.plot else out.with_suffix(".html")
    write_pareto_svg(table, runs, plot)
    print(f"wrote {out} and {plot}")


def write_pareto_svg(table: list[dict], runs: dict, path: Path) -> None:
    """Per setting: test accuracy of every seed against the budget's binding metric, grown, retrained,
    uniform (equal epochs, equal compute) and restarted where it ran, with the budget line."""
    from edgegrow.report.svg_plot import Figure, Series, VerticalMarker, figure_html

    panels = []
    for t in table:
        metric = next(iter(t["budget"]))
        figure = Figure(f"{t['setting']}: {t['about']}", f"pareto-{t['setting']}", f"predicted {metric}")
        panel = figure.panel("test accuracy (%)", height_px=220)
        for kind, label, colour in (("grown", "grown (one run)", "#1f77b4"),
                                    ("retrained", "found architecture, retrained", "#2ca02c"),
                                    ("uniform", "largest fitting uniform, equal epochs", "#7f7f7f"),
                                    ("uniform-compute", "uniform, equal training compute", "#d62728"),
                                    ("restarted", "growth as search in one run (restart)", "#9467bd")):
            points = []
            for seed in t["seeds"]:
                if kind in ("grown", "retrained"):
                    run = runs[(t["setting"], seed, "grown")]
                    points.append((run["predicted"][metric], 100 * run["summary"][kind]["test_accuracy"]))
                elif kind == "restarted":
                    run = runs.get((t["setting"], seed, kind))
                    if run is not None:
                        points.append((run["predicted"][metric], 100 * run["summary"]["test_accuracy"]))
                else:
                    run = runs[(t["setting"], seed, kind)]
                    points.append((run["predicted"][metric], 100 * run["test_accuracy"]))
            if points:
                panel.add(Series(label, points, style="scatter", color=colour))
        figure.markers.append(VerticalMarker(t["budget"][metric], "budget", kind="budget", color="#d62728",
                                             legend="budget"))
        panels.append(figure_html(figure))
    path.write_text("<!DOCTYPE html>\n<html><body>\n" + "\n".join(panels) + "\n</body></html>\n"
                    if path.suffix == ".html" else "\n".join(panels) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=("run", "methods", "report"))
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "edgegrow" / "bench-grow-vs-uniform"))
    parser.add_argument("--settings", nargs="+", default=list(ISSUE_16_SETTINGS), choices=list(SETTINGS),
                        help="default: the five of the growth issue (image-user-m4f only when named)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--method", default=GrowConfig.method,
                        help="the growth method of the grown runs (default: each family's, GrowConfig.for_family)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                        help="methods phase: the methods to compare (default all)")
    parser.add_argument("--methods-setting", default="kws-host-b", choices=list(SETTINGS))
    parser.add_argument("--kinds", nargs="+", default=list(DEFAULT_KINDS), choices=KINDS,
                        help="the runs to make per setting and seed (default all; uniform-shrink is a control)")
    parser.add_argument("--pairs", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes (1 thread each)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs of every run (default {EPOCHS})")
    parser.add_argument("--restart-keep", type=float, default=GrowConfig.restart_keep,
                        help=f"GrowConfig.restart_keep of the restarted runs (default {GrowConfig.restart_keep:g}; "
                             "give each value its own --work)")
    parser.add_argument("--shrink", type=float, default=GrowConfig.shrink,
                        help="GrowConfig.shrink of the grown runs and the shrink control (default: each family's, "
                             "0.5 for DS-CNN, 1 for MobileNetV2; results go in --work, so give each shrink its own)")
    parser.add_argument("--kws-features", help="the large KWS set's MFCC features file (growth_data.py "
                        "kws-features writes it): runs on a machine without espeak-ng or the clips, e.g. a GPU one")
    parser.add_argument("--out", default="bench/results/grow_vs_uniform.json")
    parser.add_argument("--plot", help="the Pareto plot (default: --out with .html for .json)")
    args = parser.parse_args(argv)
    set_run_settings(args.epochs, args.shrink, args.restart_keep)
    global KWS_FEATURES
    KWS_FEATURES = args.kws_features
    {"run": run_all, "methods": methods, "report": report}[args.phase](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
