"""MobileNetV2 with width multiplier, input resolution and class count. Shapes: shapes/mobilenet_v2.json."""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from torch import Tensor, nn

from .layers import PooledClassifier, conv_bn_act, load_shapes, make_divisible, square_input


class InvertedResidual(nn.Module):
    """1x1 expansion (skipped when ``expand`` is False), 3x3 depthwise, 1x1 linear projection, and
    a residual add when ``residual``. The residual is part of the topology (every block but the
    first of a stage), not inferred from channel counts, so a seed has the full model's topology."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, stride: int, *,
                 expand: bool = True, residual: bool | None = None):
        super().__init__()
        if not expand and hidden_channels != in_channels:
            raise ValueError("a block without expansion needs hidden_channels == in_channels")
        if residual is None:
            residual = stride == 1 and in_channels == out_channels
        if residual and (stride != 1 or in_channels != out_channels):
            raise ValueError("a residual block needs stride 1 and in_channels == out_channels")
        layers: list[nn.Module] = []
        if expand:
            layers.append(conv_bn_act(in_channels, hidden_channels, 1, activation=nn.ReLU6))
        layers.append(conv_bn_act(hidden_channels, hidden_channels, 3, stride, groups=hidden_channels,
                                  activation=nn.ReLU6))
        layers.append(conv_bn_act(hidden_channels, out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = residual

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class BlockSpec(NamedTuple):
    hidden_channels: int
    out_channels: int
    stride: int
    expand: bool
    residual: bool


class MobileNetV2(PooledClassifier):
    """Stem, inverted-residual blocks, a final 1x1 conv, global pooling and a linear classifier."""

    def __init__(
        self,
        stem_channels: int,
        blocks: Sequence[BlockSpec],
        last_channels: int,
        *,
        num_classes: int = 1000,
        input_shape: tuple[int, int, int] = (3, 224, 224),
        dropout: float = 0.0,
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)
        layers: list[nn.Module] = [conv_bn_act(self.input_shape[0], stem_channels, 3, 2, activation=nn.ReLU6)]
        channels = stem_channels
        for block in blocks:
            layers.append(InvertedResidual(channels, block.hidden_channels, block.out_channels,
                                           block.stride, expand=block.expand, residual=block.residual))
            channels = block.out_channels
        layers.append(conv_bn_act(channels, last_channels, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.add_classifier(last_channels, num_classes, dropout)


def mobilenet_v2(
    width_multiplier: float = 1.0,
    resolution: int = 224,
    num_classes: int | None = None,
    *,
    in_channels: int = 3,
    input_shape: tuple[int, int, int] | None = None,
    dropout: float = 0.2,
    channel_divisor: int | None = None,
    min_channels: int | None = None,
    last_channels: int | None = None,
) -> MobileNetV2:
    """MobileNetV2 at width multiplier α (0.35, 0.5, 0.75, 1.0 are the published ones); ``input_shape``
    (channels, size, size), when given, sets ``in_channels`` and ``resolution``."""
    in_channels, resolution = square_input(input_shape, resolution, in_channels)
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be > 0, got {width_multiplier}")
    if resolution < 32:
        raise ValueError(f"resolution must be at least 32 pixels (five stride-2 stages), got {resolution}")
    shapes = load_shapes("mobilenet_v2")
    divisor = channel_divisor or shapes["channel_divisor"]

    def width(channels: float) -> int:
        return make_divisible(channels * width_multiplier, divisor, min_channels)

    stem = width(shapes["stem"]["channels"])
    blocks: list[BlockSpec] = []
    channels = stem
    for expansion, out, repeats, first_stride in shapes["stages"]:
        out_channels = width(out)
        for i in range(repeats):
            blocks.append(BlockSpec(int(round(channels * expansion)), out_channels,
                                    first_stride if i == 0 else 1, expansion != 1, residual=i > 0))
            channels = out_channels
    # The reference keeps 1280 final channels below α = 1 and scales them above.
    last = last_channels or make_divisible(shapes["last_channels"] * max(1.0, width_multiplier), divisor)
    return MobileNetV2(
        stem, blocks, last,
        num_classes=shapes["num_classes"] if num_classes is None else num_classes,
        input_shape=(in_channels, resolution, resolution),
        dropout=dropout,
    )


def mobilenet_v2_seed(resolution: int = 224, num_classes: int | None = None, *, in_channels: int = 3,
                      width_multiplier: float | None = None,
                      input_shape: tuple[int, int, int] | None = None) -> MobileNetV2:
    """The starting point of growth: MobileNetV2's topology with a few channels per layer, or the
    family's network at ``width_multiplier`` (a seed of ``--seed-width``)."""
    in_channels, resolution = square_input(input_shape, resolution, in_channels)
    if width_multiplier is not None:  # the family's own network at that width
        return mobilenet_v2(width_multiplier, resolution, num_classes, in_channels=in_channels)
    seed = load_shapes("mobilenet_v2")["seed"]
    return mobilenet_v2(
        seed["width_multiplier"], resolution, num_classes, in_channels=in_channels,
        channel_divisor=seed["channel_divisor"], min_channels=seed["min_channels"],
        last_channels=seed["last_channels"],
    )
