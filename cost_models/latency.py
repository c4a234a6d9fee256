"""Latency of kernels and of whole models on a target, from its profile.

For one kernel, in order:
1. ``table``: the exact shape was measured.
2. ``interpolated``: shapes that differ only in one channel count were measured on both sides;
   channels are first rounded up to the runtime's channel step, so counts within one SIMD step cost
   the same and the step up is where the table says it is (64→65 channels is a step, 63→64 is not).
3. ``fitted``: a per-kind, per-layout linear model over the table (padded MACs, MACs, tensor sizes,
   weights; least squares on relative error, non-negative) scaled by how far the table's nearest
   shapes sit from that line.
4. ``analytic``: profiles without a table: padded MACs at the kind's MAC rate plus a per-kernel
   overhead.
Table latencies (1–3) pass through the profile's calibration (scale and per-kernel offset fitted on
whole networks, see ``calibration``).
Every kernel is at least its roofline bound, max(MACs / peak MAC rate, bytes / bandwidth); a kind
the profile cannot cost at all (``unknown``) gets the roofline and is flagged.

A whole model is its kernels, plus the layout changes between them the runtime makes
(onnxruntime's NCHWc blocked layout: see ``blocked_layout``), plus the per-model overhead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .kernel_shape import CHANNELWISE_KINDS, WEIGHTED_KINDS, KernelShape
from .target import Target


@dataclass(frozen=True)
class KernelLatency:
    latency_ms: float
    method: str  # table, interpolated, fitted, analytic, roofline
    roofline_ms: float
    layout: str = "plain"


def _padded(channels: int, step: int) -> int:
    return -(-channels // step) * step


def padded_shape(shape: KernelShape, step: int) -> KernelShape:
    """The kernel with channels rounded up to SIMD groups of ``step``: output channels always, input
    channels too except the few of a stem (fewer than ``step``: runtimes read those directly rather
    than padding them to a full group). What analytic profiles charge MACs for."""
    c_in = shape.input[0]
    c_in = _padded(c_in, step) if c_in >= step and shape.kind != "depthwise" else None
    return shape.with_channels(c_in, _padded(shape.output[0], step))


def blocked_layout(shape: KernelShape, block: int) -> bool:
    """Whether onnxruntime (x86, graph optimisation level ALL) runs the kernel in its NCHWc layout.

    Observed with ``onnxruntime_node_times`` on single-kernel models and recorded in every entry of
    a measured table (``layout``); tests check this rule against the table.
    """
    c_in = shape.input[0]
    if shape.kind in ("conv", "pointwise"):
        return c_in < block or c_in % 4 == 0
    if shape.kind == "depthwise":
        return c_in % 4 == 0
    if shape.kind in ("pool", "global_pool"):
        return c_in % block == 0
    return False


class LatencyModel:
    """Kernel and model latency for one target. Building it fits the fallback models (milliseconds)."""

    def __init__(self, target: Target):
        self.target = target
        self.step = max(1, target.layout_block_channels if target.entries else
                        (target.analytic.channel_step if target.analytic else 1))
        self._exact = {entry.shape: entry for entry in target.entries}
        self._lines: dict[tuple, list] = {}
        for entry in target.entries:
            for axis, key in _line_keys(entry.shape):
                self._lines.setdefault(key, []).append((_channel(entry.shape, axis), entry))
        self._fits = {}
        groups: dict[tuple, list] = {}
        for entry in target.entries:
            groups.setdefault((entry.shape.kind, entry.layout), []).append(entry)
        for key, entries in groups.items():
            self._fits[key] = _Fit(entries, self.step)

    # --- one kernel -------------------------------------------------------------------------------
    def layout(self, shape: KernelShape) -> str:
        if self.target.layout_rule == "onnxruntime-nchwc" and blocked_layout(shape, self.target.layout_block_channels):
            return "blocked"
        return "plain"

    def roofline_ms(self, shape: KernelShape) -> float:
        bytes_moved = shape.traffic_bytes(self.target.bytes_per_element)
        return 1e3 * max(shape.macs / self.target.peak_macs_per_s.value,
                         bytes_moved / self.target.memory_bandwidth_bytes_per_s.value)

    def kernel(self, shape: KernelShape) -> KernelLatency:
        roofline = self.roofline_ms(shape)
        layout = self.layout(shape)
        entry = self._exact.get(shape)
        if entry is not None:
            return KernelLatency(self._calibrated(entry.latency_ms, roofline), "table", roofline, entry.layout)
        interpolated = self._interpolate(shape, layout)
        if interpolated is not None:
            return KernelLatency(self._calibrated(interpolated, roofline), "interpolated", roofline, layout)
        fit = self._fits.get((shape.kind, layout))
        if fit is not None and fit.usable:
            return KernelLatency(self._calibrated(fit.predict(shape), roofline), "fitted", roofline, layout)
        analytic = self.target.analytic
        if analytic is not None and shape.kind != "unknown":
            return KernelLatency(max(self._analytic(shape), roofline), "analytic", roofline, layout)
        return KernelLatency(roofline, "roofline", roofline, layout)

    def _calibrated(self, table_ms: float, roofline_ms: float) -> float:
        """A table latency as it shows in a whole model (the profile's calibration), never below the roofline."""
        target = self.target
        return max(target.calibration_scale * table_ms + target.calibration_per_kernel_ms, roofline_ms, 1e-6)

    def _analytic(self, shape: KernelShape) -> float:
        analytic = self.target.analytic
        if shape.kind in WEIGHTED_KINDS:
            padded = padded_shape(shape, self.step)
            rate = analytic.macs_per_s.get(shape.kind) or analytic.macs_per_s.get("default")
            if rate:
                return 1e3 * padded.macs / rate + analytic.per_kernel_overhead_ms
        bytes_moved = shape.traffic_bytes(self.target.bytes_per_element)
        return 1e3 * bytes_moved / analytic.bytes_per_s_elementwise + analytic.per_kernel_overhead_ms

    def _interpolate(self, shape: KernelShape, layout: str) -> float | None:
        best = None
        for axis, key in _line_keys(shape):
            points = [(c, e) for c, e in self._lines.get(key, ()) if e.layout == layout]
            if not points:
                continue
            channels = _channel(shape, axis)
            target_padded = _padded(channels, self.step)
            same_step = [(abs(c - channels), e) for c, e in points if _padded(c, self.step) == target_padded]
            if same_step:
                value = min(same_step, key=lambda pair: pair[0])[1].latency_ms
            else:
                below = [(c, e) for c, e in points if _padded(c, self.step) < target_padded]
                above = [(c, e) for c, e in points if _padded(c, self.step) > target_padded]
                if not below or not above:
                    continue
                (c_lo, e_lo), (c_hi, e_hi) = max(below, key=lambda p: p[0]), min(above, key=lambda p: p[0])
                p_lo, p_hi = _padded(c_lo, self.step), _padded(c_hi, self.step)
                if p_hi - p_lo > 4 * self.step:  # too far apart to trust a straight line
                    continue
                weight = (target_padded - p_lo) / (p_hi - p_lo)
                value = e_lo.latency_ms + weight * (e_hi.latency_ms - e_lo.latency_ms)
            best = value if best is None else min(best, value)
        return best

    # --- a whole model ------------------------------------------------------------------------------
    def model(self, shapes: list[KernelShape], inputs: list[list[int]]) -> tuple[list[KernelLatency], float, float]:
        """Per-kernel latencies, the layout-change time and the total (ms) of kernels in execution order.

        ``inputs[i]`` are the indices of the kernels kernel i reads (-1: the model input).
        """
        results = [self.kernel(shape) for shape in shapes]
        if self.target.layout_rule != "onnxruntime-nchwc":
            return results, 0.0, sum(r.latency_ms for r in results) + self.target.model_overhead_ms.value
        layouts = [r.layout for r in results]
        block = self.target.layout_block_channels
        for index, shape in enumerate(shapes):
            if shape.kind == "add" and inputs[index] and all(j >= 0 and layouts[j] == "blocked" for j in inputs[index]):
                layouts[index] = "blocked"  # onnxruntime folds the add (and its ReLU) into the blocked conv
                per_element = self.target.reorder_ms_per_element
                results[index] = KernelLatency(shape.output_elements * per_element, "fused", 0.0, "blocked")
            if shape.kind == "pad" and len(shapes) > index + 1 and shapes[index + 1].kind in ("conv", "depthwise",
                                                                                               "pointwise", "pool"):
                layouts[index] = "plain"  # onnxruntime folds a zero pad into the conv that reads it
                results[index] = KernelLatency(0.0, "fused", 0.0, "plain")
        conversions: set[tuple[int, str]] = set()
        for index, shape in enumerate(shapes):
            wanted = layouts[index]
            if shape.kind in ("conv", "pointwise") and wanted == "blocked" and shape.input[0] < block:
                wanted = "plain"  # a blocked conv with few input channels reads the plain layout directly
            for source in inputs[index]:
                have = "plain" if source < 0 else layouts[source]
                if have != wanted:
                    conversions.add((source, wanted))
        if layouts and layouts[-1] == "blocked":
            conversions.add((len(shapes) - 1, "plain"))
        reorder_ms = 0.0
        for source, _ in conversions:
            elements = math.prod(shapes[0].input) if source < 0 else shapes[source].output_elements
            reorder_ms += self.target.reorder_ms_per_call + self.target.reorder_ms_per_element * elements
        reorder_ms *= self.target.calibration_scale
        total = sum(r.latency_ms for r in results) + reorder_ms + self.target.model_overhead_ms.value
        return results, reorder_ms, total


def _channel(shape: KernelShape, axis: str) -> int:
    return shape.input[0] if axis == "in" else shape.output[0]


def _line_keys(shape: KernelShape) -> list[tuple[str, tuple]]:
    """Keys of the table lines through ``shape`` along which one channel count varies."""
    common = (shape.kind, shape.input[1:], shape.output[1:], shape.kernel, shape.stride)
    activation = None if shape.kind in WEIGHTED_KINDS else shape.activation  # fused: ~free
    if shape.kind in CHANNELWISE_KINDS or shape.kind == "concat":
        return [("out", common + (activation, "channels"))]
    return [("out", common + (activation, "in", shape.input[0])),
            ("in", common + (activation, "out", shape.output[0]))]


def _features(shape: KernelShape, step: int) -> np.ndarray:
    """What a kernel's time is linear in: MACs with channels padded to the SIMD step (and with the
    output width padded to 8, as vector kernels sweep rows in blocks), MACs, tensor sizes, weights,
    output rows and row blocks; the last entry is the constant."""
    c_in = shape.input[0] if shape.kind == "depthwise" else _padded(shape.input[0], step)
    padded = shape.with_channels(c_in if shape.kind != "depthwise" else None, _padded(shape.output[0], step))
    c, h, w = shape.output
    return np.array([padded.macs, shape.macs, padded.macs / w * _padded(w, 8), padded.output_elements,
                     shape.input_elements, shape.weight_count, c * h, c * h * -(-w // 8), 1.0])


def _neighbourhood(shape: KernelShape, features: np.ndarray) -> np.ndarray:
    """Where a kernel sits for the nearest-neighbour correction: log sizes, and its height, width and
    channels on their own (two kernels of equal work but other shapes run differently)."""
    return np.concatenate([np.log1p(features[:-1]),
                           [np.log(shape.output[1]), np.log(shape.output[2]), 2 * np.log(shape.input[0])]])


class _Fit:
    """Non-negative least squares on relative error, plus a local correction from the nearest entries."""

    NEIGHBOURS = 8

    def __init__(self, entries: list, step: int):
        self.step = step
        self.usable = len(entries) >= 3
        if not self.usable:
            return
        design = np.stack([_features(e.shape, step) for e in entries])
        measured = np.array([e.latency_ms for e in entries])
        self.scale = np.maximum(design.max(axis=0), 1e-12)
        weights = 1.0 / measured
        self.coefficients = _nnls(design / self.scale * weights[:, None], measured * weights)
        line = design / self.scale @ self.coefficients
        self.log_ratio = np.log(measured / np.maximum(line, 1e-9))
        self.points = np.stack([_neighbourhood(e.shape, row) for e, row in zip(entries, design)])

    def predict(self, shape: KernelShape) -> float:
        features = _features(shape, self.step)
        line = max(float(features / self.scale @ self.coefficients), 1e-6)
        distance = np.abs(self.points - _neighbourhood(shape, features)).sum(axis=1)
        nearest = np.argsort(distance)[: self.NEIGHBOURS]
        weights = 1.0 / (distance[nearest] + 0.05)
        return line * float(np.exp(np.sum(self.log_ratio[nearest] * weights) / weights.sum()))


def _nnls(design: np.ndarray, target: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Lawson-Hanson non-negative least squares (small problems: a handful of columns)."""
    columns = design.shape[1]
    passive = np.zeros(columns, bool)
    solution = np.zeros(columns)
    for _ in range(iterations):
        gradient = design.T @ (target - design @ solution)
        candidates = ~passive & (gradient > 1e-12)
        if not candidates.any():
            break
        passive[np.argmax(np.where(candidates, gradient, -np.inf))] = True
        while True:
            trial = np.zeros(columns)
            trial[passive] = np.linalg.lstsq(design[:, passive], target, rcond=None)[0]
            if (trial[passive] > 0).all():
                solution = trial
                break
            blocking = passive & (trial <= 0)
            ratios = solution[blocking] / np.maximum(solution[blocking] - trial[blocking], 1e-30)
            step = ratios.min()
            solution = solution + step * (trial - solution)
            passive &= solution > 1e-12
    return solution
