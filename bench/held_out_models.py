"""Architectures the cost model's tables and fits never saw, for the out-of-sample benchmarks
(``tflm_arena.py --held-out``, and the latency accuracy benchmark): networks of the kinds users write by
hand at random widths, the zoo's families at random widths, and (from a growth benchmark's work folder)
networks edgegrow grew. Everything is drawn from a seed, so a run names the same models again.

User-style families (each a plain ``nn.Module`` of standard layers):

- ``plain``: conv (3×3, 5×5 or 7×7) → BatchNorm → ReLU → max-pool, two or three times, flatten → linear;
- ``residual``: a stem and one or two residual blocks (3×3 convs, ReLU), global average pooling;
- ``squeeze-excite``: convs with Hardswish and a squeeze-and-excitation gate (sigmoid) multiplying them;
- ``concat``: two branches (1×1 and 3×3 or 5×5) concatenated, then a strided conv;
- ``user-style``: the residual block, SE gate and concatenated Hardswish branches of issue 17's network;
- ``pooled`` (drawn only when asked for, ``POOLED_FAMILIES``): conv → BatchNorm → ReLU stages with their pooling
  written as functions in ``forward``, as PyTorch's tutorials write it: max and average pools of 2×2 or 3×3
  windows, ending in an average over the whole map (``F.avg_pool2d(x, 4)`` of a CIFAR ResNet), an adaptive
  average or max pool, or ``x.amax((2, 3))``.

Grown-style families, made by edgegrow's own growth edits at random places (untrained: what these
benchmarks measure depends on the architecture, not on the weights):

- ``deepened``: a DS-CNN or MobileNetV1 with one to three blocks inserted after children of its
  ``features`` stack by ``edgegrow.growth.deepen``, as Firefly inserts them (a depthwise-separable
  block, sometimes a plain 3×3 conv);
- ``widened``: a DS-CNN seed, a MobileNetV2 or a user-style network with new neurons added to one to
  four of its growable channel groups by ``edgegrow.growth.add_neurons``, as TINY adds them: uneven,
  odd widths, MobileNetV2's bottleneck projections and residual streams included;
- ``tiny``: networks that run in tens of microseconds (a DS-CNN of 4–12 channels, a one- or
  two-conv grey image net), where the runtime's fixed costs are most of the time.
"""
from __future__ import annotations

import random
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from edgegrow.growth import add_neurons, deepen, find_channel_groups, growable_groups
from edgegrow.models import DSCNN, ds_cnn, mobilenet_v1, mobilenet_v2, resnet8


class Plain(nn.Module):
    def __init__(self, in_channels: int, widths: list[int], kernel: int, classes: int, size: int):
        super().__init__()
        layers, channels = [], in_channels
        for width in widths:
            layers += [nn.Conv2d(channels, width, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(), nn.MaxPool2d(2)]
            channels, size = width, size // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels * size * size, classes)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class Residual(nn.Module):
    def __init__(self, in_channels: int, width: int, blocks: int, classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.ModuleList(nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)) for _ in range(blocks))
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = F.relu(x + block(x))
        return self.head(x.mean((2, 3)))


class SqueezeExcite(nn.Module):
    def __init__(self, in_channels: int, width: int, reduced: int, classes: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.Hardswish(),
                                  nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False),
                                  nn.BatchNorm2d(width), nn.Hardswish())
        self.squeeze, self.excite = nn.Conv2d(width, reduced, 1), nn.Conv2d(reduced, width, 1)
        self.project = nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        x = self.conv(x)
        x = x * torch.sigmoid(self.excite(F.relu(self.squeeze(x.mean((2, 3), keepdim=True)))))
        return self.head(self.project(x).mean((2, 3)))


class Concat(nn.Module):
    def __init__(self, in_channels: int, left: int, right: int, kernel: int, out: int, classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, left, 3, stride=2, padding=1), nn.ReLU())
        self.left = nn.Conv2d(left, left, 1)
        self.right = nn.Conv2d(left, right, kernel, padding=kernel // 2)
        self.norm = nn.BatchNorm2d(left + right)
        self.mix = nn.Sequential(nn.Conv2d(left + right, out, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(out, classes)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu6(self.norm(torch.cat([self.left(x), self.right(x)], dim=1)))
        return self.head(self.mix(x).mean((2, 3)))


class UserStyle(nn.Module):
    def __init__(self, in_channels: int, c: int, classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
                                  nn.ReLU())
        self.res = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                 nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.se_reduce, self.se_expand = nn.Conv2d(c, max(1, c // 2), 1), nn.Conv2d(max(1, c // 2), c, 1)
        self.left = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.Hardswish())
        self.right = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.Hardswish())
        self.block = nn.Sequential(nn.Conv2d(2 * c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
                                   nn.ReLU())
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.res(x))
        x = x * torch.sigmoid(self.se_expand(F.relu(self.se_reduce(x.mean((2, 3), keepdim=True)))))
        x = self.block(torch.cat([self.left(x), self.right(x)], 1))
        return self.head(x.mean((2, 3)))


class Pooled(nn.Module):
    """Conv (3×3 or 5×5) → BatchNorm → ReLU stages, each followed by the pooling named in ``pools`` (``max2``,
    ``max3``: F.max_pool2d 2×2 / 3×3 stride 2 padding 1; ``avg2``, ``avg3``: F.avg_pool2d the same; ``avg2-layer``:
    an ``nn.AvgPool2d(2)``; ``none``: the conv has stride 2 instead), then ``head``: ``avg-window`` (F.avg_pool2d over
    the whole map), ``adaptive-avg``, ``adaptive-max`` or ``amax``, and a linear layer."""

    def __init__(self, in_channels: int, widths: list[int], pools: list[str], head: str, kernel: int, classes: int,
                 size: tuple[int, int]):
        super().__init__()
        self.pools, self.head_kind = list(pools), head
        self.convs, self.norms, self.layers = nn.ModuleList(), nn.ModuleList(), nn.ModuleDict()
        channels, (height, width) = in_channels, size
        for index, (out, pool) in enumerate(zip(widths, pools)):
            stride = 2 if pool == "none" else 1
            self.convs.append(nn.Conv2d(channels, out, kernel, stride, kernel // 2, bias=False))
            self.norms.append(nn.BatchNorm2d(out))
            if pool == "avg2-layer":
                self.layers[str(index)] = nn.AvgPool2d(2)
            channels = out
            if pool in ("max3", "avg3", "none"):
                height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1
            else:
                height, width = height // 2, width // 2
        self.window = (height, width)
        self.head = nn.Linear(channels, classes)

    def forward(self, x):
        for index, (conv, norm, pool) in enumerate(zip(self.convs, self.norms, self.pools)):
            x = F.relu(norm(conv(x)))
            if pool == "max2":
                x = F.max_pool2d(x, 2)
            elif pool == "max3":
                x = F.max_pool2d(x, 3, 2, 1)
            elif pool == "avg2":
                x = F.avg_pool2d(x, 2)
            elif pool == "avg3":
                x = F.avg_pool2d(x, 3, 2, 1)
            elif pool == "avg2-layer":
                x = self.layers[str(index)](x)
        if self.head_kind == "avg-window":
            x = F.avg_pool2d(x, self.window)
        elif self.head_kind == "adaptive-avg":
            x = F.adaptive_avg_pool2d(x, 1)
        elif self.head_kind == "adaptive-max":
            x = F.adaptive_max_pool2d(x, 1)
        else:
            x = x.amax((2, 3))
        return self.head(torch.flatten(x, 1))


def trained_statistics(model: nn.Module) -> nn.Module:
    """``model`` with each BatchNorm's statistics and scale as training leaves them, not at their defaults (mean 0,
    variance 1, weight 1, bias 0), so that its exports are a trained network's: litert-torch writes a default
    BatchNorm no conv precedes as one MUL by a single number, and a trained one behind a concat as a SUB, two MULs and
    an ADD per channel: with trained ones seed 2026's concat networks took 16 % longer at the median through litert
    (x86 host, 2026-12-07). BatchNorms a conv precedes fold into it either way. Draws from torch's global generator."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_var.uniform_(0.5, 1.5)
                module.running_mean.uniform_(-0.2, 0.2)
                if module.affine:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.2, 0.2)
    return model


def pooled(rng: random.Random) -> tuple[str, nn.Module, tuple[int, ...]]:
    """One ``Pooled`` network at random widths, pools and input (see the module docstring)."""
    if rng.random() < 0.25:
        shape = (1, 49, 10)
    else:
        size = rng.choice([32, 48, 64, 96])
        shape = (rng.choice([1, 3]), size, size)
    stages = rng.randint(2, 4 if shape[1] >= 48 else 3)
    widths = [rng.randint(4, 72) for _ in range(stages)]
    choices = ["max2", "max3", "avg2", "avg3", "avg2-layer", "none"]
    pools = [rng.choice(choices if shape[2] >= 2 ** (index + 2) else ["none"]) for index in range(stages)]
    head = rng.choice(["avg-window", "avg-window", "adaptive-avg", "adaptive-max", "amax"])
    kernel = rng.choice([3, 3, 5])
    model = Pooled(shape[0], widths, pools, head, kernel, rng.choice([2, 10, 12]), shape[1:])
    return f"pooled {kernel}x{kernel} {widths} {pools} {head} {shape}", model, shape


def _input(rng: random.Random) -> tuple[int, int, int]:
    """A KWS input (1×49×10) or an image (grey or RGB, 32–96 px)."""
    if rng.random() < 0.3:
        return (1, 49, 10)
    size = rng.choice([32, 48, 64, 96])
    return (rng.choice([1, 3]), size, size)


def user_style(rng: random.Random, family: str) -> tuple[str, nn.Module, tuple[int, ...]]:
    """One network of ``family`` (see the module docstring) at random widths and input."""
    classes = rng.choice([2, 4, 10, 12])
    if family == "plain":
        size = rng.choice([32, 48, 64])
        shape = (rng.choice([1, 3]), size, size)
        widths = [rng.randint(4, 48) for _ in range(rng.randint(2, 3))]
        kernel = rng.choice([3, 5, 7])
        return f"plain {kernel}x{kernel} {widths} {size}px", Plain(shape[0], widths, kernel, classes, size), shape
    shape = _input(rng)
    if family == "residual":
        width, blocks = rng.randint(6, 40), rng.randint(1, 2)
        return f"residual {width}x{blocks} {shape}", Residual(shape[0], width, blocks, classes), shape
    if family == "squeeze-excite":
        width = rng.randint(8, 64)
        reduced = max(2, width // rng.choice([2, 4]))
        return f"squeeze-excite {width}/{reduced} {shape}", SqueezeExcite(shape[0], width, reduced, classes), shape
    if family == "concat":
        left, right, out, kernel = rng.randint(3, 32), rng.randint(3, 32), rng.randint(6, 48), rng.choice([3, 5])
        return (f"concat {left}+{right} k{kernel} -> {out} {shape}", Concat(shape[0], left, right, kernel, out, classes),
                shape)
    if family == "user-style":
        c = rng.randint(4, 40)
        return f"user-style {c} {shape}", UserStyle(shape[0], c, classes), shape
    raise ValueError(family)


def zoo(rng: random.Random, family: str) -> tuple[str, nn.Module, tuple[int, ...]]:
    """A zoo family at a random width multiplier (and resolution), never one of the benchmarks' fixed ones."""
    width = round(rng.uniform(0.2, 1.2 if family in ("ds-cnn", "resnet8") else 0.75), 3)
    if family == "ds-cnn":
        model = ds_cnn(rng.choice(["S", "M"]), width_multiplier=width)
        return f"ds-cnn x{width}", model, tuple(model.input_shape)
    resolution, classes = rng.choice([32, 48, 64, 96]), rng.choice([2, 10])
    if family == "mobilenet-v1":
        model = mobilenet_v1(width, resolution, classes)
    elif family == "mobilenet-v2":
        model = mobilenet_v2(width, resolution, classes)
    else:
        model = resnet8(width, classes)
    return f"{family} x{width} {resolution}px", model, tuple(model.input_shape)


def grown_style(rng: random.Random, family: str) -> tuple[str, nn.Module, tuple[int, ...]]:
    """One network of ``family`` (``deepened``, ``widened`` or ``tiny``; see the module docstring)."""
    if family == "deepened":
        width = round(rng.uniform(0.2, 0.6), 3)
        if rng.random() < 0.6:
            model, base = ds_cnn("S", width_multiplier=width), f"ds-cnn x{width}"
        else:
            resolution = rng.choice([32, 48, 64])
            model, base = mobilenet_v1(width, resolution, rng.choice([2, 10])), f"mobilenet-v1 x{width} {resolution}px"
        model.eval()
        example = torch.randn(2, *model.input_shape)
        blocks = [f"features.{name}" for name, child in model.features.named_children()
                  if any(True for _ in child.parameters())]
        inserted = []
        for after in sorted(rng.sample(blocks, rng.randint(1, min(3, len(blocks)))), reverse=True):
            kind = "ds-block" if rng.random() < 0.75 else "conv"
            deepen(model, after, example, kind=kind)
            inserted.append(f"{kind} after {after}")
        return f"deepened {base}: {', '.join(inserted)}", model, tuple(model.input_shape)
    if family == "widened":
        choice = rng.choice(["ds-cnn", "mobilenet-v2", "user-style"])
        if choice == "ds-cnn":
            channels = rng.randint(6, 24)
            model, base = DSCNN(channels, [channels] * 4, [(1, 1)] * 4), f"ds-cnn seed {channels}"
        elif choice == "mobilenet-v2":
            resolution = rng.choice([32, 48, 64])
            model = mobilenet_v2(round(rng.uniform(0.2, 0.4), 3), resolution, 10)
            base = f"mobilenet-v2 {resolution}px"
        else:
            shape = _input(rng)
            model, base = UserStyle(shape[0], rng.randint(4, 24), 10), f"user-style {shape}"
            model.input_shape = shape
        model.eval()
        example = torch.randn(2, *model.input_shape)
        added = []
        for _ in range(rng.randint(1, 4)):
            groups = growable_groups(find_channel_groups(model, example))
            group = rng.choice(groups)
            count = rng.randint(1, 24)
            add_neurons(model, group, count, generator=torch.Generator().manual_seed(rng.randrange(2**31)))
            added.append(f"+{count} {group.name}")
        return f"widened {base}: {', '.join(added)}", model, tuple(model.input_shape)
    if family == "tiny":
        if rng.random() < 0.6:
            stem = rng.randint(4, 12)
            channels = [rng.randint(4, 12) for _ in range(rng.randint(1, 3))]
            model = DSCNN(stem, channels, [(1, 1)] * len(channels))
            return f"tiny ds-cnn stem {stem} blocks {channels}", model, (1, 49, 10)
        size = rng.choice([12, 16, 20])
        widths = [rng.randint(2, 8) for _ in range(rng.randint(1, 2))]
        return f"tiny plain {widths} {size}px", Plain(1, widths, 3, rng.choice([2, 4]), size), (1, size, size)
    raise ValueError(family)


USER_FAMILIES = ("plain", "residual", "squeeze-excite", "concat", "user-style")
POOLED_FAMILIES = ("pooled",)  # not in the default rotation, whose draws earlier results name
GROWN_FAMILIES = ("deepened", "widened", "tiny")
ZOO_FAMILIES = ("ds-cnn", "mobilenet-v1", "mobilenet-v2", "resnet8")


def held_out(count: int, seed: int = 2027) -> Iterator[tuple[str, str, nn.Module, tuple[int, ...]]]:
    """``count`` networks, the user-style and zoo families in turn: (family, description, model, input shape)."""
    rng = random.Random(seed)
    families = [*USER_FAMILIES, *ZOO_FAMILIES]
    for index in range(count):
        family = families[index % len(families)]
        torch.manual_seed(seed * 1000 + index)
        maker = user_style if family in USER_FAMILIES else zoo
        description, model, shape = maker(rng, family)
        yield family, description, model, shape
