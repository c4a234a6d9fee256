"""Building blocks shared by the model zoo: plain ``nn.Module`` stacks, nothing custom.

Every zoo model is built from Conv2d (dense and depthwise), BatchNorm2d, ReLU/ReLU6, ZeroPad2d,
pooling, Dropout, Flatten, Linear and residual adds, so that growth, cost estimation and export
see ordinary PyTorch layers.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

import torch
from torch import Tensor, nn


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` (MobileNet's rule: never drop >10 %)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def scale_channels(channels: int, width_multiplier: float, divisor: int = 1, min_channels: int = 1) -> int:
    """Channels of a layer at a width multiplier, rounded to ``divisor``, at least ``min_channels``."""
    if divisor > 1:
        return make_divisible(channels * width_multiplier, divisor, min_value=max(min_channels, divisor))
    return max(min_channels, int(round(channels * width_multiplier)))


def square_input(input_shape, resolution: int, in_channels: int) -> tuple[int, int]:
    """(in_channels, resolution) of an image network: from ``input_shape`` (channels, height, width) when
    given (the one signature every family's builder takes), else the arguments as they are."""
    if input_shape is None:
        return in_channels, resolution
    channels, height, width = (int(n) for n in input_shape)
    if height != width:
        raise ValueError(f"this network takes square images, got input_shape {tuple(input_shape)}")
    return channels, height


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) along one axis: output size = ceil(size / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    *,
    groups: int = 1,
    activation: type[nn.Module] | None = nn.ReLU,
    padding: tuple[int, int, int, int] | None = None,
) -> nn.Sequential:
    """Conv2d (no bias) → BatchNorm2d → activation.

    ``padding`` is (left, right, top, bottom); symmetric padding goes into the conv, asymmetric
    padding (TensorFlow 'same' with an even kernel or stride 2) becomes a ZeroPad2d in front.
    Default: PyTorch's symmetric ``kernel // 2``.
    """
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if padding is None:
        padding = (kw // 2, kw // 2, kh // 2, kh // 2)
    left, right, top, bottom = padding
    layers: list[nn.Module] = []
    if left == right and top == bottom:
        conv_padding = (top, left)
    else:
        layers.append(nn.ZeroPad2d(padding))
        conv_padding = (0, 0)
    layers.append(
        nn.Conv2d(in_channels, out_channels, (kh, kw), stride, conv_padding, groups=groups, bias=False)
    )
    layers.append(nn.BatchNorm2d(out_channels))
    if activation is not None:
        layers.append(activation(inplace=True))
    return nn.Sequential(*layers)


@lru_cache(maxsize=None)
def _load_shape_text(name: str) -> str:
    return resources.files("edgegrow.models").joinpath("shapes", f"{name}.json").read_text()


def load_shapes(name: str) -> dict:
    """The shape table of a model family (edgegrow/models/shapes/NAME.json), as a fresh dict."""
    return json.loads(_load_shape_text(name))


class PooledClassifier(nn.Module):
    """Base of the zoo networks: ``features`` → global average pool → flatten → dropout → linear.

    Subclasses build ``self.features`` and call ``add_classifier``; the forward pass is shared.
    """

    features: nn.Module

    def add_classifier(self, channels: int, num_classes: int, dropout: float = 0.0) -> None:
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.flatten(self.pool(self.features(x)))))


class Gaussian(nn.Module):
    """The radial-basis activation exp(−h²/2): with a bias in the fan-in, neuron i computes the bump
    exp(−(w_i·x + b_i)²/2) (the 1-D RBF toy of the splitting papers)."""

    fx_leaf = True  # one node for channel-group discovery and curvature sites, not mul/mul/exp

    def forward(self, h: Tensor) -> Tensor:
        return torch.exp(-0.5 * h * h)
