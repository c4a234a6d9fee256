"""``edgegrow profile --runtime litert``: the profiler's grid through ai-edge-litert on this machine.

The same kernel shapes as the onnxruntime profile (``profiler.profile_grid``), the -inf and zero paddings litert-torch
writes before some max pools and strided convs (``profiler.max_pad_grid``, ``pad_grid``), the channel-last MEANs of
squeeze-and-excitation gates (``profiler.mean_nhwc_grid``) and transposed means on maps whose planes alias in the L1
cache (``profiler.transposed_mean_grid``), each as a float32
single-kernel .tflite (``kernel_tflite``) run by TFLite's interpreter with its default XNNPACK
delegate: the kernels a phone's TFLite runs for a float model, on this machine's CPU. TFLite's Python
interpreter has no per-op profiler, so a kernel's time is its model's wall-clock time (the
measurement protocol's fast figure) less the per-model overhead (a one-ReLU model timed in the same
round). Whole networks built the same way (``chain_tflite`` of ``calibration.random_chains``) fit the
calibration's scale and per-node offset; chains of 1–40 tiny ops are timed in the same rounds and their slope
recorded, not used (see ``profile_here_litert``).

Conversions take about a second each, so the files are kept in ``<profile>.tflite/`` and
measurements in ``<profile>.measurements.jsonl``: an interrupted run resumes from both; a finished
one rebuilds the profile without converting or measuring its kernels again (delete them to measure
afresh). The calibration's networks and chains are timed again on every run (about a minute), so a
rebuilt profile's calibration is the machine's now (on 2026-12-07 rebuilds moved the scale 0.992 → 0.999), up to three
times where they ran more than 5 % off the times the profile kept from its last run (``calibration.steady_timing``).
"""
from __future__ import annotations

import datetime
import json
import random
from collections.abc import Callable
from pathlib import Path

from .kernel_onnx import NODE_CHAIN_LENGTHS
from .kernel_shape import KernelShape
from .kernel_tflite import chain_tflite, computed_shape, kernel_tflite, node_chain_tflite, overhead_tflite
from .profiler import (
    _block_channels,
    calibrate,
    device_profile,
    fastest_rounds,
    node_overhead_ms,
    profile_grid,
    read_rounds,
    shape_id,
    write_json_atomically,
)
from .runner import (
    Session,
    append_line,
    machine_description,
    machine_tag,
    measured_ids,
    time_interleaved,
    time_session,
)
from .target import parse_target


def chain_key(index: int) -> str:
    """The cache key of calibration network ``index`` (``calibration.random_chains`` order) in a profile's cache."""
    return f"chain-{index}"


def cached_model(folder: Path, key: str, make: Callable[[], bytes]) -> bytes:
    """The .tflite file ``key`` in ``folder`` (a profile's cache), made by ``make`` and written atomically
    there first if it is not yet."""
    path = folder / f"{key}.tflite"
    if path.is_file():
        return path.read_bytes()
    content = make()
    temporary = path.with_name(path.name + ".partial")
    temporary.write_bytes(content)
    temporary.replace(path)
    return content


def _litert_version() -> str:
    import ai_edge_litert

    return getattr(ai_edge_litert, "__version__", "unknown")


def measure_grid_litert(shapes: list[KernelShape], partial_path: Path, files: Path, threads: int, rounds: int,
                        progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Each shape's wall-clock time in ``rounds`` rounds (a seeded random order each), less the
    one-ReLU model's time measured at the start of that round. Returns every round's record. Shapes
    no PyTorch layer computes (a pooling window larger than its input) are left out."""
    files.mkdir(parents=True, exist_ok=True)
    computed = {}
    for shape in shapes:
        try:
            computed[shape] = computed_shape(shape)
        except ValueError:  # e.g. a 2×2 pooling window on a 1×1 input: no PyTorch layer to convert
            continue
    shapes = list(computed)
    done = measured_ids(partial_path)
    todo = [(round_index, shape) for round_index in range(rounds) for shape in shapes
            if f"{shape_id(shape)}@{round_index}" not in done]
    overhead = Session(cached_model(files, "overhead", overhead_tflite), "litert", threads, xnnpack=True)
    order = random.Random(len(todo))
    by_round: dict[int, list[KernelShape]] = {}
    for round_index, shape in todo:
        by_round.setdefault(round_index, []).append(shape)
    count = 0
    for round_index, round_shapes in sorted(by_round.items()):
        order.shuffle(round_shapes)
        overhead_ms = time_session(overhead, warmup_ms=5.0, repeats=15, sample_ms=0.5)["fast_ms"]
        for shape in round_shapes:
            content = cached_model(files, shape_id(shape), lambda shape=shape: kernel_tflite(shape))
            actual = computed[shape]
            wall = time_session(Session(content, "litert", threads, xnnpack=True), warmup_ms=2.0, repeats=9,
                                sample_ms=0.5)
            append_line(partial_path, {"id": f"{shape_id(shape)}@{round_index}", "shape": actual.to_dict(),
                                       "wall_ms": wall["fast_ms"], "overhead_ms": overhead_ms,
                                       "kernel_ms": max(wall["fast_ms"] - overhead_ms, 0.05 * wall["fast_ms"])})
            count += 1
            if progress is not None:
                progress(count, len(todo))
    return read_rounds(partial_path, shapes, ("kernel_ms", "shape"))


def profile_here_litert(name: str, out: str | Path, threads: int = 1, quick: bool = False,
                        progress: Callable[[int, int], None] | None = None) -> dict:
    """Measure the grid through ai-edge-litert (XNNPACK) on this machine and write the profile."""
    from .calibration import kept_times, random_chains, steady_timing

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".measurements.jsonl")
    files = out.with_name(out.name + ".tflite")
    records = measure_grid_litert(profile_grid(quick, "litert"), partial, files, threads, 2 if quick else 4, progress)
    fastest = fastest_rounds(records)
    entries = list({json.dumps(r["shape"], sort_keys=True): {**r["shape"], "latency_ms": round(r["kernel_ms"], 6),
                                                              "layout": "plain"}
                    for r in fastest}.values())
    chains = random_chains(12 if quick else 40)
    rounds = 4 if quick else 10
    sessions = [Session(cached_model(files, chain_key(index), lambda c=chain: chain_tflite(*c)), "litert", threads,
                        xnnpack=True) for index, chain in enumerate(chains)]
    node_chains = [Session(cached_model(files, f"nodes-{count}", lambda count=count: node_chain_tflite(count)),
                           "litert", threads, xnnpack=True) for count in NODE_CHAIN_LENGTHS]
    overhead_session = Session(cached_model(files, "overhead", overhead_tflite), "litert", threads, xnnpack=True)
    timings, drift = steady_timing(lambda: time_interleaved(sessions + node_chains + [overhead_session], rounds),
                                   lambda timed: [timing["fast_ms"] for timing in timed[:len(chains)]],
                                   kept_times(out, chains, "litert", threads))
    chain_timings, node_timings, overhead = timings[:len(chains)], timings[len(chains):-1], timings[-1]
    today = datetime.date.today().isoformat()
    machine = machine_description()
    where = f"measured here by 'edgegrow profile --runtime litert' on {today} {machine_tag()}"
    profile = device_profile(
        name, "cpu", "litert", _litert_version(), threads, "float32", entries, overhead["fast_ms"], where,
        f"{where}: {len(fastest)} single-kernel .tflite models run with XNNPACK, fastest of "
        f"{2 if quick else 4} rounds, each the model's wall-clock time less a one-ReLU model's")
    profile["description"] = (f"This machine ({machine['processor']}, {machine['cpu_count']} CPUs) running TFLite "
                              f"(ai-edge-litert, XNNPACK) float32 with {threads} thread(s)"
                              f"{' (quick grid)' if quick else ''}.")
    profile["model_overhead_ms"]["source"] = (f"{where}: a one-ReLU model timed in the calibration's rounds "
                                              f"(median {overhead['latency_ms']:.4f} ms)")
    # no layout changes between TFLite kernels; XNNPACK packs channels in SIMD-wide steps
    # (the SIMD width of this machine's float kernels: 16 floats with AVX-512, 8 without)
    profile["latency"]["layout"] = {"rule": "none", "block_channels": _block_channels()}
    parse_target(profile, f"<profile {name}>")
    # the per-node offset is fitted on the networks: on 2026-12-07 the node chains' slope moved from 0.028 to 0.064 us a
    # node within an hour while 168 held-out networks (the dev seed) timed again moved 0.05 % at the median and those
    # of 2-8 us under 0.25 us; with that slope those were priced +4.8 % over at the median, with the offset fitted on
    # the calibration's networks (0.004-0.010 us over three fits at the two moments) -0.7 to -1.3 %
    profile = calibrate(profile, chains, [timing["fast_ms"] for timing in chain_timings], rounds,
                        [timing["split_half"] for timing in chain_timings],
                        node_slope_ms=node_overhead_ms(node_timings), drift=drift)
    write_json_atomically(out, profile)
    return profile
