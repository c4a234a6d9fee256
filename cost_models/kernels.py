"""A model as the sequence of fused kernels a deployment runtime executes.

Runtimes fuse a convolution or fully connected layer with the BatchNorm and activation that follow
it (TFLite, TFLite Micro, onnxruntime all do), treat flatten / reshape / dropout / identity as free,
and run padding, pooling, adds, concatenations and standalone activations as kernels of their own.
Costs are per kernel, because that is what a device measures: a model is not the plain sum of its
unfused ops.

``trace_with_shapes`` is shared with edgegrow's channel-group discovery.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import operator
import sys
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from .macs import conv2d_macs, linear_macs

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Hardswish, nn.Sigmoid, nn.Tanh, nn.SiLU, nn.GELU, nn.LeakyReLU)
_ACTIVATION_FUNCTIONS = {F.relu, F.relu6, torch.relu, F.hardswish, torch.sigmoid, F.sigmoid, torch.tanh, F.silu,
                         F.gelu, F.leaky_relu, F.hardtanh}
_FREE_MODULES = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten)
_FREE_FUNCTIONS = {torch.flatten, F.dropout}
_FREE_METHODS = {"view", "reshape", "flatten", "contiguous", "size", "dim"}
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
# pooling written as a function in ``forward`` (as PyTorch's tutorials write it) rather than as a layer
_MAX_POOL_FUNCTIONS = {F.max_pool2d, torch.max_pool2d}
_AVG_POOL_FUNCTIONS = {F.avg_pool2d}
_ADAPTIVE_POOL_FUNCTIONS = {F.adaptive_avg_pool2d: "avg", F.adaptive_max_pool2d: "max"}


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer, except that a module class with ``fx_leaf = True`` (a custom activation)
    stays one ``call_module`` node instead of being traced through."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return getattr(type(module), "fx_leaf", False) or super().is_leaf_module(module, qualified_name)


def symbolic_trace(model: nn.Module) -> torch.fx.GraphModule:
    """``torch.fx.symbolic_trace`` with the leaves of ``_Tracer``."""
    tracer = _Tracer()
    graph = tracer.trace(model)
    return torch.fx.GraphModule(tracer.root, graph, type(model).__name__)


def model_device(model: nn.Module) -> torch.device:
    """Where ``model`` computes (its first parameter's or buffer's device; the CPU without either): the
    example input goes there, so a model on a GPU is costed where it is."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)  # called every training step: no list
    return first.device if first is not None else torch.device("cpu")


def trace_with_shapes(model: nn.Module, example_input: torch.Tensor) -> torch.fx.GraphModule:
    """torch.fx graph of ``model`` with every node's output shape in ``node.meta['tensor_meta']``.

    The model's training mode and BatchNorm statistics are left as they were.

    Raises:
        ValueError: the model cannot be traced, or the example input does not run through it.
    """
    try:
        graph_module = symbolic_trace(model)
    except Exception as error:  # fx raises many types; all mean "cannot trace"
        message = str(error).splitlines()[0] if str(error) else "no message"
        raise ValueError(
            f"cannot trace {type(model).__name__} with torch.fx ({type(error).__name__}: {message}); "
            "edgegrow needs a model whose forward has no data-dependent control flow"
        ) from None
    modes = {module: module.training for module in model.modules()}
    graph_module.eval()
    printed = io.StringIO()  # ShapeProp prints a traceback to stderr before it raises
    try:
        with torch.no_grad(), contextlib.redirect_stderr(printed):
            ShapeProp(graph_module).propagate(example_input.to(model_device(model)))
    except Exception as error:
        cause = error.__cause__ or error  # ShapeProp's own error only names the node; the cause says why
        message = (str(cause).strip().splitlines() or ["no message"])[0]
        raise ValueError(
            f"the example input of shape {tuple(example_input.shape)} does not run through "
            f"{type(model).__name__}: {type(cause).__name__}: {message}"
        ) from None
    else:
        sys.stderr.write(printed.getvalue())  # warnings of a forward that ran
    finally:
        for module, training in modes.items():
            module.train(training)
    return graph_module


def output_shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, torch.fx.Node) else None
    shape = getattr(meta, "shape", None)
    return tuple(shape) if shape is not None else None


@dataclass
class Kernel:
    """One kernel as a runtime executes it.

    ``kind``: conv, depthwise, pointwise, fully_connected, pool (max), avg_pool, global_pool, mean, add, mul,
    batch_norm (one no conv precedes), concat, pad, activation (one no kernel before it takes in: ``activation`` names
    it), or ``unknown`` (costed by the roofline and flagged). ``layers`` are the module names fused into it (the conv,
    its BatchNorm, its activation). Shapes are per example (batch 1).
    """

    name: str
    kind: str
    layers: list[str]
    input_shapes: list[tuple[int, ...]]
    output_shape: tuple[int, ...]
    macs: int = 0
    parameters: int = 0
    kernel_size: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    activation: str | None = None
    inputs: list[str] = field(default_factory=list)  # names of the kernels (or "input") it reads
    padding: tuple[int, int] = (0, 0)  # zero padding (height, width): a convolution's on each side, a pad's before


# the activations TFLite's converter fuses into the operator before them (fused_activation_function); the only ones a
# ``batch_norm`` takes in (its last op, an ADD, runs them), the others are operators of their own after it
TFLITE_FUSED_ACTIVATIONS = frozenset({"relu", "relu_", "relu6", "hardtanh"})


def _per_example(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (1, *shape[1:])


def _conv_kind(conv: nn.Conv2d) -> str:
    if conv.groups > 1 and conv.groups == conv.in_channels:
        return "depthwise"
    if conv.kernel_size == (1, 1):
        return "pointwise"
    return "conv"


def fused_kernels(model: nn.Module, example_input: torch.Tensor) -> list[Kernel]:
    """The kernels of ``model`` in execution order, with BatchNorm and activations fused into the
    conv / fully connected layer they follow (when that layer's output has no other reader)."""
    return kernels_of_graph(trace_with_shapes(model, example_input).graph, dict(model.named_modules()))


def kernels_of_graph(graph: torch.fx.Graph, modules: dict[str, nn.Module]) -> list[Kernel]:
    """``fused_kernels`` of a graph ``trace_with_shapes`` made (or one edited from it, such as
    ``graph_with_modules_after``'s), whose ``call_module`` targets are in ``modules``."""
    users = {node: len(node.users) for node in graph.nodes}
    kernels: list[Kernel] = []
    produced_by: dict[torch.fx.Node, str] = {}  # node → kernel name whose output it is (aliases included)
    names: set[str] = set()  # kernel names are unique: inputs and the memory plan refer to kernels by name

    def source(node) -> str:
        return produced_by.get(node, "input")

    for node in graph.nodes:
        if node.op == "placeholder":
            produced_by[node] = "input"
            continue
        if node.op in ("output", "get_attr"):
            continue
        shape = output_shape(node)
        tensor_inputs = [arg for arg in node.all_input_nodes if output_shape(arg) is not None]
        module = modules.get(node.target) if node.op == "call_module" else None
        previous = kernels[-1] if kernels else None
        single_reader = tensor_inputs and users[tensor_inputs[0]] == 1
        last_output_node = tensor_inputs[0] if tensor_inputs else None
        follows_previous = (previous is not None and single_reader and previous.activation is None
                            and source(last_output_node) == previous.name)
        # BatchNorm folds into the weights of a conv or fully connected layer; an activation fuses into
        # those and into an add (TFLite's fused_activation_function), and a ReLU or ReLU6 goes with a BatchNorm
        # of its own (``batch_norm``: a profile times the two together, as TFLite runs them).
        fusable = follows_previous and previous.kind in ("conv", "depthwise", "pointwise", "fully_connected")
        fusable_activation = follows_previous and (fusable or previous.kind == "add")
        if shape is None:  # sizes, shapes: not tensors
            continue
        if isinstance(module, _FREE_MODULES) or (node.op == "call_function" and node.target in _FREE_FUNCTIONS) \
                or (node.op == "call_method" and node.target in _FREE_METHODS):
            produced_by[node] = source(tensor_inputs[0]) if tensor_inputs else "input"
            continue
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and fusable:
            previous.layers.append(node.target)
            previous.parameters += sum(p.numel() for p in module.parameters())
            produced_by[node] = previous.name
            continue
        is_activation = isinstance(module, _ACTIVATIONS) or (
            node.op == "call_function" and node.target in _ACTIVATION_FUNCTIONS) or (
            node.op == "call_method" and node.target in ("relu", "relu_", "sigmoid", "tanh"))
        activation = None
        if is_activation:
            activation = type(module).__name__ if module is not None else getattr(node.target, "__name__",
                                                                                  str(node.target))
        into_norm = (follows_previous and previous.kind == "batch_norm" and activation is not None
                     and activation.lower() in TFLITE_FUSED_ACTIVATIONS)
        if is_activation and (fusable_activation or into_norm):
            previous.layers.append(str(node.target) if node.op == "call_module" else node.name)
            previous.activation = activation
            produced_by[node] = previous.name
            continue
        kernel = _kernel(node, module, shape, tensor_inputs, is_activation)
        if kernel.kind == "activation":
            kernel.activation = activation
        if kernel.name in names:  # a module run twice (one pooling for two branches): the node's own name
            kernel.name = node.name
        kernel.inputs = [source(arg) for arg in tensor_inputs]
        kernels.append(kernel)
        names.add(kernel.name)
        produced_by[node] = kernel.name
    return kernels


def output_node_of(graph: torch.fx.Graph, module_name: str) -> torch.fx.Node:
    """The node of ``graph`` (traced by ``trace_with_shapes``) that is the output of module
    ``module_name``: the one node run inside the module that something outside it reads.

    Raises:
        ValueError: no such module in the graph, a layer the graph runs more than once, or not exactly
            one node leaving the module (it returns more than one tensor).
    """
    inside = {node for node in graph.nodes if module_name in (node.meta.get("nn_module_stack") or {})}
    if not inside:
        raise ValueError(f"the traced graph runs no module `{module_name}`")
    runs = sum(node.op == "call_module" and node.target == module_name for node in graph.nodes)
    if runs > 1:  # a layer run twice; a block run twice reads as its last run (Firefly skips both)
        raise ValueError(f"module `{module_name}` runs {runs} times; expected once")
    leaving = [node for node in graph.nodes if node in inside and any(user not in inside for user in node.users)]
    if len(leaving) != 1:
        raise ValueError(f"{len(leaving)} outputs of module `{module_name}` are read outside it; expected one")
    return leaving[0]


def graph_with_modules_after(graph: torch.fx.Graph,
                             insertions: list[tuple[str, list[tuple[str, nn.Module]]]]) -> torch.fx.Graph:
    """A copy of ``graph`` (traced by ``trace_with_shapes``) in which, for each (module name, [(name,
    module), …]) of ``insertions``, those modules run one after another on that module's output and
    everything that read the output reads theirs instead: the graph ``trace_with_shapes`` gives the
    model with those blocks inserted, without tracing it. The modules must keep their input's shape
    (an identity-initialised block does); their nodes carry the output's shape."""
    produced = [(output_node_of(graph, module_name), inserted) for module_name, inserted in insertions]
    edited = torch.fx.Graph()
    values: dict[torch.fx.Node, torch.fx.Node] = {}
    edited.output(edited.graph_copy(graph, values))
    for node, inserted in produced:
        output = values[node]
        readers = list(output.users)
        last = output
        for name, module in inserted:
            with edited.inserting_after(last):
                last = edited.call_module(name, (last,))
            last.meta = {**output.meta, "nn_module_stack": {name: (name, type(module))}}
        for reader in readers:
            reader.replace_input_with(output, last)
    return edited


def _kernel(node: torch.fx.Node, module: nn.Module | None, shape: tuple[int, ...],
            tensor_inputs: list, is_activation: bool) -> Kernel:
    name = str(node.target) if node.op == "call_module" else node.name
    input_shapes = [_per_example(output_shape(arg)) for arg in tensor_inputs]
    out = _per_example(shape)
    if isinstance(module, nn.Conv2d):
        return Kernel(name, _conv_kind(module), [name], input_shapes, out,
                      macs=conv2d_macs(module, out[2], out[3]),
                      parameters=sum(p.numel() for p in module.parameters()),
                      kernel_size=tuple(module.kernel_size), stride=tuple(module.stride),
                      padding=tuple(module.padding) if not isinstance(module.padding, str) else (0, 0))
    if isinstance(module, nn.Linear):
        positions = max(1, _numel(out) // module.out_features)
        return Kernel(name, "fully_connected", [name], input_shapes, out,
                      macs=linear_macs(module, positions),
                      parameters=sum(p.numel() for p in module.parameters()))
    pooling = _pooling(node, module, input_shapes[0] if input_shapes else out, out)
    if pooling is not None:
        kind, size, stride, padding = pooling
        return Kernel(name, kind, [name], input_shapes, out, kernel_size=size, stride=stride, padding=padding)
    if isinstance(module, (nn.ZeroPad2d, nn.ConstantPad2d)):
        left, _, top, _ = module.padding  # (left, right, top, bottom)
        return Kernel(name, "pad", [name], input_shapes, out, padding=(top, left))
    if node.op == "call_function" and node.target is F.pad and _constant_pad(node):
        pads = tuple(_argument(node, 1, "pad", ())) + (0, 0, 0, 0)
        return Kernel(name, "pad", [name], input_shapes, out, padding=(pads[2], pads[0]))
    if node.op == "call_function" and node.target in _ADD_FUNCTIONS or (
            node.op == "call_method" and node.target in ("add", "add_")):
        return Kernel(name, "add" if len(tensor_inputs) == 2 else "activation", [name], input_shapes, out)
    if node.op == "call_function" and node.target in (operator.mul, torch.mul):
        return Kernel(name, "mul", [name], input_shapes, out)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        # a BatchNorm no conv precedes (behind a concat, an add, or first in a pre-activation block)
        # stays a node of its own (or four: see ``kernel_shape.KINDS``), with the activation after it
        return Kernel(name, "batch_norm", [name], input_shapes, out,
                      parameters=sum(p.numel() for p in module.parameters()))
    if node.op == "call_function" and node.target in (torch.cat, torch.concat):
        return Kernel(name, "concat", [name], input_shapes, out)
    if is_activation:
        return Kernel(name, "activation", [name], input_shapes, out)
    return Kernel(name, "unknown", [name], input_shapes, out)


def _pooling(node: torch.fx.Node, module: nn.Module | None, source: tuple[int, ...],
             out: tuple[int, ...]) -> tuple[str, tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """(kind, kernel size, stride, padding) of a pooling node, layer or function, or None for any other node.

    A pooling to one value per channel is the kernel edgegrow's exports write for it: torch.onnx's dynamo
    exporter writes ``nn.AdaptiveAvgPool2d(1)`` and ``x.mean((2, 3))`` as a ReduceMean and litert-torch as a
    MEAN (``mean``); ``nn.AdaptiveMaxPool2d(1)`` and ``x.amax((2, 3))`` become a ReduceMax (onnxruntime) or a
    REDUCE_MAX (TFLite), priced as a ``mean``: on an x86 host a ReduceMax took 84-101 % of a ReduceMean's time
    on 8×8-48×48 maps of 24-128 channels, and a REDUCE_MAX 100-101 % of a MEAN's through litert (2026-12-07).
    A GlobalAveragePool (``global_pool``) is what only older exporters wrote. Otherwise a max pool is ``pool``
    and an average pool ``avg_pool``; an adaptive pooling whose output divides its input is the pooling of
    that window, which is what the exporter writes (AveragePool / MaxPool). An adaptive pooling whose output
    does not divide its input (windows of two sizes) and a dilated max pool stay ``unknown``: priced at their
    roofline and flagged, not as a pooling they are not."""
    call = node.op == "call_function"
    method = node.op == "call_method"
    global_output = len(out) >= 2 and _numel(out) == out[1]  # a (1,) output (a squeezed head) is no pooling
    adaptive = _ADAPTIVE_POOL_FUNCTIONS.get(node.target) if call else None
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) or adaptive is not None:
        average = isinstance(module, nn.AdaptiveAvgPool2d) or adaptive == "avg"
        if global_output:
            return "mean", (1, 1), (1, 1), (0, 0)
        if len(source) != 4 or len(out) != 4 or any(size % max(1, target) for size, target in
                                                    zip(source[-2:], out[-2:])):
            return None
        window = tuple(size // target for size, target in zip(source[-2:], out[-2:]))
        return ("avg_pool" if average else "pool"), window, window, (0, 0)
    if method and node.target in ("mean", "amax") or call and node.target in (torch.mean, torch.amax):
        if global_output:
            return "mean", (1, 1), (1, 1), (0, 0)
        # a mean over part of the map: priced as before, a 1×1 pool; a partial amax stays unknown
        return None if node.target in ("amax", torch.amax) else ("pool", (1, 1), (1, 1), (0, 0))
    average = isinstance(module, nn.AvgPool2d) or call and node.target in _AVG_POOL_FUNCTIONS
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        size, stride, padding = module.kernel_size, module.stride, module.padding
        dilation = getattr(module, "dilation", 1)
    elif call and (node.target in _MAX_POOL_FUNCTIONS or average):
        size, stride, padding = (_argument(node, 1, "kernel_size", 1), _argument(node, 2, "stride", None),
                                 _argument(node, 3, "padding", 0))
        dilation = 1 if average else _argument(node, 4, "dilation", 1)
    else:
        return None
    if _two(dilation) != (1, 1):
        return None
    size = _two(size)
    stride = _two(stride) if stride not in (None, (), []) else size  # PyTorch's default: the kernel size
    return ("avg_pool" if average else "pool"), size, stride, _two(padding)


def _argument(node: torch.fx.Node, position: int, keyword: str, default):
    """A call's argument by position (counting the tensor as 0) or keyword."""
    if len(node.args) > position:
        return node.args[position]
    return node.kwargs.get(keyword, default)


def _two(value) -> tuple[int, int]:
    """A pooling argument as (height, width): an int is both."""
    value = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    return (int(value[0]), int(value[-1]))


def _constant_pad(node: torch.fx.Node) -> bool:
    """Whether an ``F.pad`` call pads with zeros (a pad kernel), not reflecting or replicating."""
    return _argument(node, 2, "mode", "constant") == "constant" and not _argument(node, 3, "value", None)


def _numel(shape: tuple[int, ...]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total
