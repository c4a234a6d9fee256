"""Checks of the arguments growth operations share. Each failure is a one-line ValueError."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .channel_groups import ChannelGroup, Slot


def check_epsilon(epsilon: float) -> float:
    try:
        value = float(epsilon)
    except (TypeError, ValueError):
        raise ValueError(f"epsilon must be a finite number, got {epsilon!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"epsilon must be a finite number, got {epsilon!r}")
    return value


def check_neuron_indices(neurons: Sequence[int] | int, width: int, group: ChannelGroup) -> list[int]:
    indices = [neurons] if isinstance(neurons, int) else list(neurons)
    if not indices:
        raise ValueError("no neurons given; pass at least one channel index")
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < width:
            raise ValueError(
                f"neuron index {index!r} is out of range for channel group `{group.name}` "
                f"of width {width} (valid: 0 to {width - 1})"
            )
    if len(set(indices)) != len(indices):
        raise ValueError(f"neuron indices repeat: {indices}; split each neuron once per call")
    return indices


def fan_in_shape(module: nn.Module) -> tuple[int, ...]:
    """Shape of one neuron's fan-in in a producer: a weight row, e.g. (C_in, kh, kw) or (in_features,)."""
    return tuple(module.weight.shape[1:])


def fan_out_shape(module: nn.Module, slot: Slot) -> tuple[int, ...]:
    """Shape of one neuron's fan-out in a consumer: (C_out, kh, kw) for a conv, (out, inner) for a Linear."""
    if isinstance(module, nn.Linear):
        return (module.out_features, slot.inner) if slot.inner > 1 else (module.out_features,)
    return (module.weight.shape[0], *module.weight.shape[2:])


def per_layer_tensors(
    value: torch.Tensor | Mapping[str, torch.Tensor] | None,
    slots: Sequence[Slot],
    leading: tuple[int, ...],
    shape_of: dict[str, tuple[int, ...]],
    what: str,
) -> dict[str, torch.Tensor]:
    """Resolve a tensor (groups with one such layer) or a {layer: tensor} mapping to
    {layer: tensor of shape leading + shape_of[layer]}; missing layers are left out."""
    layers = [slot.layer for slot in slots]
    if value is None:
        return {}
    if torch.is_tensor(value):
        if len(layers) != 1:
            raise ValueError(
                f"{what} is one tensor but the group has {len(layers)} such layers ({', '.join(layers)}); "
                "pass a dict {layer name: tensor}"
            )
        value = {layers[0]: value}
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a tensor or a dict {{layer name: tensor}}, got {type(value).__name__}")
    resolved = {}
    for layer, tensor in value.items():
        if layer not in layers:
            raise ValueError(f"{what} names layer `{layer}`, which is not one of {', '.join(layers)}")
        expected = leading + shape_of[layer]
        if not torch.is_tensor(tensor) or tensor.numel() != math.prod(expected):
            got = tuple(tensor.shape) if torch.is_tensor(tensor) else type(tensor).__name__
            raise ValueError(f"{what} for `{layer}` has shape {got}; expected {expected}")
        tensor = tensor.detach().reshape(expected).float()
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{what} for `{layer}` contains NaN or infinity")
        resolved[layer] = tensor
    return resolved
