"""TINY: new neurons at the expressivity bottleneck (Verbockhaven, Rudkiewicz, Chevallier & Charpiat,
TMLR 2024; ../shared/docs/ALGORITHMS.md §8), for a channel group between a producer and a consumer.

In ALGORITHMS.md's terms, layer ``l`` is the group's consumer C (pre-activation ``a = W_C b``), ``b`` its
input (the group's channels) and ``x`` the producer P's input (for a conv, its unfolded patch; every
expectation runs over examples and positions):

- desired update ``v = −∂L/∂a`` (per example: the batch-mean loss's gradient × the batch size);
- the best update C can make alone, ``δW* = E[v bᵀ] E[b bᵀ]⁻¹``, and the expressivity bottleneck
  ``v_res = v − δW* b``;
- with ``S = E[x xᵀ]`` and ``N = E[x v_resᵀ]``, the SVD ``S^{-1/2} N = Σ λ_k u_k w_kᵀ`` gives the k
  best new neurons of the linearised problem: fan-in ``α_k ∝ S^{-1/2} u_k``, fan-out ``ω_k ∝ w_k``,
  in order of ``λ_k``.

Where this differs from the paper, and why: the directions are the paper's, their sizes are set for
a network that keeps training. Each fan-in is scaled to the mean norm of the producer's existing rows
(behind a BatchNorm its size does not matter; behind a ReLU it only scales). The first-order loss
decrease of each neuron is then *measured*, not taken from ``λ_k²``: the neurons are added to a copy
with zero fan-out and ``⟨∂L/∂ω_k, ω_k⟩`` is read from one backward pass through the real network (its
BatchNorm, its activation), and ``ω_k``'s sign is chosen so that the decrease is positive. The
fan-out's size (the amplitude) is a line search over a few fractions of the consumer's mean column
norm on the first scoring batch: the best loss, or zero (the function kept) when none lowers it.

Where it applies (``tiny_sites``): a growable group with one dense producer (Linear, or Conv2d with
``groups=1``) and one consumer that reads the group's channels at the producer's positions — a Linear
(directly, or behind a global pooling and a flatten: ``x`` is then the mean patch), or a 1×1 Conv2d
with stride 1 — through per-channel layers without spatial filters (BatchNorm, activations, dropout).
Groups tied by a residual add, a concatenation, or a depthwise conv on the way have no site here.
The model is read in eval mode (BatchNorm with its running statistics) and left in the mode it was in.
"""
from __future__ import annotations

import copy
import math
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cost_models.kernels import symbolic_trace

from ..argument_checks import check_positive_integer
from ..models.layers import Gaussian
from .candidates import Candidate
from .channel_groups import ChannelGroup, find_channel_groups, growable_groups
from .new_neurons import add_neurons
from .splitting_matrix import Batch, LossFn

AMPLITUDES = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)  # fan-out sizes tried, × the consumer's mean column norm
RIDGE = 1e-4  # relative ridge of E[b bᵀ] and S: keeps the solves defined when features are collinear


@dataclass(frozen=True)
class TinySite:
    """A group TINY can grow: its producer and consumer, the depthwise conv between them (if any) with
    where its centre tap reads the producer's map, and whether the consumer reads a pooled map."""

    group: str
    producer: str
    consumer: str
    pooled: bool  # a Linear behind global pooling: the producer's patches are averaged over positions
    depthwise: str | None = None  # the per-channel conv on the way; a new neuron's filter there is a centre tap
    stride: tuple[int, int] = (1, 1)  # the depthwise conv's: consumer position p reads producer position s·p + o
    offset: tuple[int, int] = (0, 0)


@dataclass
class TinyStatistics:
    """The statistics of one site over the scoring batches (means over samples: examples × positions)."""

    x: torch.Tensor  # (samples, D): the producer's input patches
    b: torch.Tensor  # (samples, B): the consumer's input
    v: torch.Tensor  # (samples, A): −∂L/∂a per example
    best_update: torch.Tensor  # δW*, (A, B)
    residual: torch.Tensor  # v_res, (samples, A)
    S: torch.Tensor  # E[x xᵀ], (D, D)
    N: torch.Tensor  # E[x v_resᵀ], (D, A)


def _is_dense_producer(module: nn.Module) -> bool:
    """A Linear, or a dense Conv2d whose patches ``F.unfold`` reads as the conv does (numeric zero padding)."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1
                                             and not isinstance(module.padding, str)
                                             and (module.padding_mode == "zeros" or not any(module.padding)))


def _is_pointwise_consumer(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return (isinstance(module, nn.Conv2d) and module.groups == 1 and tuple(module.kernel_size) == (1, 1)
            and tuple(module.stride) == (1, 1) and tuple(module.dilation) == (1, 1)
            and (module.padding == "valid" or tuple(module.padding) == (0, 0)))


def _is_depthwise(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and module.groups == module.in_channels == module.out_channels
            and module.groups > 1 and tuple(module.dilation) == (1, 1) and not isinstance(module.padding, str)
            and module.padding_mode == "zeros")


# What may lie on the path from producer to consumer: per-channel maps without spatial filters.
_ELEMENTWISE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU,
                nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Mish, nn.Softplus, nn.Identity,
                nn.Dropout, nn.Dropout2d, Gaussian)
_ELEMENTWISE_FUNCTIONS = {F.relu, F.relu6, F.gelu, F.silu, F.hardswish, F.hardsigmoid, F.leaky_relu, F.elu,
                          torch.relu, torch.sigmoid, torch.tanh, F.dropout}
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d,)


def _walk(model: nn.Module, graph: torch.fx.Graph, producer: str, consumer: str):
    """The modules on the single chain from ``producer`` to ``consumer``: (depthwise conv or None, explicit
    zero padding before it as (left, right, top, bottom), pooled), or None when the path is anything else."""
    modules = dict(model.named_modules())
    node = next((n for n in graph.nodes if n.op == "call_module" and n.target == producer), None)
    depthwise, padding, pooled = None, (0, 0, 0, 0), False
    while node is not None and len(node.users) == 1:
        (node,) = node.users
        if node.op == "call_module":
            module = modules[node.target]
            if node.target == consumer:
                return depthwise, padding, pooled
            if isinstance(module, _ELEMENTWISE):
                continue
            if isinstance(module, nn.ZeroPad2d) and depthwise is None and not pooled:
                padding = tuple(a + b for a, b in zip(padding, module.padding))
                continue
            if _is_depthwise(module) and depthwise is None and not pooled:
                depthwise = node.target
                continue
            if isinstance(module, _GLOBAL_POOLS) and tuple(_pair(module.output_size)) == (1, 1):
                pooled = True
                continue
            if isinstance(module, nn.Flatten) and pooled:
                continue
            return None
        if node.op == "call_function" and node.target in _ELEMENTWISE_FUNCTIONS:
            continue
        if node.op == "call_function" and node.target is torch.flatten and pooled:
            continue
        if node.op == "call_method" and node.target in ("flatten", "view", "reshape") and pooled:
            continue
        if node.op == "call_function" and node.target is F.adaptive_avg_pool2d and tuple(_pair(node.args[1])) == (1, 1):
            pooled = True
            continue
        if node.op == "call_method" and node.target == "mean" and pooled is False \
                and tuple(node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", ())) in ((2, 3), (-2, -1)):
            pooled = True
            continue
        return None
    return None


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def tiny_sites(model: nn.Module, groups: list[ChannelGroup]) -> dict[str, TinySite]:
    """The groups of ``groups`` TINY can grow (see the module docstring), by group name."""
    modules = dict(model.named_modules())
    graph = None
    sites = {}
    for group in groups:
        if len(group.producers) != 1 or len(group.consumers) != 1:
            continue
        producer, consumer = group.producers[0], group.consumers[0]
        if consumer.before or consumer.inner != 1 or producer.before:
            continue
        if not _is_dense_producer(modules[producer.layer]) or not _is_pointwise_consumer(modules[consumer.layer]):
            continue
        graph = graph if graph is not None else symbolic_trace(model).graph
        path = _walk(model, graph, producer.layer, consumer.layer)
        if path is None:
            continue
        depthwise, padding, pooled = path
        stride, offset = (1, 1), (0, 0)
        if depthwise is not None:
            conv = modules[depthwise]
            stride = _pair(conv.stride)
            kernel, own = _pair(conv.kernel_size), _pair(conv.padding)
            # the centre tap of output p reads input s·p + k//2 − own padding − explicit padding before
            offset = (kernel[0] // 2 - own[0] - padding[2], kernel[1] // 2 - own[1] - padding[0])
        if pooled and isinstance(modules[producer.layer], nn.Linear):
            continue
        reads_a_map = isinstance(modules[consumer.layer], nn.Linear) and isinstance(modules[producer.layer], nn.Conv2d)
        if reads_a_map and not pooled:
            continue  # a flatten of a map: the consumer reads positions as features
        sites[group.name] = TinySite(group.name, producer.layer, consumer.layer, pooled, depthwise, stride, offset)
    return sites


def _patches(module: nn.Module, inputs: torch.Tensor, produced: tuple[int, ...], site: TinySite,
             carried: tuple[int, int] | None) -> torch.Tensor:
    """The producer's input as (samples, D), one row per position the consumer reads (``produced``: the
    producer's output shape; ``carried``: the depthwise conv's output size): rows of a Linear; a conv's
    unfolded patch at the position the depthwise centre tap carries there (zero where it reads padding);
    their mean when the consumer reads a pooled map."""
    if isinstance(module, nn.Linear):
        return inputs.reshape(-1, inputs.shape[-1])
    patches = F.unfold(inputs, module.kernel_size, dilation=module.dilation, padding=module.padding,
                       stride=module.stride)
    height, width = produced[2:]
    patches = patches.reshape(inputs.shape[0], -1, height, width)
    if site.depthwise is not None:
        out_h, out_w = carried
        rows = torch.arange(out_h, device=patches.device) * site.stride[0] + site.offset[0]
        cols = torch.arange(out_w, device=patches.device) * site.stride[1] + site.offset[1]
        inside_rows, inside_cols = (rows >= 0) & (rows < height), (cols >= 0) & (cols < width)
        gathered = patches[:, :, rows.clamp(0, height - 1)][:, :, :, cols.clamp(0, width - 1)]
        patches = gathered * (inside_rows[:, None] & inside_cols[None, :]).to(patches.dtype)
    if site.pooled:
        return patches.mean(dim=(2, 3))
    return patches.permute(0, 2, 3, 1).reshape(-1, patches.shape[1])


def _positions(tensor: torch.Tensor) -> torch.Tensor:
    """(n, C, H, W) → (n·H·W, C); (n, C) unchanged."""
    if tensor.dim() == 4:
        return tensor.permute(0, 2, 3, 1).reshape(-1, tensor.shape[1])
    return tensor.reshape(-1, tensor.shape[-1])


def _ridge_solve(gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """gram⁻¹ rhs with a small relative ridge."""
    scale = gram.diagonal().mean().clamp_min(1e-12)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram + RIDGE * scale * eye, rhs)


def tiny_statistics(model: nn.Module, site: TinySite, batches: list[Batch], loss_fn: LossFn) -> TinyStatistics:
    """x, b, v over ``batches`` (eval mode) and the least-squares answers of ALGORITHMS.md §8, in float64."""
    producer, consumer = model.get_submodule(site.producer), model.get_submodule(site.consumer)
    xs, bs, vs = [], [], []
    captured: dict[str, torch.Tensor] = {}

    def read_producer(module, inputs, output):
        captured["x"], captured["produced"] = inputs[0].detach(), tuple(output.shape)

    def read_consumer(module, inputs, output):
        captured["b"] = inputs[0].detach()
        output.retain_grad()
        captured["a"] = output

    def read_depthwise(module, inputs, output):
        captured["carried"] = tuple(output.shape[2:])

    hooks = [producer.register_forward_hook(read_producer), consumer.register_forward_hook(read_consumer)]
    if site.depthwise is not None:
        hooks.append(model.get_submodule(site.depthwise).register_forward_hook(read_depthwise))
    was_training = model.training
    try:
        model.eval()
        for inputs, labels in batches:
            model.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), labels)
            loss.backward()
            examples = inputs.shape[0]
            xs.append(_patches(producer, captured["x"], captured["produced"], site, captured.get("carried")).double())
            bs.append(_positions(captured["b"]).double())
            vs.append(-_positions(captured["a"].grad).double() * examples)
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    x, b, v = torch.cat(xs), torch.cat(bs), torch.cat(vs)
    samples = x.shape[0]
    if consumer.bias is not None:
        b_aug = torch.cat([b, torch.ones(samples, 1, dtype=b.dtype, device=b.device)], dim=1)  # the bias updates too
    else:
        b_aug = b
    gram_b = b_aug.T @ b_aug / samples
    best_aug = _ridge_solve(gram_b, b_aug.T @ v / samples).T  # (A, B[+1])
    residual = v - b_aug @ best_aug.T
    S = x.T @ x / samples
    N = x.T @ residual / samples
    return TinyStatistics(x, b, v, best_aug[:, :b.shape[1]], residual, S, N)


def bottleneck_directions(stats: TinyStatistics, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``count`` best (fan-in, fan-out) directions and their singular values λ_k, largest first:
    α_k = S^{-1/2} u_k √λ_k and ω_k = w_k √λ_k from the SVD of S^{-1/2} N (ALGORITHMS.md §8)."""
    values, vectors = torch.linalg.eigh(stats.S)
    floor = RIDGE * values.clamp_min(0).max().clamp_min(1e-12)
    inverse_root = vectors @ torch.diag(values.clamp_min(floor).rsqrt()) @ vectors.T
    u, singular, wt = torch.linalg.svd(inverse_root @ stats.N, full_matrices=False)
    count = min(count, singular.shape[0])
    roots = singular[:count].sqrt()
    fan_in = (inverse_root @ u[:, :count] * roots).T  # (count, D)
    fan_out = wt[:count] * roots[:, None]  # (count, A)
    return fan_in, fan_out, singular[:count]


def _fan_in_rows(producer: nn.Module, directions: torch.Tensor) -> torch.Tensor:
    """Directions scaled to the mean norm of the producer's existing rows, shaped as its weight rows."""
    weight = producer.weight.detach()
    rows = weight.flatten(1)
    reference = rows.norm(dim=1).mean().clamp_min(1e-8)
    scaled = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12) * reference.double()
    return scaled.float().reshape(directions.shape[0], *weight.shape[1:])


def _fan_out_columns(consumer: nn.Module, directions: torch.Tensor) -> torch.Tensor:
    """Unit fan-out directions shaped as the consumer's columns: (k, out) or (k, out, 1, 1)."""
    unit = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if isinstance(consumer, nn.Conv2d):
        return unit.float().reshape(unit.shape[0], unit.shape[1], 1, 1)
    return unit.float()


def _mean_loss(model: nn.Module, batches: list[Batch], loss_fn: LossFn) -> torch.Tensor:
    return torch.stack([loss_fn(model(inputs), labels) for inputs, labels in batches]).mean()


def tiny_neurons(model: nn.Module, site: TinySite, group: ChannelGroup, batches: list[Batch], loss_fn: LossFn,
                 count: int) -> list[Candidate]:
    """Up to ``count`` new neurons for ``site``'s group (``group``), each a ``new`` candidate with its fan-in, its
    fan-out at the line-searched amplitude and its measured first-order loss decrease there."""
    stats = tiny_statistics(model, site, batches, loss_fn)
    if not (torch.isfinite(stats.S).all() and torch.isfinite(stats.N).all()):
        return []  # a NaN or infinite loss or input: no direction to trust (the SVD would fail)
    fan_in_dirs, fan_out_dirs, singular = bottleneck_directions(stats, count)
    keep = singular > singular[:1].clamp_min(1e-30) * 1e-6  # directions with a bottleneck to fill
    fan_in_dirs, fan_out_dirs = fan_in_dirs[keep], fan_out_dirs[keep]
    if fan_in_dirs.shape[0] == 0:
        return []
    producer, consumer = model.get_submodule(site.producer), model.get_submodule(site.consumer)
    fan_in = _fan_in_rows(producer, fan_in_dirs)
    directions = _fan_out_columns(consumer, fan_out_dirs)
    columns_now = consumer.weight.detach().transpose(0, 1)  # one column per input channel
    reference = columns_now.flatten(1).norm(dim=1).mean().clamp_min(1e-8).item()

    passthrough = {}
    if site.depthwise is not None:  # the new neuron's depthwise filter: a centre tap, which carries it unchanged
        depthwise = model.get_submodule(site.depthwise)
        kernel = _pair(depthwise.kernel_size)
        tap = torch.zeros(1, *kernel, device=depthwise.weight.device)
        tap[0, kernel[0] // 2, kernel[1] // 2] = 1.0
        passthrough = {site.depthwise: tap}
    probe = copy.deepcopy(model)
    filters = {layer: tap.expand(fan_in.shape[0], *tap.shape) for layer, tap in passthrough.items()}
    added = add_neurons(probe, group, fan_in.shape[0], fan_in=fan_in, passthrough=filters)  # zero fan-out: kept
    probe.eval()  # a throwaway copy
    probe.zero_grad(set_to_none=True)
    _mean_loss(probe, batches, loss_fn).backward()
    gradient = probe.get_submodule(site.consumer).weight.grad
    if gradient is None:
        return []
    columns = gradient.transpose(0, 1)[added]  # ∂L/∂ (the new neurons' fan-out columns)
    slope = (columns * directions).flatten(1).sum(dim=1)  # ∂L/∂t along each unit fan-out direction
    signs = torch.where(slope > 0, -1.0, 1.0)
    directions = directions * signs.reshape(-1, *[1] * (directions.dim() - 1))
    slope = slope.abs()  # first-order loss decrease per unit of fan-out amplitude

    base = _mean_loss(probe, batches[:1], loss_fn).item()
    best_amplitude, best_loss = 0.0, base
    consumer_copy = probe.get_submodule(site.consumer)
    with torch.no_grad():
        for fraction in AMPLITUDES:
            amplitude = fraction * reference
            view = consumer_copy.weight.transpose(0, 1)
            view[added] = amplitude * directions
            loss = _mean_loss(probe, batches[:1], loss_fn).item()
            if math.isfinite(loss) and loss < best_loss:
                best_amplitude, best_loss = amplitude, loss
    return [Candidate("new", site.group, float(slope[k]) * best_amplitude,
                      fan_in={site.producer: fan_in[k]}, fan_out={site.consumer: best_amplitude * directions[k]},
                      passthrough=dict(passthrough))
            for k in range(fan_in.shape[0])]


def tiny_candidates(model: nn.Module, example_input: torch.Tensor, batches: list[Batch], loss_fn: LossFn, *,
                    count: int = 16, fill: bool = False) -> list[Candidate]:
    """TINY's new neurons for every group with a site (``tiny_sites``), up to ``count`` per group. With
    ``fill``, each such group is then completed to ``count`` with fresh neurons (PyTorch's default fan-in,
    zero fan-out) at zero predicted decrease, after every group's own: the bottleneck's rank bounds how
    many TINY finds, and the ``tiny`` growth method fills an event's budget share with the rest."""
    if not batches:
        raise ValueError("no batches given to score the new neurons on")
    check_positive_integer("count", count)
    groups = {group.name: group for group in growable_groups(find_channel_groups(model, example_input))}
    sites = tiny_sites(model, list(groups.values())).values()
    candidates = []
    for site in sites:
        candidates.extend(tiny_neurons(model, site, groups[site.group], batches, loss_fn, count))
    if fill:
        found = Counter(candidate.group for candidate in candidates)
        for site in sites:
            candidates.extend(Candidate("new", site.group, 0.0) for _ in range(count - found[site.group]))
    return candidates
