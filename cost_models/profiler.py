"""Measure a latency table on the machine at hand and write it as a target profile.

The grid is single-kernel models (``kernel_onnx``) over shapes chosen to show the SIMD steps:
random channel counts (multiples of 8 and odd ones) at the spatial sizes small networks use, plus
dense sweeps of one channel at a time. Each kernel is timed inside onnxruntime's profiler, so the
table holds the kernel's node time as it is inside a whole model, without the layout reorders a
single-kernel model adds around it; the reorders seen are fitted separately (per call + per
element). The grid is measured in several rounds minutes apart and each kernel keeps its fastest
(``fastest_round``).
Then random multi-kernel networks are timed whole to calibrate the sum (``calibration``), and the
per-model overhead is timed on an Identity model.

Measurements are appended to ``<out>.measurements.jsonl`` as they come, so an interrupted run resumes.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import speed_reference
from .kernel_onnx import LAYOUT_CHANGE_TENSORS, REORDER_CHAIN_TENSORS, kernel_model, overhead_model
from .kernel_shape import KernelShape
from .runner import (
    Session,
    append_line,
    machine_description,
    machine_tag,
    measured_ids,
    onnxruntime_node_times,
    time_interleaved,
    time_session,
)
from .target import LAYOUT_CHANGE_TERMS, SCHEMA, parse_target

CHANNELS = (3, 8, 12, 16, 17, 24, 32, 33, 40, 48, 56, 64, 65, 72, 96, 112, 128, 129, 160, 192, 256, 320, 384, 512)
SPATIAL_FULL = ((1, 1), (2, 2), (3, 3), (4, 4), (7, 7), (8, 8), (12, 12), (14, 14), (16, 16), (24, 24), (28, 28),
                (32, 32), (48, 48), (56, 56), (25, 5), (31, 7), (16, 10), (50, 20))
SPATIAL_QUICK = ((2, 2), (7, 7), (14, 14), (25, 5), (28, 28))
IMAGE_SIZES = (24, 32, 40, 48, 64, 96, 112, 128, 160, 224)  # input resolutions of image networks (px)
MAX_KERNEL_MACS = 40_000_000  # keeps one measurement well under a second on a phone-class CPU


def shape_id(shape: KernelShape) -> str:
    text = json.dumps(shape.to_dict(), sort_keys=True)
    return f"{shape.kind}-" + hashlib.sha1(text.encode()).hexdigest()[:12]


KWS_STEMS = ((49, 10), (61, 13), (99, 40), (32, 20), (98, 40))  # (frames, bins) under a 10×4 stride-2 stem conv
KWS_MAPS = ((25, 5), (13, 3), (31, 7), (16, 4), (50, 20), (25, 20))  # feature maps behind those stems
FC_FEATURES_IN = (16, 32, 64, 65, 128, 256, 512, 1024)
FC_FEATURES_OUT = (2, 10, 12, 35, 100, 1000)
ACTIVATIONS = ("relu", "relu", "relu6", None)
SWEEPS = (("conv", 64, 28, 3), ("pointwise", 96, 14, 1), ("depthwise", None, 28, 3))  # kind, c_in, size, kernel


def _log_uniform(rng: random.Random, low: float, high: float) -> int:
    """A count drawn log-uniformly between ``low`` and ``high`` (rounded): as many narrow layers as wide ones."""
    return int(round(np.exp(rng.uniform(np.log(low), np.log(high)))))


def _any_channels(rng: random.Random) -> int:
    """A channel count: one of the grid's ``CHANNELS`` or any count of 3-512, as likely."""
    return CHANNELS[rng.randrange(len(CHANNELS))] if rng.random() < 0.5 else _log_uniform(rng, 3, 512)


def _large_maps(quick: bool) -> tuple[tuple[int, int], ...]:
    """The grid's maps and image networks' early ones (24-48 px)."""
    return (SPATIAL_QUICK if quick else SPATIAL_FULL) + tuple((s, s) for s in IMAGE_SIZES[:4])


def kernel_grid(quick: bool = False, seed: int = 0) -> list[KernelShape]:
    """The shapes the profiler measures (deterministic for a given ``quick`` and ``seed``): random
    draws per kind (``count`` of them, ÷5 when quick, none over ``MAX_KERNEL_MACS``), then the
    dense channel sweeps."""
    rng = random.Random(seed)
    spatial = SPATIAL_QUICK if quick else SPATIAL_FULL
    scale = 5 if quick else 1
    shapes: list[KernelShape] = []

    def sample(count: int, make: Callable[[], KernelShape]) -> None:
        made = 0
        for _ in range(count // scale * 20):
            shape = make()
            if shape.macs <= MAX_KERNEL_MACS:
                shapes.append(shape)
                made += 1
                if made == count // scale:
                    return

    def channels(low: int = 1, high: int | None = None) -> int:
        """From the list (multiples of 8 and their neighbours), or half the time any count in its range:
        grown networks have arbitrary widths, and onnxruntime runs some of them in another layout."""
        listed = CHANNELS[low:high]
        if rng.random() < 0.5:
            return listed[rng.randrange(len(listed))]
        return _log_uniform(rng, max(listed[0], 2), listed[-1])

    def conv3x3(stride: int) -> KernelShape:
        return KernelShape.same("conv", channels(0), channels(), rng.choice(spatial), 3, stride,
                                rng.choice(ACTIVATIONS))

    def depthwise(stride: int) -> KernelShape:
        c = channels()
        return KernelShape.same("depthwise", c, c, rng.choice(spatial), 3, stride, rng.choice(ACTIVATIONS))

    def pointwise() -> KernelShape:
        return KernelShape.same("pointwise", channels(0), channels(), rng.choice(spatial), 1, 1,
                                rng.choice(ACTIVATIONS))

    def large_kernel() -> KernelShape:
        return KernelShape.same("conv", rng.choice((1, 3, 8, 16)), channels(1, 12), rng.choice(spatial),
                                rng.choice((5, 7)), rng.choice((1, 2)))

    def kws_stem() -> KernelShape:
        (frames, bins), c = rng.choice(KWS_STEMS), channels(1, 20)
        return KernelShape("conv", (1, frames + 9, bins + 3), (c, -(-frames // 2), -(-bins // 2)), (10, 4), (2, 2),
                           "relu")

    def fully_connected() -> KernelShape:
        return KernelShape("fully_connected", (rng.choice(FC_FEATURES_IN), 1, 1), (rng.choice(FC_FEATURES_OUT), 1, 1))

    def global_pool() -> KernelShape:
        c, hw = channels(), rng.choice(spatial)
        return KernelShape("global_pool", (c, *hw), (c, 1, 1))

    def pool() -> KernelShape:
        c, hw, k = channels(), rng.choice(spatial), rng.choice((2, 3))
        return KernelShape.same("pool", c, c, hw, k, 2, None)

    def add() -> KernelShape:
        c, hw = channels(), rng.choice(spatial)
        return KernelShape("add", (c, *hw), (c, *hw), activation=rng.choice(("relu", None)))

    def pad() -> KernelShape:
        c, (h, w) = channels(0, 6), rng.choice(spatial)
        return KernelShape("pad", (c, h, w), (c, h + 1, w + 1))

    def mul() -> KernelShape:
        """a feature map times one value per channel (kernel_onnx's mul): a squeeze-and-excitation gate"""
        c, hw = channels(), rng.choice(spatial)
        return KernelShape("mul", (c, *hw), (c, *hw))

    def concat() -> KernelShape:
        c, hw = channels(), rng.choice(spatial)
        return KernelShape("concat", (c, *hw), (2 * c, *hw))

    for stride in (1, 2):
        sample(160, lambda: conv3x3(stride))
        sample(130, lambda: depthwise(stride))
    sample(220, pointwise)
    sample(30, large_kernel)
    sample(40, kws_stem)
    sample(60, fully_connected)
    sample(40, global_pool)
    sample(40, pool)
    sample(60, add)
    sample(20, pad)
    sample(20, concat)

    # where networks' late and grown layers sit and the draws above are thin: few positions and many
    # (often odd) channels, as MobileNets at low resolution end; depthwise layers at KWS feature-map
    # sizes with any channel count, as grown DS-CNNs have
    def few_positions(kind: str) -> KernelShape:
        hw = rng.choice(((1, 1), (2, 2), (3, 3), (4, 4)))
        wide = lambda: _log_uniform(rng, 48, 700)  # noqa: E731
        c_in = wide()
        c_out = c_in if kind == "depthwise" else wide()
        depthwise = kind == "depthwise"
        return KernelShape.same(kind, c_in, c_out, hw, 3 if depthwise else 1, rng.choice((1, 1, 2)) if depthwise else 1,
                                rng.choice(ACTIVATIONS))

    def kws_depthwise() -> KernelShape:
        c = _log_uniform(rng, 6, 220)
        return KernelShape.same("depthwise", c, c, rng.choice(KWS_MAPS), 3, rng.choice((1, 1, 2)),
                                rng.choice(ACTIVATIONS))

    def any_width_conv3x3() -> KernelShape:
        """a dense 3×3 conv at any channel counts (onnxruntime runs most in its plain layout, whose
        cost steps with the matrix product's shape), as hand-written and grown CNNs have"""
        anywhere = lambda: _log_uniform(rng, 3, 200)  # noqa: E731
        return KernelShape.same("conv", anywhere(), anywhere(), rng.choice(spatial), 3, rng.choice((1, 1, 2)),
                                rng.choice(ACTIVATIONS))

    def any_width_large_kernel() -> KernelShape:
        """a 5×5 or 7×7 conv at any channel counts, not only on the image's first layer"""
        anywhere = lambda: _log_uniform(rng, 3, 96)  # noqa: E731
        return KernelShape.same("conv", anywhere(), anywhere(), rng.choice(spatial), rng.choice((5, 7)),
                                rng.choice((1, 1, 2)), rng.choice(ACTIVATIONS))

    sample(120, any_width_conv3x3)
    sample(60, any_width_large_kernel)
    sample(60, lambda: few_positions("pointwise"))
    sample(30, lambda: few_positions("depthwise"))
    sample(50, kws_depthwise)
    sample(40, mul)

    def few_channels() -> KernelShape:
        """a kernel of 2–16 channels at a small map, as networks of tens of microseconds have (onnxruntime
        runs them blocked or plain by their count, and their cost is mostly per call and per channel)"""
        kind = rng.choice(("conv", "pointwise", "depthwise"))
        c_in, c_out = rng.randint(2, 16), rng.randint(2, 16)
        hw = rng.choice(KWS_MAPS[:4] + ((8, 8), (16, 16), (4, 4)))
        return KernelShape.same(kind, c_in, c_in if kind == "depthwise" else c_out, hw, 1 if kind == "pointwise" else 3,
                                1, rng.choice(ACTIVATIONS))

    sample(90, few_channels)

    def weight_bound_pointwise() -> KernelShape:
        """a pointwise conv at 1–4 positions with 256–1,024 channels in and out (0.25–4 MB of float
        weights), half of them multiples of 16, which onnxruntime runs blocked. Its time is mostly reading
        its weights; MobileNets at low resolution end in such layers. The draws above held few of them,
        and fits from smaller ones priced them 7–70 % too fast on an x86 host (2026-12-06)"""
        hw = rng.choice(((1, 1), (2, 2), (4, 4)))

        def count() -> int:
            c = _log_uniform(rng, 256, 1024)
            return c // 16 * 16 if rng.random() < 0.5 else c

        return KernelShape.same("pointwise", count(), count(), hw, 1, 1, rng.choice(ACTIVATIONS))

    sample(48, weight_bound_pointwise)

    def mean() -> KernelShape:
        """the mean over the map as ``x.mean((2, 3))`` writes it (ReduceMean): onnxruntime runs it in its plain
        layout and 1.3-3x faster than the GlobalAveragePool of a global pool on maps of 1 K elements and up
        (x86 host, 2026-12-06), and hand-written networks end in it"""
        c, hw = channels(), rng.choice(spatial)
        return KernelShape("mean", (c, *hw), (c, 1, 1))

    sample(40, mean)

    def image_stem() -> KernelShape:
        """the first conv of an image network: 1 or 3 channels in at the input's resolution (24-224 px, where
        the spatial sizes above stop at 56), any width out. Fitted from the draws above, such stems at 32-40 px
        were priced 16-19 % over on an x86 host (2026-12-06); with these, within 10 %"""
        size = rng.choice(IMAGE_SIZES)
        c_out = _log_uniform(rng, 8, 64)
        return KernelShape.same("conv", rng.choice((1, 3, 3)), c_out, (size, size), 3, rng.choice((1, 2)),
                                rng.choice(ACTIVATIONS))

    def early_pool() -> KernelShape:
        """a max-pool behind a hand-written CNN's early convs: any width (mostly onnxruntime's plain layout),
        maps of 24-112 px"""
        size = rng.choice(IMAGE_SIZES[:7])
        c = _log_uniform(rng, 8, 128)
        return KernelShape.same("pool", c, c, (size, size), rng.choice((2, 3)), 2, None)

    sample(40, image_stem)
    sample(30, early_pool)

    def strided_pointwise() -> KernelShape:
        """a 1×1 conv with stride 2: a residual network's projection shortcut. The draws above held none, and
        fits from stride-1 ones priced them 7-16 % fast through onnxruntime and 17-31 % fast through litert (x86
        host, 2026-12-07): a strided read is not the plain matrix product a stride-1 pointwise conv is. With these
        the litert table's held-out kernels of 5 us and more went from 85-86 to 89 % within 10 %; onnxruntime's three
        held-out strided ones went from 7-16 % under to 5-14 % over, no better"""
        return KernelShape.same("pointwise", channels(0), channels(), rng.choice(spatial[1:]), 1, 2,
                                rng.choice((None, None, "relu")))

    sample(40, strided_pointwise)

    def avg_pool() -> KernelShape:
        """an average pool (``nn.AvgPool2d``, ``F.avg_pool2d``): a 2×2 or 3×3 window of stride 2 at any width and
        map, or one window over a whole small map (a CIFAR ResNet's ``F.avg_pool2d(x, 4)``). Priced from max
        pools before, but onnxruntime runs an AveragePool in its plain layout 5-8x slower than a MaxPool (24
        channels at 48×48 on an x86 host, 2026-12-07)"""
        c = channels() if rng.random() < 0.5 else _log_uniform(rng, 8, 128)
        if rng.random() < 0.3:
            size = rng.choice((2, 4, 7, 8))
            return KernelShape("avg_pool", (c, size, size), (c, 1, 1), (size, size), (size, size))
        hw = rng.choice(spatial[1:] + tuple((s, s) for s in IMAGE_SIZES[:5]))
        return KernelShape.same("avg_pool", c, c, hw, rng.choice((2, 3)), 2, None)

    sample(60, avg_pool)
    # dense sweeps: every channel count across two SIMD steps, where the staircase shows
    for kind, c_in, size, kernel in SWEEPS[:1] if quick else SWEEPS:
        for c in range(56, 74):
            shapes.append(KernelShape.same(kind, c_in or c, c, (size, size), kernel, 1))
    return list(dict.fromkeys(shapes))


# the activations a fused activation's cost is measured for (``activation_sweep``); None is the bare kernel
SWEPT_ACTIVATIONS = (None, "relu", "relu6", "hardswish", "sigmoid", "tanh", "leaky_relu", "silu")


def activation_sweep(quick: bool = False, seed: int = 0) -> list[KernelShape]:
    """Kernels measured with every activation of ``SWEPT_ACTIVATIONS`` and without one, so the cost of a
    fused activation per output element can be read per layout (``fit_activation_costs``): for each
    of conv 3×3, pointwise and depthwise, shapes onnxruntime runs in its blocked layout (channels a
    multiple of 4) and in its plain one (odd channels), 4 each (1 when ``quick``). Deterministic."""
    rng = random.Random(seed + 1)
    sizes = ((8, 8), (14, 14), (16, 16), (28, 28), (25, 5), (16, 10), (32, 32))
    shapes = []
    for _ in range(1 if quick else 4):
        for kind in ("conv", "pointwise", "depthwise"):
            for layout in ("blocked", "plain"):
                c_in = 4 * rng.randint(4, 24) if layout == "blocked" else 2 * rng.randint(8, 40) + 1
                c_out = c_in if kind == "depthwise" else rng.randint(8, 96)
                kernel = 1 if kind == "pointwise" else 3
                hw = rng.choice(sizes)
                shapes += [KernelShape.same(kind, c_in, c_out, hw, kernel, 1, activation)
                           for activation in SWEPT_ACTIVATIONS]
    return shapes


def profile_grid(quick: bool = False, runtime: str = "onnxruntime") -> list[KernelShape]:
    """Every kernel a profile measures: the grid (``kernel_grid``), the activation sweep and concatenations of two
    tensors of any widths (``concat_grid``), BatchNorms of their own (``batch_norm_grid``), activations of their own
    (``standalone_activation_grid``), linear layers reading a flattened map (``fully_connected_grid``) and classifier
    heads of hundreds to a thousand classes (``classifier_head_grid``); for litert
    also the paddings litert-torch writes before max pools (``max_pad_grid``) and the zero paddings of any width it
    writes before strided convs (``pad_grid``), the channel-last means of gates and heads (``mean_nhwc_grid``) and the
    transposed means of heads on maps whose channel planes alias in the L1 cache (``transposed_mean_grid``)."""
    extra = (max_pad_grid(quick) + pad_grid(quick) + mean_nhwc_grid(quick) + transposed_mean_grid(quick)
             if runtime == "litert" else [])
    return list(dict.fromkeys(kernel_grid(quick) + activation_sweep(quick) + extra + concat_grid(quick)
                              + batch_norm_grid(quick) + standalone_activation_grid(quick)
                              + fully_connected_grid(quick) + classifier_head_grid(quick)))


def max_pad_grid(quick: bool = False, seed: int = 0) -> list[KernelShape]:
    """The -inf paddings (``max_pad``: a PADV2) litert-torch writes before a max pool whose padding TFLite's SAME cannot
    express, ``F.max_pool2d(x, 3, 2, 1)`` on an even map (onnxruntime folds them into its MaxPool). The profiler's max
    pools reach their 'same' output without one, and networks with such pools were priced 9-21 % fast through litert;
    a pool priced from the table plus its padding timed alone came within a few % of the pool with its padding for 10 of
    12 shapes (x86 host, 2026-12-07). One pixel on each side (a 3×3 window), or two (5×5); 40 draws (8 when quick)."""
    return _paddings("max_pad", random.Random(seed + 2), 8 if quick else 40,
                     lambda rng: 2 * (1 if rng.random() < 0.8 else 2))


def pad_grid(quick: bool = False, seed: int = 0) -> list[KernelShape]:
    """Zero paddings of one pixel after the map (a PAD), which litert-torch writes before a strided conv whose padding
    TFLite's SAME cannot express, at any channel count: the grid's pads draw 3-24 channels, and its fit priced a
    held-out 115-channel one on a 50×20 map at 3.3-3.5 times its 17-18 µs (x86 host, 2026-12-07). onnxruntime folds
    such a padding into its conv. Channels and maps as ``max_pad_grid`` draws them; 40 draws (8 when quick)."""
    # standalone_activation_grid's seed too: other kinds, so other shapes (a new seed would re-profile)
    return _paddings("pad", random.Random(seed + 6), 8 if quick else 40, lambda rng: 1)


def _paddings(kind: str, rng: random.Random, count: int, added: Callable[[random.Random], int]) -> list[KernelShape]:
    """``count`` paddings of ``kind``: 3-512 channels on the grid's maps but 1×1 and image networks' up to 112 px, each
    map grown by ``added(rng)`` rows and columns."""
    sizes = SPATIAL_FULL[1:] + tuple((s, s) for s in IMAGE_SIZES[:7])
    shapes = []
    for _ in range(count):
        c = _log_uniform(rng, 3, 512)
        h, w = rng.choice(sizes)
        grown = added(rng)
        shapes.append(KernelShape(kind, (c, h, w), (c, h + grown, w + grown)))
    return shapes


def mean_nhwc_grid(quick: bool = False, seed: int = 0) -> list[KernelShape]:
    """Means over the map that keep its rank, which litert-torch writes as a MEAN on the channel-last tensor
    (``mean_nhwc``: a squeeze-and-excitation gate's squeeze, a head's ``nn.AdaptiveAvgPool2d(1)``). The grid's ``mean``
    is ``x.mean((2, 3))``, which it writes as a TRANSPOSE to channel-first and a MEAN: the first took 15-65 % of that
    time at 16 to 120 channels on maps of 8×8 to 32×32 (x86 host, 2026-12-07), and squeeze-and-excitation networks were
    priced +4 to +5 % over. Channels and maps as the grid's global pools draw them; 80 draws (8 when quick)."""
    rng = random.Random(seed + 3)
    sizes = SPATIAL_QUICK if quick else SPATIAL_FULL
    shapes = []
    for _ in range(8 if quick else 80):
        c = _any_channels(rng)
        h, w = rng.choice(sizes)
        shapes.append(KernelShape("mean_nhwc", (c, h, w), (c, 1, 1)))
    return shapes


def transposed_mean_grid(quick: bool = False, seed: int = 0) -> list[KernelShape]:
    """Means and global pools over the map, which litert-torch writes as a TRANSPOSE to channel-first and a MEAN, half
    of them on 32×32 and 64×64 maps, whose channel planes (4 KB and 16 KB of floats) share the L1 cache's sets as the
    transpose writes them: swept through litert (x86 host, 2026-12-07) those took 1.4-2.0× the time an element of
    31×31, 33×33 or 48×48 maps (``latency._transposed_mean_terms``), and the grid's 79 held one such mean and seven such
    global pools, all 32×32. 48 draws (8 when quick; 45 distinct), the two kinds in turn."""
    rng = random.Random(seed + 5)  # batch_norm_grid's seed too: other kinds, other shapes (a new one would re-profile)
    aliased, others = ((32, 32), (64, 64)), ((16, 16), (24, 24), (28, 28), (31, 31), (33, 33), (48, 48), (56, 56))
    shapes = []
    for index in range(8 if quick else 48):
        c = _any_channels(rng)
        h, w = rng.choice(aliased if index % 4 < 2 else others)
        shapes.append(KernelShape(("mean", "global_pool")[index % 2], (c, h, w), (c, 1, 1)))
    return shapes


def concat_grid(quick: bool = False, seed: int = 0) -> list[KernelShape]:
    """Concatenations along the channels of two tensors of any widths (2-256 channels each), as a concat network's
    branches and a grown network's skip joins have, on the grid's maps and image networks' early ones (24-48 px). The
    grid's own concatenations (``kernel_grid``) are of one tensor with a copy of itself at its draws of channels, few of
    them narrow on a large map: through litert XNNPACK copies channel-last tensors position by position (6-7 ns a
    position for two runs of 16 channels, 24-37 ns for two of 64, x86 host, 2026-12-07), and one of 4 + 29 channels at
    48×48 was priced 76 % under from them. 40 draws (8 when quick)."""
    rng = random.Random(seed + 4)
    sizes = _large_maps(quick)
    shapes = []
    while len(shapes) < (8 if quick else 40):
        first, second, (h, w) = _log_uniform(rng, 2, 256), _log_uniform(rng, 2, 256), rng.choice(sizes)
        if (first + second) * h * w <= 1_000_000:  # a copy of up to 4 MB of float32, well under a second anywhere
            shapes.append(KernelShape("concat", (first, h, w), (first + second, h, w)))
    return shapes


# the activations a BatchNorm of its own is timed with (the activation that follows it goes with it: ``kernels``)
BATCH_NORM_ACTIVATIONS = (None, "relu", "relu6")
# the activations timed as nodes of their own
STANDALONE_ACTIVATIONS = ("relu", "relu6", "hardswish", "sigmoid")


def _elementwise_draws(rng: random.Random, quick: bool) -> list[tuple[int, int, int]]:
    """(channels, height, width) of per-element kernels, as the grid's channels and maps and image networks' early maps
    (24-48 px) have them: 40 draws (8 when quick) of up to a million elements."""
    sizes = _large_maps(quick)
    draws = []
    while len(draws) < (8 if quick else 40):
        c = _any_channels(rng)
        h, w = rng.choice(sizes)
        if c * h * w <= 1_000_000:
            draws.append((c, h, w))
    return draws


def batch_norm_grid(quick: bool = False, seed: int = 0) -> list[KernelShape]:
    """BatchNorms no conv precedes (``batch_norm``: behind a concat or an add, first in a pre-activation block), each
    with no activation, a ReLU or a ReLU6 after it, timed with trained statistics (litert: the SUB, MUL, MUL and ADD
    litert-torch writes for one behind a concat). Before, one was priced as the table's per-channel mul of its shape
    and its activation at the roofline: the host's litert entries of 2 us and more took 3.7-9.2 times the mul (median
    4.0 without an activation, 4.6-4.9 with one), 3.0-8.9 times that price; onnxruntime's BatchNormalization 0.6-0.9
    times the mul, and with its ReLU or ReLU6 (a Relu or Clip node) 1.0-1.8 times (x86 host, 2026-12-07). 40 draws (8
    when quick)."""
    rng = random.Random(seed + 5)
    return [KernelShape("batch_norm", (c, h, w), (c, h, w), activation=rng.choice(BATCH_NORM_ACTIVATIONS))
            for c, h, w in _elementwise_draws(rng, quick)]


def standalone_activation_grid(quick: bool = False, seed: int = 0) -> list[KernelShape]:
    """Activations no kernel before it takes in (``activation``: after a concat, a mul or a pool), a node of their own.
    Before, one was priced at its roofline: a ReLU or ReLU6 took 2.3-2.4 times that through litert and 5-7 times through
    onnxruntime (17-64 channels on 12×12-48×48 maps, x86 host, 2026-12-07). 40 draws (8 when quick)."""
    rng = random.Random(seed + 6)
    return [KernelShape("activation", (c, h, w), (c, h, w), activation=rng.choice(STANDALONE_ACTIVATIONS))
            for c, h, w in _elementwise_draws(rng, quick)]


FLATTENED_MAPS = ((2, 2), (3, 3), (4, 4), (6, 6), (7, 7), (8, 8), (12, 12), (16, 16), (13, 3), (25, 5))


def fully_connected_grid(quick: bool = False, seed: int = 0) -> list[KernelShape]:
    """Linear layers as a plain CNN's head has them, reading a flattened map (3-64 channels by 2×2 to 16×16, or a
    keyword network's 13×3 and 25×5: 12 to 16,384 inputs), for 2-128 classes. The grid's draw reaches 1,024 inputs and
    2, 10, 12, 35, 100 or 1,000 outputs; through onnxruntime (x86 host, 2026-12-07) layers of 171-3,968 inputs to 4
    outputs were priced 9-19 % under, a 13,824 -> 100 one 10 % under, and a held-out 10,752 -> 2 one 34 % under.
    40 draws (8 when quick)."""
    rng = random.Random(seed + 7)
    shapes = []
    for _ in range(8 if quick else 40):
        h, w = rng.choice(FLATTENED_MAPS)
        shapes.append(KernelShape("fully_connected", (_log_uniform(rng, 3, 64) * h * w, 1, 1),
                                  (_log_uniform(rng, 2, 128), 1, 1)))
    return shapes


CLASSIFIER_CLASSES = (100, 200, 500, 1000, 1001)  # CIFAR-100, Tiny ImageNet, ..., ImageNet (and its background class)


def classifier_head_grid(quick: bool = False, seed: int = 0) -> list[KernelShape]:
    """Linear layers as an image classifier's head has them: a pooled vector of 256-2,560 features (MobileNets' 1,024
    and 1,280 at any width multiplier) to 100-1,001 classes. Without them the host tables' linear layers had 1,000
    classes only from 32-256 inputs and at most 100 classes from more. 20 held-out heads of 320-2,371 inputs to
    100-1,001 classes (x86 host, 2026-12-08) were priced 1-36 % under through onnxruntime (1-3.5 us each) and 15-30 %
    under through litert, where a 1,024 -> 1,000 head took 68 us against 50 (two of 500 classes 12-15 % over). With
    these, 9 -> 14 of those 20 were within ±10 % through onnxruntime (every 1,000-class one within 8.3 %) and 0 -> 10
    through litert (within 4.2 %); many inputs to 100-200 classes are still 14-37 % under through onnxruntime and
    11-27 % through litert, and the two 500-class heads went to 19-31 % over there. 20 draws (4 when quick)."""
    rng = random.Random(seed + 8)
    return [KernelShape("fully_connected", (_log_uniform(rng, 256, 2560), 1, 1), (rng.choice(CLASSIFIER_CLASSES), 1, 1))
            for _ in range(4 if quick else 20)]


def fit_activation_costs(entries: list[dict]) -> dict[str, dict[str, float]]:
    """{layout: {activation: ms per output element}} from profile entries (shape fields, ``latency_ms``,
    ``layout``): for every kernel measured both with an activation and without one, the difference
    over its output elements; per layout and activation the median of those (never below 0)."""
    shaped = [(KernelShape.from_dict(entry), entry) for entry in entries]
    bare = {shape: entry for shape, entry in shaped if shape.activation is None}
    ratios: dict[tuple[str, str], list[float]] = {}
    for shape, entry in shaped:
        if shape.activation is None or shape.kind not in ("conv", "pointwise", "depthwise"):
            continue
        base = bare.get(KernelShape(shape.kind, shape.input, shape.output, shape.kernel, shape.stride, None))
        if base is None or base.get("layout", "plain") != entry.get("layout", "plain"):
            continue
        ratios.setdefault((entry.get("layout", "plain"), shape.activation), []).append(
            (entry["latency_ms"] - base["latency_ms"]) / shape.output_elements)
    costs: dict[str, dict[str, float]] = {}
    for (layout, activation), values in sorted(ratios.items()):
        costs.setdefault(layout, {})[activation] = max(0.0, float(np.median(values)))
    return costs


def activation_costs_block(entries: list[dict], where: str) -> dict | None:
    """A profile's ``latency.activations`` from its entries (``fit_activation_costs``), or None when no
    kernel was measured both with and without an activation."""
    costs = fit_activation_costs(entries)
    if not costs:
        return None
    pairs = sum(len(per_activation) for per_activation in costs.values())
    rounded = {layout: {activation: float(f"{value:.4g}") for activation, value in per_activation.items()}
               for layout, per_activation in costs.items()}
    return {"ms_per_element": rounded,
            "source": f"{where}: per layout and activation ({pairs} pairs), the median over the kernels measured "
                      "with it and without any of the difference per output element (profiler.activation_sweep)"}


def write_suite(folder: str | Path, shapes: list[KernelShape]) -> Path:
    """A folder of single-kernel ONNX models and ``suite.json``, for ``runner.py`` on another device."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for shape in shapes:
        identifier = shape_id(shape)
        (folder / f"{identifier}.onnx").write_bytes(kernel_model(shape).SerializeToString())
        entries.append({"id": identifier, "shape": shape.to_dict()})
    (folder / "overhead.onnx").write_bytes(overhead_model().SerializeToString())
    write_json_atomically(folder / "suite.json", {"kernels": entries, "overhead_model": "overhead.onnx"})
    return folder


_IDENTITY_SESSIONS: dict[int, Session] = {}
WALL_TIMING = {"warmup_ms": 2.0, "repeats": 9, "sample_ms": 0.5}  # a grid model's wall-clock time, and its overhead's


def measure_kernel(shape: KernelShape, threads: int = 1) -> dict:
    """One measurement of one kernel in its single-kernel model: its nodes' times in onnxruntime's
    profiler (``onnxruntime_node_times``), the same model's wall-clock time without the profiler
    (``wall_ms``: what its nodes really take together, see ``without_profiler``), and the Identity model's
    wall-clock time timed the same way right after it (``overhead_ms``: the per-model overhead of that
    moment, which ``without_profiler`` takes out instead of the calibration's)."""
    model = kernel_model(shape, read_inside=True).SerializeToString()
    timing = onnxruntime_node_times(model, threads, budget_ms=30.0)
    wall = time_session(Session(model, threads=threads), **WALL_TIMING)
    identity = _IDENTITY_SESSIONS.get(threads)
    if identity is None:
        identity = _IDENTITY_SESSIONS[threads] = Session(overhead_model().SerializeToString(), threads=threads)
    overhead = time_session(identity, **WALL_TIMING)
    return {**timing, "wall_ms": wall["fast_ms"], "overhead_ms": overhead["fast_ms"]}


def measure_grid(shapes: list[KernelShape], partial_path: str | Path, threads: int = 1, quick: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Time every shape inside onnxruntime's profiler in several rounds, each going through the whole
    grid, so a kernel's rounds are minutes apart (on a shared machine latency jumps between an
    uncontended and a contended level for seconds at a time; the fastest of spread-out rounds
    repeats, one measurement does not). Rounds already in ``partial_path`` are not measured again.
    Returns every round's record.
    """
    rounds = 2 if quick else 4
    done = measured_ids(partial_path)
    todo = [(round_index, shape) for round_index in range(rounds) for shape in shapes
            if f"{shape_id(shape)}@{round_index}" not in done]
    for count, (round_index, shape) in enumerate(todo, 1):
        append_line(partial_path, {"id": f"{shape_id(shape)}@{round_index}", "shape": shape.to_dict(),
                                   **measure_kernel(shape, threads)})
        if progress is not None:
            progress(count, len(todo))
    return read_rounds(partial_path, shapes, ("kernel_ms", "reorders"))


def read_rounds(partial_path: str | Path, shapes: list[KernelShape], fields: tuple[str, ...]) -> list[dict]:
    """Every round's record of ``shapes`` in a measurements file, its id without the round; lines
    lacking one of ``fields`` (a torn last line, another format) are skipped."""
    wanted = {shape_id(shape) for shape in shapes}
    records = []
    with open(partial_path) as handle:
        for line in handle:
            try:
                record = json.loads(line)
                key = record["id"].split("@")[0]
                for field in fields:
                    record[field]
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError):
                continue
            if key in wanted:
                records.append({**record, "id": key})
    return records


def without_profiler(record: dict, overhead_ms: float | None, per_node_ms: float = 0.0) -> dict:
    """A measurement with its node times turned into wall-clock time.

    onnxruntime's profiler rounds every node's time down to a whole microsecond and adds its own
    (about 2 µs a node on an x86 host): a 0.6 µs pooling reads 2 µs, a 4.6 µs convolution 4 or 5.
    The single-kernel model's wall-clock time without the profiler, less the per-model overhead
    (the Identity model's time), is what its nodes really take together; the difference from the
    nodes' profiled sum is shared out equally over the nodes (the kernel's own, each layout reorder,
    and a helper node that reads a HardSwish, ``kernel_onnx.kernel_model``). Records measured before
    wall-clock times were taken, or without the overhead, are returned as they are. A record's own
    ``overhead_ms`` (the Identity model timed beside it, ``measure_kernel``; smoothed by
    ``local_overheads``) is taken out in place of ``overhead_ms``: the grid and the calibration are timed
    minutes or, resumed, hours apart, and the overhead moves by tenths of a microsecond between them,
    which is a tenth of a small kernel's time.

    ``per_node_ms``: what running one more node costs (the profile's per-node offset, timed on chains of
    tiny nodes). The Identity model holds one node's run, so the wall-clock time less the overhead holds
    the runs of all the model's nodes but one, (nodes - 1) × per_node_ms, which equal shares would leave
    in each node's time; a network pays a node's run through the calibration's per-node offset, so each
    node's time here is given without it. Before 2026-12-06 night a blocked kernel (three nodes) kept
    two thirds of a node's run and was charged a whole one again in networks: a grown MobileNetV2 of
    64 mostly blocked kernels at 1×1-16×16 was predicted 108 µs and measured 89-94 µs; without it, 99 µs."""
    if overhead_ms is None or "wall_ms" not in record or not record.get("nodes"):
        return record
    overhead_ms = record.get("overhead_ms", overhead_ms)
    nodes = record["nodes"]
    per_node = (record["wall_ms"] - overhead_ms - record["nodes_ms"]) / nodes - per_node_ms * (nodes - 1) / nodes
    kernel_nodes = max(1, nodes - len(record["reorders"]) - record.get("helper_nodes", 0))
    corrected = dict(record)
    corrected["kernel_ms"] = max(record["kernel_ms"] + per_node * kernel_nodes, 0.05 * record["kernel_ms"], 1e-5)
    corrected["reorders"] = [[elements, max(ms + per_node, 0.05 * ms)] for elements, ms in record["reorders"]]
    return corrected


OVERHEAD_WINDOW = 21  # measurements (about a second of the grid) whose Identity timings give one's overhead


def local_overheads(records: list[dict], window: int = OVERHEAD_WINDOW) -> list[dict]:
    """``records`` (in the order measured) with each one's ``overhead_ms`` replaced by the median of the
    Identity timings of the ``window`` measurements around it: the per-model overhead of that moment,
    without the odd timing that a stall made slow (one in a hundred here, up to 1.5× the rest). Records
    without an Identity timing (measured before 2026-12-06 late night) are left as they are: the
    calibration's overhead corrects them."""
    timed = [index for index, record in enumerate(records) if "overhead_ms" in record]
    if not timed:
        return records
    values = [records[index]["overhead_ms"] for index in timed]
    smoothed = list(records)
    half = window // 2
    for position, index in enumerate(timed):
        around = values[max(0, position - half): position + half + 1]
        smoothed[index] = {**records[index], "overhead_ms": float(np.median(around))}
    return smoothed


def fastest_round(rounds: list[dict], overhead_ms: float | None = None, per_node_ms: float = 0.0) -> dict:
    """One kernel's time from its rounds' records (each with the per-model overhead of its moment,
    ``local_overheads``): the round whose model ran fastest by the wall clock, less the smallest of the
    rounds' overheads, corrected as ``without_profiler`` says.

    Both are fast-regime figures, each of its own model. The fastest of the rounds' differences (kernel
    model less overhead, round by round) is not: a small kernel's model takes about as long as the
    Identity model, so that minimum picks the round whose overhead timing ran high, not the round whose
    kernel ran fast. On 2026-12-06 one grid round's overheads read 0.19 µs high; a 16→12 fully connected
    layer measured 0.19-0.23 µs in the other three rounds and went into the table at 0.1 µs (its floor),
    and held-out layers of its size were predicted 30-40 % under. Records without a wall-clock time (a
    litert grid, older files) keep their fastest corrected time."""
    timed = [record for record in rounds if "wall_ms" in record]
    if not timed or overhead_ms is None:
        return min((without_profiler(record, overhead_ms, per_node_ms) for record in rounds),
                   key=lambda record: record["kernel_ms"])
    fastest = min(timed, key=lambda record: record["wall_ms"])
    overheads = [record["overhead_ms"] for record in timed if "overhead_ms" in record]
    if overheads:
        fastest = {**fastest, "overhead_ms": min(overheads)}
    return without_profiler(fastest, overhead_ms, per_node_ms)


def fastest_rounds(records: list[dict], overhead_ms: float | None = None, per_node_ms: float = 0.0) -> list[dict]:
    """One record per kernel (``fastest_round`` of its rounds), from every round's record in the order
    measured (each less the per-model overhead of its moment, ``local_overheads``)."""
    rounds: dict[str, list[dict]] = {}
    for record in local_overheads(records):
        rounds.setdefault(record["id"], []).append(record)
    return [fastest_round(group, overhead_ms, per_node_ms) for group in rounds.values()]


def memory_bandwidth_bytes_per_s(threads: int = 1) -> float:
    """Streaming bandwidth: a 4 M-element float add (two reads, one write) in onnxruntime."""
    shape = KernelShape("add", (64, 256, 256), (64, 256, 256))
    session = Session(kernel_model(shape).SerializeToString(), threads=threads)
    fastest_ms = min(time_session(session, repeats=10)["fast_ms"] for _ in range(5))
    return 3 * 4 * 64 * 256 * 256 / (fastest_ms / 1e3)


def _where() -> str:
    return f"measured here by 'edgegrow profile' on {datetime.date.today().isoformat()} {machine_tag()}"


def build_profile(name: str, measurements: list[dict], overhead: dict, bandwidth: float, threads: int,
                  quick: bool, layout_change_ms: tuple[float, float], layout_changes: dict | None = None,
                  l1_cache_geometry: tuple[int, int] = (4096, 8), per_node_ms: float = 0.0) -> dict:
    """A target profile (plain dict, checked by ``parse_target``) from all rounds of measurements and the
    cost of a layout change (ms per change, without the per-node offset, and ms per element:
    ``reorder_cost_from_chains``; by direction, ``layout_costs_from_chains``); ``calibrate`` adds its
    model-level calibration. ``per_node_ms``: the per-node offset, left out of every kernel's time
    (``without_profiler``)."""
    import onnxruntime

    records = fastest_rounds(measurements, overhead["fast_ms"], per_node_ms)
    rounds = len(measurements) // max(1, len(records))
    corrected = any("wall_ms" in record for record in records)
    where = _where()
    machine = machine_description()
    per_call, per_element = layout_change_ms
    weighted = [(KernelShape.from_dict(r["shape"]).macs, r["kernel_ms"]) for r in records]
    rates = [macs / (ms / 1e3) for macs, ms in weighted if macs >= 1_000_000]  # big enough for the work to dominate
    rates = rates or [macs / (ms / 1e3) for macs, ms in weighted if macs] or [1e9]
    entries = [{**r["shape"], "latency_ms": round(r["kernel_ms"], 6), "layout": r["layout"]} for r in records]
    profile = {
        "schema": SCHEMA, "name": name, "kind": "cpu",
        "description": f"This machine ({machine['processor']}, {machine['cpu_count']} CPUs) running onnxruntime "
                       f"float32 with {threads} thread(s){' (quick grid)' if quick else ''}.",
        "runtime": {"name": "onnxruntime", "version": onnxruntime.__version__}, "threads": threads,
        "dtype": "float32",
        "peak_macs_per_s": {"value": max(rates), "source": f"{where}: fastest kernel of ≥ 1 M MACs in the table"},
        "memory_bandwidth_bytes_per_s": {"value": bandwidth, "source": f"{where}: 4 M-element float add, fastest of 5"},
        "sram_bytes": {"value": None, "source": "a desktop CPU: no SRAM limit"},
        "flash_bytes": {"value": None, "source": "a desktop CPU: no flash limit"},
        "active_power_mw": {"value": None, "source": "not measured here (no power meter); energy is not predicted"},
        "model_overhead_ms": {"value": overhead["fast_ms"],
                              "source": f"{where}: an Identity model timed in the calibration's rounds, fastest "
                                        f"round's 10th percentile (median {overhead['latency_ms']:.4f} ms)"},
        "model_overhead_flash_bytes": {"value": len(overhead_model().SerializeToString()),
                                       "source": "size of an ONNX file holding one Identity node"},
        "latency": {
            "source": f"{where}: {len(records)} single-kernel models, fastest of {rounds} rounds, each kernel's node "
                      "time in onnxruntime's profiler (mean of the fastest quarter of its runs)"
                      + (", turned into wall-clock time by the model's own wall-clock time less the per-model "
                         "overhead (profiler.without_profiler): the round of the fastest wall-clock time less the "
                         "smallest overhead of the rounds (profiler.fastest_round)" if corrected else "")
                      + (", less the run of the model's other nodes (the per-node offset)" if per_node_ms else ""),
            "layout": {"rule": "onnxruntime-nchwc" if any(r["layout"] == "blocked" for r in records) else "none",
                       "block_channels": _block_channels(), "reorder_ms_per_call": per_call,
                       "reorder_ms_per_element": per_element,
                       "source": f"{where}: chains of 1–8 layout changes there and back "
                                 f"(kernel_onnx.reorder_chain_model) on {len(REORDER_CHAIN_TENSORS)} tensors of "
                                 "1–200 K elements, timed in the calibration's rounds: the cost a change less the "
                                 "per-node offset, and the cost per element"
                                 + ("; 'changes': by direction, over the terms of latency.layout_change_terms, "
                                    f"fitted on {len(LAYOUT_CHANGE_TENSORS)} tensors timed in chains of pairs and in "
                                    "fan-outs of changes back (kernel_onnx.reorder_fanout_model)"
                                    if layout_changes else "")},
            "entries": entries,
        },
    }
    if per_node_ms:
        profile["latency"]["node_runs_left_out_ms"] = per_node_ms
    if layout_changes:
        profile["latency"]["layout"].update(changes=layout_changes, l1_set_stride_bytes=l1_cache_geometry[0],
                                            l1_ways=l1_cache_geometry[1])
    activations = activation_costs_block(entries, where)
    if activations is not None:
        profile["latency"]["activations"] = activations
    parse_target(profile, f"<profile {name}>")
    return profile


def calibrate(profile: dict, chains: list, measured_ms: list[float], rounds: int,
              split_halves: list[float | None] | None = None, per_node_ms: float | None = None,
              node_slope_ms: float | None = None, drift: dict | None = None) -> dict:
    """Add ``latency.calibration`` to a measured profile: the scale and per-node offset that turn
    summed table latencies of the random networks ``chains`` into their measured latencies
    (``split_halves``: the measurement protocol's noise floor of each, recorded in the source). The
    networks' measured times are kept (``measured_ms``, in the order of ``random_chains``), so a
    calibration can be refitted without measuring again.

    ``per_node_ms``: the runtime's per-node overhead measured directly (``node_chain_model``s); then
    only the scale is fitted. A table of wall-clock kernel times (``without_profiler``) holds each
    kernel's work but not the cost of running one more node, which whole networks pay per node and
    which the large chains cannot pin down (it is well under 1 % of them).

    ``node_slope_ms``: that slope, measured but not used (``per_node_ms`` None: the offset is fitted with the scale, and
    kept at 0 or more), is recorded in the source.

    ``drift``: ``calibration.steady_timing``'s tries and the networks' times against the ones this profile kept from
    its last run, kept as ``drift`` and said in the source."""
    from .calibration import chains_digest, drift_words, fit_calibration, table_sums
    from .kernel_onnx import NODE_CHAIN_LENGTHS

    uncalibrated = parse_target(profile, "<uncalibrated>")
    overhead_ms = uncalibrated.model_overhead_ms.value
    table_ms, counts = table_sums(uncalibrated, chains)
    scale, per_kernel_ms = fit_calibration(table_ms, counts, measured_ms, overhead_ms, per_node_ms)
    chains_words = f"{len(NODE_CHAIN_LENGTHS)} chains of 1–40 tiny nodes timed in the same rounds"
    node_words = ("" if per_node_ms is None else
                  f"; the per-node offset is the slope of {chains_words}, and only the scale is fitted")
    slope_words = ("" if per_node_ms is not None or node_slope_ms is None else
                   f"; the slope of {chains_words} ({node_slope_ms * 1e3:.4f} us a node) is not used")
    if slope_words:
        if per_kernel_ms < 0:  # an interpreter gives no time back per node: the scale alone, with no offset
            scale, per_kernel_ms = fit_calibration(table_ms, counts, measured_ms, overhead_ms, 0.0)
        node_words = "; the per-node offset is fitted with the scale (at least 0)"
    if not 0.25 <= scale <= 4.0:  # a handful of noisy networks can fit anything: keep the table as measured
        node_words = ((node_words if per_node_ms is not None else "")  # nothing fitted with the scale is kept
                      + f"; the fit gave a scale of {scale:.3g}, outside [0.25, 4], and was not applied")
        scale, per_kernel_ms = 1.0, per_node_ms or 0.0
    profile["latency"]["calibration"] = {
        "scale": scale, "per_kernel_ms": per_kernel_ms, "counted_over": "nodes",
        "measured_ms": [round(ms, 6) for ms in measured_ms], "networks_sha256": chains_digest(chains),
        "source": f"fitted here on {len(chains)} random multi-kernel networks (calibration.random_chains, seed 7), "
                  f"each the fast-regime figure of {rounds} rounds (cost_models.runner.measure)"
                  + _noise_words(split_halves) + node_words + slope_words + drift_words(drift),
    }
    if drift is not None:
        profile["latency"]["calibration"]["drift"] = {**drift, "now_over_kept": round(drift["now_over_kept"], 4)}
    parse_target(profile, f"<profile {profile['name']}>")
    return profile


def _noise_words(split_halves: list[float | None] | None) -> str:
    known = sorted(value for value in split_halves or [] if value is not None)
    if not known:
        return ""
    return (f"; noise floor: the halves of the rounds agree within {known[len(known) // 2]:.1%} (median), "
            f"{known[-1]:.1%} (worst)")


def l1_cache_geometry(cache_folder: str | Path = "/sys/devices/system/cpu/cpu0/cache") -> tuple[int, int]:
    """(set stride in bytes, ways) of this machine's level-1 data cache, from Linux's cache description:
    tensors whose channel planes are a multiple of the stride share cache sets. (4096, 8) where it cannot be
    read (32 KB and 8 ways: most x86 and Arm cores)."""
    for index in sorted(Path(cache_folder).glob("index*")):
        try:
            level, kind = (index / "level").read_text().strip(), (index / "type").read_text().strip()
            if level != "1" or kind not in ("Data", "Unified"):
                continue
            size_text = (index / "size").read_text().strip().upper()
            ways = int((index / "ways_of_associativity").read_text())
            size = int(size_text.rstrip("KM")) * {"K": 1024, "M": 1024 * 1024}.get(size_text[-1:], 1)
        except (OSError, ValueError):
            continue
        if ways > 0 and size % ways == 0:
            return size // ways, ways
    return 4096, 8


def _block_channels() -> int:
    """onnxruntime's NCHWc block: 16 channels with AVX-512, 8 otherwise on x86 (MlasNchwcGetBlockSize)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return 8
    return 16 if " avx512f" in flags else 8


def write_json_atomically(path: str | Path, data: dict) -> None:
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(temporary, path)


def profile_here(name: str, out: str | Path, threads: int = 1, quick: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Measure the grid on this machine with onnxruntime and write the profile to ``out``.

    Measurements go to ``<out>.measurements.jsonl`` as they are taken; an interrupted run resumes
    from there, and a finished one rebuilds the profile from them without measuring its kernels again
    (delete the file to measure afresh). The calibration's networks, chains and per-model overhead are
    timed again on every run (about a minute): a rebuilt profile's calibration is the machine's now
    (on 2026-12-07 a rebuild moved the host's scale 0.9886 → 0.9857), timed up to three times where the networks
    ran more than 5 % off the times the profile kept from its last run (``calibration.steady_timing``).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".measurements.jsonl")
    records = measure_grid(profile_grid(quick), partial, threads, quick, progress)
    # whole networks for the calibration, and the Identity model for the per-model overhead, timed
    # in the same spread-out rounds
    from .calibration import kept_times, random_chains, steady_timing
    from .kernel_onnx import (
        NODE_CHAIN_LENGTHS,
        REORDER_CHAIN_PAIRS,
        chain_model,
        node_chain_model,
        reorder_chain_model,
        reorder_fanout_model,
    )

    chains = random_chains(12 if quick else 60)
    rounds = 4 if quick else 10
    sessions = [Session(chain_model(shapes, inputs).SerializeToString(), threads=threads) for shapes, inputs in chains]
    node_chains = [Session(node_chain_model(n).SerializeToString(), threads=threads) for n in NODE_CHAIN_LENGTHS]
    reorder_chains = [Session(model(tensor, length).SerializeToString(), threads=threads)
                      for model in (reorder_chain_model, reorder_fanout_model)
                      for tensor in LAYOUT_CHANGE_TENSORS for length in REORDER_CHAIN_PAIRS]
    references = [Session(model, threads=threads) for model in speed_reference.reference_models()]
    identity = Session(overhead_model().SerializeToString(), threads=threads)
    timings, drift = steady_timing(
        lambda: time_interleaved(sessions + node_chains + reorder_chains + references + [identity], rounds),
        lambda timed: [timing["fast_ms"] for timing in timed[:len(chains)]],
        kept_times(out, chains, "onnxruntime", threads))
    chain_timings, timings = timings[:len(chains)], timings[len(chains):]
    node_timings, timings = timings[:len(node_chains)], timings[len(node_chains):]
    reorder_timings, timings = timings[:len(reorder_chains)], timings[len(reorder_chains):]
    reference_timings, overhead = timings[:-1], timings[-1]
    per_node_ms = node_overhead_ms(node_timings)
    per_change_ms, per_element_ms = reorder_cost_from_chains(reorder_timings)
    pairs = len(LAYOUT_CHANGE_TENSORS) * len(REORDER_CHAIN_PAIRS)
    geometry = l1_cache_geometry()
    layout_changes = layout_costs_from_chains(reorder_timings[:pairs], reorder_timings[pairs:], _block_channels(),
                                              per_node_ms, geometry)
    # the per-node offset the calibration adds to every layout change completes its call cost
    profile = build_profile(name, records, overhead, memory_bandwidth_bytes_per_s(threads), threads, quick,
                            (max(0.0, per_change_ms - per_node_ms), per_element_ms), layout_changes, geometry,
                            per_node_ms)
    profile["speed_reference"] = speed_reference.reference_block([timing["fast_ms"] for timing in reference_timings],
                                                                 rounds, _where())
    profile = calibrate(profile, chains, [timing["fast_ms"] for timing in chain_timings], rounds,
                        [timing["split_half"] for timing in chain_timings], per_node_ms=per_node_ms, drift=drift)
    write_json_atomically(out, profile)
    return profile


def _chain_slopes(timings: list[dict], tensors: int) -> np.ndarray:
    """Per tensor, the slope of its chains' latencies over their lengths (``REORDER_CHAIN_PAIRS``): the
    timings are the first ``tensors`` tensors' chains, every length of each in turn."""
    from .kernel_onnx import REORDER_CHAIN_PAIRS

    lengths = len(REORDER_CHAIN_PAIRS)
    chains = [[timing["fast_ms"] for timing in timings[i * lengths:(i + 1) * lengths]] for i in range(tensors)]
    return np.array([np.polyfit(REORDER_CHAIN_PAIRS, latencies, 1)[0] for latencies in chains])


def reorder_cost_from_chains(chain_timings: list[dict]) -> tuple[float, float]:
    """(ms per layout change, ms per element) of onnxruntime's NCHWc layout changes inside a network, from
    the reorder chains (``kernel_onnx.reorder_chain_model`` of each of ``REORDER_CHAIN_TENSORS`` with each
    of ``REORDER_CHAIN_PAIRS`` pairs, one timing each, in that order): per tensor, the slope of the
    chains' latencies over their pairs is two layout changes; least squares on relative error over the
    tensors' element counts. The call cost includes the node's share of running (the per-node offset)."""
    per_change = np.maximum(_chain_slopes(chain_timings, len(REORDER_CHAIN_TENSORS)) / 2, 1e-7)
    elements = np.array([float(np.prod(tensor)) for tensor in REORDER_CHAIN_TENSORS])
    weights = 1.0 / per_change
    design = np.stack([np.ones_like(elements), elements], axis=1) * weights[:, None]
    (per_call, per_element), *_ = np.linalg.lstsq(design, per_change * weights, rcond=None)
    return max(0.0, float(per_call)), max(0.0, float(per_element))


def layout_costs_from_chains(pair_timings: list[dict], fanout_timings: list[dict], block: int,
                             per_node_ms: float = 0.0,
                             l1_cache_geometry: tuple[int, int] = (4096, 8)) -> dict[str, dict[str, float]]:
    """The cost of onnxruntime's layout changes by direction, over ``latency.layout_change_terms`` (ms each):
    {"to_plain": {term: ms}, "to_blocked": {term: ms}}. ``pair_timings`` and ``fanout_timings``: one timing
    each of ``reorder_chain_model`` and ``reorder_fanout_model`` of every tensor of ``LAYOUT_CHANGE_TENSORS``
    at every length of ``REORDER_CHAIN_PAIRS``, in that order. Per tensor, the slope of the fan-outs is one
    change back (to plain) and the slope of the pairs less it one change there (to blocked); each direction
    is non-negative least squares on relative error over the tensors. The call cost is given less the
    per-node offset the calibration adds to every change. ``l1_cache_geometry``: (set stride in bytes, ways)
    of the L1 data cache (``l1_cache_geometry``)."""
    from .latency import _nnls, layout_change_terms

    to_plain = np.maximum(_chain_slopes(fanout_timings, len(LAYOUT_CHANGE_TENSORS)), 1e-7)
    to_blocked = np.maximum(_chain_slopes(pair_timings, len(LAYOUT_CHANGE_TENSORS)) - to_plain, 1e-7)
    design = np.array([layout_change_terms(tensor, block, 4, *l1_cache_geometry) for tensor in LAYOUT_CHANGE_TENSORS])
    scale = np.maximum(design.max(axis=0), 1e-12)
    costs = {}
    for direction, measured in (("to_plain", to_plain), ("to_blocked", to_blocked)):
        weights = 1.0 / measured
        coefficients = _nnls(design / scale * weights[:, None], measured * weights) / scale
        coefficients[0] = max(0.0, coefficients[0] - per_node_ms)
        costs[direction] = {term: float(value) for term, value in zip(LAYOUT_CHANGE_TERMS, coefficients)}
    return costs


def node_overhead_ms(node_timings: list[dict]) -> float:
    """The per-node overhead: the slope of the node chains' latencies (one timing per length of
    ``kernel_onnx.NODE_CHAIN_LENGTHS``, in that order) over their node counts."""
    from .kernel_onnx import NODE_CHAIN_LENGTHS

    return float(np.polyfit(NODE_CHAIN_LENGTHS, [timing["fast_ms"] for timing in node_timings], 1)[0])


def profile_from_measurements(name: str, measurements: str | Path, out: str | Path, kind: str = "cpu") -> dict:
    """A profile from the JSON lines ``runner.py`` wrote on another device (whole single-kernel model
    times, 10th percentile, minus the Identity model's time: the one timed beside each kernel, smoothed by
    ``local_overheads``, else the file's ``overhead`` line's)."""
    records, overhead = [], None
    with open(measurements) as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = json.loads(line)
                record["id"], record["fast_ms"]
            except (json.JSONDecodeError, KeyError, TypeError):
                if line.strip():
                    raise ValueError(f"{measurements}: line {number} is not a runner.py measurement") from None
                continue
            if record["id"] == "overhead":
                overhead = record
            else:
                records.append(record)
    if overhead is None or not records:
        raise ValueError(f"{measurements}: needs the 'overhead' line and at least one kernel; "
                         "run runner.py on the whole suite")
    base = overhead["fast_ms"]
    # each kernel less the Identity model's time of its moment where runner.py timed it beside the kernel
    # (local_overheads; files from before 2026-12-06 late night have only the first line's)
    entries = [{**r["shape"], "layout": "plain",
                "latency_ms": round(max(r["fast_ms"] - r.get("overhead_ms", base), 0.05 * r["fast_ms"]), 6)}
               for r in local_overheads(records)]
    where = (f"measured with runner.py ({records[0]['runtime']} {records[0]['runtime_version']}, "
             f"{records[0]['threads']} thread(s)), imported from {Path(measurements).name} on "
             f"{datetime.date.today().isoformat()}")
    profile = device_profile(name, kind, records[0]["runtime"], records[0]["runtime_version"], records[0]["threads"],
                             "float32", entries, base, where,
                             f"{where}: single-kernel model time (10th percentile) minus the Identity model's")
    parse_target(profile, f"<profile {name}>")
    write_json_atomically(out, profile)
    return profile


def device_profile(name: str, kind: str, runtime: str, version: str, threads: int, dtype: str, entries: list[dict],
                   overhead_ms: float, where: str, latency_source: str) -> dict:
    """A profile from table entries measured on another device; limits and power are left for the
    user to fill in (null = no limit / not known)."""
    shapes = [KernelShape.from_dict(entry) for entry in entries]
    rates = [shape.macs / (entry["latency_ms"] / 1e3) for shape, entry in zip(shapes, entries) if shape.macs]
    bytes_rates = [shape.traffic_bytes(4) / (entry["latency_ms"] / 1e3) for shape, entry in zip(shapes, entries)]
    latency = {"source": latency_source, "entries": entries}
    activations = activation_costs_block(entries, where)
    if activations is not None:
        latency["activations"] = activations
    return {
        "schema": SCHEMA, "name": name, "kind": kind,
        "description": f"Measured on a device ({len(entries)} kernels).",
        "runtime": {"name": runtime, "version": version}, "threads": threads, "dtype": dtype,
        "peak_macs_per_s": {"value": max(rates, default=1e9), "source": f"{where}: fastest kernel"},
        "memory_bandwidth_bytes_per_s": {"value": max(bytes_rates), "source": f"{where}: fastest kernel by bytes"},
        "sram_bytes": {"value": None, "source": "not given: edit if the device has an SRAM limit"},
        "flash_bytes": {"value": None, "source": "not given: edit if the device has a flash limit"},
        "active_power_mw": {"value": None, "source": "not measured: edit with a power-meter reading"},
        "model_overhead_ms": {"value": overhead_ms, "source": f"{where}: time outside the kernels"},
        "model_overhead_flash_bytes": {"value": 0, "source": "not measured"},
        "latency": latency,
    }


def profile_from_op_profile(name: str, op_profile: str | Path, model, example_input, out: str | Path,
                            dtype: str = "float32") -> dict:
    """A profile (or, when ``out`` exists, that profile with these kernels added or replaced) from
    TFLite ``benchmark_model --enable_op_profiling=true`` output for ``model``."""
    from .kernels import fused_kernels
    from .op_profile import entries_from_op_profile, parse_op_profile
    from .target import load_target

    shapes = [KernelShape.from_kernel(kernel) for kernel in fused_kernels(model, example_input)]
    paired, unmatched_ms = entries_from_op_profile(parse_op_profile(Path(op_profile).read_text()), shapes)
    same_shape: dict[KernelShape, list[dict]] = {}
    for entry in paired:  # layers of one shape (DS-CNN's four blocks) are one table entry: their median
        same_shape.setdefault(KernelShape.from_dict(entry), []).append(entry)
    entries = [{**group[0], "latency_ms": float(np.median([e["latency_ms"] for e in group]))}
               for group in same_shape.values()]
    where = f"benchmark_model op profile {Path(op_profile).name}, imported {datetime.date.today().isoformat()}"
    out = Path(out)
    if out.exists():
        load_target(str(out))  # refuse to merge into a broken profile
        profile = json.loads(out.read_text())
        replaced = {KernelShape.from_dict(entry) for entry in entries}
        kept = [e for e in profile["latency"].get("entries", []) if KernelShape.from_dict(e) not in replaced]
        profile["latency"]["entries"] = kept + entries
        profile["latency"]["source"] += f"; {len(entries)} kernels from {where}"
    else:
        profile = device_profile(name, "cpu", "tflite", "benchmark_model", 1, dtype, entries, max(unmatched_ms, 1e-3),
                                 where, f"{where}: per-op average times paired with the model's kernels")
    parse_target(profile, f"<profile {name}>")
    write_json_atomically(out, profile)
    return profile
