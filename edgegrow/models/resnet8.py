"""ResNet-8 of MLPerf Tiny image classification (CIFAR-10). Shapes: shapes/resnet8.json."""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .layers import PooledClassifier, conv_bn_act, load_shapes, scale_channels


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU, conv3x3-BN, plus a shortcut (identity, or a 1x1 conv when the shape changes), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_act(in_channels, out_channels, 3, stride),
            conv_bn_act(out_channels, out_channels, 3, activation=None),
        )
        self.shortcut = (
            nn.Identity() if stride == 1 and in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1, stride)
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet8(PooledClassifier):
    def __init__(
        self,
        stem_channels: int,
        stack_channels: Sequence[int],
        stack_strides: Sequence[int],
        *,
        num_classes: int = 10,
        input_shape: tuple[int, int, int] = (3, 32, 32),
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)
        layers: list[nn.Module] = [conv_bn_act(self.input_shape[0], stem_channels, 3)]
        channels = stem_channels
        for out_channels, stride in zip(stack_channels, stack_strides):
            layers.append(ResidualBlock(channels, out_channels, stride))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.add_classifier(channels, num_classes)


def resnet8(width_multiplier: float = 1.0, num_classes: int | None = None, *,
            input_shape: tuple[int, int, int] | None = None) -> ResNet8:
    """ResNet-8 (16/32/64 channels at width multiplier 1)."""
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be > 0, got {width_multiplier}")
    shapes = load_shapes("resnet8")

    def width(channels: int) -> int:
        return scale_channels(channels, width_multiplier)

    return ResNet8(
        width(shapes["stem"]["channels"]),
        [width(channels) for channels, _ in shapes["stacks"]],
        [stride for _, stride in shapes["stacks"]],
        num_classes=shapes["num_classes"] if num_classes is None else num_classes,
        input_shape=tuple(input_shape or shapes["input_shape"]),
    )


def resnet8_seed(num_classes: int | None = None, *, input_shape: tuple[int, int, int] | None = None,
                 width_multiplier: float | None = None) -> ResNet8:
    """The starting point of growth: ResNet-8's topology with a few channels per layer, or ResNet-8 at
    ``width_multiplier`` (a seed of ``--seed-width``)."""
    if width_multiplier is None:
        width_multiplier = load_shapes("resnet8")["seed"]["width_multiplier"]
    return resnet8(width_multiplier, num_classes, input_shape=input_shape)
