"""Model-level calibration of a measured latency table.

A table holds what each kernel's node takes inside onnxruntime's profiler. Summing them over a whole
model misses what the profiler adds to every node it times and what a model does between kernels.
The profiler therefore also times random multi-kernel networks ("chains": stems, depthwise-separable,
inverted-residual and residual blocks with odd channel counts, strides and resolutions, a third of
them small networks of one to three blocks of 4–16 channels; a fixed seed of their own, never the
architectures a benchmark holds out) and fits two numbers by least squares
on relative error:

    measured − model overhead ≈ scale × (Σ kernel table latencies + layout changes) + per_kernel_ms × nodes

where the nodes are the kernels the runtime runs on their own (not an add or pad folded into a
convolution) and the layout changes between them: each is a node the profiler timed with its own
overhead (about 2 µs on an x86 host, measured against wall-clock time of single-kernel models). The
offset keeps its historical key, ``per_kernel_ms``.

``LatencyModel`` applies them to every kernel it predicts from the table.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from .kernel_shape import KernelShape
from .speed_reference import speed_ratio

Chain = tuple[list[KernelShape], list[list[int]]]
Timing = TypeVar("Timing")

# a profile run again times its calibration networks again; more than 5 % off (median) the times the profile kept
# from its last run, the machine was not running as it was then, and they are timed again, at most 3 times in all
RETIME_TOLERANCE = 0.05
TIMING_TRIES = 3


def random_chain(rng: random.Random) -> Chain:
    """One random network as kernel shapes and, per kernel, the kernels it reads (-1: the input)."""
    image = rng.random() < 0.6
    c, h, w = (3, *(2 * [rng.choice((32, 48, 64, 96, 128))])) if image else \
        (1, *rng.choice(((49, 10), (99, 40), (61, 13), (32, 20))))
    shapes: list[KernelShape] = []
    inputs: list[list[int]] = []

    def add(shape: KernelShape, sources: list[int]) -> int:
        shapes.append(shape)
        inputs.append(sources)
        return len(shapes) - 1

    small = rng.random() < 0.3  # a few tens of microseconds: the per-node costs weigh most there
    width = rng.randint(4, 16) if small else rng.randint(6, 64)
    last = add(KernelShape.same("conv", c, width, (h, w), (3, 3) if image else (10, 4), 2), [-1])
    c, h, w = shapes[last].output
    style = rng.choice(("separable", "inverted", "residual"))
    for _ in range(rng.randint(1, 3) if small else rng.randint(4, 12)):
        stride = 2 if rng.random() < 0.3 and min(h, w) > 2 else 1
        out = max(4, int(c * rng.uniform(0.7, 1.8)) if stride == 2 else int(c * rng.uniform(0.6, 1.4)))
        block_input = last
        if style == "separable":
            last = add(KernelShape.same("depthwise", c, c, (h, w), (3, 3), stride), [last])
            c, h, w = shapes[last].output
            last = add(KernelShape.same("pointwise", c, out, (h, w), (1, 1), 1), [last])
        elif style == "inverted":
            hidden = c * rng.choice((3, 4, 6))
            last = add(KernelShape.same("pointwise", c, hidden, (h, w), (1, 1), 1, "relu6"), [last])
            last = add(KernelShape.same("depthwise", hidden, hidden, (h, w), (3, 3), stride, "relu6"), [last])
            h2, w2 = shapes[last].output[1:]
            out = c if stride == 1 and rng.random() < 0.6 else out
            last = add(KernelShape.same("pointwise", hidden, out, (h2, w2), (1, 1), 1, None), [last])
            if stride == 1 and out == c:
                last = add(KernelShape("add", (c, h, w), (c, h, w)), [last, block_input])
        else:
            last = add(KernelShape.same("conv", c, out, (h, w), (3, 3), stride), [last])
            h2, w2 = shapes[last].output[1:]
            last = add(KernelShape.same("conv", out, out, (h2, w2), (3, 3), 1, None), [last])
            if stride == 1 and out == c:
                last = add(KernelShape("add", (c, h, w), (c, h, w), activation="relu"), [last, block_input])
        c, h, w = shapes[last].output
        if sum(shape.macs for shape in shapes) > 60_000_000:
            break
    last = add(KernelShape("global_pool", (c, h, w), (c, 1, 1)), [last])
    add(KernelShape("fully_connected", (c, 1, 1), (rng.choice((2, 10, 12, 100)), 1, 1)), [last])
    return shapes, inputs


def random_chains(count: int, seed: int = 7) -> list[Chain]:
    rng = random.Random(seed)
    return [random_chain(rng) for _ in range(count)]


def chains_digest(chains: list[Chain]) -> str:
    """A digest of networks' kernels and wiring (16 hex digits), kept in a profile beside its calibration networks'
    times: a later edgegrow whose ``random_chains`` differs would rebuild other networks from the same seed, and
    timing those against the profile's times would compare different networks. It covers the kernels' kinds, shapes,
    strides and activations and what each reads, not the model files the chain writers make of them."""
    spec = [[[[shape.kind, list(shape.input), list(shape.output), list(shape.kernel), list(shape.stride),
               shape.activation] for shape in shapes], inputs] for shapes, inputs in chains]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


def fit_calibration(table_ms: list[float], kernel_counts: list[int], measured_ms: list[float],
                    model_overhead_ms: float, per_node_ms: float | None = None) -> tuple[float, float]:
    """(scale, per_kernel_ms) minimising the relative error of
    scale × table_ms + per_kernel_ms × nodes + overhead against ``measured_ms`` (``kernel_counts``:
    each network's node count, ``LatencyModel.nodes``). With ``per_node_ms`` given (measured), only
    the scale is fitted and the offset is that."""
    table = np.asarray(table_ms, float)
    kernels = np.asarray(kernel_counts, float)
    measured = np.asarray(measured_ms, float)
    weights = 1.0 / measured
    if per_node_ms is not None:
        target = (measured - model_overhead_ms - per_node_ms * kernels) * weights
        (scale,), *_ = np.linalg.lstsq((table * weights)[:, None], target, rcond=None)
        return float(scale), float(per_node_ms)
    design = np.stack([table, kernels], axis=1) * weights[:, None]
    (scale, per_kernel), *_ = np.linalg.lstsq(design, (measured - model_overhead_ms) * weights, rcond=None)
    return float(scale), float(per_kernel)


def table_sums(target, chains: list[Chain]) -> tuple[list[float], list[int]]:
    """Per network of ``chains``: what ``fit_calibration`` fits, as ``target`` without its calibration
    prices it: the summed table latency less the per-model overhead (ms), and the node count."""
    from .latency import LatencyModel

    uncalibrated = LatencyModel(target.without_calibration())
    overhead_ms = uncalibrated.target.model_overhead_ms.value
    table_ms, counts = [], []
    for shapes, inputs in chains:
        _, _, total = uncalibrated.model(shapes, inputs)
        table_ms.append(total - overhead_ms)
        counts.append(uncalibrated.nodes(shapes, inputs))
    return table_ms, counts


def scale_now(target, chains: list[Chain], measured_ms: list[float]) -> float:
    """The scale ``target``'s calibration would have with its networks ``chains`` timed now
    (``measured_ms``), its per-node offset kept: what re-timing the calibration alone would change."""
    table_ms, counts = table_sums(target, chains)
    scale, _ = fit_calibration(table_ms, counts, measured_ms, target.model_overhead_ms.value,
                               target.calibration_per_kernel_ms)
    return scale


def kept_times(profile_path: str | Path, chains: list[Chain], runtime: str, threads: int) -> list[float] | None:
    """The times (ms) the profile at ``profile_path`` keeps for its calibration networks where it timed ``chains`` (as
    many, the same digest) with ``runtime`` on ``threads`` threads: the times its last steady calibration took
    (``Target.calibration_kept_ms`` where its last run stayed off them in every try, else ``calibration_measured_ms``).
    None where there is no such profile, it is not a valid one (``parse_target``: every time positive), or it timed
    other networks or another way."""
    from .target import parse_target

    try:
        profile = parse_target(json.loads(Path(profile_path).read_text()), str(profile_path))
    except (OSError, ValueError):
        return None
    times = list(profile.calibration_kept_ms or profile.calibration_measured_ms)
    same = (profile.runtime == runtime and profile.threads == threads and len(times) == len(chains)
            and profile.calibration_networks_sha256 == chains_digest(chains))
    return times if same else None


def steady_timing(time_once: Callable[[], Timing], network_ms: Callable[[Timing], list[float]],
                  kept_ms: list[float] | None, tries: int | None = None,
                  tolerance: float = RETIME_TOLERANCE) -> tuple[Timing, dict | None]:
    """Time a profile's calibration (``time_once``; ``network_ms``: its networks' times in it) and, where the profile
    kept times from an earlier run (``kept_ms``) and the networks ran more than ``tolerance`` off them at the median,
    time it again, ``tries`` (``TIMING_TRIES``) times at most. The run-level probe cannot see a machine that stays slow
    for the whole half minute (2026-12-08: a litert profile's 40 networks ran 12.6 % slower in one run, the halves of
    its rounds agreeing within 0.6 %, and within 0.1 % of their earlier times in the next; its scale went 1.008 -> 1.129
    -> 1.008). Where no try is within ``tolerance`` the fastest is kept, not the closest: load slows a shared machine
    down, it does not speed it up.

    Returns that timing and {"tries", "now_over_kept": the median of now / kept (``speed_reference.speed_ratio``),
    "steady": whether within ``tolerance``, and where not "kept_ms", the times it was compared with} (None without
    kept times)."""
    tries = TIMING_TRIES if tries is None else tries
    best, best_ratio = None, None
    for attempt in range(1, tries + 1):
        timing = time_once()
        if kept_ms is None:
            return timing, None
        ratio = speed_ratio(kept_ms, network_ms(timing))
        if best_ratio is None or ratio < best_ratio:
            best, best_ratio = timing, ratio
        if abs(ratio - 1) <= tolerance:
            return timing, {"tries": attempt, "now_over_kept": ratio, "steady": True}
    return best, {"tries": tries, "now_over_kept": best_ratio, "steady": False, "kept_ms": list(kept_ms)}


def drift_words(drift: dict | None) -> str:
    """The calibration source's words on ``steady_timing``'s drift (empty without kept times)."""
    if drift is None:
        return ""
    words = (f"; timed {drift['tries']} time(s): the networks ran at {drift['now_over_kept']:.3f}x the times this "
             "profile kept from its last run (median)")
    if not drift["steady"]:
        words += f", beyond +-{RETIME_TOLERANCE:.0%} in every try, so it is calibrated at this speed"
    return words


def drift_warning(drift: dict | None, profile_path: str | Path) -> str | None:
    """One line for the user where the calibration stayed off its kept times in every try (None else)."""
    if drift is None or drift["steady"]:
        return None
    ratio = drift["now_over_kept"]
    return (f"the calibration networks ran {abs(ratio - 1):.1%} {'slower' if ratio > 1 else 'faster'} than at this "
            f"profile's last run in each of {drift['tries']} timings, so {profile_path} is calibrated at this speed: "
            "if the machine was busy, run the same command again later (it compares with the earlier times again); if "
            f"it has changed, delete {profile_path}.measurements.jsonl to measure its table again too")
