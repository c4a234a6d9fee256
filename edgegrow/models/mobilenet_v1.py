"""MobileNetV1 with width multiplier, input resolution and class count. Shapes: shapes/mobilenet_v1.json."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .layers import PooledClassifier, conv_bn_act, load_shapes, scale_channels, square_input


class MobileNetV1(PooledClassifier):
    """3x3 stride-2 stem, depthwise-separable blocks (ReLU6), global pooling, linear classifier.

    Args:
        stem_channels: output channels of the stem.
        block_channels: pointwise output channels of each block.
        block_strides: stride of each block's depthwise conv.
        input_shape: (channels, height, width) of one example; the network itself pools globally
            and accepts other resolutions, this records what it was built for.
    """

    def __init__(
        self,
        stem_channels: int,
        block_channels: Sequence[int],
        block_strides: Sequence[int],
        *,
        num_classes: int = 1000,
        input_shape: tuple[int, int, int] = (3, 224, 224),
        dropout: float = 0.0,
    ):
        super().__init__()
        if len(block_channels) != len(block_strides):
            raise ValueError(
                f"MobileNetV1 needs one stride per block: got {len(block_channels)} channel counts "
                f"and {len(block_strides)} strides"
            )
        self.input_shape = tuple(input_shape)
        layers: list[nn.Module] = [conv_bn_act(self.input_shape[0], stem_channels, 3, 2, activation=nn.ReLU6)]
        channels = stem_channels
        for out_channels, stride in zip(block_channels, block_strides):
            layers.append(
                nn.Sequential(
                    conv_bn_act(channels, channels, 3, stride, groups=channels, activation=nn.ReLU6),
                    conv_bn_act(channels, out_channels, 1, activation=nn.ReLU6),
                )
            )
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.add_classifier(channels, num_classes, dropout)


def mobilenet_v1(
    width_multiplier: float = 1.0,
    resolution: int = 224,
    num_classes: int | None = None,
    *,
    in_channels: int = 3,
    input_shape: tuple[int, int, int] | None = None,
    min_channels: int = 1,
) -> MobileNetV1:
    """MobileNetV1 at width multiplier α (0.25, 0.5, 0.75, 1.0 are the published ones); ``input_shape``
    (channels, size, size), when given, sets ``in_channels`` and ``resolution``."""
    in_channels, resolution = square_input(input_shape, resolution, in_channels)
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be > 0, got {width_multiplier}")
    if resolution < 32:
        raise ValueError(f"resolution must be at least 32 pixels (five stride-2 stages), got {resolution}")
    shapes = load_shapes("mobilenet_v1")

    def width(channels: int) -> int:
        return scale_channels(channels, width_multiplier, shapes["channel_divisor"], min_channels)

    return MobileNetV1(
        width(shapes["stem"]["channels"]),
        [width(channels) for channels, _ in shapes["blocks"]],
        [stride for _, stride in shapes["blocks"]],
        num_classes=shapes["num_classes"] if num_classes is None else num_classes,
        input_shape=(in_channels, resolution, resolution),
    )


def mobilenet_v1_seed(resolution: int = 224, num_classes: int | None = None, *, in_channels: int = 3,
                      width_multiplier: float | None = None,
                      input_shape: tuple[int, int, int] | None = None) -> MobileNetV1:
    """The starting point of growth: MobileNetV1's topology with a few channels per layer, or the
    family's network at ``width_multiplier`` (a seed of ``--seed-width``)."""
    in_channels, resolution = square_input(input_shape, resolution, in_channels)
    if width_multiplier is not None:  # the family's own network at that width
        return mobilenet_v1(width_multiplier, resolution, num_classes, in_channels=in_channels)
    seed = load_shapes("mobilenet_v1")["seed"]
    return mobilenet_v1(
        seed["width_multiplier"], resolution, num_classes,
        in_channels=in_channels, min_channels=seed["min_channels"],
    )
