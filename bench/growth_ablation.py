"""Does growth inside one run train as well as training from scratch? An ablation at a fixed final
architecture: DS-CNN-S ×0.25 widened to ×0.5 (16 → 32 channels in every layer) in equal steps by the
real grow loop, against ×0.5 trained from scratch with the same schedule, on the large synthetic KWS
set (bench/growth_data.py: ≈ 9,000 training clips, 1,762 test clips of held-out speakers).

Every variant is ``edgegrow.grow.grow`` with a method registered here, ``uniform-widen``, that at event
k of n proposes exactly the channels that bring every group to k/n of the way from ×0.25 to ×0.5 (as
splits, each with a random ±direction), under a budget far above ×0.5, so the final network is
×0.5 whatever the variant. What varies is how the new units start:

- ``twins``: split twins (ε = 0.1 relative), zero optimizer state for the new entries, no shrink — the
  growth probe quoted in issue 16, inside the one schedule;
- ``fresh``: new neurons instead (default fan-in, zero fan-out), zero state;
- ``fresh+mean``: … and Adam's second moment of new entries at the tensor's mean (``newborn_state``);
- ``fresh+mean+shrink``: … and old convolutions shrunk ×0.5 at each event (``shrink``) — the default;
- ``…, 8 events`` and ``…, by 25 %``: more, smaller events; growth finished earlier.

Baselines from scratch: ``scratch`` (equal epochs), ``scratch, equal compute`` (as many optimizer steps
as the default variant's training compute buys at ×0.5's MACs) and ``scratch+shrink`` (the same shrink
events applied to ×0.5 from scratch: whether shrinking is a growth fix or a better recipe for any
network).

    python bench/growth_ablation.py run [--seeds 0 1 2] [--only fresh+mean+shrink scratch] [--jobs 2]
    python bench/growth_ablation.py report      # table, JSON

One result file per run under --work, so the benchmark resumes where it stopped and can run in parts.
Settings were chosen on the validation split; the test split is reported.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from growth_data import kws_folder  # noqa: E402
from provenance import commit  # noqa: E402

from cost_models import count_macs  # noqa: E402
from edgegrow.data.speech_commands import load_speech_commands  # noqa: E402
from edgegrow.grow import GrowConfig, grow, growth_events, register_method  # noqa: E402
from edgegrow.grow.growth_step import shrink_convolutions  # noqa: E402
from edgegrow.growth import find_channel_groups, growable_groups  # noqa: E402
from edgegrow.growth.budget import Budget  # noqa: E402
from edgegrow.growth.candidates import Candidate  # noqa: E402
from edgegrow.growth.staged_edit import group_width  # noqa: E402
from edgegrow.models import ds_cnn  # noqa: E402
from edgegrow.training import Training, evaluate  # noqa: E402


class UniformWiden:
    """At event k of n, every growable group to round(w₀ + (w₁ − w₀)·k/n) channels, as random splits."""

    name = "uniform-widen"

    def __init__(self):
        self.seed_widths: dict[str, int] = {}  # set for the task at hand before a run (run_one)
        self.final_widths: dict[str, int] = {}

    def propose(self, model, context):
        candidates = []
        for group in growable_groups(find_channel_groups(model, context.example_input)):
            w0, w1 = self.seed_widths[group.name], self.final_widths[group.name]
            goal = round(w0 + (w1 - w0) * context.event / context.events)
            width = group_width(model, group)
            neurons = torch.randperm(width, generator=context.generator)[:max(0, goal - width)].tolist()
            for neuron in neurons:
                directions = {}
                for slot in group.producers:
                    row = model.get_submodule(slot.layer).weight.detach()[neuron]
                    delta = torch.randn(row.shape, generator=context.generator)
                    delta = delta / delta.norm() * row.norm()
                    directions[slot.layer] = torch.stack([delta, -delta])
                candidates.append(Candidate("split", group.name, 1.0, neuron=neuron, directions=directions,
                                            epsilon=context.config.epsilon))
        return candidates


WIDEN = register_method(UniformWiden())

EPOCHS = 20
SEED_WIDTH, FINAL_WIDTH = 0.25, 0.5
BASE = GrowConfig(method="uniform-widen", epochs=EPOCHS, growth_start=0.05, growth_end=0.4, growth_every=2.0,
                  new_units="fresh", newborn_state="mean", shrink=0.5, epsilon=0.1)
VARIANTS = {
    "twins": dict(new_units="method", newborn_state="zero", shrink=1.0),
    "fresh": dict(newborn_state="zero", shrink=1.0),
    "fresh+mean": dict(shrink=1.0),
    "fresh+mean+shrink": {},
    "fresh+mean+shrink, 8 events": dict(growth_every=1.0),
    "fresh+mean+shrink, by 25 %": dict(growth_start=0.025, growth_end=0.25, growth_every=1.25),
}
SCRATCH = ("scratch", "scratch, equal compute", "scratch+shrink")
DEFAULT = "fresh+mean+shrink"


def widths(model, example) -> dict[str, int]:
    return {g.name: group_width(model, g) for g in growable_groups(find_channel_groups(model, example))}


def build(task, multiplier):
    return ds_cnn("S", width_multiplier=multiplier, num_classes=task.num_classes, input_shape=task.input_shape)


def run_one(name: str, seed: int, work: Path, task) -> dict:
    example = torch.zeros(1, *task.input_shape)
    started = time.perf_counter()
    if name in SCRATCH:
        torch.manual_seed(seed)
        model = build(task, FINAL_WIDTH)
        config = replace(BASE, seed=seed).train_config()
        steps_per_epoch = math.ceil(len(task.train) / config.batch_size)
        macs = count_macs(model.eval(), example).total
        if name == "scratch, equal compute":
            reference = json.loads((work / f"{DEFAULT}-{seed}.json").read_text())
            steps = round(reference["mac_epochs"] / macs * steps_per_epoch)
            config = replace(config, steps=steps, epochs=math.ceil(steps / steps_per_epoch))
        training = Training(model, task, config)
        if name == "scratch+shrink":  # the default variant's events, shrinking only
            for event in growth_events(replace(BASE, seed=seed), steps_per_epoch):
                training.run(event.step)
                shrink_convolutions(model, BASE.shrink)
        training.run()
        mac_epochs = macs * training.samples_seen / len(task.train)
        epochs = training.samples_seen / len(task.train)
    else:
        seed_model, final = build(task, SEED_WIDTH), build(task, FINAL_WIDTH)
        WIDEN.seed_widths, WIDEN.final_widths = widths(seed_model, example), widths(final, example)
        budget = Budget({"macs": 4 * count_macs(final.eval(), example).total})
        torch.manual_seed(seed)
        model = build(task, SEED_WIDTH)
        config = replace(BASE, seed=seed, **VARIANTS[name])
        result = grow(model, task, "host", budget, config, None, family="ds-cnn",
                      seed_options={"num_classes": task.num_classes, "input_shape": list(task.input_shape),
                                    "width_multiplier": SEED_WIDTH}, log=lambda line: None)
        model = result.model
        assert widths(model, example) == widths(final, example), "the ablation must end at ×0.5"
        mac_epochs, epochs = result.summary.mac_epochs, float(EPOCHS)
    row = {"variant": name, "seed": seed, "epochs": epochs, "mac_epochs": mac_epochs,
           "validation_accuracy": evaluate(model, task.validation, task.class_names).accuracy,
           "test_accuracy": evaluate(model, task.test, task.class_names).accuracy,
           "seconds": time.perf_counter() - started, "torch_threads": torch.get_num_threads(), "commit": commit()}
    (work / f"{name}-{seed}.json").write_text(json.dumps(row, indent=1))
    print(f"{name} seed {seed}: validation {row['validation_accuracy']:.1%}, test {row['test_accuracy']:.1%}, "
          f"{mac_epochs / 1e6:.1f} M MAC-epochs, {row['seconds']:.0f} s", flush=True)
    return row


def run_all(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    names = args.only or [*VARIANTS, *SCRATCH]
    todo = [(name, seed) for seed in args.seeds for name in names if not (work / f"{name}-{seed}.json").exists()]
    # equal compute needs the default variant's run of the same seed first
    todo.sort(key=lambda item: item[0] == "scratch, equal compute")
    if args.jobs > 1:
        import shlex

        processes = []
        for job in range(args.jobs):
            mine = todo[job::args.jobs]
            if mine:
                argv = [sys.executable, __file__, "run", "--work", str(work), "--jobs", "1", "--threads", "1",
                        "--epochs", str(args.epochs), *(["--data", args.data] if args.data else []),
                        "--pairs", *[f"{name}@{seed}" for name, seed in mine]]
                print("+", " ".join(shlex.quote(a) for a in argv), flush=True)
                processes.append(subprocess.Popen(argv))
        for process in processes:
            process.wait()
        return
    torch.set_num_threads(args.threads)
    task = load_speech_commands(args.data or kws_folder(), progress=False)
    pairs = [tuple(pair.rsplit("@", 1)) for pair in args.pairs] if args.pairs else todo
    for name, seed in pairs:
        seed = int(seed)
        if name == "scratch, equal compute" and not (work / f"{DEFAULT}-{seed}.json").exists():
            run_one(DEFAULT, seed, work, task)
        if not (work / f"{name}-{seed}.json").exists():
            run_one(name, seed, work, task)


def report(args) -> None:
    work = Path(args.work)
    rows = [json.loads(path.read_text()) for path in sorted(work.glob("*.json"))]
    by_variant: dict[str, list[dict]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row)
    scratch = {row["seed"]: row for row in by_variant.get("scratch", [])}
    table = []
    for name in [*VARIANTS, *SCRATCH]:
        members = sorted(by_variant.get(name, []), key=lambda r: r["seed"])
        if not members:
            continue
        test = [r["test_accuracy"] for r in members]
        validation = [r["validation_accuracy"] for r in members]
        differences = [r["test_accuracy"] - scratch[r["seed"]]["test_accuracy"] for r in members
                       if r["seed"] in scratch]
        table.append({"variant": name, "seeds": [r["seed"] for r in members],
                      "test_median": statistics.median(test), "test_min": min(test), "test_max": max(test),
                      "validation_median": statistics.median(validation),
                      "minus_scratch_test_median": statistics.median(differences) if differences else None,
                      "epochs": statistics.median(r["epochs"] for r in members),
                      "mac_epochs_median": statistics.median(r["mac_epochs"] for r in members),
                      "seconds_median": statistics.median(r["seconds"] for r in members)})
    print(f"{'variant':<32}{'test median [min-max]':<26}{'validation':>11}{'− scratch':>11}{'epochs':>8}"
          f"{'MAC-epochs':>12}")
    for t in table:
        minus = "" if t["minus_scratch_test_median"] is None else f"{100 * t['minus_scratch_test_median']:+.1f}"
        print(f"{t['variant']:<32}{100 * t['test_median']:.1f} [{100 * t['test_min']:.1f}-{100 * t['test_max']:.1f}]"
              f"{'':<10}{100 * t['validation_median']:>10.1f}{minus:>11}{t['epochs']:>8.1f}"
              f"{t['mac_epochs_median'] / 1e6:>11.1f}M")
    out = Path(args.out)
    out.write_text(json.dumps({"benchmark": "growth_ablation", "commit": commit(),
                               "runs_made_at": sorted({str(r.get("commit")) for r in rows}),
                               "torch": torch.__version__, "epochs": EPOCHS,
                               "seed_width": SEED_WIDTH, "final_width": FINAL_WIDTH, "base": BASE.to_dict(),
                               "variants": VARIANTS, "table": table, "runs": rows}, indent=1) + "\n")
    print(f"wrote {out}")


def set_epochs(epochs: int) -> None:
    global BASE, EPOCHS
    EPOCHS, BASE = epochs, replace(BASE, epochs=epochs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=("run", "report"))
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "edgegrow" / "bench-growth-ablation"))
    parser.add_argument("--data", help="a Speech Commands folder (default: the large synthetic set)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", help="variants to run (default all)")
    parser.add_argument("--pairs", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes (1 thread each)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs of every run (default {EPOCHS})")
    parser.add_argument("--out", default="bench/results/growth_ablation.json")
    args = parser.parse_args(argv)
    if args.epochs != EPOCHS:  # a quick look; the recorded results are at the default
        set_epochs(args.epochs)
    {"run": run_all, "report": report}[args.phase](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
