"""The shape of one fused kernel: the key of a latency table and the unit every cost is read for.

A ``KernelShape`` says what a runtime executes, with nothing about where it sits in a model:
kind, input and output (channels, height, width) of one example, kernel size, stride and the
fused activation. Plain data: it round-trips through JSON as a dict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .kernels import Kernel

WEIGHTED_KINDS = ("conv", "depthwise", "pointwise", "fully_connected")
# kinds whose output channels are their input channels (a channel count added upstream flows through)
CHANNELWISE_KINDS = ("depthwise", "pool", "avg_pool", "global_pool", "mean", "mean_nhwc", "add", "mul", "batch_norm",
                     "pad", "max_pad", "activation")
# pool: a max pool (ONNX MaxPool, TFLite MAX_POOL_2D); avg_pool: an average pool (AveragePool, AVERAGE_POOL_2D), which
# onnxruntime runs 5-8x slower than a max pool in its plain layout (24 channels at 48×48, x86 host, 2026-12-07).
# max_pad: the -inf padding litert-torch writes before a max pool whose padding TFLite's SAME cannot express (a PADV2),
# which a litert table prices beside the pool (``LatencyModel.model``); onnxruntime folds it into its MaxPool.
# global_pool: a global average pool (nn.AdaptiveAvgPool2d(1), ONNX GlobalAveragePool); mean: the mean over the map
# written as ``x.mean((2, 3))`` (ONNX ReduceMean), which onnxruntime runs 1.3-3x faster on maps of 1 K elements up.
# mean_nhwc: a mean over the map that keeps the map's rank (``x.mean((2, 3), keepdim=True)``, a squeeze-and-excitation
# gate's squeeze; ``nn.AdaptiveAvgPool2d(1)``, a zoo head's), which litert-torch writes as a MEAN on the channel-last
# tensor; a mean that drops it (``x.mean((2, 3))``) gets a TRANSPOSE to channel-first before its MEAN, which a litert
# table's ``mean`` entries time, 1-7x the first (``from_kernel`` tells them apart; onnxruntime runs both as one
# ReduceMean, and a table without ``mean_nhwc`` entries prices one as a ``mean``).
# batch_norm: a BatchNorm no conv precedes (behind a concat or an add, first in a pre-activation block), with the
# activation that follows it: litert-torch writes a trained one as a SUB, two MULs and an ADD of per-channel constants
# (one with default statistics as a MUL by one number), onnxruntime runs a BatchNormalization; a table without
# ``batch_norm`` entries prices one as a per-channel ``mul`` and its activation as a kernel of its own, as before.
# activation: an activation no kernel before it takes in (after a concat, a mul or a pool), a node of its own.
KINDS = WEIGHTED_KINDS + ("pool", "avg_pool", "global_pool", "mean", "mean_nhwc", "add", "mul", "batch_norm", "concat",
                          "pad", "max_pad", "activation", "unknown")

_ACTIVATION_NAMES = {
    "relu": "relu", "relu_": "relu", "relu6": "relu6", "hardtanh": "relu6", "hardswish": "hardswish",
    "sigmoid": "sigmoid", "tanh": "tanh", "silu": "silu", "gelu": "gelu", "leakyrelu": "leaky_relu",
    "leaky_relu": "leaky_relu",
}
ACTIVATIONS = tuple(sorted(set(_ACTIVATION_NAMES.values())))


def canonical_activation(name: str | None) -> str | None:
    """'ReLU', 'relu', 'F.relu' → 'relu'; 'ReLU6' and 'Hardtanh' → 'relu6'; None stays None."""
    if name is None:
        return None
    key = name.rsplit(".", 1)[-1].lower()
    return _ACTIVATION_NAMES.get(key, key)


@dataclass(frozen=True)
class KernelShape:
    """One kernel of batch 1. ``input`` / ``output`` are (channels, height, width); a fully connected
    layer on a vector is (features, 1, 1). ``kernel`` and ``stride`` are (height, width)."""

    kind: str
    input: tuple[int, int, int]
    output: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    activation: str | None = None

    # --- sizes -----------------------------------------------------------------------------------
    @property
    def macs(self) -> int:
        """Multiply-accumulates (the analytic per-layer formula of ``cost_models.macs``)."""
        out_c, out_h, out_w = self.output
        if self.kind == "depthwise":
            return out_c * out_h * out_w * self.kernel[0] * self.kernel[1]
        if self.kind in ("conv", "pointwise"):
            return out_c * out_h * out_w * self.input[0] * self.kernel[0] * self.kernel[1]
        if self.kind == "fully_connected":
            return self.input[0] * out_c * out_h * out_w
        return 0

    @property
    def weight_count(self) -> int:
        """Weights plus biases once BatchNorm is folded in (what a runtime stores)."""
        out_c = self.output[0]
        if self.kind == "depthwise":
            return out_c * self.kernel[0] * self.kernel[1] + out_c
        if self.kind in ("conv", "pointwise"):
            return out_c * self.input[0] * self.kernel[0] * self.kernel[1] + out_c
        if self.kind == "fully_connected":
            return self.input[0] * out_c + out_c
        return 0

    @property
    def input_elements(self) -> int:
        if self.kind == "mul":  # times one value per channel (a gate)
            return math.prod(self.input) + self.input[0]
        return math.prod(self.input) * (2 if self.kind == "add" else 1)

    @property
    def output_elements(self) -> int:
        return math.prod(self.output)

    def traffic_bytes(self, bytes_per_element: int) -> int:
        """Bytes a kernel must at least move: inputs, outputs and weights once each."""
        return (self.input_elements + self.output_elements + self.weight_count) * bytes_per_element

    # --- edits -----------------------------------------------------------------------------------
    def with_channels(self, input_channels: int | None = None, output_channels: int | None = None) -> KernelShape:
        """The same kernel with other channel counts (a depthwise kernel keeps input == output)."""
        c_in = self.input[0] if input_channels is None else input_channels
        c_out = self.output[0] if output_channels is None else output_channels
        if self.kind in CHANNELWISE_KINDS:
            c_out = c_in = c_out if output_channels is not None else c_in
        return replace(self, input=(c_in, *self.input[1:]), output=(c_out, *self.output[1:]))

    @classmethod
    def same(cls, kind: str, c_in: int, c_out: int, hw: tuple[int, int], kernel: int | tuple[int, int], stride: int,
             activation: str | None = "relu") -> KernelShape:
        """A layer with 'same' padding: the output is the input size divided by the stride, rounded up."""
        (h, w), kernel = hw, (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        return cls(kind, (c_in, h, w), (c_out, -(-h // stride), -(-w // stride)), kernel, (stride, stride), activation)

    # --- plain data ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": self.kind, "input": list(self.input), "output": list(self.output),
                "kernel": list(self.kernel), "stride": list(self.stride), "activation": self.activation}

    @classmethod
    def from_dict(cls, data: dict) -> KernelShape:
        return cls(kind=str(data["kind"]), input=_triple(data["input"], "input"),
                   output=_triple(data["output"], "output"), kernel=_pair(data.get("kernel", (1, 1)), "kernel"),
                   stride=_pair(data.get("stride", (1, 1)), "stride"),
                   activation=canonical_activation(data.get("activation")))

    @classmethod
    def from_kernel(cls, kernel: Kernel) -> KernelShape:
        """The shape of a kernel from ``fused_kernels``; a mul's input is its larger operand (``gate * x``
        is ``x * gate``); a mean whose result keeps the map's rank is a ``mean_nhwc``."""
        inputs = list(kernel.input_shapes) or [kernel.output_shape]
        if kernel.kind == "mul":
            inputs.sort(key=math.prod, reverse=True)
        kind = "mean_nhwc" if kernel.kind == "mean" and len(kernel.output_shape) == 4 else kernel.kind
        return cls(kind=kind, input=_chw(inputs[0]),
                   output=_chw(kernel.output_shape), kernel=tuple(kernel.kernel_size), stride=tuple(kernel.stride),
                   activation=canonical_activation(kernel.activation))


def same_padding(size_in: int, size_out: int, kernel: int, stride: int) -> tuple[int, int]:
    """The zero padding (before, after) along one axis that gives a window of ``kernel`` at ``stride`` ``size_out``
    outputs from ``size_in`` (TensorFlow's SAME when ``size_out`` is ceil(size_in / stride)): the odd one after."""
    total = max(0, (size_out - 1) * stride + kernel - size_in)
    return total // 2, total - total // 2


def _chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(1, C, H, W) → (C, H, W); (1, F) → (F, 1, 1); (1, T, F) → (F, T, 1)."""
    dims = tuple(int(size) for size in shape[1:])
    if len(dims) == 3:
        return dims
    if len(dims) == 1:
        return (dims[0], 1, 1)
    if len(dims) == 2:
        return (dims[1], dims[0], 1)
    return (math.prod(dims), 1, 1)


def _triple(value, name: str) -> tuple[int, int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(f"{name} must be three positive integers [channels, height, width], got {value!r}")
    return tuple(value)


def _pair(value, name: str) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(f"{name} must be two positive integers [height, width], got {value!r}")
    return tuple(value)
