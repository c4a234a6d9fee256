"""Grown DS-CNNs against uniformly scaled DS-CNN-S at equal predicted latency, on the default KWS task.

For each budget the baseline is DS-CNN-S at a width multiplier and the budget is that baseline's
predicted latency on the target, so both sides have the same allowance. Each growth method grows
the seed DS-CNN (8 channels) to the budget with ``edgegrow.grow`` (default GrowConfig); the baseline
trains for the same total epochs the grown run used (seed + steps + final), in one cosine schedule.
Test accuracy is on the default synthetic set's test split (unseen speakers), per seed.

Measured cost: every final model is exported to ONNX and timed with onnxruntime on this machine (1
thread, interleaved rounds, fastest round's 10th percentile), so host budgets are reported as
predicted and measured. MCU budgets are predicted only: there is no microcontroller here.

    python bench/grow_vs_baselines.py train [--seeds 0 1 2] [--methods fast-split random-split]
    python bench/grow_vs_baselines.py measure
    python bench/grow_vs_baselines.py report      # JSON, table and the Pareto plot (SVG)

``train`` appends one JSON line per finished run to ``--work``/runs.jsonl and skips runs already
there, so it can be interrupted and continued, or split over several processes (``--only``).
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from cost_models import estimate
from edgegrow.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgegrow.grow import GrowConfig, grow
from edgegrow.growth.budget import Budget
from edgegrow.models import ds_cnn
from edgegrow.tasks import load_task
from edgegrow.training import TrainConfig, evaluate, train

BUDGETS = [  # (target, DS-CNN-S width multiplier whose predicted latency is the budget)
    ("host", 0.25), ("host", 0.5), ("host", 1.0), ("cortex-m4f-120mhz", 0.5),
]
EXAMPLE = torch.zeros(1, 1, 49, 10)


def _key(target: str, multiplier: float, method: str, seed: int) -> str:
    return f"{target}|{multiplier}|{method}|{seed}"


def _done(runs_path: Path) -> dict[str, dict]:
    if not runs_path.exists():
        return {}
    rows = {}
    for line in runs_path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from an interrupted run
        rows[row["key"]] = row
    return rows


def _append(path: Path, row: dict) -> None:
    with path.open("a") as file:
        file.write(json.dumps(row) + "\n")


def train_all(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    runs_path = work / "runs.jsonl"
    task = load_task("kws", progress=False)
    config = GrowConfig()
    for seed in args.seeds:
        for target, multiplier in BUDGETS:
            if args.only and f"{target}:{multiplier}" not in args.only:
                continue
            baseline = ds_cnn("S", width_multiplier=multiplier, num_classes=task.data.num_classes)
            budget_ms = estimate(baseline, EXAMPLE, target).latency_ms
            budget = Budget({"latency_ms": budget_ms})
            epochs_of_grown = None
            for method in args.methods:
                key = _key(target, multiplier, method, seed)
                done = _done(runs_path)
                if key in done:
                    epochs_of_grown = epochs_of_grown or done[key]["epochs"]
                    continue
                run_dir = work / key.replace("|", "_")
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                torch.manual_seed(seed)
                started = time.perf_counter()
                result = grow(task.seed(), task.data, target, budget, GrowConfig(method=method, seed=seed), run_dir,
                              family=task.family, seed_options=task.seed_options, log=lambda line: None)
                steps = sum(1 for row in result.history if row.get("phase") == "grow")
                epochs = config.seed_epochs + steps * config.epochs_per_step + config.final_epochs
                epochs_of_grown = epochs_of_grown or epochs
                _append(runs_path, {
                    "key": key, "target": target, "multiplier": multiplier, "method": method, "seed": seed,
                    "budget_ms": budget_ms, "predicted_ms": result.report.latency_ms, "macs": result.report.macs,
                    "params": result.report.parameters, "usage": result.usage["latency_ms"], "steps": steps,
                    "epochs": epochs, "widths": result.history[-1]["widths"], "depth": result.history[-1]["depth"],
                    "test_accuracy": result.test_accuracy, "stopped_by": result.stopped_by,
                    "growth_seconds": sum(r.get("growth_seconds", 0.0) for r in result.history),
                    "training_seconds": sum(r.get("training_seconds") or 0.0 for r in result.history),
                    "seconds": time.perf_counter() - started, "checkpoint": f"{run_dir.name}/checkpoint.pt",
                })
                print(f"{key}: {result.test_accuracy:.1%} at {result.report.latency_ms:.4f} ms "
                      f"(budget {budget_ms:.4f}, {steps} steps, {time.perf_counter() - started:.0f} s)", flush=True)
            key = _key(target, multiplier, "baseline", seed)
            if key in _done(runs_path):
                continue
            epochs = epochs_of_grown or config.seed_epochs + 3 * config.epochs_per_step + config.final_epochs
            torch.manual_seed(seed)
            model = ds_cnn("S", width_multiplier=multiplier, num_classes=task.data.num_classes,
                           input_shape=task.data.input_shape)
            started = time.perf_counter()
            train(model, task.data, TrainConfig(epochs=epochs, seed=seed * 1009), progress=False)
            accuracy = evaluate(model, task.data.test, task.data.class_names).accuracy
            path = work / key.replace("|", "_") / "checkpoint.pt"
            save_checkpoint(path, model, Checkpoint("ds-cnn-baseline", {"width_multiplier": multiplier}))
            report = estimate(model, EXAMPLE, target)
            _append(runs_path, {
                "key": key, "target": target, "multiplier": multiplier, "method": "baseline", "seed": seed,
                "budget_ms": budget_ms, "predicted_ms": report.latency_ms, "macs": report.macs,
                "params": report.parameters, "usage": report.latency_ms / budget_ms, "steps": 0, "epochs": epochs,
                "test_accuracy": accuracy, "seconds": time.perf_counter() - started,
                "checkpoint": f"{path.parent.name}/checkpoint.pt",
            })
            print(f"{key}: {accuracy:.1%} at {report.latency_ms:.4f} ms ({epochs} epochs)", flush=True)


def _load(row: dict, num_classes: int, work: Path) -> torch.nn.Module:
    """A run's final model; ``checkpoint`` is relative to the work folder (absolute in older rows)."""
    path = work / row["checkpoint"]
    if row["method"] == "baseline":
        model = ds_cnn("S", width_multiplier=row["multiplier"], num_classes=num_classes)
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(payload["state_dict"])
        return model.eval()
    return load_checkpoint(path)[0].eval()


def measure_all(args) -> None:
    from cost_models.runner import Session, time_interleaved

    work = Path(args.work)
    rows = [row for row in _done(work / "runs.jsonl").values() if row["target"] == "host"]
    sessions = []
    for row in rows:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_load(row, 12, work), (EXAMPLE,), buffer, dynamo=False)
        sessions.append(Session(buffer.getvalue(), threads=1))
    timings = time_interleaved(sessions, rounds=args.rounds)
    measured = {row["key"]: timing for row, timing in zip(rows, timings)}
    (work / "measured.json").write_text(json.dumps(measured, indent=1))
    print(f"timed {len(rows)} models in {args.rounds} rounds")


def report_all(args) -> None:
    work = Path(args.work)
    rows = list(_done(work / "runs.jsonl").values())
    measured = json.loads((work / "measured.json").read_text()) if (work / "measured.json").exists() else {}
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["target"], row["multiplier"], row["method"]), []).append(row)
    summary = []
    for (target, multiplier, method), members in sorted(groups.items()):
        accuracies = [m["test_accuracy"] for m in members]
        measured_ms = [measured[m["key"]]["fast_ms"] for m in members if m["key"] in measured]
        summary.append({
            "target": target, "budget": f"DS-CNN-S x{multiplier}", "budget_ms": members[0]["budget_ms"],
            "method": method, "seeds": sorted(m["seed"] for m in members),
            "test_accuracy_median": statistics.median(accuracies), "test_accuracy_min": min(accuracies),
            "test_accuracy_max": max(accuracies),
            "predicted_ms_median": statistics.median(m["predicted_ms"] for m in members),
            "measured_ms_median": statistics.median(measured_ms) if measured_ms else None,
            "macs_median": statistics.median(m["macs"] for m in members),
            "epochs_median": statistics.median(m["epochs"] for m in members),
            "growth_share_median": statistics.median(
                m.get("growth_seconds", 0) / max(1e-9, m.get("growth_seconds", 0) + m.get("training_seconds", 0))
                for m in members) if method != "baseline" else None,
        })
    out = Path(args.out)
    runs = [{key: value for key, value in row.items() if key != "checkpoint"} for row in rows]  # paths of this machine
    out.write_text(json.dumps({"benchmark": "grow_vs_baselines", "torch": torch.__version__, "config":
                               GrowConfig().__dict__, "rows": summary, "runs": runs, "measured": measured}, indent=1))
    print(f"{'target':<18}{'budget':<16}{'method':<14}{'acc med [min-max]':<22}"
          f"{'pred ms':>9}{'meas ms':>9}{'MACs':>10}")
    for s in summary:
        meas = "" if s["measured_ms_median"] is None else f"{s['measured_ms_median']:.4f}"
        print(f"{s['target']:<18}{s['budget']:<16}{s['method']:<14}"
              f"{s['test_accuracy_median']:.1%} [{s['test_accuracy_min']:.1%}-{s['test_accuracy_max']:.1%}]  "
              f"{s['predicted_ms_median']:>9.4f}{meas:>9}{int(s['macs_median']):>10,}")
    write_pareto_svg(summary, Path(args.plot))
    print(f"wrote {out} and {args.plot}")


def write_pareto_svg(summary: list[dict], path: Path) -> None:
    """Accuracy (median over seeds) against latency (measured on host, predicted on MCUs), one panel per target."""
    targets = sorted({s["target"] for s in summary})
    colours = {"baseline": "#444444", "fast-split": "#d62728", "split": "#ff7f0e", "signed-split": "#9467bd",
               "firefly": "#2ca02c", "random-split": "#1f77b4", "random-new": "#17becf"}
    width, height, pad = 420, 320, 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * len(targets)}" height="{height}" '
             'font-family="sans-serif" font-size="11">']
    for panel, target in enumerate(targets):
        rows = [s for s in summary if s["target"] == target]
        xs = [s["measured_ms_median"] or s["predicted_ms_median"] for s in rows]
        ys = [100 * s["test_accuracy_median"] for s in rows]
        x0, x1 = min(xs) * 0.9, max(xs) * 1.1
        y0, y1 = min(ys) - 2, max(ys) + 2
        left = panel * width

        def px(x):
            return left + pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

        def py(y):
            return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

        kind = "measured" if all(s["measured_ms_median"] for s in rows) else "predicted"
        parts.append(f'<text x="{left + width / 2}" y="16" text-anchor="middle">{target}: test accuracy vs '
                     f'{kind} latency</text>')
        parts.append(f'<line x1="{left + pad}" y1="{height - pad}" x2="{left + width - pad}" y2="{height - pad}" '
                     'stroke="black"/>')
        parts.append(f'<line x1="{left + pad}" y1="{pad}" x2="{left + pad}" y2="{height - pad}" stroke="black"/>')
        for tick in range(5):
            x = x0 + (x1 - x0) * tick / 4
            y = y0 + (y1 - y0) * tick / 4
            parts.append(f'<text x="{px(x)}" y="{height - pad + 14}" text-anchor="middle">{x:.3g}</text>')
            parts.append(f'<text x="{left + pad - 4}" y="{py(y) + 4}" text-anchor="end">{y:.0f}%</text>')
        parts.append(f'<text x="{left + width / 2}" y="{height - 12}" text-anchor="middle">latency (ms)</text>')
        for method in sorted({s["method"] for s in rows}):
            points = sorted((x, y) for s, x, y in zip(rows, xs, ys) if s["method"] == method)
            path_d = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(points))
            colour = colours.get(method, "#888888")
            parts.append(f'<path d="{path_d}" fill="none" stroke="{colour}"/>')
            parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{colour}"/>' for x, y in points]
        for index, method in enumerate(sorted({s["method"] for s in rows})):
            colour = colours.get(method, "#888888")
            parts.append(f'<text x="{left + pad + 8}" y="{pad + 14 * index}" fill="{colour}">{method}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=("train", "measure", "report"))
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "edgegrow" / "bench-grow"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["fast-split", "random-split"])
    parser.add_argument("--only", nargs="*", help="budgets as TARGET:MULTIPLIER, e.g. host:0.5")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", default="bench/results/grow_vs_baselines.json")
    parser.add_argument("--plot", default="bench/results/grow_vs_baselines.svg")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    {"train": train_all, "measure": measure_all, "report": report_all}[args.phase](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
