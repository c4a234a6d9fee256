"""How well a profile (default ``host``) predicts what onnxruntime measures, on architectures it never saw.

Held-out architectures (``--count``, default 168), from 12 families in turn, drawn from a fixed seed;
the table and its calibration were built from single-kernel models on a grid and random chains of
kernels, never from these networks:

- the zoo (DS-CNN, MobileNetV1, MobileNetV2, ResNet-8) with random per-layer widths (odd counts
  included), strides and input resolutions;
- user-style CNNs (``held_out_models.py``): plain conv + max-pool + flatten → linear with 3×3, 5×5
  or 7×7 kernels, residual blocks, squeeze-and-excitation, concatenations, issue 17's network;
- grown-style networks made by edgegrow's own edits (``held_out_models.grown_style``): blocks
  inserted as Firefly inserts them, new neurons added to random groups as TINY adds them, and tiny
  networks that run in tens of microseconds.

Each one is exported to ONNX as ``edgegrow export`` writes it (``export_onnx_float``: torch.onnx's dynamo
exporter with its optimiser), timed with onnxruntime at 1 thread and predicted with ``cost_models.estimate``.
Until 2026-12-07 this benchmark exported with the older TorchScript exporter, whose files are not the ones
users ship: a global average pool became a GlobalAveragePool (edgegrow's files: a ReduceMean), and the
DS-CNN-like families' asymmetric padding a Pad node and its shape computation (edgegrow's files fold it).
Reported: the share within ±10 % and ±5 %, the mean and median absolute
error, Spearman's ρ and Kendall's τ between predicted and measured, and the median signed error
per family, each with a 95 % bootstrap interval (resampling models), and the same per model size.

Kernel level (``--kernels``, default 150): kernel shapes that occur in the held-out networks and are
not in the table, measured as the profiler measures its grid (``profiler.measure_kernel``: each in
its own single-kernel model, the node's time in onnxruntime's profiler turned into wall-clock time,
fastest of 4 rounds) and predicted from the table alone (no whole-model calibration); the shares
within ±10 % and ±5 % for all of them and for those taking at least 5 µs and 20 µs. Beside it, the
table's own 5-fold cross-validation, reported the same way.

Timing of whole models: the measurement protocol (``cost_models.runner.measure``, as ``edgegrow
bench`` and the profiler's calibration): in each of 15 rounds, a probe workload and then every
architecture in a random order, 10 samples each (each the mean of back-to-back runs filling ≥ 1 ms);
a model's latency is the median over the fast rounds (those whose probe ran within 10 % of its
fastest) of each round's 10th percentile, the median of all samples beside it. The noise floor is
printed beside the accuracy figures: per model, how far the even and the odd fast rounds' figures
are apart (split halves), and how many rounds were slow; ``--retest`` measures the networks and the
held-out kernels twice and reports those agreements too (for kernels, the agreement of two measurements
minutes apart, as a table and a later measurement are; the split halves of one are closer).

    python bench/cost_model_accuracy.py [--target host] [--count 168] [--kernels 150] [--out FILE]
    python bench/cost_model_accuracy.py --runtime litert --target host-litert   # TFLite with XNNPACK
    python bench/cost_model_accuracy.py --families pooled --count 48          # pooling written as functions

``--families`` draws only the families named, in turn; ``pooled`` (not among the default 12, whose draws earlier
results name) is hand-written CNNs whose pooling is written as functions, with average pools
(``held_out_models.Pooled``).

With ``--runtime litert`` the networks are edgegrow's float TFLite exports (litert-torch, channel-last
input) run by ai-edge-litert with XNNPACK, the profile one made by ``edgegrow profile --runtime litert``,
and the held-out kernels are measured as that profiler measures its grid.

Run it with the machine otherwise quiet, on the machine the target was profiled on. A profile made by
``edgegrow profile`` here keeps the times of a few reference kernels (``cost_models.speed_reference``);
they are timed again in the same rounds, and ``speed_vs_profile`` (printed, and in the summary) says
how much slower (> 1) or faster the machine runs them now: the figures are not corrected by it. Beside
them (``at_speed_now``, one printed line) the same shares with every prediction scaled by that ratio, a
reading aid for runs made in different states of a drifting machine, not a claim (on 2026-12-06 the
machine ran 7 % slower two minutes after its profile: 89 % within ±10 % raw, 96 % scaled).

The profile's calibration networks (``speed_reference.calibration_networks``, both runtimes) are timed
in the same rounds too: ``at_calibration_now`` gives their speed now against the profile's, the
calibration scale they give now (``calibration.scale_now``, the per-node offset kept), and the same
shares with every network priced again at that scale: how much of a run's error is the moment the
calibration was timed at, another reading aid and not a claim. Where the profile's digest of its networks
(``calibration.chains_digest``) says they are not the ones this edgegrow builds, none is timed and
``at_calibration_now`` holds ``skipped``: why.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from held_out_models import (
    GROWN_FAMILIES,
    POOLED_FAMILIES,
    USER_FAMILIES,
    grown_style,
    pooled,
    trained_statistics,
    user_style,
)
from scipy import stats

from cost_models import estimate, load_target
from cost_models.calibration import scale_now
from cost_models.runner import Session, measure, noise_verdict
from cost_models.speed_reference import CalibrationNetworksChanged, calibration_networks, reference_models, speed_ratio
from cost_models.target import known_targets
from edgegrow.atomic import write_atomically
from edgegrow.models import DSCNN, MobileNetV1, MobileNetV2, ResNet8
from edgegrow.models.mobilenet_v2 import BlockSpec

ZOO_FAMILIES = ("ds-cnn", "mobilenet-v1", "mobilenet-v2", "resnet8")
FAMILIES = (*ZOO_FAMILIES, *USER_FAMILIES, *GROWN_FAMILIES)


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
    """The ONNX file ``edgegrow export`` writes for ``model``: the one users run, so the one to predict."""
    from edgegrow.export.library_output import captured
    from edgegrow.export.onnx_format import export_onnx_float

    with captured():  # the exporter's log lines (torchvision is not installed ...), four per network
        return export_onnx_float(model, example)


def session_of(model: torch.nn.Module, example: torch.Tensor, runtime: str, cached: Path | None = None) -> Session:
    """The network exported for ``runtime`` and loaded: ONNX in onnxruntime, or edgegrow's float TFLite
    export (channel-last input) in ai-edge-litert with XNNPACK. ``cached``: a file holding that export
    from an earlier run, read instead of exporting again, or written when missing."""
    if cached is not None and cached.is_file():
        exported = cached.read_bytes()
    else:
        if runtime == "onnxruntime":
            exported = export_onnx(model, example)
        else:
            from edgegrow.export.tflite_format import export_tflite_float

            exported = export_tflite_float(model, example)
        if cached is not None:
            write_atomically(cached, exported)
    return Session(exported) if runtime == "onnxruntime" else Session(exported, "litert", xnnpack=True)


def export_file(folder: str, runtime: str, seed: int, index: int, description: str, model: torch.nn.Module) -> Path:
    """Where ``--exports`` keeps one network's export: named by the set, its place in it, and a digest of
    its description, its weights and statistics, and the torch version (an export by another torch, or of other
    values, is not reused)."""
    state = hashlib.sha256(f"{description}|{torch.__version__}".encode())
    for name, tensor in model.state_dict().items():
        state.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    digest = state.hexdigest()[:12]
    extension = "onnx" if runtime == "onnxruntime" else "tflite"
    return Path(folder) / f"{runtime}-seed{seed}-{index:03d}-{digest}.{extension}"


def reproducing_command(argv: list[str]) -> str:
    """The command that gives a run's figures again: its arguments without ``--exports DIR`` and ``--out FILE``,
    which say where files go on the machine that ran it, not what was measured."""
    kept, skip = [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument in ("--exports", "--out"):
            skip = True
        elif not argument.startswith(("--exports=", "--out=")):
            kept.append(argument)
    return " ".join(["python bench/cost_model_accuracy.py", *kept])


def held_out_set(count: int, seed: int, families: tuple[str, ...] = FAMILIES
                 ) -> list[tuple[str, str, torch.nn.Module, tuple[int, ...]]]:
    """``count`` networks, ``families`` in turn: (family, description, model in eval mode, input shape)."""
    rng = random.Random(seed)
    networks = []
    for index in range(count):
        family = families[index % len(families)]
        torch.manual_seed(seed * 1000 + index)
        if family in POOLED_FAMILIES:
            description, model, shape = pooled(rng)
        elif family in ZOO_FAMILIES:
            description, model = random_architecture(rng, family)
            shape = tuple(model.input_shape)
        elif family in USER_FAMILIES:
            description, model, shape = user_style(rng, family)
        else:
            description, model, shape = grown_style(rng, family)
        networks.append((family, description, trained_statistics(model).eval(), shape))
    return networks


def table_cross_validation(target, folds: int = 5, seed: int = 0) -> dict:
    """Kernel level: predict each table entry from a profile without it (k-fold), per kind."""
    from cost_models import LatencyModel

    entries = list(target.entries)
    order = np.random.default_rng(seed).permutation(len(entries))
    errors: dict[str, list[float]] = {}
    methods: dict[str, int] = {}
    pairs = []
    for fold in range(folds):
        held = {int(i) for i in order[fold::folds]}
        kept = tuple(e for i, e in enumerate(entries) if i not in held)  # and the table as measured: no calibration
        model = LatencyModel(dataclasses.replace(target.without_calibration(), entries=kept))
        for index in held:
            entry = entries[index]
            result = model.kernel(entry.shape)
            errors.setdefault(entry.shape.kind, []).append(result.latency_ms / entry.latency_ms - 1)
            methods[result.method] = methods.get(result.method, 0) + 1
            pairs.append((result.latency_ms / entry.latency_ms - 1, entry.latency_ms))
    return {**kernel_summary(errors, methods), **by_size(pairs)}


def grid_noise_floor(target, profile_path: Path) -> dict:
    """``split_half_agreement`` of the profile's own grid, from the measurements file the profiler keeps
    beside it (``<profile>.measurements.jsonl``, rounds in the order measured); {} without that file."""
    from cost_models.profiler import local_overheads

    measurements = profile_path.with_name(profile_path.name + ".measurements.jsonl")
    if not measurements.is_file():
        return {}
    records = []
    with open(measurements) as handle:
        for line in handle:
            try:
                record = json.loads(line)
                int(record["id"].split("@")[1])
                record["kernel_ms"]
            except (json.JSONDecodeError, KeyError, IndexError, AttributeError, ValueError):
                continue
            records.append(record)
    rounds: dict[str, list[tuple[int, dict]]] = {}
    for record in local_overheads(records):
        key, round_index = record["id"].split("@")
        rounds.setdefault(key, []).append((int(round_index), record))
    return split_half_agreement([[record for _, record in sorted(times, key=lambda item: item[0])]
                                 for times in rounds.values()], table_time(target))


def table_time(target):
    """A kernel's time from some of its rounds' records as the profile's table holds it
    (``profiler.fastest_round``, with ``target``'s overhead and per-node run)."""
    from cost_models.profiler import fastest_round

    return lambda rounds: fastest_round(rounds, target.model_overhead_ms.value, target.table_node_run_ms)["kernel_ms"]


def kernel_summary(errors: dict[str, list[float]], methods: dict[str, int]) -> dict:
    summary = {kind: {"kernels": len(values), "within_10_percent": float(np.mean(np.abs(values) <= 0.10)),
                      "median_signed_error": float(np.median(values)),
                      "median_absolute_percentage_error": float(100 * np.median(np.abs(values)))}
               for kind, values in sorted(errors.items())}
    everything = np.abs(np.concatenate([np.array(v) for v in errors.values()]))
    summary["all"] = {"kernels": len(everything), "within_10_percent": float(np.mean(everything <= 0.10)),
                      "within_5_percent": float(np.mean(everything <= 0.05)),
                      "median_absolute_percentage_error": float(100 * np.median(everything)), "methods": methods}
    return summary


def held_out_kernels(target, reports: list, count: int, seed: int,
                     runtime: str = "onnxruntime") -> tuple[dict, list[dict]]:
    """Kernel level, out of sample: up to ``count`` kernel shapes of the held-out networks that are not
    table entries, each measured as the profiler measures its grid (``profiler.measure_kernel``: node
    time in onnxruntime's profiler turned into wall-clock time, the fastest of 4 rounds in a random
    order as ``profiler.fastest_round`` picks it) and predicted from the table alone (no whole-model
    calibration)."""
    from cost_models import LatencyModel
    from cost_models.latency import stand_in
    from cost_models.profiler import fastest_round, local_overheads, measure_kernel

    table = {entry.shape for entry in target.entries}
    profiled_kinds = {shape.kind for shape in table}  # kinds the grid times as single-kernel models
    # each kernel as the kind its table times it as (a table without channel-last means: a mean that keeps its rank as
    # a mean)
    candidates = {dataclasses.replace(row.shape, kind=stand_in(row.shape.kind, profiled_kinds))
                  for report in reports for row in report.kernels}
    shapes = sorted((shape for shape in candidates if shape.kind in profiled_kinds and shape not in table),
                    key=lambda shape: json.dumps(shape.to_dict(), sort_keys=True))
    rng = random.Random(seed)
    shapes = rng.sample(shapes, min(count, len(shapes)))
    model = LatencyModel(target.without_calibration())
    overhead_ms = target.model_overhead_ms.value
    per_node_ms = target.table_node_run_ms  # measured as the table was (profiler.without_profiler)
    best: dict[int, dict] = {}
    rounds: dict[int, list] = {}  # each shape's rounds in the order measured: records, or times (litert)
    statistic = min  # of half a shape's rounds, for the noise floor: the statistic its table time is
    if runtime == "litert":  # the litert profiler's own measurement, in a scratch folder
        import tempfile

        from cost_models.kernel_tflite import computed_shape
        from cost_models.profiler import shape_id
        from cost_models.profiler_litert import measure_grid_litert

        with tempfile.TemporaryDirectory() as folder:
            records = measure_grid_litert(shapes, Path(folder) / "m.jsonl", Path(folder) / "files", 1, 4)
        index_of = {shape_id(shape): index for index, shape in enumerate(shapes)}
        for record in records:
            index = index_of[record["id"]]
            rounds.setdefault(index, []).append(record["kernel_ms"])
            if index not in best or record["kernel_ms"] < best[index]["kernel_ms"]:
                best[index] = {**record, "layout": "plain"}
        shapes = [computed_shape(shape) for shape in shapes]
    else:
        measured: list[tuple[int, dict]] = []  # in the order measured
        for round_index in range(4):
            order = list(range(len(shapes)))
            rng.shuffle(order)
            measured += [(index, measure_kernel(shapes[index])) for index in order]
            print(f"kernel round {round_index + 1}/4 done", flush=True)
        # corrected and picked as the profiler does its grid's (profiler.local_overheads, fastest_round)
        for (index, _), record in zip(measured, local_overheads([record for _, record in measured])):
            rounds.setdefault(index, []).append(record)
        best = {index: fastest_round(records, overhead_ms, per_node_ms) for index, records in rounds.items()}
        statistic = table_time(target)
    errors: dict[str, list[float]] = {}
    methods: dict[str, int] = {}
    rows = []
    for index, shape in enumerate(shapes):
        prediction = model.kernel(shape)
        measured = best[index]["kernel_ms"]
        error = prediction.latency_ms / measured - 1
        errors.setdefault(shape.kind, []).append(error)
        methods[prediction.method] = methods.get(prediction.method, 0) + 1
        rows.append({"shape": shape.to_dict(), "measured_ms": measured, "layout": best[index]["layout"],
                     "predicted_ms": prediction.latency_ms, "predicted_layout": prediction.layout,
                     "method": prediction.method, "error": error})
    summary = kernel_summary(errors, methods)
    summary.update(by_size([(row["error"], row["measured_ms"]) for row in rows]))
    summary["noise_floor"] = split_half_agreement([rounds[index] for index in range(len(shapes))], statistic)
    return summary, rows


def split_half_agreement(rounds: list[list], statistic=min) -> dict:
    """The kernel measurement's own noise floor: for each kernel timed in 4 rounds (``rounds``: each
    kernel's rounds in the order measured), how far ``statistic`` of its first two rounds is from
    ``statistic`` of its last two (the statistic its table time is: ``profiler.fastest_round`` of records,
    ``min`` of times), as the shares within ±10 % and ±5 % (all kernels, and those taking at least 5 and
    20 µs). A prediction cannot be expected to land within ±10 % of a measurement more often than two
    halves of that measurement land within ±10 % of each other."""
    pairs = [(statistic(times[:2]) / statistic(times[2:4]) - 1, statistic(times[:4]))
             for times in rounds if len(times) >= 4]
    if not pairs:
        return {}
    everything = np.abs([difference for difference, _ in pairs])
    return {"kernels": len(pairs), "within_10_percent": float(np.mean(everything <= 0.10)),
            "within_5_percent": float(np.mean(everything <= 0.05)), **by_size(pairs)}


def kernel_retest(rows: list[dict], again: list[dict]) -> dict:
    """How far a second measurement of the held-out kernels (``again``: the same shapes' rows) is from the
    first, as the shares within ±10 % and ±5 % (all kernels, those under 5 µs, and those taking at least 5
    and 20 µs). Unlike the split halves of one measurement, the two are minutes apart, as a profile's
    table and a later measurement are: the agreement a prediction from the table can hope for."""
    pairs = [(second["measured_ms"] / first["measured_ms"] - 1, first["measured_ms"])
             for first, second in zip(rows, again) if first["shape"] == second["shape"]]
    if not pairs:
        return {}
    everything = np.abs([difference for difference, _ in pairs])
    small = np.abs([difference for difference, ms in pairs if ms < 0.005])
    return {"kernels": len(pairs), "within_10_percent": float(np.mean(everything <= 0.10)),
            "within_5_percent": float(np.mean(everything <= 0.05)),
            "under_5_us": {"kernels": len(small),
                           "within_10_percent": float(np.mean(small <= 0.10)) if len(small) else None,
                           "within_5_percent": float(np.mean(small <= 0.05)) if len(small) else None},
            **by_size(pairs)}


def by_size(pairs: list[tuple[float, float]]) -> dict:
    """Shares within ±10 % and ±5 % of the kernels taking at least 5 µs and at least 20 µs ((error,
    measured ms) pairs): the kernels whose error a whole network feels. Below a few microseconds one
    timer tick or a cache line is a large share of the time."""
    summary = {}
    for limit in (0.005, 0.02):
        big = np.array([abs(error) for error, ms in pairs if ms >= limit])
        summary[f"at_least_{limit * 1e3:.0f}_us"] = {
            "kernels": len(big), "within_10_percent": float(np.mean(big <= 0.10)) if len(big) else None,
            "within_5_percent": float(np.mean(big <= 0.05)) if len(big) else None}
    return summary


def reading_aid(predicted_ms: list[float], rows: list[dict], families: tuple[str, ...]) -> dict:
    """The shares a benchmark reports, for other predictions of its networks (``rows``' order): a reading
    aid beside the figures (``at_speed_now``, ``at_calibration_now``), never instead of them."""
    errors = np.array(predicted_ms) / np.array([row["measured_ms"] for row in rows]) - 1
    return {"within_10_percent": float(np.mean(np.abs(errors) <= 0.10)),
            "within_5_percent": float(np.mean(np.abs(errors) <= 0.05)),
            "mean_absolute_percentage_error": float(100 * np.mean(np.abs(errors))),
            "median_signed_error": float(np.median(errors)),
            "per_family_median_signed_error": {
                family: float(np.median([e for e, row in zip(errors, rows) if row["family"] == family]))
                for family in families if any(row["family"] == family for row in rows)}}


def describe_aid(aid: dict) -> str:
    worst = max(aid["per_family_median_signed_error"].items(), key=lambda item: abs(item[1]))
    return (f"{aid['within_10_percent']:.0%} within ±10 %, {aid['within_5_percent']:.0%} within ±5 %, "
            f"MAPE {aid['mean_absolute_percentage_error']:.1f} %, median signed {aid['median_signed_error']:+.1%}, "
            f"furthest family {worst[0]} {worst[1]:+.1%}")


def bootstrap(values: np.ndarray, statistic, rng: np.random.Generator, resamples: int = 2000) -> list[float]:
    """95 % percentile interval of ``statistic`` over resamples (with replacement) of ``values``' rows."""
    values = np.asarray(values)
    draws = [statistic(values[rng.integers(0, len(values), len(values))]) for _ in range(resamples)]
    return [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]


def accuracy_figures(predicted: np.ndarray, measured: np.ndarray, rng: np.random.Generator) -> dict:
    """Within ±10 % and ±5 %, mean and median absolute error, median signed error, Spearman and Kendall,
    each with its bootstrap interval."""
    pairs = np.stack([predicted, measured], axis=1)

    def within(limit):
        return lambda p: float(np.mean(np.abs(p[:, 0] / p[:, 1] - 1) <= limit))

    def rank(kind):
        test = stats.spearmanr if kind == "spearman" else stats.kendalltau
        return lambda p: float(test(p[:, 0], p[:, 1])[0]) if len(p) > 2 else float("nan")

    figures = {
        "within_10_percent": within(0.10),
        "within_5_percent": within(0.05),
        "mean_absolute_percentage_error": lambda p: float(100 * np.mean(np.abs(p[:, 0] / p[:, 1] - 1))),
        "median_absolute_percentage_error": lambda p: float(100 * np.median(np.abs(p[:, 0] / p[:, 1] - 1))),
        "median_signed_error": lambda p: float(np.median(p[:, 0] / p[:, 1] - 1)),
        "spearman": rank("spearman"),
        "kendall_tau": rank("kendall"),
    }
    result = {"models": len(pairs)}
    for name, statistic in figures.items():
        result[name] = statistic(pairs)
        result[name + "_interval"] = bootstrap(pairs, statistic, rng) if len(pairs) > 2 else None
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="host")
    parser.add_argument("--count", type=int, default=168, help="held-out networks (the families in turn)")
    parser.add_argument("--families", default=None, metavar="NAMES",
                        help=f"comma-separated families to draw instead of the default 12 (also: "
                             f"{', '.join(POOLED_FAMILIES)}); results are per family either way")
    parser.add_argument("--kernels", type=int, default=150, help="held-out kernel shapes (0: none)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--retest", action="store_true", help="measure twice and report the agreement")
    parser.add_argument("--runtime", choices=("onnxruntime", "litert"), default="onnxruntime",
                        help="litert: float .tflite exports run by ai-edge-litert with XNNPACK, against a profile "
                             "from 'edgegrow profile --runtime litert' (--target)")
    parser.add_argument("--out", default=None, help="default bench/results/cost_model_accuracy[_litert].json")
    parser.add_argument("--exports", default=None, metavar="DIR",
                        help="keep each network's export in DIR and reuse it in later runs of the same set (the "
                             "168 exports take about 7 minutes; a run repeated for a quieter machine need not)")
    args = parser.parse_args(argv)
    args.out = args.out or f"bench/results/cost_model_accuracy{'_litert' if args.runtime == 'litert' else ''}.json"
    families = tuple(args.families.split(",")) if args.families else FAMILIES
    unknown = sorted(set(families) - set(FAMILIES) - set(POOLED_FAMILIES))
    if unknown:
        parser.error(f"unknown families {', '.join(unknown)}; choose from {', '.join(FAMILIES + POOLED_FAMILIES)}")
    torch.set_num_threads(1)
    target = load_target(args.target)
    started = time.time()
    models, skipped, networks = [], [], []
    reused = 0
    for index, (family, description, model, shape) in enumerate(held_out_set(args.count, args.seed, families)):
        example = torch.randn(1, *shape)
        cached = export_file(args.exports, args.runtime, args.seed, index, description, model) if args.exports else None
        reused += cached is not None and cached.is_file()
        try:
            session = session_of(model, example, args.runtime, cached)
        except ValueError as error:  # litert-torch cannot convert an op: reported, not hidden
            skipped.append({"family": family, "architecture": description, "why": str(error)})
            continue
        models.append((family, description, estimate(model, example, target), session))
        networks.append((model, example))
    print(f"{len(models)} networks exported in {time.time() - started:.0f} s ({len(skipped)} could not be"
          + (f"; {reused} read from {args.exports}" if args.exports else "") + ")", flush=True)

    # the profile's reference kernels, timed in the same rounds as the profiler timed them: how fast the
    # machine runs now against when the profile was made (reported beside the figures, never applied)
    references = ([Session(model) for model in reference_models([shape for shape, _ in target.speed_reference])]
                  if args.runtime == "onnxruntime" and target.speed_reference else [])
    # and its calibration networks, as the profiler timed them: what the calibration's moment adds
    try:
        chains, calibration_profiled_ms, calibration_models = calibration_networks(target, args.runtime)
    except CalibrationNetworksChanged as error:  # reported, and the comparison goes on without them
        print(error, flush=True)
        chains, calibration_profiled_ms, calibration_models = [], [], []
        calibration_skipped = str(error)
    else:
        calibration_skipped = None
    calibration_sessions = [Session(model, args.runtime, xnnpack=True) for model in calibration_models]

    def measure_all() -> dict:
        return measure([session.run for *_, session in models] + [session.run for session in references]
                       + [session.run for session in calibration_sessions],
                       args.rounds, repeats=10, sample_ms=1.0, warmup_ms=5,
                       progress=lambda done, total: print(f"round {done}/{total} done", flush=True))

    protocol = measure_all()
    timings = protocol["models"][:len(models)]
    reference_timings = protocol["models"][len(models):len(models) + len(references)]
    speed = None
    if references:
        speed = speed_ratio([ms for _, ms in target.speed_reference],
                            [timing["fast_ms"] for timing in reference_timings])
        print(f"this machine ran the profile's {len(references)} reference kernels at {speed:.3f}× their time when "
              "it was profiled", flush=True)
    calibration_now = None
    if calibration_sessions:
        now_ms = [timing["fast_ms"] for timing in protocol["models"][len(models) + len(references):]]
        ratios = np.array(now_ms) / np.array(calibration_profiled_ms)
        calibration_now = {"networks": len(now_ms), "speed_vs_profile": speed_ratio(calibration_profiled_ms, now_ms),
                           "speed_vs_profile_range": [float(ratios.min()), float(ratios.max())],
                           "profile_scale": target.calibration_scale, "scale_now": scale_now(target, chains, now_ms),
                           "profiled_ms": calibration_profiled_ms, "now_ms": now_ms}
        print(f"this machine ran the profile's {len(now_ms)} calibration networks at "
              f"{calibration_now['speed_vs_profile']:.3f}× their time when it was profiled (median; "
              f"{ratios.min():.3f}–{ratios.max():.3f}): timed now they would give a calibration scale of "
              f"{calibration_now['scale_now']:.4f}, the profile's is {target.calibration_scale:.4f}", flush=True)
    retest = None
    if args.retest:
        again = np.array([timing["fast_ms"] for timing in measure_all()["models"][:len(models)]])
        agreement = np.abs(again / np.array([timing["fast_ms"] for timing in timings]) - 1)
        retest = {"within_10_percent": float(np.mean(agreement <= 0.10)),
                  "within_5_percent": float(np.mean(agreement <= 0.05)),
                  "median_absolute_percentage_difference": float(100 * np.median(agreement))}
    rows = []
    for (family, description, report, _), timing in zip(models, timings):
        measured = timing["fast_ms"]
        error = report.latency_ms / measured - 1
        methods: dict[str, int] = {}
        for row in report.kernels:
            methods[row.latency_method] = methods.get(row.latency_method, 0) + 1
        rows.append({"family": family, "architecture": description, "macs": report.macs, "measured_ms": measured,
                     "measured_median_ms": timing["latency_ms"],
                     "rounds_fast_ms": [round(ms, 5) for ms in timing["rounds_fast_ms"]],
                     "split_half": timing["split_half"], "untrusted": noise_verdict(protocol, timing),
                     "predicted_ms": report.latency_ms, "error": error, "kernels": len(report.kernels),
                     "kernel_methods": methods})
        print(f"{error:+7.1%}  measured {measured:8.4f} ms  predicted {report.latency_ms:8.4f} ms  "
              f"{description[:90]}")
    halves = [row["split_half"] for row in rows if row["split_half"] is not None]
    noise = {"rounds": protocol["rounds"], "slow_rounds": protocol["slow_rounds"],
             "median_split_half": statistics.median(halves) if halves else None,
             "max_split_half": max(halves) if halves else None,
             "models_too_noisy": sum(row["untrusted"] is not None for row in rows)}
    print(f"noise floor: the halves of the rounds agree within {noise['median_split_half']:.1%} (median over "
          f"models, worst {noise['max_split_half']:.1%}); {noise['slow_rounds']} of {noise['rounds']} rounds slow; "
          f"{noise['models_too_noisy']} models too noisy to trust" if halves else "noise floor: n/a")
    rng = np.random.default_rng(args.seed)

    def figures(selected: list[dict]) -> dict:
        return accuracy_figures(np.array([r["predicted_ms"] for r in selected]),
                                np.array([r["measured_ms"] for r in selected]), rng)

    per_family = {family: figures([r for r in rows if r["family"] == family]) for family in families}
    sizes = {"under 0.05 ms": lambda ms: ms < 0.05, "0.05-0.5 ms": lambda ms: 0.05 <= ms < 0.5,
             "0.5 ms and over": lambda ms: ms >= 0.5}
    per_size = {name: figures(selected) for name, test in sizes.items()
                if (selected := [r for r in rows if test(r["measured_ms"])])}
    contention = [row["measured_median_ms"] / row["measured_ms"] for row in rows]
    summary = {
        "target": target.name, "architectures": len(rows), "families": len(families),
        **figures(rows),
        "worst_error": float(max(rows, key=lambda r: abs(r["error"]))["error"]),
        "measured_ms_range": [min(r["measured_ms"] for r in rows), max(r["measured_ms"] for r in rows)],
        "median_of_median_over_fastest": statistics.median(contention),
        "max_of_median_over_fastest": max(contention),
        "measurement_retest": retest,
        "noise_floor": noise,
        "speed_vs_profile": speed,
        "runtime": args.runtime, "not_exported": skipped,
        "command": reproducing_command(argv if argv is not None else sys.argv[1:]),
    }
    print(f"{'family':16s} {'n':>3s} {'±10 %':>6s} {'±5 %':>6s} {'median signed [95 % interval]':>32s}")
    for name, figure in {**per_family, **per_size, "all": summary}.items():
        low, high = figure["median_signed_error_interval"] or (float("nan"), float("nan"))
        print(f"{name:16s} {figure['models']:3d} {figure['within_10_percent']:6.0%} {figure['within_5_percent']:6.0%} "
              f"{figure['median_signed_error']:+10.1%} [{low:+.1%}, {high:+.1%}]")
    print(f"Spearman {summary['spearman']:.3f}, Kendall tau {summary['kendall_tau']:.3f}; "
          f"MAPE {summary['mean_absolute_percentage_error']:.1f} %")
    if speed is not None:
        # beside the figures, never instead of them: the predictions scaled by how much slower (or faster)
        # the reference kernels ran now than when the profile was made, so that runs made in different
        # states of a drifting machine can be read side by side
        at_speed = summary["at_speed_now"] = {"speed_vs_profile": speed, **reading_aid(
            [row["predicted_ms"] * speed for row in rows], rows, families)}
        print(f"with the predictions × {speed:.3f} (the reference kernels' speed now against the profile's; not a "
              f"claim, a reading aid): {describe_aid(at_speed)}")
    if calibration_now is not None:
        # the same reading aid for the calibration's moment: every network priced again with the scale its
        # networks give timed now (the table and the per-node offset as profiled)
        recalibrated = dataclasses.replace(target, calibration_scale=calibration_now["scale_now"])
        calibration_now.update(reading_aid([estimate(model, example, recalibrated).latency_ms
                                            for model, example in networks], rows, families))
        summary["at_calibration_now"] = calibration_now
        print(f"with the calibration's networks timed now (scale {calibration_now['scale_now']:.4f}; not a claim, a "
              f"reading aid): {describe_aid(calibration_now)}")
    elif calibration_skipped:
        summary["at_calibration_now"] = {"skipped": calibration_skipped}
    kernels, kernel_rows = None, []
    if args.kernels:
        reports = [report for _, _, report, _ in models]
        kernels, kernel_rows = held_out_kernels(target, reports, args.kernels, args.seed, args.runtime)
        if args.retest:  # the same shapes measured again: what a table timed at another moment can agree with
            again = kernels["retest"] = kernel_retest(
                kernel_rows, held_out_kernels(target, reports, args.kernels, args.seed, args.runtime)[1])
            if again:
                small = again["under_5_us"]["within_10_percent"]
                print(f"kernels measured again: {again['within_10_percent']:.0%} within ±10 % of the first "
                      f"measurement" + (f" ({small:.0%} of those under 5 µs)" if small is not None else ""))
    summary["seconds"] = round(time.time() - started, 1)
    cross_validation = table_cross_validation(target)
    cross_validation["noise_floor"] = grid_noise_floor(target, Path(known_targets().get(args.target, args.target)))
    shown = ("all", "at_least_5_us", "at_least_20_us", "noise_floor")
    print(json.dumps({"held_out_kernels": kernels and {key: kernels[key] for key in shown},
                      "kernels_5_fold": {key: cross_validation[key] for key in shown}}, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "per_family": per_family, "per_size": per_size,
                               "held_out_kernels": kernels, "kernels_5_fold": cross_validation,
                               "rows": rows, "kernel_rows": kernel_rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
