"""Is there an architecture to find? Random DS-CNNs that fit a growth-benchmark budget, trained with the
recipe the grow run and its fair baseline share, against the largest fitting uniform network.

Growth can beat the uniform network in two ways: by training better (the recipe: shrink steps, the
blended restart) or by finding a better architecture. bench/grow_vs_uniform.py shows the grown DS-CNNs
level with the uniform network given the same recipe, so whatever they gain is the recipe's. This asks
the question before it: at a budget, how much better than the uniform network is the best architecture
a search could reach? If no architecture in a wide random sample is ahead by a point, growth cannot be
either, whatever it selects.

Per ``--setting`` (one of grow_vs_uniform.py's DS-CNN settings, the same data, profile and budget):

1. ``screen``: ``--architectures`` DS-CNNs drawn at random (fixed sampler seed ``--draw-seed``): the
   reference network's stem and its kernel, 3–6 depthwise-separable blocks (strides 1, as DS-CNN-S),
   every layer's width a multiple of ``--step`` channels from half to twice the uniform network's
   width, kept only if the predicted cost fits every limit and uses at least the uniform
   network's share of the binding limit less ``--slack`` (so none wins by being much cheaper and
   none loses by being much cheaper either), plus the uniform network itself and any ``--widths``
   given (e.g. the widths a grow run ended with). Each trained for ``--epochs`` with the grow run's
   recipe, as grow_vs_uniform.py's ``uniform-recipe`` control (DS-CNN's defaults: the shrink steps and
   the blended restart at the search's end), seeds ``--seeds``.
2. ``confirm``: the ``--top`` architectures by median validation accuracy in the screen, and the best
   of the ``--widths`` given if it is not among them, trained again with other seeds
   (``--confirm-seeds``) next to the uniform network with those seeds, so the reported test gain is
   not the screen's selection bias.

    python bench/architecture_headroom.py screen --work DIR --setting kws-host-a --jobs 2
    python bench/architecture_headroom.py confirm --work DIR --setting kws-host-a --jobs 2
    python bench/architecture_headroom.py report --work DIR --out bench/results/architecture_headroom.json

One result file per run under --work, so it resumes where it stopped. Architectures are ranked on the
validation split; the test split is reported.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grow_vs_uniform as gvu  # noqa: E402  (the settings, their data and profiles)
from provenance import commit  # noqa: E402

from cost_models import Target, estimate  # noqa: E402
from edgegrow.baseline import RestartAt, UniformBaseline, largest_fitting_uniform, train_baseline  # noqa: E402
from edgegrow.growth.budget import Budget  # noqa: E402
from edgegrow.models.ds_cnn import DSCNN  # noqa: E402
from edgegrow.models.layers import load_shapes  # noqa: E402
from edgegrow.tasks import Task  # noqa: E402
from edgegrow.workflow import shrink_schedule  # noqa: E402

BLOCKS = (3, 4, 5, 6)  # depths drawn (DS-CNN-S has 4 blocks)


def ds_cnn_of(widths: tuple[int, ...], task: Task) -> DSCNN:
    """DS-CNN-S's stem and strides with ``widths``: the stem's, then each block's pointwise output."""
    spec = load_shapes("ds_cnn")["sizes"]["S"]
    return DSCNN(widths[0], list(widths[1:]), [(1, 1)] * (len(widths) - 1), num_classes=task.data.num_classes,
                 input_shape=tuple(task.data.input_shape), stem_kernel=tuple(spec["stem"]["kernel"]),
                 stem_stride=tuple(spec["stem"]["stride"]), dropout_after_stem=spec["dropout_after_stem"],
                 dropout_before_classifier=spec["dropout_before_classifier"])


def name_of(widths: tuple[int, ...]) -> str:
    return "-".join(str(w) for w in widths)


def binding_usage(model, task: Task, setting, target: Target) -> float:
    """The model's predicted share of its binding limit on ``target`` (> 1: over budget)."""
    example = torch.zeros(1, *task.data.input_shape, device=next(model.parameters()).device)
    report = estimate(model.eval(), example, target)
    return max(Budget(setting.budget).usage(report).values())


def uniform_widths(task: Task, setting, target: Target) -> tuple[tuple[int, ...], float]:
    """The largest fitting uniform network's widths (stem, then each block) and its share of the binding limit."""
    fair = largest_fitting_uniform(task, target, Budget(setting.budget))
    widths = tuple(m.out_channels for m in fair.model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 1)
    return widths, max(fair.usage.values())


def draw(task: Task, setting, target: Target, uniform: tuple[int, ...], usage: float, count: int, step: int,
         slack: float, draw_seed: int) -> list[tuple[int, ...]]:
    """``count`` distinct random architectures that fit the budget and use at least the uniform network's
    share of it (``usage``) less ``slack`` (see the module docstring)."""
    choices = [w for w in range(step, 2 * max(uniform) + 1, step) if w >= min(uniform) / 2]
    rng = random.Random(draw_seed)
    drawn: list[tuple[int, ...]] = []
    tries = 0
    while len(drawn) < count:
        tries += 1
        if tries > 200 * count:
            raise SystemExit(f"drew {len(drawn)} of {count} architectures in {tries} tries; raise --slack")
        widths = (rng.choice(choices), *(rng.choice(choices) for _ in range(rng.choice(BLOCKS))))
        if widths == uniform or widths in drawn:
            continue
        with torch.device("meta"):
            model = ds_cnn_of(widths, task)
        share = binding_usage(model, task, setting, target)
        if usage - slack <= share <= 1.0:
            drawn.append(widths)
    return drawn


def result_path(work: Path, setting: str, widths: tuple[int, ...], seed: int) -> Path:
    return work / f"{setting}-{name_of(widths)}-{seed}.json"


def train_one(task: Task, setting, target: Target, widths: tuple[int, ...], seed: int, role: str,
              work: Path) -> dict:
    path = result_path(work, setting.name, widths, seed)
    if path.exists():
        return json.loads(path.read_text())
    config = gvu.config_for(seed, "tiny").for_family(task.family)  # the grow run's recipe: DS-CNN's defaults
    examples = len(task.data.train)
    restart = RestartAt(config.search_steps(examples), config.restart_keep, config.seed) if config.restart else None
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = ds_cnn_of(widths, task)
    usage = binding_usage(model, task, setting, target)
    trained = train_baseline(UniformBaseline(1.0, model), task, config.train_config(),
                             shrink=shrink_schedule(config, examples), restart=restart)
    row = {"setting": setting.name, "widths": list(widths), "seed": seed, "role": role, "usage": usage,
           "epochs": trained.epochs, "restarted": trained.restarted, "mac_epochs": trained.mac_epochs,
           "validation_accuracy": trained.validation_accuracy, "test_accuracy": trained.test_accuracy,
           "wall_seconds": time.perf_counter() - started, "torch_threads": torch.get_num_threads(),
           "commit": commit(), "target_profile_sha256": gvu.profile_sha256(target)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, indent=1))
    tmp.replace(path)
    print(f"{setting.name} {name_of(widths)} seed {seed} ({role}): validation {trained.validation_accuracy:.1%}, "
          f"test {trained.test_accuracy:.1%}, usage {usage:.0%}, {row['wall_seconds']:.0f} s", flush=True)
    return row


def parse_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.replace("/", ",").replace("-", ",").split(","))
    except ValueError:
        raise SystemExit(f"--widths takes channel counts like 48,48,32,32,32, got {text!r}") from None
    if len(widths) < 2 or min(widths) < 1:
        raise SystemExit(f"--widths needs a stem and at least one block, every width ≥ 1, got {text!r}")
    return widths


def plan(args, task: Task, setting, target: Target) -> list[tuple[tuple[int, ...], int, str]]:
    uniform, usage = uniform_widths(task, setting, target)
    if args.phase == "screen":
        extra = [parse_widths(w) for w in args.widths]
        drawn = draw(task, setting, target, uniform, usage, args.architectures, args.step, args.slack, args.draw_seed)
        architectures = [(uniform, "uniform"), *((w, "given") for w in extra), *((w, "drawn") for w in drawn)]
        return [(w, seed, role) for seed in args.seeds for w, role in architectures]
    screened = rows_of(Path(args.work), setting.name)
    ranking = rank(screened, uniform, args.seeds)
    if not ranking:
        raise SystemExit(f"no screened architectures for {setting.name} in {args.work}: run screen first")
    top = [tuple(entry["widths"]) for entry in ranking if tuple(entry["widths"]) != uniform][:args.top]
    given = {tuple(row["widths"]) for row in screened if row["role"] == "given"}
    best_given = next((tuple(e["widths"]) for e in ranking if tuple(e["widths"]) in given), None)
    if best_given is not None and best_given not in top:  # the grow run's architecture is confirmed either way
        top.append(best_given)
    return [(w, seed, role) for seed in args.confirm_seeds for w, role in [(uniform, "uniform"), *((t, "top") for t in top)]]


def rows_of(work: Path, setting: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(work.glob(f"{setting}-*.json"))]


def rank(rows: list[dict], uniform: tuple[int, ...], seeds: list[int] | None = None) -> list[dict]:
    """Architectures by median validation accuracy over ``seeds`` (default: those every architecture has)."""
    by_arch: dict[tuple, dict[int, dict]] = {}
    for row in rows:
        by_arch.setdefault(tuple(row["widths"]), {})[row["seed"]] = row
    if seeds is None:
        seeds = sorted(by_arch.get(uniform, {}))
    table = []
    for widths, runs in by_arch.items():
        if not all(seed in runs for seed in seeds):
            continue
        uni = by_arch.get(uniform, {})
        table.append({
            "widths": list(widths), "usage": runs[seeds[0]]["usage"], "seeds": seeds,
            "validation_median": statistics.median(runs[s]["validation_accuracy"] for s in seeds),
            "test_median": statistics.median(runs[s]["test_accuracy"] for s in seeds),
            "validation_minus_uniform": [runs[s]["validation_accuracy"] - uni[s]["validation_accuracy"]
                                         for s in seeds if s in uni],
            "test_minus_uniform": [runs[s]["test_accuracy"] - uni[s]["test_accuracy"] for s in seeds if s in uni]})
    return sorted(table, key=lambda e: -e["validation_median"])


def run(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    setting = gvu.SETTINGS[args.setting]
    if setting.task != "kws":
        raise SystemExit(f"{setting.name} is not a DS-CNN setting; choose one of "
                         f"{[s for s, v in gvu.SETTINGS.items() if v.task == 'kws']}")
    task, target = gvu.load(setting), gvu.target_of(setting)
    gvu.set_run_settings(args.epochs, gvu.SHRINK, gvu.RESTART_KEEP)
    if args.only:  # a job of the parallel run: its share of the plan, given on the command line
        todo = [(parse_widths(w), int(seed), role) for w, seed, role in (item.split("@") for item in args.only)]
    else:
        todo = [item for item in plan(args, task, setting, target)
                if not result_path(work, setting.name, *item[:2]).exists()]
    if args.jobs > 1 and not args.only:
        queues = [todo[job::args.jobs] for job in range(args.jobs)]
        processes = [subprocess.Popen([sys.executable, __file__, args.phase, "--work", str(work), "--setting",
                                       setting.name, "--epochs", str(args.epochs), "--jobs", "1", "--only",
                                       *[f"{name_of(w)}@{seed}@{role}" for w, seed, role in queue]])
                     for queue in queues if queue]
        for process in processes:
            process.wait()
        return
    torch.set_num_threads(1)
    for widths, seed, role in todo:
        train_one(task, setting, target, widths, seed, role, work)


def report(args) -> None:
    work = Path(args.work)
    out = {"command": f"python bench/architecture_headroom.py report --work DIR --settings {' '.join(args.settings)}",
           "settings": {}}
    for setting_name in args.settings:
        setting = gvu.SETTINGS[setting_name]
        rows = rows_of(work, setting_name)
        if not rows:
            continue
        uniform = next(tuple(r["widths"]) for r in rows if r["role"] == "uniform")
        screen_seeds = sorted({r["seed"] for r in rows if r["role"] in ("drawn", "given")})
        confirm_seeds = sorted({r["seed"] for r in rows if r["role"] == "top"})
        screen = rank(rows, uniform, screen_seeds)
        confirm = rank([r for r in rows if r["seed"] in confirm_seeds], uniform, confirm_seeds) if confirm_seeds else []
        gains = [statistics.median(e["validation_minus_uniform"]) for e in screen if tuple(e["widths"]) != uniform]
        out["settings"][setting_name] = {
            "budget": setting.budget, "uniform_widths": list(uniform), "screen_seeds": screen_seeds,
            "confirm_seeds": confirm_seeds, "architectures_screened": len(screen) - 1,
            "screen_validation_gain_quantiles": statistics.quantiles(gains, n=10) if len(gains) > 2 else gains,
            "screen": screen, "confirm": confirm,
            "wall_seconds": sum(r["wall_seconds"] for r in rows), "commits": sorted({r["commit"] for r in rows})}
        print(f"\n{setting_name}: uniform {name_of(uniform)}; {len(screen) - 1} architectures screened on seeds "
              f"{screen_seeds}")
        print("  screen, top 8 by median validation (validation − uniform per seed; test − uniform per seed):")
        for entry in screen[:8]:
            print(f"    {name_of(tuple(entry['widths'])):>24} usage {entry['usage']:.0%}  val "
                  f"{entry['validation_median']:.1%} {['%+.1f' % (100 * d) for d in entry['validation_minus_uniform']]}"
                  f"  test {entry['test_median']:.1%} {['%+.1f' % (100 * d) for d in entry['test_minus_uniform']]}")
        for entry in (e for e in confirm if tuple(e["widths"]) != uniform):
            print(f"  confirm {name_of(tuple(entry['widths'])):>24}: test − uniform "
                  f"{['%+.1f' % (100 * d) for d in entry['test_minus_uniform']]} "
                  f"(median {100 * statistics.median(entry['test_minus_uniform']):+.1f}), validation − uniform "
                  f"{['%+.1f' % (100 * d) for d in entry['validation_minus_uniform']]}")
    Path(args.out).write_text(json.dumps(out, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=("screen", "confirm", "report"))
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "edgegrow" / "bench-architecture-headroom"))
    parser.add_argument("--setting", default="kws-host-a", choices=list(gvu.SETTINGS))
    parser.add_argument("--settings", nargs="+", default=["kws-host-a", "kws-host-b", "kws-host-c", "kws-m4f"],
                        help="report: the settings to tabulate")
    parser.add_argument("--architectures", type=int, default=24, help="random architectures to screen")
    parser.add_argument("--widths", nargs="*", default=[], help="architectures to screen beside the drawn ones")
    parser.add_argument("--step", type=int, default=8, help="channel step of the drawn widths")
    parser.add_argument("--slack", type=float, default=0.05,
                        help="drawn architectures use at least the uniform network's share of the budget less this")
    parser.add_argument("--draw-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--confirm-seeds", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--epochs", type=int, default=gvu.EPOCHS)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--only", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="bench/results/architecture_headroom.json")
    args = parser.parse_args(argv)
    report(args) if args.phase == "report" else run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
