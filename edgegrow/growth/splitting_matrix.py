"""Splitting matrices of neurons (S2D, Liu, Wu & Wang 2019), exactly and by the fast product trick.

For a neuron with fan-in weights ``w`` (a weight row of its producer: a conv's (C_in, kh, kw) or a
Linear's in_features), pre-activation ``h = c·(wᵀx) + b`` (``c = γ/√(var+eps)`` when a BatchNorm
follows, else 1), activation ``σ`` and ``g = ∂L/∂σ(h)``:

    S = E[ g · σ''(h) · c² · x xᵀ ]      (summed over a conv's output positions)

Splitting the neuron into offspring ``w + εδ_j`` with weights ``ω_j`` (Σω = 1, Σωδ = 0) changes the
loss by ``ε²/2 · Σ_j ω_j δ_jᵀ S δ_j`` to second order. Kinked activations (ReLU, ReLU6, LeakyReLU,
Hardswish, Hardsigmoid, ELU with α ≠ 1) have a σ'' that is zero or bounded almost everywhere plus
Dirac spikes at their kinks, so a smooth surrogate's second derivative stands in
(``second_derivative``): each kink of slope jump j at k becomes j·δ_β(h − k), the second derivative
of j·softplus_β(h − k), as S2D's reference code does for ReLU.

- ``curvature_sites``: for each channel group with one producer followed (through an optional
  BatchNorm) by an activation, where ``x``, ``h`` and ``g`` are read.
- ``splitting_matrices``: the exact S of every neuron (C × D × D: the baseline, O(C·D²) memory).
- ``splitting_products``: ``S v`` for every neuron at once from one backward pass, by adding the
  zero-valued auxiliary term ``σ''(h)·c²·(xᵀy)(xᵀv)`` (y = 0) to each activation output and
  reading ``∂L/∂y`` — S is never formed.
- ``min_eigenpairs`` (exact, ``eigh``) and ``min_eigenpairs_fast`` (Rayleigh-quotient descent on
  the products with a Rayleigh–Ritz step, all neurons of all sites together).

The loss is the batch mean of ``loss_fn(model(x), y)``; the model is evaluated in eval mode
(BatchNorm with its running statistics, as ``c`` assumes) and left in the mode it was in.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from cost_models.kernels import symbolic_trace

from ..models.layers import Gaussian
from .channel_groups import ChannelGroup

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]
SURROGATE_BETA = 3.0  # sharpness of the softplus surrogate of ReLU / ReLU6 (the reference code's choice)
_ACTIVATION_KINDS = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.SiLU: "silu",
                     Gaussian: "gaussian", nn.GELU: "gelu", nn.Hardswish: "hardswish",
                     nn.Hardsigmoid: "hardsigmoid", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu"}
ACTIVATION_KINDS = tuple(_ACTIVATION_KINDS.values())


def _activation_parameter(module: nn.Module) -> float:
    """The parameter σ'' depends on: LeakyReLU's negative slope, ELU's α (0 for the others)."""
    if isinstance(module, nn.LeakyReLU):
        return float(module.negative_slope)
    if isinstance(module, nn.ELU):
        return float(module.alpha)
    return 0.0


@dataclass(frozen=True)
class CurvatureSite:
    """Where a group's splitting matrices are read: its producer, the BatchNorm after it (or None)
    and the activation whose input is ``h`` and whose output gradient is ``g``."""

    group: str
    producer: str
    batch_norm: str | None
    activation: str
    kind: str  # one of ACTIVATION_KINDS
    parameter: float = 0.0  # LeakyReLU's negative slope, ELU's α


def _kink(h: torch.Tensor, beta: float) -> torch.Tensor:
    """δ_β(h): the second derivative of softplus_β(h) = log(1 + e^{βh})/β, a unit spike of width ~1/β."""
    s = torch.sigmoid(beta * h)
    return beta * s * (1 - s)


def second_derivative(kind: str, h: torch.Tensor, beta: float = SURROGATE_BETA, parameter: float = 0.0) -> torch.Tensor:
    """σ''(h). Where σ has kinks, that of its surrogate with each kink softened by softplus_β (a slope
    jump j at k contributes j·δ_β(h − k)): ReLU = softplus; ReLU6 = softplus(h) − softplus(h − 6);
    LeakyReLU(a) = a·h + (1 − a)·softplus(h); Hardsigmoid = (softplus(h + 3) − softplus(h − 3))/6;
    Hardswish = h · Hardsigmoid's surrogate; ELU(α): α·eʰ below 0 and 0 above (exact) plus (1 − α)·δ_β(h).
    ``parameter``: LeakyReLU's negative slope, ELU's α. GELU is the exact (erf) one's."""
    if kind == "relu":
        return _kink(h, beta)
    if kind == "relu6":
        return _kink(h, beta) - _kink(h - 6.0, beta)
    if kind == "leaky_relu":
        return (1 - parameter) * _kink(h, beta)
    if kind == "hardsigmoid":
        return (_kink(h + 3.0, beta) - _kink(h - 3.0, beta)) / 6
    if kind == "hardswish":  # (h·g(h))'' = 2g'(h) + h·g''(h), g the smooth Hardsigmoid
        window = torch.sigmoid(beta * (h + 3.0)) - torch.sigmoid(beta * (h - 3.0))
        return (2 * window + h * (_kink(h + 3.0, beta) - _kink(h - 3.0, beta))) / 6
    if kind == "elu":
        return torch.where(h < 0, parameter * torch.exp(torch.clamp(h, max=0.0)), torch.zeros_like(h)) + \
            (1 - parameter) * _kink(h, beta)
    if kind == "gelu":  # σ = h·Φ(h): σ'' = φ(h)·(2 − h²)
        return torch.exp(-0.5 * h * h) / math.sqrt(2 * math.pi) * (2 - h * h)
    if kind == "sigmoid":
        s = torch.sigmoid(h)
        return s * (1 - s) * (1 - 2 * s)
    if kind == "tanh":
        t = torch.tanh(h)
        return -2 * t * (1 - t * t)
    if kind == "gaussian":
        return (h * h - 1) * torch.exp(-0.5 * h * h)
    if kind == "silu":
        s = torch.sigmoid(h)
        return s * (1 - s) * (2 + h * (1 - 2 * s))
    raise ValueError(f"no second derivative for activation {kind!r}; known: {', '.join(ACTIVATION_KINDS)}")


# Activations written as functions, and the module that computes the same (its arguments from the call).
_ACTIVATION_FUNCTIONS: dict = {
    F.relu: lambda args, kwargs: nn.ReLU(), torch.relu: lambda args, kwargs: nn.ReLU(),
    F.relu6: lambda args, kwargs: nn.ReLU6(), F.silu: lambda args, kwargs: nn.SiLU(),
    F.hardswish: lambda args, kwargs: nn.Hardswish(), F.hardsigmoid: lambda args, kwargs: nn.Hardsigmoid(),
    torch.sigmoid: lambda args, kwargs: nn.Sigmoid(), F.sigmoid: lambda args, kwargs: nn.Sigmoid(),
    torch.tanh: lambda args, kwargs: nn.Tanh(), F.tanh: lambda args, kwargs: nn.Tanh(),
    F.gelu: lambda args, kwargs: nn.GELU(approximate=kwargs.get("approximate", "none")),
    F.leaky_relu: lambda args, kwargs: nn.LeakyReLU(args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01)),
    F.elu: lambda args, kwargs: nn.ELU(args[1] if len(args) > 1 else kwargs.get("alpha", 1.0)),
}
_ACTIVATION_METHODS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def _as_module(node: torch.fx.Node) -> nn.Module | None:
    """The activation module a functional activation node computes, or None (not one, or its arguments are
    not constants)."""
    if node.op == "call_function" and node.target in _ACTIVATION_FUNCTIONS:
        constants = list(node.args[1:]) + list(node.kwargs.values())
        if any(isinstance(value, torch.fx.Node) for value in constants):
            return None
        return _ACTIVATION_FUNCTIONS[node.target](node.args, node.kwargs)
    if node.op == "call_method" and node.target in _ACTIVATION_METHODS and len(node.args) == 1 and not node.kwargs:
        return _ACTIVATION_METHODS[node.target]()
    return None


def with_activation_modules(model: nn.Module) -> nn.Module:
    """``model`` itself, or — when an activation right after a layer is written as a function (``F.relu(x)``,
    ``torch.sigmoid(x)``, ``x.relu()``) — a traced copy that shares every layer and parameter of ``model``
    and computes the same function, with those activations as modules (named ``_activation_N``), so that
    ``curvature_sites`` finds them and the splitting hooks can read them. Layer names are ``model``'s, so
    sites, groups and candidates found on the copy apply to ``model``."""
    graph_module = symbolic_trace(model)
    replaced = 0
    for node in list(graph_module.graph.nodes):
        inputs = [arg for arg in node.args[:1] if isinstance(arg, torch.fx.Node)]
        if not inputs or inputs[0].op != "call_module":
            continue
        module = _as_module(node)
        if module is None:
            continue
        name = f"_activation_{replaced}"
        graph_module.add_submodule(name, module)
        with graph_module.graph.inserting_after(node):
            call = graph_module.graph.call_module(name, (inputs[0],))
        node.replace_all_uses_with(call)
        graph_module.graph.erase_node(node)
        replaced += 1
    if not replaced:
        return model
    graph_module.recompile()
    graph_module.train(model.training)
    return graph_module


def curvature_sites(model: nn.Module, groups: Iterable[ChannelGroup]) -> dict[str, CurvatureSite]:
    """Sites of the groups whose single producer (a dense Conv2d or a Linear) feeds, through at most a
    BatchNorm, an activation module used once. Other groups (residual ties, linear bottlenecks) have no site:
    their splitting matrices are not defined here. An activation written as a function is a module on
    ``with_activation_modules(model)``, which the splitting methods read instead of ``model``."""
    graph = symbolic_trace(model).graph
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    node_of = {node.target: node for node in graph.nodes if node.op == "call_module"}
    sites = {}
    for group in groups:
        if len(group.producers) != 1:
            continue
        producer = group.producers[0].layer
        module = modules.get(producer)
        if not (isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)):
            continue
        node, batch_norm = node_of.get(producer), None
        while node is not None and len(node.users) == 1:
            (node,) = node.users
            target = modules.get(node.target) if node.op == "call_module" else None
            if isinstance(target, (nn.BatchNorm1d, nn.BatchNorm2d)) and batch_norm is None:
                batch_norm = node.target
                continue
            kind = _ACTIVATION_KINDS.get(type(target))
            if kind is not None and calls[node.target] == 1:
                sites[group.name] = CurvatureSite(group.name, producer, batch_norm, node.target, kind,
                                                  _activation_parameter(target))
            break
    return sites


class _Capture:
    """Hooks reading, per site, the producer input x, the activation input h and, after backward,
    g = ∂L/∂(activation output); optionally adding the auxiliary term for ``splitting_products``."""

    def __init__(self, model: nn.Module, sites: dict[str, CurvatureSite],
                 vectors: dict[str, torch.Tensor] | None = None):
        self.model, self.sites = model, sites
        self.inputs: dict[str, torch.Tensor] = {}
        self.pre_activations: dict[str, torch.Tensor] = {}
        self.gradients: dict[str, torch.Tensor] = {}
        self.probes: dict[str, torch.Tensor] = {}
        self.vectors = vectors
        self.handles = []
        for name, site in sites.items():
            producer = model.get_submodule(site.producer)
            activation = model.get_submodule(site.activation)
            self.handles.append(producer.register_forward_hook(self._read_input(name)))
            self.handles.append(activation.register_forward_pre_hook(self._read_pre_activation(name)))
            self.handles.append(activation.register_forward_hook(self._at_activation(name)))

    def _read_input(self, name: str):
        def hook(module, inputs, output):
            self.inputs[name] = inputs[0].detach()
        return hook

    def _read_pre_activation(self, name: str):
        def hook(module, inputs):
            self.pre_activations[name] = inputs[0].detach().clone()  # before an in-place activation
        return hook

    def _at_activation(self, name: str):
        def hook(module, inputs, output):
            if self.vectors is not None:
                output = output + self._auxiliary(name, self.pre_activations[name])
            output.register_hook(lambda grad: self.gradients.__setitem__(name, grad.detach()))
            return output
        return hook

    def _auxiliary(self, name: str, h: torch.Tensor) -> torch.Tensor:
        site = self.sites[name]
        producer = self.model.get_submodule(site.producer)
        x = self.inputs[name]
        vectors = self.vectors[name].to(x.dtype)
        probe = torch.zeros_like(vectors, requires_grad=True)
        self.probes[name] = probe
        weight = _curvature_weight(self.model, site, h)
        return weight * _apply_rows(producer, x, probe) * _apply_rows(producer, x, vectors)

    def close(self):
        for handle in self.handles:
            handle.remove()


def _scale(model: nn.Module, site: CurvatureSite) -> torch.Tensor | None:
    """c per channel: γ/√(running var + eps) of the BatchNorm, None without one."""
    if site.batch_norm is None:
        return None
    norm = model.get_submodule(site.batch_norm)
    gamma = norm.weight if norm.affine else torch.ones_like(norm.running_var)
    return (gamma / torch.sqrt(norm.running_var + norm.eps)).detach()


def _curvature_weight(model: nn.Module, site: CurvatureSite, h: torch.Tensor) -> torch.Tensor:
    """σ''(h)·c², shaped like h."""
    weight = second_derivative(site.kind, h, parameter=site.parameter)
    scale = _scale(model, site)
    if scale is not None:
        shape = [1, -1] + [1] * (h.dim() - 2)
        weight = weight * (scale * scale).view(shape)
    return weight


def _apply_rows(producer: nn.Module, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """x·r for every neuron's row r (C × fan-in): the producer's operation with ``rows`` as weights."""
    if isinstance(producer, nn.Linear):
        return F.linear(x, rows)
    return F.conv2d(x, rows, None, producer.stride, producer.padding, producer.dilation)


def _patches(producer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, positions, D): the input the producer's weight rows are applied to."""
    if isinstance(producer, nn.Linear):
        return x.reshape(x.shape[0], -1, x.shape[-1])
    if producer.padding_mode != "zeros":
        raise ValueError(f"{producer}: only zero padding is supported for splitting matrices")
    patches = F.unfold(x, producer.kernel_size, producer.dilation, producer.padding, producer.stride)
    return patches.transpose(1, 2)


def _per_position(tensor: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) or (N, ..., C) activations → (N, positions, C) matching ``_patches``."""
    if tensor.dim() == 4:
        return tensor.flatten(2).transpose(1, 2)
    return tensor.reshape(tensor.shape[0], -1, tensor.shape[-1])


def _backward(model: nn.Module, batch: Batch, loss_fn: LossFn) -> None:
    """One forward and backward pass with the parameters frozen (gradients reach only the hooks)."""
    inputs, targets = batch
    loss = loss_fn(model(inputs.detach().requires_grad_(True)), targets)
    loss.backward()


@contextlib.contextmanager
def _evaluated(model: nn.Module):
    """Eval mode and frozen parameters for the duration; both restored afterwards."""
    modes = {module: module.training for module in model.modules()}
    flags = {parameter: parameter.requires_grad for parameter in model.parameters()}
    model.eval()
    for parameter in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for module, training in modes.items():
            module.train(training)
        for parameter, flag in flags.items():
            parameter.requires_grad_(flag)


def splitting_matrices(model: nn.Module, sites: dict[str, CurvatureSite], batches: Iterable[Batch],
                       loss_fn: LossFn) -> dict[str, torch.Tensor]:
    """The exact S of every neuron of every site, averaged over ``batches``: {group: (C, D, D)}."""
    totals: dict[str, torch.Tensor] = {}
    count = 0
    with _evaluated(model):
        for batch in batches:
            capture = _Capture(model, sites)
            try:
                _backward(model, batch, loss_fn)
            finally:
                capture.close()
            for name, site in sites.items():
                producer = model.get_submodule(site.producer)
                patches = _patches(producer, capture.inputs[name])  # (N, P, D)
                weight = _curvature_weight(model, site, capture.pre_activations[name])
                coefficient = _per_position(capture.gradients[name] * weight)  # (N, P, C)
                totals[name] = totals.get(name, 0) + _weighted_gram(coefficient.flatten(0, 1), patches.flatten(0, 1))
            count += 1
    if count == 0:
        raise ValueError("no batches given")
    return {name: total / count for name, total in totals.items()}


def _weighted_gram(coefficients: torch.Tensor, rows: torch.Tensor, chunk_elements: int = 2**25) -> torch.Tensor:
    """Σ_p coefficients[p, c] · rows[p] rows[p]ᵀ for every c: (C, D, D), a few channels at a time so
    the (channels, positions, D) intermediate stays under ``chunk_elements``."""
    positions, dimension = rows.shape
    channels = coefficients.shape[1]
    step = max(1, chunk_elements // max(1, positions * dimension))
    out = rows.new_empty(channels, dimension, dimension)
    for start in range(0, channels, step):
        weighted = coefficients[:, start:start + step].T[:, :, None] * rows[None]  # (c, P, D)
        out[start:start + step] = weighted.transpose(1, 2) @ rows
    return out


def splitting_products(model: nn.Module, sites: dict[str, CurvatureSite], vectors: dict[str, torch.Tensor],
                       batch: Batch, loss_fn: LossFn) -> dict[str, torch.Tensor]:
    """S v for every neuron from one forward and backward pass: {group: (C, D)} for ``vectors``
    {group: (C, *fan_in)} (one vector per neuron), without forming S."""
    shapes = {name: tuple(model.get_submodule(site.producer).weight.shape) for name, site in sites.items()}
    rows = {name: vectors[name].reshape(shapes[name]) for name in sites}
    with _evaluated(model):
        capture = _Capture(model, sites, rows)
        try:
            _backward(model, batch, loss_fn)
        finally:
            capture.close()
    return {name: capture.probes[name].grad.reshape(shapes[name][0], -1) for name in sites}


@dataclass(frozen=True)
class Eigenpairs:
    values: torch.Tensor  # (C,) λ_min per neuron
    vectors: torch.Tensor  # (C, D) unit eigenvectors


def min_eigenpairs(matrices: dict[str, torch.Tensor]) -> dict[str, Eigenpairs]:
    """λ_min and v_min of every neuron's S by ``eigh`` (exact)."""
    result = {}
    for name, matrix in matrices.items():
        values, vectors = torch.linalg.eigh(matrix.double())
        result[name] = Eigenpairs(values[:, 0].to(matrix.dtype), vectors[:, :, 0].to(matrix.dtype))
    return result


def max_eigenpairs(matrices: dict[str, torch.Tensor]) -> dict[str, Eigenpairs]:
    """λ_max and v_max of every neuron's S by ``eigh`` (exact); signed splitting needs both ends."""
    result = {}
    for name, matrix in matrices.items():
        values, vectors = torch.linalg.eigh(matrix.double())
        result[name] = Eigenpairs(values[:, -1].to(matrix.dtype), vectors[:, :, -1].to(matrix.dtype))
    return result


def max_eigenpairs_fast(model: nn.Module, sites: dict[str, CurvatureSite], batches: Iterable[Batch],
                        loss_fn: LossFn, steps: int = 50, seed: int = 0) -> dict[str, Eigenpairs]:
    """λ_max and v_max of every neuron, as ``min_eigenpairs_fast`` finds them for −S."""
    return min_eigenpairs_fast(model, sites, batches, loss_fn, steps, seed, _sign=-1.0)


def min_eigenpairs_fast(model: nn.Module, sites: dict[str, CurvatureSite], batches: Iterable[Batch],
                        loss_fn: LossFn, steps: int = 50, seed: int = 0,
                        _sign: float = 1.0) -> dict[str, Eigenpairs]:
    """λ_min and v_min of every neuron from ``splitting_products`` alone (S is never formed).

    Rayleigh-quotient descent with the step chosen by Rayleigh–Ritz on span{v, ∇R, previous step}
    (locally optimal block-preconditioned CG, block size 1): each step costs one backward pass for all
    neurons of all sites, cycling through ``batches``. λ_min is the quotient at the final vectors,
    averaged over all batches.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("no batches given")
    generator = torch.Generator().manual_seed(seed)
    vectors = {}
    for name, site in sites.items():
        weight = model.get_submodule(site.producer).weight
        v = torch.randn(weight.shape[0], weight[0].numel(), generator=generator, dtype=torch.float64,
                        device="cpu").to(weight.device)  # drawn on the CPU: the same start on any device
        vectors[name] = v / v.norm(dim=1, keepdim=True)

    dtypes = {name: model.get_submodule(site.producer).weight.dtype for name, site in sites.items()}

    def products(vs: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        result = splitting_products(model, sites, {n: v.to(dtypes[n]) for n, v in vs.items()},
                                    batches[step % len(batches)], loss_fn)
        return {name: _sign * value.double() for name, value in result.items()}

    applied = products(vectors, 0)
    previous: dict[str, tuple[torch.Tensor, torch.Tensor] | None] = dict.fromkeys(sites)
    for step in range(steps):
        residuals = {}
        for name, v in vectors.items():
            rayleigh = (applied[name] * v).sum(dim=1, keepdim=True)
            residuals[name] = applied[name] - rayleigh * v
        if all(float(r.norm(dim=1).max()) < 1e-12 for r in residuals.values()):
            break
        applied_residuals = products(residuals, step + 1)
        for name in sites:
            columns = [vectors[name], residuals[name]]
            applied_columns = [applied[name], applied_residuals[name]]
            if previous[name] is not None:
                columns.append(previous[name][0])
                applied_columns.append(previous[name][1])
            vectors[name], applied[name], previous[name] = _ritz_step(torch.stack(columns, -1),
                                                                      torch.stack(applied_columns, -1))
    totals = {name: torch.zeros(v.shape[0], dtype=torch.float64, device=v.device) for name, v in vectors.items()}
    for index in range(len(batches)):
        for name, product in products(vectors, index).items():
            totals[name] += (product * vectors[name]).sum(dim=1)
    return {name: Eigenpairs(_sign * totals[name] / len(batches), vectors[name]) for name in sites}


def _ritz_step(basis: torch.Tensor, applied: torch.Tensor):
    """Rayleigh–Ritz on each neuron's basis (C, D, k) with S·basis ``applied``: the lowest Ritz
    vector, its product and the step taken (for the next basis)."""
    scale = basis.norm(dim=1, keepdim=True).clamp_min(1e-300)
    basis, applied = basis / scale, applied / scale
    keep = (scale.squeeze(1) > 1e-14).all(dim=0)  # drop a column that vanished for some neuron
    basis, applied = basis[..., keep], applied[..., keep]
    q, r = torch.linalg.qr(basis)
    diagonal = torch.diagonal(r, dim1=-2, dim2=-1).abs()
    if bool((diagonal < 1e-10).any()) and basis.shape[-1] > 2:  # the previous step is (nearly) dependent
        return _ritz_step(basis[..., :2], applied[..., :2])
    applied_q = torch.linalg.solve_triangular(r, applied, upper=True, left=False)
    projected = q.transpose(1, 2) @ applied_q
    _, ritz = torch.linalg.eigh((projected + projected.transpose(1, 2)) / 2)
    lowest = ritz[..., 0:1]
    vector, product = (q @ lowest).squeeze(-1), (applied_q @ lowest).squeeze(-1)
    step = (q[..., 1:] @ lowest[:, 1:]).squeeze(-1), (applied_q[..., 1:] @ lowest[:, 1:]).squeeze(-1)
    norm = vector.norm(dim=1, keepdim=True)
    return vector / norm, product / norm, step
