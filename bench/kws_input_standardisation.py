"""Raw MLPerf MFCCs versus MFCCs standardised per coefficient, training a seed DS-CNN.

    python bench/kws_input_standardisation.py    # default synthetic set, 3 seeds, 8 epochs

Same seeds, recipe and data for both; the table gives the median test accuracy and min–max.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from edgegrow.data.speech_commands import KwsConfig, load_speech_commands
from edgegrow.data.synthesize_kws import ensure_default_kws_set
from edgegrow.models import ds_cnn_seed
from edgegrow.training import TrainConfig, evaluate, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench/results/kws_input_standardisation.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.data or ensure_default_kws_set().folder
    results = {"epochs": args.epochs, "seeds": args.seeds, "rows": []}
    for normalize in (False, True):
        task = load_speech_commands(folder, KwsConfig(normalize=normalize), progress=False)
        accuracies = []
        for seed in args.seeds:
            torch.manual_seed(seed)
            model = ds_cnn_seed()
            train(model, task, TrainConfig(epochs=args.epochs, seed=seed), progress=False)
            accuracies.append(evaluate(model, task.test, task.class_names).accuracy)
        label = "standardised" if normalize else "raw"
        results["rows"].append({"inputs": label, "test_accuracy_per_seed": accuracies,
                                "median": statistics.median(accuracies)})
        print(f"{label:<13} seed DS-CNN, {args.epochs} epochs: test {statistics.median(accuracies):.1%} "
              f"(min {min(accuracies):.1%}, max {max(accuracies):.1%}, {len(accuracies)} seeds)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
