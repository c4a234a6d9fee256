"""Latency of kernels and of whole models on a target, from its profile.

For one kernel, in order:
1. ``table``: the exact shape was measured.
2. ``interpolated``: shapes that differ only in one channel count were measured on both sides;
   channels are first rounded up to the runtime's channel step, so counts within one SIMD step cost
   the same and the step up is where the table says it is (64→65 channels is a step, 63→64 is not).
   Not for a litert table, whose fit does better (see ``LatencyModel.__init__``).
3. ``fitted``: a per-kind, per-layout linear model over the table (padded MACs, MACs, tensor sizes,
   weights, and terms of a kind's own where a runtime's kernel needs them, ``_features``; least squares on
   relative error, non-negative; a channel-last table's means and global pools share one, ``_fit_kind``, and
   onnxruntime's blocked pointwise convs reading fewer input channels than a block have one of their own,
   ``LatencyModel._fit_group``)
   times a correction for how far such a shape sits from that line: gradient-boosted trees over the shape
   (channel counts and their remainders against the SIMD steps, map size, kernel, stride) where the group has at least
   ``_Fit.TREES_FROM`` entries, else the log-ratio of the table's nearest shapes. On the full host
   table (1,809 kernels) the trees took 5-fold cross-validation of kernels ≥ 5 µs from 81 % to 87 %
   within ±10 %; on a quick table's groups of a few dozen entries they did no better than the
   neighbours, which those groups keep.
4. ``analytic``: profiles without a table: padded MACs at the kind's MAC rate plus a per-kernel
   overhead.
Steps 2 and 3 work on a kernel's time without its fused activation, and add the activation back
as the profile's cost per output element for that activation and layout (``activation_ms``): an
activation is not free beside a conv (on an x86 host with onnxruntime, Clip adds about 0.08 ns an
output element and HardSwish or Sigmoid about 0.2, a third of a small pointwise conv's time), and the
table's lines and fits mix kernels with different activations. Profiles without those costs
(measured before 2026-12-05) price activations at nothing, as before.
Table latencies (1–3) pass through the profile's calibration (scale and per-node offset fitted on
whole networks, see ``calibration``).
Every kernel is at least its roofline bound, max(MACs / peak MAC rate, bytes / bandwidth); a kind
the profile cannot cost at all (``unknown``) gets the roofline and is flagged.

A whole model is its kernels, plus the layout changes between them the runtime makes
(onnxruntime's NCHWc blocked layout: see ``blocked_layout``; each priced by its direction, a partial last
block of channels and planes that alias in the L1 cache, ``layout_change_terms``), plus the per-model
overhead.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from .boosted_trees import BoostedTrees
from .kernel_shape import ACTIVATIONS, CHANNELWISE_KINDS, WEIGHTED_KINDS, KernelShape, same_padding
from .target import Target


@dataclass(frozen=True)
class KernelLatency:
    latency_ms: float
    method: str  # table, interpolated, fitted, analytic, roofline
    roofline_ms: float
    layout: str = "plain"


# kinds a table measured before they were told apart prices as the kind they were measured as: a ``mean``
# (ReduceMean) as a ``global_pool`` (profiles before 2026-12-06 night), an ``avg_pool`` as a max ``pool`` (before
# 2026-12-07), a ``mean_nhwc`` as a ``mean`` (every onnxruntime table, and litert tables before 2026-12-07 midday), as
# every estimate did until then, and a ``batch_norm`` as a per-channel ``mul`` (profiles before 2026-12-07 evening, its
# activation then a kernel of its own: ``LatencyModel.kernel`` prices the two); followed until a kind the table has
STAND_INS = {"mean": "global_pool", "avg_pool": "pool", "mean_nhwc": "mean", "batch_norm": "mul"}


def stand_in(kind: str, table_kinds: set[str] | frozenset[str]) -> str:
    """The kind a table with ``table_kinds`` prices ``kind`` as: itself, or the first of its ``STAND_INS`` the table
    has (itself where it has none of them)."""
    priced = kind
    while priced not in table_kinds and priced in STAND_INS:
        priced = STAND_INS[priced]
    return priced if priced in table_kinds else kind


def layout_change_terms(tensor: tuple[int, int, int], block: int, bytes_per_element: int,
                        l1_set_stride_bytes: int = 4096, l1_ways: int = 8) -> list[float]:
    """What onnxruntime's change of a (channels, height, width) tensor into or out of its NCHWc layout costs
    linearly in (``LAYOUT_CHANGE_TERMS``): a call; every element; the elements of a last, partial block of
    channels (copied a channel at a time: 2-4x a full block's cost per element); every element again when
    a channel's plane is a multiple of the L1 cache's set stride (its size over its ways: 4 KB, so 32×32
    and 64×64 float maps), where the planes a block is copied to or from share cache sets ("aliased");
    and the partial block's elements again on such planes when it has more channels than the L1 cache has
    ways, which thrashes those sets. On an x86 host (L1 32 KB, 8 ways) a change back of a partial block
    on 64×64 planes took 0.20-0.23 ns an element for 4-7 channels, 0.31 for 8, 0.49-0.62 for 9-15, and
    0.14 for 12 channels on 63×63 planes (2026-12-06)."""
    channels, height, width = tensor
    plane = height * width
    elements, partial = channels * plane, channels % block * plane
    aliased = plane * bytes_per_element % l1_set_stride_bytes == 0
    thrashing = aliased and channels % block > l1_ways
    return [1.0, float(elements), float(partial), float(elements * aliased), float(partial * thrashing)]


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
    if shape.kind in ("pool", "avg_pool", "global_pool"):
        return c_in % block == 0
    return False


class LatencyModel:
    """Kernel and model latency for one target. Building it fits the fallback models (milliseconds)."""

    def __init__(self, target: Target):
        self.target = target
        self.step = max(1, target.layout_block_channels if target.entries else
                        (target.analytic.channel_step if target.analytic else 1))
        self._exact = {entry.shape: entry for entry in target.entries}
        self._table_kinds = {entry.shape.kind for entry in target.entries}
        # the profile's bandwidth is DRAM's (a 4 M-element add); kernels whose tensors sit in cache move
        # bytes faster, and a floor no measured kernel obeys would push every prediction near it up
        self._bandwidth = max([target.memory_bandwidth_bytes_per_s.value] + [
            entry.shape.traffic_bytes(target.bytes_per_element) / (entry.latency_ms / 1e3)
            for entry in target.entries if entry.latency_ms > 0])
        # each entry's time less its activation's (what lines and fits work on; see ``activation_ms``)
        self._bare = {entry.shape: max(entry.latency_ms - self.activation_ms(entry.shape, entry.layout),
                                       0.25 * entry.latency_ms) for entry in target.entries}
        # the lines ``_interpolate`` reads; none for a litert table, which is priced by its fit: XNNPACK's kernels do
        # not step with one channel block as onnxruntime's do, and in 5-fold cross-validation of a full litert table
        # (x86 host with AVX-512) kernels of 5 us and more went from 87.4 to 90.8 % within 10 % without
        # interpolation (depthwise convs from 73 to 98 %); dropping it from the host's onnxruntime table left its
        # 91.1 % where it was (2026-12-07)
        self._lines: dict[tuple, list] = {}
        for entry in target.entries if target.runtime != "litert" else ():
            for axis, key in _line_keys(entry.shape):
                self._lines.setdefault(key, []).append((_channel(entry.shape, axis), entry))
        self._fits = {}
        self._channels_first = target.runtime == "onnxruntime"
        groups: dict[tuple, list] = {}
        for entry in target.entries:
            groups.setdefault((_fit_kind(entry.shape.kind, self._channels_first), entry.layout), []).append(entry)
        few, rest = [], []
        for entry in groups.get(("pointwise", "blocked"), []):
            (few if self._reads_few_inputs(entry.shape, entry.layout) else rest).append(entry)
        if len(few) >= FEW_INPUTS_FIT_FROM:  # a fit of their own only where the table has enough of them
            groups[("pointwise", "blocked")], groups[("pointwise", BLOCKED_FEW_INPUTS)] = rest, few
        for key, entries in groups.items():
            step = self._step("blocked" if key[1] == BLOCKED_FEW_INPUTS else key[1])
            self._fits[key] = _fitted(entries, [self._bare[e.shape] for e in entries], step,
                                      channels_first=self._channels_first)

    # --- one kernel -------------------------------------------------------------------------------
    def layout(self, shape: KernelShape) -> str:
        if self.target.layout_rule == "onnxruntime-nchwc" and blocked_layout(shape, self.target.layout_block_channels):
            return "blocked"
        return "plain"

    def roofline_ms(self, shape: KernelShape) -> float:
        """The floor under every prediction: MACs at the peak rate, or bytes at the bandwidth the table
        itself shows (``_bandwidth``)."""
        bytes_moved = shape.traffic_bytes(self.target.bytes_per_element)
        return 1e3 * max(shape.macs / self.target.peak_macs_per_s.value, bytes_moved / self._bandwidth)

    def kernel(self, shape: KernelShape) -> KernelLatency:
        if shape.kind == "batch_norm" and "batch_norm" not in self._table_kinds:
            # a table without batch_norm entries (an analytic one, one from before 2026-12-07 evening) prices it as
            # every estimate did until then: a per-channel mul (or what prices one there) and its activation as a
            # kernel of its own
            bare = self.kernel(replace(shape, kind="mul", activation=None))
            if shape.activation is None:
                return bare
            activation = self.kernel(replace(shape, kind="activation"))
            return replace(bare, latency_ms=bare.latency_ms + activation.latency_ms,
                           roofline_ms=bare.roofline_ms + activation.roofline_ms)
        priced = stand_in(shape.kind, self._table_kinds)
        if priced != shape.kind:
            shape = replace(shape, kind=priced)
        roofline = self.roofline_ms(shape)
        layout = self.layout(shape)
        entry = self._exact.get(shape)
        if entry is not None:
            return KernelLatency(self._calibrated(entry.latency_ms, roofline), "table", roofline, entry.layout)
        activation = self.activation_ms(shape, layout)
        interpolated = self._interpolate(shape, layout)
        if interpolated is not None:
            return KernelLatency(self._calibrated(interpolated + activation, roofline), "interpolated", roofline,
                                 layout)
        fit = self._fits.get(self._fit_group(shape, layout))
        if fit is not None and fit.usable:
            return KernelLatency(self._calibrated(fit.predict(shape) + activation, roofline), "fitted", roofline,
                                 layout)
        analytic = self.target.analytic
        if analytic is not None and shape.kind != "unknown":
            return KernelLatency(max(self._analytic(shape), roofline), "analytic", roofline, layout)
        return KernelLatency(roofline, "roofline", roofline, layout)

    def activation_ms(self, shape: KernelShape, layout: str) -> float:
        """What the activation fused into a conv or fully connected kernel adds to its time (ms): the
        profile's cost per output element for that activation in that layout. An activation the profile
        did not measure costs as much as the dearest one it did; without measured costs, nothing."""
        if shape.activation is None or shape.kind not in WEIGHTED_KINDS:
            return 0.0
        costs = self.target.activation_ms_per_element.get(layout) or {}
        if not costs:
            return 0.0
        per_element = costs.get(shape.activation, max(costs.values()))
        return per_element * shape.output_elements

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

    def _reads_few_inputs(self, shape: KernelShape, layout: str) -> bool:
        """Whether ``shape`` is a blocked pointwise conv reading fewer input channels than a block."""
        return layout == "blocked" and shape.kind == "pointwise" and shape.input[0] < self.target.layout_block_channels

    def _fit_group(self, shape: KernelShape, layout: str) -> tuple[str, str]:
        """The fit that prices ``shape`` in ``layout``: its kind's (``_fit_kind``) in that layout, but a blocked
        pointwise conv reading fewer input channels than a block has one of its own (``BLOCKED_FEW_INPUTS``) where the
        table has ``FEW_INPUTS_FIT_FROM`` of them or more."""
        kind = _fit_kind(shape.kind, self._channels_first)
        if self._reads_few_inputs(shape, layout) and (kind, BLOCKED_FEW_INPUTS) in self._fits:
            return kind, BLOCKED_FEW_INPUTS
        return kind, layout

    def _step(self, layout: str) -> int:
        """The channel step a layout's kernels pad to: onnxruntime's NCHWc block for its blocked layout;
        its plain (NCHW) kernels work channel by channel (their matrix products' padding is in
        ``_features``); a runtime without that rule pads to the profile's step."""
        return 1 if self.target.layout_rule == "onnxruntime-nchwc" and layout == "plain" else self.step

    def _interpolate(self, shape: KernelShape, layout: str) -> float | None:
        best = None
        for axis, key in _line_keys(shape):
            points = [(c, e) for c, e in self._lines.get(key, ()) if e.layout == layout]
            if not points:
                continue
            channels = _channel(shape, axis)
            step = self._step(layout)
            few = channels < self.target.layout_block_channels
            if axis == "in" and (few or layout == "blocked"):
                # fewer input channels than a block are read unpadded: onnxruntime's blocked conv
                # reads them in the plain layout (see _layout_changes), a matrix product's K is not padded.
                # So a line through such a kernel stays on its side of the block: a 16->16 pointwise conv at
                # 16x16 was priced as the table's 10->16 (4.1 us), against 2.3 us measured alone and 1.6 us
                # in a chain (x86 host, 2026-12-07)
                step = 1 if few else step
                points = [(c, e) for c, e in points if (c < self.target.layout_block_channels) == few]
                if not points:
                    continue
            target_padded = _padded(channels, step)
            same_step = [(abs(c - channels), e) for c, e in points if _padded(c, step) == target_padded]
            if same_step:
                value = self._bare[min(same_step, key=lambda pair: pair[0])[1].shape]
            else:
                below = [(c, e) for c, e in points if _padded(c, step) < target_padded]
                above = [(c, e) for c, e in points if _padded(c, step) > target_padded]
                linear = step == 1 and shape.kind in CHANNELWISE_KINDS  # channel by channel: time is linear in them
                if linear and len(below) + len(above) >= 2 and (not below or not above):
                    # on one side only: the straight line through the two nearest counts, not beyond 3× of them
                    (c_lo, e_lo), (c_hi, e_hi) = sorted(sorted(below + above, key=lambda p: abs(p[0] - channels))[:2],
                                                        key=lambda p: p[0])
                    if c_lo == c_hi or not (min(c_lo, c_hi) / 3 <= channels <= 3 * max(c_lo, c_hi)):
                        continue
                elif not below or not above:
                    continue
                else:
                    (c_lo, e_lo), (c_hi, e_hi) = max(below, key=lambda p: p[0]), min(above, key=lambda p: p[0])
                p_lo, p_hi = _padded(c_lo, step), _padded(c_hi, step)
                if p_hi - p_lo > 4 * self.step and not linear:  # too far apart to trust a straight line
                    continue
                weight = (target_padded - p_lo) / (p_hi - p_lo)
                bare_lo, bare_hi = self._bare[e_lo.shape], self._bare[e_hi.shape]
                value = bare_lo + weight * (bare_hi - bare_lo)
                if value <= 0:
                    continue
            best = value if best is None else min(best, value)
        return best

    # --- a whole model ------------------------------------------------------------------------------
    def model(self, shapes: list[KernelShape], inputs: list[list[int]],
              pool_paddings: list[tuple[int, int] | None] | None = None) -> tuple[list[KernelLatency], float, float]:
        """Per-kernel latencies, the layout-change time and the total (ms) of kernels in execution order.

        ``inputs[i]`` are the indices of the kernels kernel i reads (-1: the model input). ``pool_paddings[i]``: the
        padding (height, width) of max pool i that TFLite's SAME cannot express (``memory.converter_padding``),
        which a litert table prices as the PADV2 litert-torch writes before it (``max_pool_padding``).
        """
        results, layouts = self._placed(shapes, inputs, pool_paddings)
        if self.target.layout_rule != "onnxruntime-nchwc":
            return results, 0.0, sum(r.latency_ms for r in results) + self.target.model_overhead_ms.value

        conversions = self._layout_changes(shapes, inputs, layouts)
        reorder_ms = 0.0
        target = self.target
        # a layout change is a node of its own: a per-node offset applies to it too
        offset = target.calibration_per_kernel_ms if target.calibration_per_node else 0.0
        for source, wanted in conversions:
            tensor = shapes[0].input if source < 0 else shapes[source].output
            coefficients = target.layout_change_ms.get("to_" + wanted)
            if coefficients is not None:  # by direction, partial block and L1 aliasing (profiles from 2026-12-06 night)
                terms = layout_change_terms(tensor, target.layout_block_channels, target.bytes_per_element,
                                            *target.l1_cache_geometry)
                call_ms, moved_ms = coefficients[0], float(np.dot(coefficients[1:], terms[1:]))
            else:
                call_ms, moved_ms = target.reorder_ms_per_call, target.reorder_ms_per_element * math.prod(tensor)
            moved = target.calibration_scale * moved_ms
            reorder_ms += max(target.calibration_scale * call_ms + moved + offset, moved)
        total = sum(r.latency_ms for r in results) + reorder_ms + self.target.model_overhead_ms.value
        return results, reorder_ms, total

    def nodes(self, shapes: list[KernelShape], inputs: list[list[int]],
              pool_paddings: list[tuple[int, int] | None] | None = None) -> int:
        """How many nodes the runtime runs for these kernels: those not fused into a neighbour, plus
        one per layout change (what the calibration's per-node offset is counted over), plus a PADV2 before each
        max pool a litert table prices one for (``model``)."""
        results, layouts = self._placed(shapes, inputs, pool_paddings)
        blocked_rule = self.target.layout_rule == "onnxruntime-nchwc"
        changes = self._layout_changes(shapes, inputs, layouts) if blocked_rule else ()
        pads = sum(self._max_pad(shape, padding) is not None
                   for shape, padding in zip(shapes, pool_paddings or [None] * len(shapes)))
        # a BatchNorm priced with its ReLU counts the two, as before it took the ReLU in (its runtime runs two or more)
        norms = sum(1 for shape in shapes if shape.kind == "batch_norm" and shape.activation is not None)
        return sum(1 for r in results if r.method != "fused") + len(changes) + pads + norms

    def _placed(self, shapes: list[KernelShape], inputs: list[list[int]],
                pool_paddings: list[tuple[int, int] | None] | None = None) -> tuple[list[KernelLatency], list[str]]:
        """Each kernel's latency and layout, with the pads a runtime folds into the layer that reads them
        (``_pad_folded``) and the adds onnxruntime folds into a conv."""
        results = [self.kernel(shape) for shape in shapes]
        layouts = [r.layout for r in results]
        nchwc = self.target.layout_rule == "onnxruntime-nchwc"
        for index in range(len(shapes)):
            if self._pad_folded(shapes, index):
                layouts[index] = "plain" if nchwc else layouts[index]
                results[index] = KernelLatency(0.0, "fused", 0.0, layouts[index])
        for index, (shape, padding) in enumerate(zip(shapes, pool_paddings or ())):
            padded = self._max_pad(shape, padding)
            if padded is not None:  # litert: a max pool's padding that SAME cannot express is a PADV2 before it
                pad = self.kernel(padded)
                results[index] = replace(results[index], latency_ms=results[index].latency_ms + pad.latency_ms,
                                         roofline_ms=results[index].roofline_ms + pad.roofline_ms)
        if not nchwc:
            return results, layouts
        readers = [0] * len(shapes)
        for sources in inputs:
            for j in sources:
                if j >= 0:
                    readers[j] += 1
        for index, shape in enumerate(shapes):
            per_element = self.target.reorder_ms_per_element
            if shape.kind == "add" and inputs[index] and all(j >= 0 and layouts[j] == "blocked" for j in inputs[index]):
                layouts[index] = "blocked"  # onnxruntime folds the add (and its ReLU) into the blocked conv
                results[index] = KernelLatency(shape.output_elements * per_element, "fused", 0.0, "blocked")
            elif shape.kind == "add" and any(j >= 0 and layouts[j] == "plain" and readers[j] == 1 and shapes[j].kind in
                                             ("conv", "pointwise", "depthwise") for j in inputs[index]):
                # and into a plain conv whose output only the add reads (its FusedConv sums the other input)
                results[index] = KernelLatency(shape.output_elements * per_element, "fused", 0.0, "plain")
        return results, layouts

    def _max_pad(self, shape: KernelShape, padding: tuple[int, int] | None) -> KernelShape | None:
        """The ``max_pad`` a table with such entries (litert's) prices before max pool ``shape`` of that padding."""
        return max_pool_padding(shape, padding) if padding is not None and "max_pad" in self._table_kinds else None

    def _pad_folded(self, shapes: list[KernelShape], index: int) -> bool:
        """Whether kernel ``index`` is a zero pad the runtime runs inside the conv or average pool that reads
        it: onnxruntime folds every such pad; litert-torch writes one that is TensorFlow's 'same' padding of
        a conv into it (DS-CNN's stem and stride-2 pads), so the exported file has no PAD op while a litert
        table prices the single-op PAD model the profiler timed. Zeros before a max pool are no max pool's
        padding (its padding is -inf): onnxruntime and litert keep that Pad (2026-12-07; before, a pad a max
        pool read was priced as nothing)."""
        shape = shapes[index]
        reader = shapes[index + 1].kind if index + 1 < len(shapes) else None
        if shape.kind != "pad" or reader not in ("conv", "depthwise", "pointwise", "avg_pool"):
            return False  # zeros before a max pool are not its -inf padding: a Pad (PAD) op in both runtimes
        if self.target.layout_rule == "onnxruntime-nchwc":  # its pad fusion takes an AveragePool's zeros too
            return True
        if reader == "avg_pool":  # TFLite's SAME leaves the zeros out of an average: a PAD stays
            return False
        return self.target.runtime == "litert" and bool(self.target.entries) and _same_padding(shape,
                                                                                               shapes[index + 1])

    def _layout_changes(self, shapes: list[KernelShape], inputs: list[list[int]],
                        layouts: list[str]) -> set[tuple[int, str]]:
        """(kernel whose output is converted, to which layout) for every layout change between kernels."""
        block = self.target.layout_block_channels
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
        return conversions


def max_pool_padding(shape: KernelShape, padding: tuple[int, int]) -> KernelShape | None:
    """The ``max_pad`` (litert-torch's PADV2: ``padding`` (height, width) on each side, -inf) before max pool
    ``shape`` whose padding TFLite's SAME cannot express (``F.max_pool2d(x, 3, 2, 1)`` on an even map;
    ``memory.converter_padding`` says which), or None for another kind. The pool itself runs as the table's 'same'
    pool does: its window reads are the same."""
    if shape.kind != "pool":
        return None
    c, h, w = shape.input
    return KernelShape("max_pad", (c, h, w), (c, h + 2 * padding[0], w + 2 * padding[1]))


def _same_padding(pad: KernelShape, reader: KernelShape) -> bool:
    """Whether ``pad`` adds what TensorFlow's 'same' padding of ``reader`` would (its output ceil(size /
    stride) in both dimensions, from ``pad``'s input)."""
    for axis in (0, 1):
        size, padded = pad.input[axis + 1], pad.output[axis + 1]
        kernel, stride = reader.kernel[axis], reader.stride[axis]
        out = -(-size // stride)
        if reader.output[axis + 1] != out or padded - size != max((out - 1) * stride + kernel - size, 0):
            return False
    return True


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


GEMM_TILE_ROWS = tuple(range(1, 17))
# (columns, wide columns): a layer of up to ``columns`` output channels runs one tile of that width, a wider one
# tiles of ``wide columns``; equal widths are plain padding
GEMM_TILE_COLUMNS = tuple((k, k) for k in (1, 2, 4, 8, 16, 32, 64)) + tuple((k, 2 * k) for k in (2, 4, 8, 16, 32))
GEMM_TILE_MIN_ENTRIES = 20
GEMM_TILE_MIN_GAIN = 0.1


class GemmTile(NamedTuple):
    """A channel-last runtime's register tile: ``rows`` output positions by ``columns`` output channels, and
    ``wide_columns`` channels for layers of more than ``columns`` (equal to ``columns`` where the runtime has one
    width)."""

    rows: int
    columns: int
    wide_columns: int

    def padded_channels(self, channels):
        """Output channels (an int or an array) rounded up to the tiles they run in."""
        return np.where(np.asarray(channels) <= self.columns, self.columns, _padded(channels, self.wide_columns))

    def column_tiles(self, channels: int) -> int:
        return 1 if channels <= self.columns else -(-channels // self.wide_columns)


def gemm_tile(shapes: list[KernelShape], latencies_ms: list[float]) -> GemmTile | None:
    """The register tile a channel-last runtime's matrix product computes at a time, read from a table's conv or
    pointwise kernels: the ``GemmTile`` under which their time per tiled MAC (positions rounded up to its rows, output
    channels to its columns, times K = input channels × kernel area) varies least. None with fewer than
    ``GEMM_TILE_MIN_ENTRIES`` stride-1 kernels of more than one position to read it from.

    XNNPACK's float GEMM on an x86 host with AVX-512 runs tiles of 7 positions × 16 channels: a 64→64 pointwise
    conv took 0.55 us for 2-7 positions, 1.06 for 8-14, 1.57 for 15-21, and at 16×16 its time stepped at 17, 33, 49,
    65, 81 and 97 output channels (4.6, 9.2, 13.7, 19.0, 22.8, 28.3, 32.3 us). Its 3×3 convs run one tile of 16
    channels up to 16 and tiles of 32 past it: 24→c at 16×16 took 17.1 us for 8-16 channels, 34.2 for 17-32, 68.5 for
    33-64, 102.6 for 65-96, 137 for 97, as 38→c at 12×12 did (15.1, 30.1, 60.7, 91.1, 121.4 us; 2026-12-07). A
    phone's ARM build runs other tiles, so they are read from its table. On the host's litert table this picks
    (7, 16, 16) for pointwise convs and (7, 16, 32) for 3×3 convs (log spread of time per tiled MAC 0.136 and 0.080,
    against 0.32 and 0.42 per MAC; 0.133 for the convs with tiles of 16), and (6, 16, 16) or (7, 16, 16) on 13-18
    of 20 random subsets of 20 usable pointwise entries, by the draw. None too where no tile spreads the times at
    least 10 % less than MACs do (``GEMM_TILE_MIN_GAIN``): entries that cannot tell tiles apart."""
    usable = [(shape, ms) for shape, ms in zip(shapes, latencies_ms) if ms > 0 and shape.stride == (1, 1)
              and shape.output[1] * shape.output[2] > 1]
    if len(usable) < GEMM_TILE_MIN_ENTRIES:
        return None
    positions = np.array([shape.output[1] * shape.output[2] for shape, _ in usable])
    channels = np.array([shape.output[0] for shape, _ in usable])
    depth = np.array([shape.input[0] * shape.kernel[0] * shape.kernel[1] for shape, _ in usable])
    log_ms = np.log([ms for _, ms in usable])

    def spread(tile: GemmTile) -> float:
        tiled = _padded(positions, tile.rows) * tile.padded_channels(channels) * depth
        return float(np.std(log_ms - np.log(tiled)))
    best = min((GemmTile(rows, *columns) for rows in GEMM_TILE_ROWS for columns in GEMM_TILE_COLUMNS), key=spread)
    return best if spread(best) <= (1 - GEMM_TILE_MIN_GAIN) * spread(GemmTile(1, 1, 1)) else None


def _tile_features(shape: KernelShape, tile: GemmTile) -> list[float]:
    """A channel-last conv or pointwise conv as tiles of a matrix product (``gemm_tile``): the tiled MACs, the tiles
    (each loads and stores its accumulators) and the tiles times the kernel area (an indirect GEMM reads a pointer
    per tap and tile), the input, output and weight elements; one position is a matrix-vector product (its
    weights), another kernel."""
    c, h, w = shape.output
    depth = shape.input[0] * shape.kernel[0] * shape.kernel[1]
    if h * w == 1:
        return [0.0] * 6 + [float(c * depth)]
    row_tiles = -(-(h * w) // tile.rows)
    tiles = row_tiles * tile.column_tiles(c)
    return [float(row_tiles * tile.rows * tile.padded_channels(c) * depth), float(tiles),
            float(tiles * shape.kernel[0] * shape.kernel[1]), float(shape.input_elements),
            float(shape.output_elements), float(shape.weight_count), 0.0]


def _features(shape: KernelShape, step: int, channels_first: bool = True,
              tile: GemmTile | None = None) -> np.ndarray:
    """What a kernel's time is linear in, the last entry being the constant:

    - MACs with channels padded to the SIMD step (and with the output width padded to 8, as vector
      kernels sweep rows in blocks), MACs, tensor sizes, weights, output rows and row blocks;
    - an activation that runs as a node of its own (on an add): its output elements and its call;
    - the terms of a convolution lowered to a matrix product, as a CPU runtime's plain (NCHW) path
      runs it: the unfolded input it writes (``im2col``: K × N elements, K inputs per output and N
      output positions, copied in K × H rows, and short rows cost more per element); the product
      with N padded to 16 and the output channels padded to 4 and to 16 (GEMM kernels sweep panels
      of 16 columns: a layer with 4 positions costs about what one with 16 does); a matrix-vector
      product's weights when there is one position; and a depthwise layer's per-channel calls;
    - a pooling's window reads (output elements × window area): onnxruntime's plain-layout AveragePool (opset
      19 on) took 1.3-1.5 ns a read for 2×2 and 3×3 windows alike, 1.4 and 2.9 ns an input element (x86 host,
      2026-12-07), so no term of the input or output alone fits both; and an average pool's padding, which
      litert-torch writes as a PAD op of its own (the input's elements and positions, when it is padded), and its
      reads in channel-last vectors of 16 (positions × window × channel vectors, as XNNPACK sweeps them). In 5-fold
      cross-validation of the host tables (three splits) onnxruntime's plain average pools went from 30 to 90 %
      within 10 % and its plain max pools from 55 to 84 %; litert's average pools from 15 to 70 %. A max pool gets
      these terms only where the runtime pools channels first (``channels_first``: an onnxruntime table, whose max
      pools' prices moved -15 to +18 % with them); through litert (XNNPACK's channel-last max pool) any of them took
      its cross-validation from 68 % to 65-66 %, and TFLite and TFLite Micro tables pool channel-last too.

    A conv or pointwise conv of a channel-last table whose GEMM tile is known (``tile``: ``gemm_tile``) has the
    tile's terms instead (``_tile_features``): in 5-fold cross-validation of the host's litert table (three splits,
    kernels of 5 us and more) its convs went from 94.6 to 96.8 % within 10 % (73.0 to 84.8 % within 5 %) and its
    pointwise convs from 87.5 to 91.2 % (71.3 to 85.5 %); on a later profile of another host of the same kind the convs
    went from 97.0 to 99.5 % (82.8 to 98.5 %) once their tile could be wider past 16 output channels
    (``GemmTile.wide_columns``) (2026-12-07). A mean or global pool of a channel-last table, a TRANSPOSE and a MEAN,
    has ``_transposed_mean_terms`` instead. Some kinds add terms of their own below (a channel-last table's
    concatenations, BatchNorms and muls, PADs and PADV2s; activations on their own; a plain channel-first table's
    strided convs, whose unfolding is slower; linear layers' weights padded to panels). A plain channel-first table's
    strided pointwise conv is unfolded as a conv is.
    """
    if tile is not None and shape.kind in ("conv", "pointwise"):
        return np.array(_tile_features(shape, tile) + [1.0], dtype=float)
    if shape.kind in TRANSPOSED_MEAN_KINDS and not channels_first:
        return np.array(_transposed_mean_terms(shape) + [1.0], dtype=float)
    # a depthwise kernel's input channels are its output channels; a blocked conv reads fewer input
    # channels than a block unpadded (see LatencyModel._layout_changes)
    c_in = shape.input[0] if shape.kind == "depthwise" or shape.input[0] < step else _padded(shape.input[0], step)
    padded = shape.with_channels(c_in if shape.kind != "depthwise" else None, _padded(shape.output[0], step))
    c, h, w = shape.output
    positions = _padded(h * w, 16)
    per_output = shape.input[0] * shape.kernel[0] * shape.kernel[1]  # K of the matrix product
    unfolded = unfolded_rows = product_4 = product_16 = vector = calls = 0.0
    if shape.kind in ("conv", "pointwise") and h * w == 1:
        vector = float(c * per_output)  # one position: a matrix-vector product, another kernel
    elif shape.kind in ("conv", "pointwise"):
        if shape.kind == "conv" or shape.stride != (1, 1) and channels_first and step == 1:
            # onnxruntime's MLAS multiplies a plain (NCHW, step 1: ``LatencyModel._step``) 1×1 conv's input in place
            # only at stride 1 and no padding; a strided one is unfolded first, K = its input channels. In 5-fold
            # cross-validation of the host's onnxruntime table (three splits, kernels of 5 us and more) its 8 strided
            # plain pointwise convs went from 38 to 92 % within 10 % (all 118 plain ones from 94.1 to 96.9 %). Its NCHWc
            # kernels read a strided input as it is (x86 host, 2026-12-07)
            unfolded, unfolded_rows = float(per_output * h * w), float(per_output * h)
        product_4, product_16 = _padded(c, 4) * per_output * positions, _padded(c, 16) * per_output * positions
    elif shape.kind == "depthwise":
        unfolded, product_4, calls = float(shape.macs), c * shape.kernel[0] * shape.kernel[1] * positions, float(c)
    # an activation on an add (or any kernel without weights) is a node of its own in onnxruntime: a
    # call and a pass over the output (weighted kernels' activations are priced apart, ``activation_ms``)
    separate = shape.activation is not None and shape.kind not in WEIGHTED_KINDS
    terms = [padded.macs, shape.macs, padded.macs / w * _padded(w, 8), padded.output_elements,
             shape.input_elements, shape.weight_count, c * h, c * h * -(-w // 8),
             unfolded, unfolded_rows, product_4, product_16, vector, calls,
             shape.output_elements if separate else 0.0, 1.0 if separate else 0.0]
    if shape.kind == "avg_pool" or shape.kind == "pool" and channels_first:
        # only theirs: every other kind's fit stays as it was to the last bit
        window = shape.kernel[0] * shape.kernel[1]
        average = shape.kind == "avg_pool"
        is_padded = average and _pads(shape)
        terms += [shape.output_elements * window, shape.input_elements if is_padded else 0.0,
                  shape.input[1] * shape.input[2] if is_padded else 0.0,
                  h * w * window * -(-c // 16) if average else 0.0]
    if shape.kind == "max_pad" or shape.kind == "pad" and not channels_first:  # a PAD or PADV2 writes position by
        # position: in 5-fold cross-validation of a litert table's 39 PADV2s (three splits) these took them from 54 to
        # 71 % within 10 %, and its 59 PADs (``profiler.pad_grid``) from 29 to 90 % (x86 host, 2026-12-07)
        terms += [h * w, shape.input[1] * shape.input[2]]
    if shape.kind == "conv" and channels_first and step == 1:  # only theirs: MLAS unfolds a plain conv's input four
        # floats at a time at a stride width of 1 and one at a time at any other (MlasConvIm2Col). In 5-fold
        # cross-validation of the host's onnxruntime table (three splits, kernels of 5 us and more) its plain convs went
        # from 93.8 to 96.2 % within 10 %, 7×7 ones from 45 to 73 % of 11 (x86 host, 2026-12-07)
        terms += [unfolded if shape.stride[1] != 1 else 0.0]
    if shape.kind == "fully_connected":  # a matrix-vector product over weights packed in panels of 16 and 32 output
        # columns: a 10,752 -> 2 layer took 12 us, as long as 0.07 ns a padded weight. In 5-fold cross-validation of the
        # host's onnxruntime table with ``profiler.fully_connected_grid`` (three splits) its linear layers went from 66
        # to 86 % within 10 % (of 1 us and more 63 -> 93 %), and 31 others timed alone from 81 to 97 % (x86 host,
        # 2026-12-07). MLAS and XNNPACK pack weights so; a table of another runtime gets the terms too, untested there
        terms += [float(_padded(c, 16) * shape.input[0]), float(_padded(c, 32) * shape.input[0])]
    if shape.kind == "concat" and not channels_first:
        terms += _channel_last_concat_terms(shape)
    if shape.kind in ("batch_norm", "mul") and not channels_first:  # XNNPACK broadcasts a per-channel operand
        # position by position, and a position whose channels leave a remainder of a vector of 16 (or 8) costs more:
        # a trained BatchNorm's four ops took 24-35 ns a position up to 64 channels (3 at 56×56: 77 us, 8 ns an
        # element; 384 at 12×12: 0.3 ns), and at 24×24 15 ns for 16 channels against 29-36 for 4-15 and 17, 22 for 32
        # and 43 for 33. In 5-fold cross-validation of a litert table (three splits) these terms took its BatchNorms
        # from 14 to 84 % within 10 % (median absolute error 34 -> 5 %; the positions alone 54 %) and its muls from 50
        # to 74 % (x86 host, 2026-12-07); onnxruntime's, channel-first, moved under 4 points either way
        terms += [float(h * w), float(h * w * (c % 8 != 0)), float(h * w * (c % 16 != 0))]
    if shape.kind in ("batch_norm", "activation"):  # only theirs: what each activation costs an element (one the table
        # did not time costs nothing)
        terms += [float(shape.output_elements) if shape.activation == name else 0.0 for name in ACTIVATIONS]
    return np.array(terms + [1.0], dtype=float)


# onnxruntime's NCHWc pointwise kernel reads whole blocks of input channels; a blocked pointwise conv reading fewer
# than a block runs the kernel that reads the plain layout (see LatencyModel._layout_changes). On one fit with the
# others those were 60 % within 10 % in 5-fold cross-validation of the host's table (28 of 5 us and more, three
# splits) against 98 % for the rest; on a fit of their own (94 entries) 82 %, and the rest's within 5 % went from 84 to
# 90 %. A conv's few-input entries (289 of 507, all kernel sizes) gained 3 points on their own fit and the others lost
# 2: one fit there (x86 host, 2026-12-07). From ``FEW_INPUTS_FIT_FROM`` such entries: drawn 10-45 at a time from the
# 94, cross-validated on their own they did as well as on the shared fit from 20 on, and a smaller table (a quick one
# draws 18, the shipped host profile has 22, the pinned one of the tests 7) keeps the prices it had
BLOCKED_FEW_INPUTS = "blocked, fewer input channels than a block"
FEW_INPUTS_FIT_FROM = 30
TRANSPOSED_MEAN_KINDS = ("mean", "global_pool")  # what litert-torch writes as a TRANSPOSE to channel-first and a MEAN
PLANE_ALIASING_BYTES = 4096  # the set stride of a 32 KB 8-way L1 data cache (most x86 and Arm cores)
CACHE_RESIDENT_BYTES = 1 << 20  # a core's level-2 cache on most hosts and big phone cores: 512 KB to 2 MB


def _transposed_mean_terms(shape: KernelShape) -> list[float]:
    """A mean over the map of a channel-last tensor as litert-torch writes it (``TRANSPOSED_MEAN_KINDS``: a TRANSPOSE
    to channel-first, then a MEAN over each plane), for a table of any runtime but onnxruntime: every element; the
    elements again where a channel's plane is a multiple of ``PLANE_ALIASING_BYTES`` (32×32 and 64×64 float maps), so
    the planes the transpose writes share cache sets; the elements again where the channels leave a remainder of a
    vector of 8; the channels (one reduction each); and the input bytes past ``CACHE_RESIDENT_BYTES``, in elements.
    Swept through litert with XNNPACK (x86 host, 2026-12-07), 8-96 channels on 16-64 px maps: 0.11-0.19 ns an
    element, 0.18-0.33 on 32×32 and 64×64 maps, 36 and 37 channels 0.02-0.04 more than 24 or 64 (both kinds alike).
    In 5-fold cross-validation (three splits) of that table's 124 means and global pools with
    ``profiler.transposed_mean_grid``, one fit for both kinds (``_fit_kind``), they went from 15-25 % within 10 % (each
    kind, at 0, 2 and 5 us and more) to 55-57 % (median absolute error 15-28 -> 8-9 %); the sweep's 112 shapes, out of
    the table, from 16-45 to 71-77 %."""
    c, h, w = shape.input
    elements = float(c * h * w)
    aliased = h * w * 4 % PLANE_ALIASING_BYTES == 0
    return [elements, elements * aliased, elements * (c % 8 != 0), float(c),
            max(0.0, elements * 4 - CACHE_RESIDENT_BYTES) / 4]


def _fit_kind(kind: str, channels_first: bool) -> str:
    """The fit that prices ``kind``: its own, but one for both ``TRANSPOSED_MEAN_KINDS`` of a channel-last table (the
    same two ops)."""
    return TRANSPOSED_MEAN_KINDS[0] if kind in TRANSPOSED_MEAN_KINDS and not channels_first else kind


CONCAT_VECTOR_CHANNELS = 4  # chosen by the cross-validation below: 28 -> 36 % with vectors of 4, 30 % with 16


def _channel_last_concat_terms(shape: KernelShape) -> list[float]:
    """A concatenation along the channels of channel-last tensors (a table of any runtime but onnxruntime, as with
    ``gemm_tile``), as XNNPACK copies it: position by position, each input's channels (the positions, and the vectors
    of ``CONCAT_VECTOR_CHANNELS`` channels each input copies at every position). A ``KernelShape`` holds the first input
    and the output, so a concatenation of three or four inputs is counted as two. In 5-fold cross-validation of a litert
    table's 60 concatenations (x86 host, three splits, 2026-12-07) these took those of 5 us and more from 28 to 36 %
    within 10 % (all of them from 34 to 41 %): XNNPACK's copies are irregular, and a concatenation's price is the
    table's weakest.

    Not priced: single-kernel concatenations on maps of 1,024 and 4,096 positions (32×32, 64×64) took twice the time
    per byte of those at 8×8-28×28 and 40×40-56×56 (16 + 16 channels: 13.4 and 14.1 against 6.0-7.2 ns a position), but
    networks with such a concatenation did not: with that step priced the six of the dev seed's 36 concat networks
    (seed 99) were priced 1.4-3.3 points further over than the rest of their family."""
    first, (c, h, w) = shape.input[0], shape.output
    positions = h * w
    vectors = -(-first // CONCAT_VECTOR_CHANNELS) + -(-max(c - first, 0) // CONCAT_VECTOR_CHANNELS)
    return [float(positions), float(positions * vectors)]


def _pads(shape: KernelShape) -> bool:
    """Whether a windowed kernel's output needs its input padded ('same' padding: the windows reach past it)."""
    return any(sum(same_padding(size, out, kernel, stride)) for size, out, kernel, stride in
               zip(shape.input[1:], shape.output[1:], shape.kernel, shape.stride))


def _neighbourhood(shape: KernelShape, features: np.ndarray) -> np.ndarray:
    """Where a kernel sits for the nearest-neighbour correction: log sizes, and its height, width and
    channels on their own (two kernels of equal work but other shapes run differently)."""
    return np.concatenate([np.log1p(features[:-1]),
                           [np.log(shape.output[1]), np.log(shape.output[2]), 2 * np.log(shape.input[0])]])


def _shape_terms(shape: KernelShape, features: np.ndarray) -> list[float]:
    """What the boosted-trees correction splits on: the line's terms (log), the channel counts, map sizes,
    kernel and stride, and the remainders of the counts against the SIMD steps a runtime works in
    (channels in 16s and 4s, output rows in 8s, positions in 16s)."""
    c_in = shape.input[0]
    c_out, height, width = shape.output
    return [*np.log1p(features[:-1]).tolist(), math.log(c_in), math.log(c_out), math.log(height), math.log(width),
            math.log(shape.input[1] * shape.input[2]), math.log(height * width), shape.kernel[0], shape.stride[0],
            c_in % 16, c_out % 16, c_in % 4, c_out % 4, width % 8, (height * width) % 16]


class _Fit:
    """Non-negative least squares on relative error (the kind's line), times a correction for how far a
    kernel sits off that line: gradient-boosted trees over its shape (``_shape_terms``) where the group has
    ``TREES_FROM`` entries or more, else the weighted log-ratio of its nearest entries.

    ``TREES_FROM``: in 5-fold cross-validation of the full host table (groups of 200–470 entries) and of a
    full litert table the trees beat the neighbours by 6–18 points within ±10 %; on the quick host table
    (groups of 10–71) they did not (55.9 % against 55.3 %), and at 10 entries or 100 the full tables'
    figures differ by under a point. 100 keeps quick tables' prices as they were."""

    NEIGHBOURS = 8
    TREES_FROM = 100

    def __init__(self, entries: list, latencies_ms: list[float], step: int, channels_first: bool = True):
        self.step, self.channels_first = step, channels_first
        self.usable = len(entries) >= 3
        self.trees = None
        self.tile = None  # a channel-last table's GEMM tile, for its convs (``gemm_tile``)
        if not self.usable:
            return
        if not channels_first and entries[0].shape.kind in ("conv", "pointwise"):
            self.tile = gemm_tile([e.shape for e in entries], latencies_ms)
        design = np.stack([_features(e.shape, step, channels_first, self.tile) for e in entries])
        measured = np.array(latencies_ms)
        self.scale = np.maximum(design.max(axis=0), 1e-12)
        weights = 1.0 / measured
        self.coefficients = _nnls(design / self.scale * weights[:, None], measured * weights)
        line = design / self.scale @ self.coefficients
        self.log_ratio = np.log(measured / np.maximum(line, 1e-9))
        if len(entries) >= self.TREES_FROM:
            terms = np.array([_shape_terms(e.shape, row) for e, row in zip(entries, design)])
            self.trees = BoostedTrees(terms, self.log_ratio)
        else:
            self.points = np.stack([_neighbourhood(e.shape, row) for e, row in zip(entries, design)])

    def predict(self, shape: KernelShape) -> float:
        features = _features(shape, self.step, self.channels_first, self.tile)
        line = max(float(features / self.scale @ self.coefficients), 1e-6)
        if self.trees is not None:
            return line * math.exp(self.trees.predict_one(_shape_terms(shape, features)))
        distance = np.abs(self.points - _neighbourhood(shape, features)).sum(axis=1)
        nearest = np.argsort(distance)[: self.NEIGHBOURS]
        weights = 1.0 / (distance[nearest] + 0.05)
        return line * float(np.exp(np.sum(self.log_ratio[nearest] * weights) / weights.sum()))


_FIT_CACHE: OrderedDict[tuple, _Fit] = OrderedDict()
_FIT_CACHE_SIZE = 64


def _fitted(entries: list, latencies_ms: list[float], step: int, channels_first: bool = True) -> _Fit:
    """``_Fit(entries, latencies_ms, step, channels_first)``, reused while the same entries and times come again:
    fitting the boosted trees of a full profile takes about half a second, and a latency model is built per
    estimate."""
    key = (tuple((entry.shape, entry.layout) for entry in entries), tuple(latencies_ms), step, channels_first)
    fit = _FIT_CACHE.get(key)
    if fit is None:
        fit = _FIT_CACHE[key] = _Fit(entries, latencies_ms, step, channels_first)
        while len(_FIT_CACHE) > _FIT_CACHE_SIZE:
            _FIT_CACHE.popitem(last=False)
    else:
        _FIT_CACHE.move_to_end(key)
    return fit


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
