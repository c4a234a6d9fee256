"""DS-CNN for keyword spotting (Hello Edge S/M/L and the MLPerf Tiny KWS reference).

Input is a batch of MFCC maps, shape (N, 1, 49, 10) = (batch, channel, time frames, coefficients).
Shapes live in shapes/ds_cnn.json.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .layers import PooledClassifier, conv_bn_act, load_shapes, same_padding, scale_channels


class DSCNN(PooledClassifier):
    """Stem conv, depthwise-separable blocks, global average pooling and a linear classifier.

    Args:
        stem_channels: output channels of the stem convolution.
        block_channels: pointwise output channels of each depthwise-separable block.
        block_strides: (time, frequency) stride of each block's depthwise conv.
        stem_kernel, stem_stride: (time, frequency) kernel and stride of the stem.
        input_shape: (channels, time, frequency) of one example; padding is TensorFlow 'same'
            for this size, as in the reference models.
    """

    def __init__(
        self,
        stem_channels: int,
        block_channels: Sequence[int],
        block_strides: Sequence[tuple[int, int]],
        *,
        num_classes: int = 12,
        input_shape: tuple[int, int, int] = (1, 49, 10),
        stem_kernel: tuple[int, int] = (10, 4),
        stem_stride: tuple[int, int] = (2, 2),
        dropout_after_stem: float = 0.0,
        dropout_before_classifier: float = 0.0,
    ):
        super().__init__()
        if len(block_channels) != len(block_strides):
            raise ValueError(
                f"DS-CNN needs one stride per block: got {len(block_channels)} channel counts "
                f"and {len(block_strides)} strides"
            )
        self.input_shape = tuple(input_shape)
        in_channels, height, width = self.input_shape

        def padding(kernel, stride):
            nonlocal height, width
            top, bottom = same_padding(height, kernel[0], stride[0])
            left, right = same_padding(width, kernel[1], stride[1])
            height, width = -(-height // stride[0]), -(-width // stride[1])
            return left, right, top, bottom

        layers: list[nn.Module] = [
            conv_bn_act(in_channels, stem_channels, stem_kernel, stem_stride,
                        padding=padding(stem_kernel, stem_stride))
        ]
        if dropout_after_stem > 0:
            layers.append(nn.Dropout(dropout_after_stem))
        channels = stem_channels
        for out_channels, stride in zip(block_channels, block_strides):
            stride = tuple(stride)
            layers.append(
                nn.Sequential(
                    conv_bn_act(channels, channels, 3, stride, groups=channels,
                                padding=padding((3, 3), stride)),
                    conv_bn_act(channels, out_channels, 1),
                )
            )
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.add_classifier(channels, num_classes, dropout_before_classifier)


def ds_cnn(
    size: str = "S",
    *,
    num_classes: int | None = None,
    width_multiplier: float = 1.0,
    input_shape: tuple[int, int, int] | None = None,
) -> DSCNN:
    """DS-CNN of a published size ('S', 'M', 'L' or 'mlperf') at a width multiplier."""
    shapes = load_shapes("ds_cnn")
    if size not in shapes["sizes"]:
        raise ValueError(f"unknown DS-CNN size {size!r}; choose one of {sorted(shapes['sizes'])}")
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be > 0, got {width_multiplier}")
    spec = shapes["sizes"][size]

    def width(channels: int) -> int:
        return scale_channels(channels, width_multiplier)

    return DSCNN(
        width(spec["stem"]["channels"]),
        [width(block["channels"]) for block in spec["blocks"]],
        [tuple(block["stride"]) for block in spec["blocks"]],
        num_classes=shapes["num_classes"] if num_classes is None else num_classes,
        input_shape=tuple(input_shape or shapes["input_shape"]),
        stem_kernel=tuple(spec["stem"]["kernel"]),
        stem_stride=tuple(spec["stem"]["stride"]),
        dropout_after_stem=spec["dropout_after_stem"],
        dropout_before_classifier=spec["dropout_before_classifier"],
    )


def ds_cnn_seed(
    *, channels: int | None = None, num_classes: int | None = None,
    input_shape: tuple[int, int, int] | None = None, width_multiplier: float | None = None,
) -> DSCNN:
    """The starting point of growth: DS-CNN-S's topology with a few channels per layer (the seed's
    shape), ``channels`` per layer, or DS-CNN-S at ``width_multiplier``."""
    shapes = load_shapes("ds_cnn")
    seed = shapes["seed"]
    spec = shapes["sizes"][seed["size"]]
    if width_multiplier is None:
        channels = seed["channels"] if channels is None else channels
        width_multiplier = channels / spec["stem"]["channels"]
    elif channels is not None:
        raise ValueError("give a DS-CNN seed channels or width_multiplier, not both")
    return ds_cnn(seed["size"], num_classes=num_classes, input_shape=input_shape, width_multiplier=width_multiplier)
