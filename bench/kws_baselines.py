"""Baseline: DS-CNN at published sizes and width multipliers, trained on the default synthetic KWS set.

Accuracy against MACs, the curve growth must beat. Every model gets the same training recipe
(TrainConfig defaults, ``--epochs``), once per seed; the table gives the median test accuracy and
its spread (min–max) over seeds, MACs and parameters, and training time per epoch.

    python bench/kws_baselines.py                       # default set, 3 seeds, 15 epochs
    python bench/kws_baselines.py --seeds 0 --epochs 3  # a quick look
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from cost_models import count_macs
from edgegrow.data.speech_commands import load_speech_commands
from edgegrow.data.synthesize_kws import ensure_default_kws_set
from edgegrow.models import ds_cnn, example_input
from edgegrow.training import TrainConfig, evaluate, train

# (label, size, width multiplier): S at ¼ to 2×, then M and L as published.
MODELS = [("DS-CNN-S ×0.25", "S", 0.25), ("DS-CNN-S ×0.5", "S", 0.5), ("DS-CNN-S", "S", 1.0),
          ("DS-CNN-S ×2", "S", 2.0), ("DS-CNN-M", "M", 1.0), ("DS-CNN-L", "L", 1.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="Speech Commands folder (default: the default synthetic set)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench/results/kws_baselines.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.data or ensure_default_kws_set().folder
    task = load_speech_commands(folder, progress=False)
    print(task.summary())
    rows = []
    for label, size, multiplier in MODELS:
        accuracies, seconds_per_epoch = [], []
        for seed in args.seeds:
            torch.manual_seed(seed)
            model = ds_cnn(size, width_multiplier=multiplier)
            result = train(model, task, TrainConfig(epochs=args.epochs, seed=seed), progress=False)
            accuracies.append(evaluate(model, task.test, task.class_names).accuracy)
            seconds_per_epoch.append(result.seconds / len(result.history))
        report = count_macs(model, example_input(model))
        row = {
            "model": label, "size": size, "width_multiplier": multiplier, "channels": model.classifier.in_features,
            "macs": report.total, "parameters": report.parameters, "test_accuracy_per_seed": accuracies,
            "test_accuracy_median": statistics.median(accuracies), "test_accuracy_min": min(accuracies),
            "test_accuracy_max": max(accuracies), "seconds_per_epoch_median": statistics.median(seconds_per_epoch),
        }
        rows.append(row)
        print(f"{label:<16} {report.total / 1e6:7.2f} M MACs {report.parameters / 1e3:7.1f} K params  test "
              f"{row['test_accuracy_median']:.1%} (min {row['test_accuracy_min']:.1%}, max "
              f"{row['test_accuracy_max']:.1%}, {len(accuracies)} seeds)  "
              f"{row['seconds_per_epoch_median']:.1f} s/epoch",
              flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "kws_baselines", "data": args.data or "default synthetic set (edgegrow data kws, defaults)",
        "epochs": args.epochs, "seeds": args.seeds,
        "threads": args.threads, "torch": torch.__version__, "machine": platform.machine(),
        "processor": platform.processor(), "test_examples": len(task.test), "rows": rows,
        "date": time.strftime("%Y-%m-%d"),
    }, indent=1))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
