"""Learning new keywords on a shipped network (issue 21 item 1): ``edgegrow extend`` against fine-tuning
and against retraining everything jointly.

Data: the synthetic set with many clips of the 'unknown' words (bench/growth_data.py ``kws-extend``:
1,000 clips per keyword, 400 per other word, 240 speakers, test speakers held out). The old network
knows the 12 MLPerf Tiny classes; five words of the 'unknown' vocabulary (``NEW``) become classes.

Per seed:

1. ``old``: DS-CNN grown with edgegrow's DS-CNN defaults (20 epochs, growth as search, TINY) on the 12
   classes to ``OLD_BUDGET`` on the pinned CPU profile of bench/grow_vs_uniform.py;
2. ``extended``: ``edgegrow.extend.extend`` of it to the 17 classes within ``NEW_BUDGET`` on the same
   profile (the widest extension that fits), with its defaults (``ExtendConfig``: 30 epochs at 1e-2, every
   old training clip replayed); ``extended-replay-200`` and ``extended-replay-50``: 200 or 50 clips of each
   old keyword, the generic classes (``_unknown_``, ``_silence_``) whole, as ``--replay N`` does;
   ``extended-replay-200-keywords-only``: 200 clips of every old class, the generic ones too (what
   ``--replay`` did before, to show what replaying the generic classes whole buys); ``extended-no-replay``:
   no old clip at all;
3. ``fine-tuned``: the old network with its head extended by five rows, every weight trained on the
   clips of ``extended-replay-200`` for the same epochs: what fine-tuning does;
4. ``joint``: the extended network's architecture from fresh weights trained on all 17 classes' full
   training split for 20 epochs with the grow runs' training settings: retraining everything, at the
   extended network's cost.

Accuracy is on the test split of the 17-class task: "old" over the test clips of the 12 old classes
(every answer among all 17 classes; the old network's among its 12), "new" over the new words' clips.
Targets (issue 21): extended old ≥ old − 0.5 points; extended new ≥ joint new − 3 points.

    python bench/extend_keywords.py run [--seeds 0 1 2] [--jobs 2] [--work DIR]
    python bench/extend_keywords.py report [--out bench/results/extend_keywords.json]

One result file per (seed, kind) under --work, so the benchmark resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from growth_data import KWS_EXTEND, kws_extend_folder  # noqa: E402
from provenance import commit  # noqa: E402

from cost_models import estimate, load_target  # noqa: E402
from edgegrow.checkpoint import load_checkpoint  # noqa: E402
from edgegrow.extend import ExtendConfig, _output_producer, extend, extend_head, replay_split  # noqa: E402
from edgegrow.grow import GrowConfig, grow  # noqa: E402
from edgegrow.grow.growth_step import predicted_costs  # noqa: E402
from edgegrow.grow.loop import reinitialise  # noqa: E402
from edgegrow.growth.budget import Budget  # noqa: E402
from edgegrow.data.task_data import TaskData  # noqa: E402
from edgegrow.models import example_input  # noqa: E402
from edgegrow.tasks import load_task  # noqa: E402
from edgegrow.training import train  # noqa: E402

BENCH = Path(__file__).resolve().parent
PROFILE = str(BENCH / "targets" / "x86-vm-onnxruntime.json")  # grow_vs_uniform.py's pinned CPU profile
OLD_BUDGET = {"latency_ms": 0.046}  # grow_vs_uniform.py's kws-host-b
NEW_BUDGET = {"latency_ms": 0.069}  # 1.5× the old budget
NEW = ("bed", "bird", "cat", "dog", "eight")  # the first five words of the 'unknown' vocabulary
EPOCHS = 20
KINDS = ("old", "extended", "extended-replay-200", "extended-replay-50", "extended-replay-200-keywords-only",
         "extended-no-replay", "fine-tuned", "joint")
SMALL_REPLAY = {"replay_per_class": 200}  # fine-tuning's clips too
OPTIONS = {"extended": {}, "extended-replay-200": SMALL_REPLAY, "extended-replay-50": {"replay_per_class": 50},
           "extended-replay-200-keywords-only": {"replay_per_class": 200, "replay_whole": ()},
           "extended-no-replay": {"replay_per_class": 0, "replay_whole": ()}}  # ExtendConfig options per kind


def result_path(work: Path, seed: int, kind: str) -> Path:
    return work / f"seed{seed}-{kind}.json"


def _accuracies(model: torch.nn.Module, data: TaskData, old_classes: int) -> dict:
    inputs, labels = data.test.take(torch.arange(len(data.test))), data.test.labels
    model.eval()
    with torch.no_grad():
        answers = torch.cat([model(inputs[i:i + 512]) for i in range(0, len(inputs), 512)]).argmax(1)
    old, new = labels < old_classes, labels >= old_classes
    return {"old": float((answers[old] == labels[old]).float().mean()),
            "new": float((answers[new] == labels[new]).float().mean()) if new.any() else None,
            "all": float((answers == labels).float().mean()), "old_examples": int(old.sum()),
            "new_examples": int(new.sum())}


def _costs(model: torch.nn.Module) -> dict:
    return predicted_costs(estimate(model.eval(), example_input(model), load_target(PROFILE)))


def _task17(work: Path, seed: int):
    """The 17-class task, standardised with the old network's statistics (as extend loads it)."""
    _, record = load_checkpoint(work / f"seed{seed}-old-run" / "checkpoint.pt")
    normalization = record.meta["preprocessing"]["normalization"]
    return load_task("kws", kws_extend_folder(), progress=False, new_classes=NEW,
                     normalization={"mean": normalization["mean"], "std": normalization["std"]})


def run_one(seed: int, kind: str, work: Path) -> dict:
    started = time.perf_counter()
    old_run = work / f"seed{seed}-old-run"
    torch.manual_seed(seed)
    if kind == "old":
        task = load_task("kws", kws_extend_folder(), progress=False)
        config = GrowConfig(epochs=EPOCHS, seed=seed).for_family("ds-cnn", len(task.data.train))
        shutil.rmtree(old_run, ignore_errors=True)
        result = grow(task.seed(), task.data, load_target(PROFILE), Budget(OLD_BUDGET), config, old_run,
                      family=task.family, seed_options=task.seed_options, log=lambda line: None,
                      task_source=task.source)
        model = result.model
        row = {"old_12_class_test_accuracy": result.summary.test_accuracy, "widths": result.summary.widths,
               "config": asdict(config)}
        row.update(accuracy=_accuracies(model, _task17(work, seed).data, 12))
    elif kind.startswith("extended"):
        out = work / f"seed{seed}-{kind}-run"
        shutil.rmtree(out, ignore_errors=True)
        config = ExtendConfig(seed=seed, **OPTIONS[kind])
        result = extend(old_run, NEW, out, budget=Budget(NEW_BUDGET), target=PROFILE, config=config, progress=False,
                        log=lambda line: None)
        model = result.model
        row = {"accuracy": _accuracies(model, _task17(work, seed).data, 12), "new_neurons": result.new_neurons,
               "width_increase": result.width_increase, "old_output_difference": result.old_output_difference,
               "old_top1_agreement": result.old_top1_agreement, "config": asdict(config)}
    elif kind == "fine-tuned":
        model, _ = load_checkpoint(old_run / "checkpoint.pt")
        generator = torch.Generator().manual_seed(seed)
        extend_head(model, _output_producer(model, example_input(model)), len(NEW), generator)
        task = _task17(work, seed).data
        config = ExtendConfig(seed=seed, **SMALL_REPLAY)
        data = TaskData(task.name, task.class_names, replay_split(task.train, task.class_names[:12], config),
                        task.validation, task.test, task.preprocessing)
        train(model, data, config.train_config(), progress=False)
        row = {"accuracy": _accuracies(model, task, 12), "config": asdict(config)}
    else:  # joint: the extended architecture from fresh weights on every class's full training split
        model, _ = load_checkpoint(work / f"seed{seed}-extended-run" / "checkpoint.pt")
        reinitialise(model, seed)
        task = _task17(work, seed).data
        config = GrowConfig(epochs=EPOCHS, seed=seed).for_family("ds-cnn", len(task.train)).train_config()
        train(model, task, config, progress=False)
        row = {"accuracy": _accuracies(model, task, 12), "config": asdict(config)}
    row.update(kind=kind, seed=seed, predicted=_costs(model), parameters=sum(p.numel() for p in model.parameters()),
               wall_seconds=time.perf_counter() - started, commit=commit(), torch_threads=torch.get_num_threads(),
               new_classes=list(NEW), data=asdict(KWS_EXTEND))
    result_path(work, seed, kind).write_text(json.dumps(row, indent=1))
    accuracy = row["accuracy"]
    print(f"seed {seed} {kind}: old {accuracy['old']:.1%}, new {accuracy['new'] or 0:.1%}, "
          f"{row['wall_seconds']:.0f} s", flush=True)
    return row


def run_all(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    kws_extend_folder()  # synthesised once, before the jobs start
    if args.jobs > 1:
        queues = [args.seeds[job::args.jobs] for job in range(args.jobs)]
        processes = [subprocess.Popen([sys.executable, __file__, "run", "--work", str(work), "--jobs", "1",
                                       "--seeds", *map(str, queue), "--kinds", *args.kinds])
                     for queue in queues if queue]
        for process in processes:
            process.wait()
        return
    torch.set_num_threads(1)
    for seed in args.seeds:
        for kind in (k for k in KINDS if k in args.kinds):
            if not result_path(work, seed, kind).exists():
                run_one(seed, kind, work)


def replay_figures(work: Path, seeds: list[int], kinds: list[str]) -> dict:
    """Per extended kind: the old training clips it replays, and per seed the old validation clips whose
    right old answer a new word takes before the offset (per class): where the new head rows fire wrongly.
    Read from the run folders (their checkpoints and extend.json)."""
    from edgegrow.extend import _logits

    figures, tasks = {}, {}
    for kind in (k for k in kinds if k.startswith("extended")):
        per_seed = {}
        for seed in seeds:
            run = work / f"seed{seed}-{kind}-run"
            if not (run / "checkpoint.pt").is_file():
                continue
            if seed not in tasks:
                tasks[seed] = _task17(work, seed).data
            task = tasks[seed]
            summary = json.loads((run / "extend.json").read_text())
            config = ExtendConfig(**{key: value for key, value in summary["config"].items()
                                     if key in ExtendConfig.__dataclass_fields__})  # fields of its time
            replayed = replay_split(task.train, task.class_names[:12], config)
            model, _ = load_checkpoint(run / "checkpoint.pt")
            offset = summary["calibration"].get("offset", 0.0)
            head = model.get_submodule(_output_producer(model, example_input(model)))
            with torch.no_grad():
                head.bias[12:] -= offset  # before the offset
            validation = task.validation
            logits = _logits(model, validation.take(torch.arange(len(validation))))
            labels = validation.labels
            lost = (labels < 12) & (logits[:, :12].argmax(1) == labels) & (logits.argmax(1) >= 12)
            per_seed[seed] = {"old_clips_replayed": int((replayed.labels < 12).sum()),
                              "old_training_clips": int((task.train.labels < 12).sum()),
                              "old_validation_clips": int((labels < 12).sum()),
                              "old_validation_clips_lost_to_new_words": int(lost.sum()),
                              "lost_by_class": {task.class_names[c]: int((lost & (labels == c)).sum())
                                                for c in range(12) if (lost & (labels == c)).any()}}
        figures[kind] = per_seed
    return figures


def _median(values: list[float]) -> float:
    return statistics.median(values)


def report(args) -> None:
    work = Path(args.work)
    rows = {(row["seed"], row["kind"]): row for row in
            (json.loads(path.read_text()) for path in sorted(work.glob("seed*-*.json")))}
    kinds = [kind for kind in KINDS if any(k == kind for _, k in rows)]
    seeds = sorted({seed for seed, kind in rows if all((seed, k) in rows for k in kinds)})
    if not seeds or "extended" not in kinds or "joint" not in kinds:
        raise SystemExit(f"no seed in {work} has the old, extended and joint runs yet; run first")

    def points(kind: str, split: str, minus: tuple[str, str] | None = None) -> list[float]:
        values = []
        for seed in seeds:
            value = rows[(seed, kind)]["accuracy"][split]
            if minus is not None:
                value -= rows[(seed, minus[0])]["accuracy"][minus[1]]
            values.append(100 * value)
        return values

    table = {}
    for kind in kinds:
        accuracy = {split: points(kind, split) for split in ("old", "new", "all") if kind != "old" or split != "new"}
        predicted = rows[(seeds[0], kind)]["predicted"]
        table[kind] = {"test_accuracy_points": {split: {"median": _median(v), "per_seed": v}
                                                for split, v in accuracy.items()},
                       "predicted": predicted, "parameters": [rows[(s, kind)]["parameters"] for s in seeds],
                       "wall_seconds": _median([rows[(s, kind)]["wall_seconds"] for s in seeds])}
    wanted = [("extended old − old (target ≥ −0.5)", "extended", "old", ("old", "old")),
              ("extended new − joint new (target ≥ −3)", "extended", "new", ("joint", "new"))]
    for kind in KINDS[2:6]:
        wanted += [(f"{kind} old − old", kind, "old", ("old", "old")),
                   (f"{kind} new − joint new", kind, "new", ("joint", "new"))]
    wanted += [("extended-replay-200 new − extended-replay-200-keywords-only new", "extended-replay-200", "new",
                ("extended-replay-200-keywords-only", "new")),
               ("fine-tuned old − old (forgetting)", "fine-tuned", "old", ("old", "old")),
               ("fine-tuned new − extended-replay-200 new", "fine-tuned", "new", ("extended-replay-200", "new")),
               ("joint old − old", "joint", "old", ("old", "old"))]
    comparisons = {name: points(kind, split, minus) for name, kind, split, minus in wanted
                   if kind in kinds and minus[0] in kinds}
    summary = {name: {"median": _median(v), "min": min(v), "max": max(v), "per_seed": v}
               for name, v in comparisons.items()}
    first = rows[(seeds[0], "extended")]
    out = {"benchmark": "extend_keywords", "seeds": seeds, "new_classes": list(NEW), "old_budget": OLD_BUDGET,
           "new_budget": NEW_BUDGET, "profile": Path(PROFILE).name, "data": first["data"],
           "test_examples": {"old": first["accuracy"]["old_examples"], "new": first["accuracy"]["new_examples"]},
           "commits": sorted({str(row.get("commit")) for row in rows.values()}),
           "old_output_difference_max": max(rows[(s, "extended")]["old_output_difference"] for s in seeds),
           "kinds": table, "comparisons_points": summary, "replay": replay_figures(work, seeds, kinds)}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"seeds {seeds}; test clips: old classes {out['test_examples']['old']}, new {out['test_examples']['new']}")
    print(f"{'kind':<20}{'old %':>8}{'new %':>8}{'all %':>8}{'latency ms':>12}{'params':>9}")
    for kind, entry in table.items():
        acc = entry["test_accuracy_points"]
        new = acc.get("new", {}).get("median")
        print(f"{kind:<20}{acc['old']['median']:>8.1f}{'' if new is None else f'{new:.1f}':>8}"
              f"{acc['all']['median']:>8.1f}{entry['predicted']['latency_ms']:>12.4f}{entry['parameters'][0]:>9,}")
    for name, entry in summary.items():
        print(f"{name}: median {entry['median']:+.1f} [{entry['min']:+.1f}, {entry['max']:+.1f}] points")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--jobs", type=int, default=2)
    run.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    run.add_argument("--work", default=str(Path.home() / ".cache" / "edgegrow-bench" / "extend_keywords"))
    rep = commands.add_parser("report")
    rep.add_argument("--work", default=str(Path.home() / ".cache" / "edgegrow-bench" / "extend_keywords"))
    rep.add_argument("--out")
    args = parser.parse_args(argv)
    (run_all if args.command == "run" else report)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
