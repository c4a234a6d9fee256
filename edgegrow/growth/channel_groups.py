"""Channel groups: the sets of coupled channels that must be widened together.

A *channel group* is one channel space of the network: the output channels of its producer
layer(s) (a dense Conv2d or a Linear), every per-channel layer they flow through unchanged
(BatchNorm, depthwise conv, activations, pooling, dropout, padding, flatten), and the input
channels of every layer that reads them (the next convs, a Linear behind flatten or global
pooling). Residual adds and elementwise products tie the spaces of both operands into one group;
concatenation places several groups side by side in its consumers' input channels.

``find_channel_groups`` traces a model with torch.fx and propagates an example input to learn
every tensor's shape, so it works on any model built from the supported layers, not only on the
zoo. A path through an operation it does not understand makes the group *not growable* and
records why; such a group is reported, never edited.
"""
from __future__ import annotations

import hashlib
import math
import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from cost_models.kernels import output_shape, trace_with_shapes

from ..models.layers import Gaussian

Role = Literal["producer", "passthrough", "consumer"]


@dataclass(frozen=True)
class Segment:
    """A run of channels that comes before a group's own channels in a concatenated tensor.

    Its width is read live from ``width_layer`` (a producer of that run) so that offsets stay
    right after other groups grow; runs no layer produces (the model input) keep ``fixed_width``.
    """

    width_layer: str | None
    fixed_width: int
    inner: int


@dataclass(frozen=True)
class Slot:
    """Where a group's channels sit in one layer.

    ``role`` says which axis is edited: a producer's output channels (weight dim 0), a
    pass-through layer's per-channel parameters and buffers (dim 0), a consumer's input channels
    (weight dim 1). A layer reading a concatenation sees ``before`` runs of other channels first;
    a Linear behind a flatten sees ``inner`` entries per channel (height × width of the map).
    """

    layer: str
    role: Role
    before: tuple[Segment, ...] = ()
    inner: int = 1


@dataclass(frozen=True)
class ChannelGroup:
    """One set of coupled channels, found by ``find_channel_groups``.

    ``name`` is the first producer's module name, which is how users and logs refer to it.
    ``reasons`` says why a group is not growable (empty when it is).
    """

    name: str
    producers: tuple[Slot, ...]
    passthrough: tuple[Slot, ...]
    consumers: tuple[Slot, ...]
    width_at_discovery: int
    reasons: tuple[str, ...] = ()
    structure: str = field(default="", compare=False, repr=False)

    @property
    def growable(self) -> bool:
        return not self.reasons

    @property
    def slots(self) -> tuple[Slot, ...]:
        return self.producers + self.passthrough + self.consumers

    def describe(self) -> str:
        """One line: name, width, members, and why it cannot grow if so."""
        members = (
            f"producers={[s.layer for s in self.producers]} "
            f"passthrough={[s.layer for s in self.passthrough]} "
            f"consumers={[s.layer for s in self.consumers]}"
        )
        status = "growable" if self.growable else "not growable: " + "; ".join(self.reasons)
        return f"{self.name} [{self.width_at_discovery} ch] {members} — {status}"


# ---------------------------------------------------------------------------------------------
# What the tracer understands. Everything else blocks the groups that flow through it.

# Modules that act on each channel separately and hold no per-channel state.
_CHANNELWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardtanh, nn.Mish, nn.Softplus, nn.Identity, nn.Dropout, nn.Dropout2d,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.ZeroPad2d,
    nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d, nn.Upsample, Gaussian,
)
_CHANNELWISE_FUNCTIONS: frozenset[Callable] = frozenset({
    F.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.hardswish, F.hardsigmoid, F.hardtanh,
    F.mish, F.softplus, F.dropout, F.dropout2d, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d, F.interpolate, torch.relu, torch.sigmoid, torch.tanh, F.sigmoid, F.tanh,
    torch.clamp, torch.clip,
})
_CHANNELWISE_METHODS = frozenset({
    "relu", "relu_", "sigmoid", "tanh", "clamp", "clip", "contiguous", "clone", "float",
})
_BINARY_FUNCTIONS: frozenset[Callable] = frozenset({
    operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul,
    operator.truediv, torch.add, torch.sub, torch.mul,
})
_BINARY_METHODS = frozenset({"add", "add_", "sub", "mul", "mul_", "div"})
_REDUCTION_FUNCTIONS: frozenset[Callable] = frozenset({torch.mean, torch.sum, torch.amax, torch.amin})
_REDUCTION_METHODS = frozenset({"mean", "sum", "amax", "amin"})
_RESHAPE_METHODS = frozenset({"view", "reshape", "flatten"})
_CAT_FUNCTIONS: frozenset[Callable] = frozenset({torch.cat, torch.concat})


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


# A tensor's channel layout: the runs of channel spaces along dim 1, as (space id, inner).
Layout = tuple[tuple[int, int], ...]


@dataclass
class _Member:
    space: int
    role: Role
    layer: str
    before: tuple[tuple[int, int], ...]
    inner: int


@dataclass
class _Analysis:
    """Mutable state of one tracing pass."""

    spaces: _UnionFind = field(default_factory=_UnionFind)
    widths: list[int] = field(default_factory=list)
    layouts: dict[torch.fx.Node, Layout] = field(default_factory=dict)
    members: list[_Member] = field(default_factory=list)
    blocked: dict[int, list[str]] = field(default_factory=dict)

    def new_space(self, width: int, blocked_because: str | None = None) -> int:
        space = self.spaces.new()
        self.widths.append(width)
        if blocked_because:
            self.block([space], blocked_because)
        return space

    def block(self, spaces, reason: str) -> None:
        for space in spaces:
            reasons = self.blocked.setdefault(space, [])
            if reason not in reasons:
                reasons.append(reason)

    def add_members(self, layout: Layout, role: Role, layer: str) -> None:
        for position, (space, inner) in enumerate(layout):
            self.members.append(_Member(space, role, layer, layout[:position], inner))


def find_channel_groups(model: nn.Module, example_input: torch.Tensor) -> list[ChannelGroup]:
    """Every channel group of ``model``, growable or not, in the order of their first producer.

    Args:
        model: any ``nn.Module`` torch.fx can trace. Its training mode is left as it was.
        example_input: a batch the model accepts, e.g. ``edgegrow.models.example_input(model)``.

    Raises:
        ValueError: the model cannot be traced, or the example input does not run through it.
    """
    graph_module = trace_with_shapes(model, example_input)
    modules = dict(model.named_modules())
    calls = Counter(node.target for node in graph_module.graph.nodes if node.op == "call_module")
    state = _Analysis()
    for node in graph_module.graph.nodes:
        try:
            _visit(node, state, modules, calls)
        except Exception as error:  # a surprise in one node blocks its groups, never the analysis
            _unknown(node, state, f"analysis failed at {_describe(node)} ({type(error).__name__}: {error})")
    return _collect_groups(state, structure_fingerprint(model))


def structure_fingerprint(model: nn.Module) -> str:
    """A hash of the model's module names and types: unchanged by widening, changed by deepening.

    A group remembers the fingerprint of the model it was found on, so that a group found before
    a layer was inserted is refused instead of editing the wrong layers.
    """
    text = "\n".join(f"{name}:{type(module).__qualname__}" for name, module in model.named_modules())
    return hashlib.sha1(text.encode()).hexdigest()


def _describe(node: torch.fx.Node) -> str:
    if node.op == "call_module":
        return f"layer `{node.target}`"
    if node.op == "call_function":
        return f"function `{getattr(node.target, '__name__', node.target)}`"
    if node.op == "call_method":
        return f"method `.{node.target}()`"
    return f"`{node.name}`"


def _tensor_inputs(node: torch.fx.Node, state: _Analysis) -> list[torch.fx.Node]:
    return [arg for arg in node.all_input_nodes if arg in state.layouts or output_shape(arg) is not None]


def _unknown(node: torch.fx.Node, state: _Analysis, reason: str | None = None) -> None:
    """Block every group flowing into ``node``; its output starts a blocked space."""
    reason = reason or f"passes through {_describe(node)}, which edgegrow cannot widen"
    for arg in node.all_input_nodes:
        state.block((space for space, _ in state.layouts.get(arg, ())), reason)
    shape = output_shape(node)
    if shape is not None and len(shape) >= 2:
        state.layouts[node] = ((state.new_space(shape[1], reason), 1),)


def _visit(node: torch.fx.Node, state: _Analysis, modules: dict[str, nn.Module], calls: Counter) -> None:
    shape = output_shape(node)
    if node.op == "placeholder":
        if shape is not None and len(shape) >= 2:
            state.layouts[node] = ((state.new_space(shape[1], "model input"), 1),)
        return
    if node.op == "get_attr":
        if shape is not None and len(shape) >= 2:
            state.layouts[node] = ((state.new_space(shape[1], f"tied to parameter `{node.target}`"), 1),)
        return
    if node.op == "output":
        for arg in node.all_input_nodes:
            state.block((space for space, _ in state.layouts.get(arg, ())), "feeds the model output")
        return
    if shape is None:
        # Not a tensor (x.size(), a tuple, ...): nothing to track unless it consumed a layout.
        if any(arg in state.layouts for arg in node.all_input_nodes) and not _is_shape_query(node):
            _unknown(node, state)
        return
    if node.op == "call_module":
        _visit_module(node, state, modules[node.target], calls[node.target])
    elif node.op == "call_function":
        _visit_function(node, state)
    elif node.op == "call_method":
        _visit_method(node, state)
    else:
        _unknown(node, state)


def _is_shape_query(node: torch.fx.Node) -> bool:
    return (node.op == "call_method" and node.target in ("size", "dim")) or (
        node.op == "call_function" and node.target is getattr and node.args[1] in ("shape", "ndim")
    )


def _single_input_layout(node: torch.fx.Node, state: _Analysis) -> Layout | None:
    inputs = _tensor_inputs(node, state)
    if len(inputs) != 1 or inputs[0] not in state.layouts:
        return None
    return state.layouts[inputs[0]]


def _visit_module(node: torch.fx.Node, state: _Analysis, module: nn.Module, call_count: int) -> None:
    layout = _single_input_layout(node, state)
    if layout is None:
        _unknown(node, state)
        return
    has_parameters = any(True for _ in module.parameters(recurse=False))
    if call_count > 1 and has_parameters:
        _unknown(node, state, f"layer `{node.target}` is called {call_count} times (shared weights)")
        return
    name = node.target
    if isinstance(module, nn.Conv2d):
        depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
        if depthwise:
            state.add_members(layout, "passthrough", name)
            state.layouts[node] = layout
        elif module.groups == 1 and all(inner == 1 for _, inner in layout):
            state.add_members(layout, "consumer", name)
            _produce(node, state, name, module.out_channels)
        else:
            _unknown(node, state, f"grouped convolution `{name}` (groups={module.groups}) cannot be widened")
    elif isinstance(module, nn.Linear):
        if len(output_shape(node.all_input_nodes[0])) != 2:
            _unknown(node, state, f"Linear `{name}` is applied to a tensor of rank "
                                  f"{len(output_shape(node.all_input_nodes[0]))}; only (batch, features) is supported")
            return
        state.add_members(layout, "consumer", name)
        _produce(node, state, name, module.out_features)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if not module.affine and not module.track_running_stats:
            state.layouts[node] = layout
            return
        state.add_members(layout, "passthrough", name)
        state.layouts[node] = layout
    elif isinstance(module, nn.Flatten):
        _reshape(node, state, layout)
    elif isinstance(module, _CHANNELWISE_MODULES):
        state.layouts[node] = layout
    else:
        _unknown(node, state)


def _produce(node: torch.fx.Node, state: _Analysis, layer: str, width: int) -> None:
    space = state.new_space(width)
    state.members.append(_Member(space, "producer", layer, (), 1))
    state.layouts[node] = ((space, 1),)


def _visit_function(node: torch.fx.Node, state: _Analysis) -> None:
    target = node.target
    if target in _CHANNELWISE_FUNCTIONS:
        _channelwise(node, state)
    elif target in _BINARY_FUNCTIONS:
        _binary(node, state)
    elif target in _CAT_FUNCTIONS:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        _concatenate(node, state, list(tensors), dim)
    elif target is torch.flatten:
        _reshape(node, state, _single_input_layout(node, state))
    elif target in _REDUCTION_FUNCTIONS:
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        _reduce(node, state, dim)
    else:
        _unknown(node, state)


def _visit_method(node: torch.fx.Node, state: _Analysis) -> None:
    target = node.target
    if target in _CHANNELWISE_METHODS:
        _channelwise(node, state)
    elif target in _BINARY_METHODS:
        _binary(node, state)
    elif target in _RESHAPE_METHODS:
        _reshape(node, state, _single_input_layout(node, state))
    elif target in _REDUCTION_METHODS:
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        _reduce(node, state, dim)
    else:
        _unknown(node, state)


def _channelwise(node: torch.fx.Node, state: _Analysis) -> None:
    layout = _single_input_layout(node, state)
    if layout is None or output_shape(node)[1:2] != output_shape(node.all_input_nodes[0])[1:2]:
        _unknown(node, state)
    else:
        state.layouts[node] = layout


def _binary(node: torch.fx.Node, state: _Analysis) -> None:
    inputs = _tensor_inputs(node, state)
    if len(inputs) == 1:  # tensor with a scalar
        _channelwise(node, state)
        return
    if len(inputs) != 2 or any(arg not in state.layouts for arg in inputs):
        _unknown(node, state)
        return
    left, right = (state.layouts[arg] for arg in inputs)
    left_shape, right_shape = (output_shape(arg) for arg in inputs)
    same_runs = len(left) == len(right) and all(
        state.widths[a] == state.widths[b] and ia == ib for (a, ia), (b, ib) in zip(left, right)
    )
    if len(left_shape) < 2 or len(right_shape) < 2 or left_shape[1] != right_shape[1] or not same_runs:
        _unknown(node, state, f"{_describe(node)} broadcasts across channels")
        return
    for (a, _), (b, _) in zip(left, right):
        state.spaces.union(a, b)
    state.layouts[node] = left


def _concatenate(node: torch.fx.Node, state: _Analysis, tensors: list, dim: int) -> None:
    rank = len(output_shape(node))
    if dim % rank != 1 or any(t not in state.layouts for t in tensors):
        _unknown(node, state, f"{_describe(node)} along dim {dim} (only channel concatenation is supported)")
        return
    state.layouts[node] = tuple(run for t in tensors for run in state.layouts[t])


def _reshape(node: torch.fx.Node, state: _Analysis, layout: Layout | None) -> None:
    """Flatten (N, C, *spatial) to (N, C·prod(spatial)): each channel becomes ``prod`` features."""
    if layout is None:
        _unknown(node, state)
        return
    before, after = output_shape(node.all_input_nodes[0]), output_shape(node)
    if tuple(before) == tuple(after):
        state.layouts[node] = layout
    elif len(after) == 2 and after[0] == before[0] and after[1] == math.prod(before[1:]):
        spatial = math.prod(before[2:])
        state.layouts[node] = tuple((space, inner * spatial) for space, inner in layout)
    else:
        _unknown(node, state, f"{_describe(node)} reshapes {tuple(before)} to {tuple(after)} "
                              "(only flattening the channel and spatial axes is supported)")


def _reduce(node: torch.fx.Node, state: _Analysis, dim) -> None:
    layout = _single_input_layout(node, state)
    rank = len(output_shape(node.all_input_nodes[0]))
    dims = [dim] if isinstance(dim, int) else list(dim or [])
    if layout is None or not dims or any(d % rank in (0, 1) for d in dims) or any(i > 1 for _, i in layout):
        _unknown(node, state)
    else:
        state.layouts[node] = layout


def _collect_groups(state: _Analysis, structure: str) -> list[ChannelGroup]:
    find = state.spaces.find
    by_root: dict[int, list[_Member]] = {}
    for member in state.members:
        by_root.setdefault(find(member.space), []).append(member)
    reasons: dict[int, list[str]] = {}
    for space, why in state.blocked.items():
        bucket = reasons.setdefault(find(space), [])
        bucket.extend(reason for reason in why if reason not in bucket)
    first_producer = {
        root: next((m.layer for m in members if m.role == "producer"), None)
        for root, members in by_root.items()
    }

    def segment(space: int, inner: int) -> Segment:
        root = find(space)
        return Segment(first_producer.get(root), state.widths[space], inner)

    groups = []
    for root, members in by_root.items():
        slots = {"producer": [], "passthrough": [], "consumer": []}
        for m in members:
            slots[m.role].append(Slot(m.layer, m.role, tuple(segment(s, i) for s, i in m.before), m.inner))
        why = list(reasons.get(root, []))
        if not slots["producer"]:
            why = why or ["no layer produces these channels"]
            name = f"input of {members[0].layer}"
        else:
            name = slots["producer"][0].layer
        groups.append(ChannelGroup(
            name=name,
            producers=tuple(slots["producer"]),
            passthrough=tuple(slots["passthrough"]),
            consumers=tuple(slots["consumer"]),
            width_at_discovery=state.widths[root],
            reasons=tuple(why),
            structure=structure,
        ))
    return groups


def growable_groups(groups: list[ChannelGroup]) -> list[ChannelGroup]:
    """The groups that can be widened."""
    return [group for group in groups if group.growable]


def group_named(groups: list[ChannelGroup], name: str) -> ChannelGroup:
    """The group whose name (first producer) or any member layer is ``name``."""
    for group in groups:
        if group.name == name:
            return group
    matches = [g for g in groups if any(slot.layer == name and slot.role != "consumer" for slot in g.slots)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(g.name for g in groups if g.growable)
    raise ValueError(f"no channel group named {name!r}; growable groups: {known}")
