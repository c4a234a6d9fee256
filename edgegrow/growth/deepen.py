"""Deepen: insert an identity-initialised layer after a chosen layer.

Kinds of inserted block (C = channels of the chosen layer's output):
- ``conv``: Conv2d(C, C, k) with an identity kernel (centre tap = 1 on the diagonal) → BatchNorm → act;
- ``ds-block``: depthwise 3×3 with centre tap 1 → BatchNorm → act → pointwise identity → BatchNorm → act,
  the block DS-CNN and MobileNet are made of;
- ``linear``: Linear(F, F) identity → act, for (batch, features) tensors.

The activation is a copy of the ReLU or ReLU6 that ends the chosen layer, which leaves its
non-negative (or [0, 6]) output unchanged; after a layer that ends otherwise, no activation is
inserted, so the block is exact there too. Each BatchNorm is calibrated on the example batch so
that it is the identity: running mean μ and variance σ² of the layer's output, γ = √(σ²+eps),
β = μ. It is exact in eval mode, and in training mode close to the identity as long as the
network's running statistics match its batch statistics (as in a trained network), so training
resumes without a jolt. An untrained network's
running statistics are far from its batch statistics; there ``batch_norm=False`` inserts a
block without BatchNorm, exact in both modes.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

from .optimizer_state import add_parameters

Kind = Literal["conv", "ds-block", "linear"]
_IDEMPOTENT_ACTIVATIONS = (nn.ReLU, nn.ReLU6)


def _last_leaf(module: nn.Module) -> nn.Module:
    while isinstance(module, nn.Sequential) and len(module) > 0:
        module = module[-1]
    return module


def _identity_batchnorm(output: torch.Tensor) -> nn.BatchNorm2d:
    dims = [0, 2, 3]
    mean = output.mean(dim=dims)
    var = output.var(dim=dims, unbiased=False)
    norm = nn.BatchNorm2d(output.shape[1])
    with torch.no_grad():
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(var)
        norm.weight.copy_(torch.sqrt(var + norm.eps))
        norm.bias.copy_(mean)
    return norm


def _identity_conv(channels: int, kernel_size: int, depthwise: bool) -> nn.Conv2d:
    groups = channels if depthwise else 1
    conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        centre, rows = kernel_size // 2, torch.arange(channels)
        conv.weight[rows, 0 if depthwise else rows, centre, centre] = 1.0
    return conv


def _activation(after: nn.Module) -> list[nn.Module]:
    last = _last_leaf(after)
    if isinstance(last, _IDEMPOTENT_ACTIVATIONS):
        return [type(last)()]
    return []


def _build_block(kind: Kind, output: torch.Tensor, activation: list[nn.Module], kernel_size: int,
                 batch_norm: bool) -> nn.Sequential:
    """The block, every value set here, built without moving the global random stream: layer
    constructors draw a default initialisation this overwrites, and a block is built to be priced or
    tried on a copy as often as it is inserted, so those draws would shift the training's shuffling
    and initialisations with every price taken."""
    with torch.random.fork_rng(devices=[]):
        return _identity_block(kind, output, activation, kernel_size, batch_norm)


def _identity_block(kind: Kind, output: torch.Tensor, activation: list[nn.Module], kernel_size: int,
                    batch_norm: bool) -> nn.Sequential:
    def act() -> list[nn.Module]:
        return [type(a)() for a in activation]

    def norm() -> list[nn.Module]:
        return [_identity_batchnorm(output)] if batch_norm else []

    if kind == "linear":
        features = output.shape[1]
        linear = nn.Linear(features, features)
        with torch.no_grad():
            linear.weight.copy_(torch.eye(features))
            linear.bias.zero_()
        return nn.Sequential(linear, *act())
    channels = output.shape[1]
    if kind == "conv":
        return nn.Sequential(_identity_conv(channels, kernel_size, False), *norm(), *act())
    return nn.Sequential(
        _identity_conv(channels, 3, True), *norm(), *act(),
        _identity_conv(channels, 1, False), *norm(), *act(),
    )


def _block_kind(kind: Kind | None, after: str, shape: tuple[int, ...]) -> Kind:
    """``kind``, or the default for an output of ``shape``; ValueError if it cannot follow that output."""
    rank = len(shape)
    kind = kind or ("linear" if rank == 2 else "conv")
    if (kind == "linear") != (rank == 2) or rank not in (2, 4):
        raise ValueError(
            f"a {kind!r} block cannot follow `{after}`, whose output has shape {shape}; "
            "use 'conv' or 'ds-block' after a (N, C, H, W) output and 'linear' after (N, F)"
        )
    return kind


def block_layers(model: nn.Module, after: str, output_shape: tuple[int, ...], *, kind: Kind | None = None,
                 kernel_size: int = 3) -> list[tuple[str, nn.Module]]:
    """The layers of the block ``deepen`` would insert after ``after``, whose output has
    ``output_shape``, as (name, module) pairs in the order they run, without inserting it: for pricing
    the block on a traced model (``KernelCostModel.report_with_modules_after``). The same layer types
    and shapes as ``deepen``'s block; the BatchNorms are not calibrated (a price depends on shapes)."""
    layer = model.get_submodule(after)
    kind = _block_kind(kind, after, tuple(output_shape))
    block = _build_block(kind, torch.zeros(output_shape), _activation(layer), kernel_size, batch_norm=True)
    return [(f"{after}.inserted.{index}", module) for index, module in enumerate(block)]


def run_with_hooks(model: nn.Module, hooks: list[tuple[nn.Module, Callable]], example_input: torch.Tensor) -> None:
    """``model(example_input)`` in eval mode without gradients, with forward ``hooks`` ((module, hook)
    pairs; a hook may return a replacement output) registered for the pass only; every module's
    training mode is put back afterwards, even if the pass raises."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.train(training)


def _capture_output(model: nn.Module, layer: nn.Module, name: str, example_input: torch.Tensor) -> torch.Tensor:
    outputs: list[torch.Tensor] = []
    try:
        run_with_hooks(model, [(layer, lambda _m, _i, out: outputs.append(out))], example_input)
    except Exception as error:
        raise ValueError(
            f"the example input of shape {tuple(example_input.shape)} does not run through the model: "
            f"{type(error).__name__}: {str(error).splitlines()[0]}"
        ) from None
    if len(outputs) != 1:
        raise ValueError(
            f"layer `{name}` runs {len(outputs)} times per forward pass; deepen needs a layer that runs once"
        )
    if not torch.is_tensor(outputs[0]):
        raise ValueError(f"layer `{name}` returns a {type(outputs[0]).__name__}, not a tensor")
    return outputs[0].detach().clone()


def deepen(
    model: nn.Module,
    after: str,
    example_input: torch.Tensor,
    *,
    kind: Kind | None = None,
    kernel_size: int = 3,
    batch_norm: bool = True,
    optimizer: torch.optim.Optimizer | None = None,
) -> str:
    """Insert an identity-initialised block after layer ``after``, in place.

    If ``after`` is an ``nn.Sequential`` the block is appended to it, so no existing layer changes
    its name; otherwise ``after`` is replaced by ``nn.Sequential(after, block)`` (it becomes
    ``after.0``). Channel groups found before are stale afterwards: find them again.

    Args:
        after: module name, e.g. ``"features.2"``.
        example_input: a batch the model accepts; it gives the channel count and calibrates
            the new BatchNorms.
        kind: ``"conv"``, ``"ds-block"`` or ``"linear"``; default ``"conv"`` for a 4-D output,
            ``"linear"`` for a 2-D one.
        kernel_size: odd kernel size of the ``conv`` kind.
        batch_norm: follow each new conv by a BatchNorm calibrated to the identity.
        optimizer: the new parameters join the param group of ``after``'s parameters.

    Returns:
        The module name of the inserted block.

    Raises:
        ValueError: bad arguments; the model is then left untouched.
    """
    if not isinstance(after, str) or not after:
        raise ValueError(f"after must name a layer of the model (e.g. 'features.2'), got {after!r}")
    layer = _layer_named(model, after)
    if kind not in (None, "conv", "ds-block", "linear"):
        raise ValueError(f"unknown kind {kind!r}; choose 'conv', 'ds-block' or 'linear'")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    output = _capture_output(model, layer, after, example_input)
    block = _calibrated_block(kind, after, layer, output, kernel_size, batch_norm)
    reference = next(layer.parameters(), None)
    new_name = _insert_block(model, after, layer, block)
    if optimizer is not None:
        add_parameters(optimizer, list(block.parameters()), like=reference)
    return new_name


def _layer_named(model: nn.Module, after: str) -> nn.Module:
    try:
        return model.get_submodule(after)
    except AttributeError:
        known = ", ".join(name for name, _ in list(model.named_children()))
        raise ValueError(f"the model has no layer `{after}`; top-level layers: {known}") from None


def _calibrated_block(kind: Kind | None, after: str, layer: nn.Module, output: torch.Tensor, kernel_size: int,
                      batch_norm: bool) -> nn.Sequential:
    """The block for ``layer``'s ``output``, built and calibrated on the CPU, then moved to where the
    output is, in the layer's training mode."""
    with torch.device("cpu"):
        block = _build_block(_block_kind(kind, after, tuple(output.shape)), output.detach().cpu().float(),
                             _activation(layer), kernel_size, batch_norm)
    return block.to(device=output.device, dtype=output.dtype).train(layer.training)


def _insert_block(model: nn.Module, after: str, layer: nn.Module, block: nn.Module) -> str:
    """Put ``block`` after ``layer`` (module ``after``): appended to a Sequential, or ``after`` replaced
    by ``Sequential(layer, block)``. Returns the block's module name."""
    if isinstance(layer, nn.Sequential):
        layer.append(block)
        return f"{after}.{len(layer) - 1}"
    parent_name, _, attribute = after.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attribute, nn.Sequential(layer, block))
    return f"{after}.1"


def deepen_many(model: nn.Module, points: list[tuple[str, Kind | None]], example_input: torch.Tensor) -> list[str]:
    """``deepen`` after each (layer, kind) of ``points`` (layers the model runs once, listed in the order
    it runs them), in one forward pass instead of one per block: each block is built and calibrated
    from its layer's output with the blocks before it already in effect, and the pass goes on
    through it, so the blocks are the ones ``deepen`` called point by point builds. They are inserted
    after the pass (no optimizer). Returns their module names, in the order of ``points``.

    Raises:
        ValueError: a bad layer name, a layer run more than once or not at all, an output that is not
            a tensor, or a kind its output cannot take; the model is then left untouched.
    """
    layers = {after: _layer_named(model, after) for after, _kind in points}
    blocks: dict[str, nn.Sequential] = {}
    errors: list[str] = []

    def continue_through_block(after: str, kind: Kind | None):
        def hook(_module, _inputs, output):
            if after in blocks:
                errors.append(f"layer `{after}` runs more than once per forward pass; "
                              "deepen needs a layer that runs once")
                return output
            if not torch.is_tensor(output):
                errors.append(f"layer `{after}` returns a {type(output).__name__}, not a tensor")
                return output
            blocks[after] = _calibrated_block(kind, after, layers[after], output, 3, True)
            return blocks[after].eval()(output)
        return hook

    hooks = [(layers[after], continue_through_block(after, kind)) for after, kind in points]
    run_with_hooks(model, hooks, example_input)
    missing = [after for after, _ in points if after not in blocks]
    if errors or missing:
        raise ValueError(errors[0] if errors else f"layer `{missing[0]}` does not run in the forward pass")
    return [_insert_block(model, after, layers[after], blocks[after].train(layers[after].training))
            for after, _kind in points]


@contextmanager
def block_inserted(model: nn.Module, after: str, example_input: torch.Tensor, *, kind: Kind | None = None) -> Iterator[str]:
    """``model`` with a block inserted after ``after`` (``deepen``) while the ``with`` body runs, then
    exactly as it was (the same modules and tensors), even if the body raises: for pricing a block
    without copying the model. Yields the block's module name."""
    try:
        layer = model.get_submodule(after)
    except (AttributeError, TypeError):
        layer = None  # deepen raises its one-line error for a bad name
    name = deepen(model, after, example_input, kind=kind)
    try:
        yield name
    finally:
        if isinstance(layer, nn.Sequential):
            del layer[-1]
        else:
            parent_name, _, attribute = after.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attribute, layer)
