"""Single-kernel and chain models as TFLite flatbuffers, for profiling a CPU through ai-edge-litert.

TFLite has no writer as small as ONNX's helper, so each kernel is a tiny PyTorch module converted by
litert-torch with channel-last inputs and outputs, as ``edgegrow export`` converts a whole network:
the ops, layouts and fused activations a phone's TFLite runs (XNNPACK by default). A conversion
takes about a second, so the profiler converts each shape once and keeps the file.

A channel-last mean (``mean_nhwc``) is converted as written on a channel-last input: with channel-last inputs added by
the converter, litert-torch writes a TRANSPOSE to channel-first before the MEAN, as it does for a head's mean.

The module's output may differ from the requested shape by a row where PyTorch's pooling rounds
otherwise than 'same' padding; ``kernel_tflite`` returns the shape the file really computes, and the
table records that one.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import torch
from torch import nn

from .kernel_shape import KernelShape, same_padding

PROFILABLE_KINDS = ("conv", "depthwise", "pointwise", "fully_connected", "pool", "avg_pool", "global_pool", "mean",
                    "mean_nhwc", "add", "mul", "batch_norm", "concat", "pad", "max_pad", "activation")
CHANNEL_LAST_KINDS = ("mean_nhwc",)  # written on a channel-last input, converted without channel-last inputs added
_ACTIVATIONS = {None: nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish,
                "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "silu": nn.SiLU, "gelu": nn.GELU,
                "hardsigmoid": nn.Hardsigmoid, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU}


def _activation(name: str | None) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"no TFLite single-kernel model for activation {name!r}")
    return _ACTIVATIONS[name]()


class _Kernel(nn.Module):
    """One kernel of ``shape`` on an NCHW input (second operands of add, mul and concat are constants)."""

    def __init__(self, shape: KernelShape, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.kind = shape.kind
        c_in, h_in, w_in = shape.input
        c_out, h_out, w_out = shape.output
        (k_h, k_w), (s_h, s_w) = shape.kernel, shape.stride
        # symmetric padding, as PyTorch layers are written (an odd 'same' total rounds up, which gives
        # the same output size for an odd kernel): litert-torch folds it into the op
        padding = (-(-sum(same_padding(h_in, h_out, k_h, s_h)) // 2), -(-sum(same_padding(w_in, w_out, k_w, s_w)) // 2))
        # without a fused activation
        unfused = ("pool", "avg_pool", "global_pool", "mean", "mean_nhwc", "concat", "pad", "max_pad")
        self.act = _activation(shape.activation if shape.kind not in unfused else None)
        if shape.kind in ("conv", "depthwise", "pointwise"):
            groups = c_in if shape.kind == "depthwise" else 1
            self.op = nn.Conv2d(c_in, c_out, (k_h, k_w), (s_h, s_w), padding, groups=groups)
        elif shape.kind == "fully_connected":
            self.op = nn.Linear(c_in * h_in * w_in, c_out * h_out * w_out)
        elif shape.kind == "pool":
            self.op = nn.MaxPool2d((k_h, k_w), (s_h, s_w), ceil_mode=True)
        elif shape.kind == "avg_pool":
            # padded as PyTorch layers are written (F.avg_pool2d(x, 3, 2, 1)), not by ceil_mode: litert-torch writes a
            # partial window's average as a PAD, the pooling and a MUL, which no such layer exports to
            self.op = nn.AvgPool2d((k_h, k_w), (s_h, s_w), (min(padding[0], k_h // 2), min(padding[1], k_w // 2)))
        else:
            self.op = nn.Identity()
        self.twice = shape.kind == "concat" and c_out == 2 * c_in  # two tensors of one layout, as in a network
        # a max pool's padding, as PyTorch pads it: the same before and after (the odd one after), -inf
        rows, columns = h_out - h_in, w_out - w_in
        self.max_pad = (columns // 2, columns - columns // 2, rows // 2, rows - rows // 2)
        if shape.kind == "add":
            self.register_buffer("other", torch.randn(1, c_in, h_in, w_in, generator=generator))
        elif shape.kind == "mul":  # one value per channel, broadcast: a squeeze-and-excitation gate
            self.register_buffer("other", torch.randn(1, c_in, 1, 1, generator=generator))
        elif shape.kind == "concat":
            self.register_buffer("other", torch.randn(1, max(1, c_out - c_in), h_in, w_in, generator=generator))
        for parameter in self.parameters():
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.1
        if shape.kind == "batch_norm":  # a trained BatchNorm (mean, 1 / standard deviation, weight, bias per channel)
            for name, low in (("mean", -0.2), ("inverse_deviation", 0.8), ("weight", 0.5), ("bias", -0.2)):
                self.register_buffer(name, low + 0.4 * torch.rand(1, c_in, 1, 1, generator=generator))

    def forward(self, x):
        if self.kind == "fully_connected":
            return self.act(self.op(x))
        if self.kind in ("global_pool", "mean"):  # litert-torch writes both as TRANSPOSE (to channel-first) and MEAN
            return x.mean((2, 3))
        if self.kind == "mean_nhwc":  # x is channel-last already (``_example``): a MEAN on it, no TRANSPOSE
            return x.mean((1, 2), keepdim=True)
        if self.kind == "add":
            return self.act(x + self.other)
        if self.kind == "mul":
            return self.act(x * self.other)
        if self.kind == "concat":
            return torch.cat([x, x if self.twice else self.other], dim=1)
        if self.kind == "pad":
            return nn.functional.pad(x, (0, 1, 0, 1))
        if self.kind == "max_pad":
            return nn.functional.pad(x, self.max_pad, value=float("-inf"))
        if self.kind == "activation":
            return self.act(x)
        if self.kind == "batch_norm":
            # written out: litert-torch writes a trained BatchNorm behind a concat, or behind a conv and its activation,
            # as these four ops (SUB, MUL, MUL, ADD, the activation fused into the ADD); written as a BatchNorm on a
            # model's input it folds them into a MUL and an ADD, about half the time (x86 host, 2026-12-07), and
            # behind an add or before a conv into two MULs, the rest into the neighbour
            return self.act((x - self.mean) * self.inverse_deviation * self.weight + self.bias)
        return self.act(self.op(x))


class _Chain(nn.Module):
    """Kernels in order; ``inputs[i]`` are the kernels kernel i reads (-1: the model input). An add
    reading two kernels adds them (a residual), as the ONNX chain does."""

    def __init__(self, shapes: list[KernelShape], inputs: list[list[int]], seed: int = 0):
        super().__init__()
        self.kernels = nn.ModuleList(_Kernel(shape, seed + index) for index, shape in enumerate(shapes))
        self.inputs = [list(sources) for sources in inputs]
        self.flat = [shape.kind == "fully_connected" for shape in shapes]

    def forward(self, x):
        outputs = []
        for kernel, sources, flat in zip(self.kernels, self.inputs, self.flat):
            values = [x if source < 0 else outputs[source] for source in sources]
            if kernel.kind == "add" and len(values) == 2:
                outputs.append(kernel.act(values[0] + values[1]))
                continue
            first = values[0].flatten(1) if flat else values[0]
            outputs.append(kernel(first))
        return outputs[-1]


def _example(shape: KernelShape) -> torch.Tensor:
    if shape.kind == "fully_connected":
        return torch.randn(1, shape.input[0] * shape.input[1] * shape.input[2])
    if shape.kind in CHANNEL_LAST_KINDS:
        c, h, w = shape.input
        return torch.randn(1, h, w, c)
    return torch.randn(1, *shape.input)


def _convert(module: nn.Module, example: torch.Tensor, channel_last_io: bool = True) -> bytes:
    try:
        import litert_torch
    except ImportError:
        raise ValueError("profiling through ai-edge-litert needs litert-torch: "
                         "pip install 'edgegrow[tflite]'") from None
    module = module.eval()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if example.dim() == 4 and channel_last_io:
            outputs = [0] if module(example).dim() == 4 else None
            module = litert_torch.to_channel_last_io(module, args=[0], outputs=outputs).eval()
            example = example.permute(0, 2, 3, 1).contiguous()
        return bytes(litert_torch.convert(module, (example,)).model_content())


def _module(shape: KernelShape, seed: int = 0) -> nn.Module:
    if shape.kind not in PROFILABLE_KINDS:
        raise ValueError(f"cannot write a single-kernel model for kind {shape.kind!r}")
    return _Kernel(shape, seed).eval()


def computed_shape(shape: KernelShape) -> KernelShape:
    """The shape ``kernel_tflite(shape)`` really computes (see the module docstring); cheap.

    Raises:
        ValueError: no PyTorch layer computes it (a pooling window larger than its input)."""
    try:
        with torch.no_grad():
            out = _module(shape)(_example(shape))
    except RuntimeError as error:
        raise ValueError(f"no single-kernel module for {shape}: {str(error).splitlines()[0]}") from None
    output = tuple(out.shape[1:]) if out.dim() == 4 else (out.shape[1], 1, 1)  # a mean or a linear layer: (C, 1, 1)
    if shape.kind in CHANNEL_LAST_KINDS:  # a channel-last (1, 1, 1, C) mean
        output = (shape.input[0], 1, 1)
    return KernelShape(shape.kind, shape.input, output, shape.kernel, shape.stride, shape.activation)


def kernel_tflite(shape: KernelShape, seed: int = 0) -> bytes:
    """A float32 .tflite running ``shape`` once (channel-last input and output); it computes
    ``computed_shape(shape)``.

    Raises:
        ValueError: the kind or activation has no single-kernel model, or litert-torch is missing.
    """
    return _convert(_module(shape, seed), _example(shape), channel_last_io=shape.kind not in CHANNEL_LAST_KINDS)


def chain_tflite(shapes: list[KernelShape], inputs: list[list[int]], seed: int = 0) -> bytes:
    """One .tflite running ``shapes`` in order (see ``_Chain``), for the profile's calibration."""
    return _convert(_Chain(shapes, inputs, seed).eval(), _example(shapes[0]))


def overhead_tflite() -> bytes:
    """The smallest model worth timing: one ReLU on one float (the per-model overhead)."""
    return _convert(nn.ReLU().eval(), torch.randn(1, 1, 1, 1))


class _NodeChain(nn.Module):
    def __init__(self, nodes: int):
        super().__init__()
        self.nodes = nodes

    def forward(self, x):
        for index in range(self.nodes):  # alternating, so that no converter pass merges two
            x = torch.relu(x) if index % 2 == 0 else torch.tanh(x)
        return x


def node_chain_tflite(nodes: int) -> bytes:
    """``nodes`` ops in a row (ReLU and tanh in turn) on eight floats: next to each other, such
    models' latencies rise by what the interpreter spends on each op besides its work."""
    return _convert(_NodeChain(nodes).eval(), torch.randn(1, 1, 1, 8))
