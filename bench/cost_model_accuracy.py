"""How well the `host` profile predicts what onnxruntime measures, on architectures it never saw.

Held-out architectures: the zoo families (DS-CNN, MobileNetV1, MobileNetV2, ResNet-8) with random
per-layer widths (odd counts included), strides and input resolutions, drawn from a fixed seed. The
table was built from single-kernel models on a synthetic grid, never from these networks. Each one
is exported to ONNX (torch.onnx), timed with onnxruntime at 1 thread and predicted with
``cost_models.estimate``.

Timing: the measurement protocol (``cost_models.runner.measure``, as ``edgegrow bench`` and the
profiler's calibration): in each of 15 rounds, a probe workload and then every architecture in a
random order, 10 samples each (each the mean of back-to-back runs filling ≥ 1 ms); a model's
latency is the median over the fast rounds (those whose probe ran within 10 % of its fastest) of each
round's 10th percentile, the median of all samples beside it. On a shared machine latency jumps
between an uncontended and a contended level for seconds at a time (up to 2x for memory-bound
kernels, seen here). The noise floor is printed beside the accuracy figures: per model, how far the
even and the odd fast rounds' figures are apart (split halves), and how many rounds were slow;
``--retest`` measures everything twice and reports that agreement too.

    python bench/cost_model_accuracy.py [--target host] [--count 60] [--out bench/results/cost_model_accuracy.json]

Run it with the machine otherwise quiet, on the machine the target was profiled on.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from cost_models import estimate, load_target
from cost_models.runner import Session, measure, noise_verdict
from edgegrow.models import DSCNN, MobileNetV1, MobileNetV2, ResNet8
from edgegrow.models.mobilenet_v2 import BlockSpec


def random_architecture(rng: random.Random, family: str) -> tuple[str, torch.nn.Module]:
    if family == "ds-cnn":
        frames, bins = rng.choice([(49, 10), (49, 10), (61, 13), (99, 40), (32, 20)])
        blocks = rng.randint(3, 5)
        stem = rng.randint(12, 200)
        channels = [rng.randint(12, 200) for _ in range(blocks)]
        strides = [(2, 2) if rng.random() < 0.15 else (1, 1) for _ in range(blocks)]
        model = DSCNN(stem, channels, strides, input_shape=(1, frames, bins))
        return f"ds-cnn {frames}x{bins} stem {stem} blocks {channels}", model
    if family == "mobilenet-v1":
        scale = rng.uniform(0.15, 0.6)
        resolution = rng.choice([32, 48, 64, 80, 96, 112, 128])
        base = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
        strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
        channels = [max(4, int(c * scale * rng.uniform(0.7, 1.3))) for c in base]
        stem = max(4, int(32 * scale * rng.uniform(0.7, 1.3)))
        model = MobileNetV1(stem, channels, strides, num_classes=rng.choice([2, 10, 100]),
                            input_shape=(3, resolution, resolution))
        return f"mobilenet-v1 {resolution}px stem {stem} blocks {channels}", model
    if family == "mobilenet-v2":
        scale = rng.uniform(0.2, 0.75)
        resolution = rng.choice([32, 48, 64, 80, 96, 112, 128])
        stages = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                  (6, 320, 1, 1)]
        stem = max(4, int(32 * scale * rng.uniform(0.7, 1.3)))
        blocks, channels = [], stem
        for expansion, out, repeats, stride in stages:
            out_channels = max(4, int(out * scale * rng.uniform(0.7, 1.3)))
            expansion = expansion if expansion == 1 else rng.choice([3, 4, 6])
            for i in range(repeats):
                blocks.append(BlockSpec(channels * expansion, out_channels, stride if i == 0 else 1,
                                        expansion != 1, residual=i > 0))
                channels = out_channels
        last = max(8, int(1280 * scale * rng.uniform(0.5, 1.0)))
        model = MobileNetV2(stem, blocks, last, num_classes=rng.choice([2, 10, 100]),
                            input_shape=(3, resolution, resolution))
        return f"mobilenet-v2 {resolution}px stem {stem} last {last} ({len(blocks)} blocks)", model
    size = rng.choice([24, 32, 32, 40, 48, 64])
    channels = [rng.randint(6, 40), rng.randint(10, 72), rng.randint(20, 140)]
    stem = rng.randint(6, 40)
    model = ResNet8(stem, channels, [1, 2, 2], input_shape=(3, size, size))
    return f"resnet8 {size}px stem {stem} stacks {channels}", model


def export_onnx(model: torch.nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, dynamo=False)
    return buffer.getvalue()


def table_cross_validation(target, folds: int = 5, seed: int = 0) -> dict:
    """Kernel level: predict each table entry from a profile without it (k-fold), per kind."""
    import dataclasses

    from cost_models import LatencyModel

    entries = list(target.entries)
    order = np.random.default_rng(seed).permutation(len(entries))
    errors: dict[str, list[float]] = {}
    methods: dict[str, int] = {}
    for fold in range(folds):
        held = {int(i) for i in order[fold::folds]}
        kept = tuple(e for i, e in enumerate(entries) if i not in held)  # and the table as measured: no calibration
        model = LatencyModel(dataclasses.replace(target, entries=kept, calibration_scale=1.0,
                                                 calibration_per_kernel_ms=0.0))
        for index in held:
            entry = entries[index]
            result = model.kernel(entry.shape)
            errors.setdefault(entry.shape.kind, []).append(result.latency_ms / entry.latency_ms - 1)
            methods[result.method] = methods.get(result.method, 0) + 1
    summary = {kind: {"kernels": len(values), "within_10_percent": float(np.mean(np.abs(values) <= 0.10)),
                      "median_absolute_percentage_error": float(100 * np.median(np.abs(values)))}
               for kind, values in sorted(errors.items())}
    everything = np.abs(np.concatenate([np.array(v) for v in errors.values()]))
    summary["all"] = {"kernels": len(everything), "within_10_percent": float(np.mean(everything <= 0.10)),
                      "median_absolute_percentage_error": float(100 * np.median(everything)), "methods": methods}
    return summary


def spearman(a: list[float], b: list[float]) -> float:
    rank_a, rank_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="host")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--retest", action="store_true", help="measure twice and report the agreement")
    parser.add_argument("--out", default="bench/results/cost_model_accuracy.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    target = load_target(args.target)
    rng = random.Random(args.seed)
    families = ["ds-cnn", "mobilenet-v1", "mobilenet-v2", "resnet8"]
    started = time.time()
    models = []
    for index in range(args.count):
        description, model = random_architecture(rng, families[index % len(families)])
        model.eval()
        example = torch.randn(1, *model.input_shape)
        models.append((description, estimate(model, example, target), Session(export_onnx(model, example))))
    def measure_all() -> dict:
        return measure([session.run for _, _, session in models], args.rounds, repeats=10, sample_ms=1.0,
                       warmup_ms=5, progress=lambda done, total: print(f"round {done}/{total} done", flush=True))

    protocol = measure_all()
    timings = protocol["models"]
    retest = None
    if args.retest:
        again = np.array([timing["fast_ms"] for timing in measure_all()["models"]])
        agreement = np.abs(again / np.array([timing["fast_ms"] for timing in timings]) - 1)
        retest = {"within_10_percent": float(np.mean(agreement <= 0.10)),
                  "within_5_percent": float(np.mean(agreement <= 0.05)),
                  "median_absolute_percentage_difference": float(100 * np.median(agreement))}
    rows = []
    for (description, report, _), timing in zip(models, timings):
        measured = timing["fast_ms"]
        error = report.latency_ms / measured - 1
        methods: dict[str, int] = {}
        for row in report.kernels:
            methods[row.latency_method] = methods.get(row.latency_method, 0) + 1
        rows.append({"architecture": description, "macs": report.macs, "measured_ms": measured,
                     "measured_median_ms": timing["latency_ms"],
                     "rounds_fast_ms": [round(ms, 5) for ms in timing["rounds_fast_ms"]],
                     "split_half": timing["split_half"], "untrusted": noise_verdict(protocol, timing),
                     "predicted_ms": report.latency_ms, "error": error, "kernel_methods": methods})
        print(f"{error:+7.1%}  measured {measured:8.3f} ms  predicted {report.latency_ms:8.3f} ms  "
              f"{description[:80]}")
    errors = np.array([abs(row["error"]) for row in rows])
    halves = [row["split_half"] for row in rows if row["split_half"] is not None]
    noise = {"rounds": protocol["rounds"], "slow_rounds": protocol["slow_rounds"],
             "median_split_half": statistics.median(halves) if halves else None,
             "max_split_half": max(halves) if halves else None,
             "models_too_noisy": sum(row["untrusted"] is not None for row in rows)}
    print(f"noise floor: the halves of the rounds agree within {noise['median_split_half']:.1%} (median over "
          f"models, worst {noise['max_split_half']:.1%}); {noise['slow_rounds']} of {noise['rounds']} rounds slow; "
          f"{noise['models_too_noisy']} models too noisy to trust" if halves else "noise floor: n/a")
    contention = [row["measured_median_ms"] / row["measured_ms"] for row in rows]
    summary = {
        "target": target.name, "architectures": len(rows),
        "within_10_percent": float(np.mean(errors <= 0.10)), "within_5_percent": float(np.mean(errors <= 0.05)),
        "mean_absolute_percentage_error": float(100 * errors.mean()),
        "median_absolute_percentage_error": float(100 * np.median(errors)),
        "worst_error": float(max(rows, key=lambda r: abs(r["error"]))["error"]),
        "spearman": spearman([r["measured_ms"] for r in rows], [r["predicted_ms"] for r in rows]),
        "measured_ms_range": [min(r["measured_ms"] for r in rows), max(r["measured_ms"] for r in rows)],
        "median_of_median_over_fastest": statistics.median(contention),
        "max_of_median_over_fastest": max(contention),
        "measurement_retest": retest,
        "noise_floor": noise,
        "seconds": round(time.time() - started, 1),
        "command": "python bench/cost_model_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    kernels = table_cross_validation(target)
    print(json.dumps({"models": summary, "kernels_5_fold": kernels}, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "kernels_5_fold": kernels, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
