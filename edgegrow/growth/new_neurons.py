"""Add new neurons (channels) to a channel group.

Each new neuron gets a fan-in row in every producer, fresh per-channel state in every
pass-through layer (BatchNorm γ=1, β=0, running mean 0 and variance 1; a depthwise filter), and a
fan-out column in every consumer. A zero fan-out (the default) keeps the network's function
exactly; a small ε fan-out keeps it to within ε.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from ..argument_checks import check_positive_integer
from .arguments import fan_in_shape, fan_out_shape, per_layer_tensors
from .channel_groups import ChannelGroup
from .staged_edit import AxisEntry, StagedEdit, check_group, slot_offset, slot_tensors

# Fresh per-channel values of a BatchNorm channel: the state of a newly built layer.
_FRESH_BATCHNORM = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}


def default_fan_in(shape: tuple[int, ...], count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """PyTorch's default initialisation of a layer's weight rows: U(-1/√fan_in, 1/√fan_in)."""
    bound = 1.0 / math.sqrt(math.prod(shape))
    return (torch.rand((count, *shape), generator=generator, device="cpu") * 2 - 1) * bound  # on the CPU: the same
    # draw whatever device the model is on (callers move it to the layer's)


def add_neurons(
    model: nn.Module,
    group: ChannelGroup,
    count: int,
    *,
    fan_in: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
    fan_out: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
    passthrough: Mapping[str, torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Append ``count`` neurons to ``group``, in place.

    Args:
        fan_in: (count, *fan_in) weight rows when the group has one producer, or {producer: rows};
            a missing producer gets PyTorch's default initialisation (from ``generator``).
        fan_out: (count, *fan_out) columns when the group has one consumer, or {consumer: columns},
            fan_out being (C_out, kh, kw) for a conv and (out_features,) for a Linear
            ((out_features, h·w) behind a flatten); missing means zero, which keeps the function.
        passthrough: {depthwise layer: (count, 1, kh, kw) filters} for the per-channel convs the
            new neurons flow through; a missing layer gets PyTorch's default initialisation.
        optimizer: existing state is carried over; the new entries start at zero.

    Returns:
        The channel indices of the new neurons.

    Raises:
        ValueError: bad arguments; the model is then left untouched.
    """
    width = check_group(model, group)
    check_positive_integer("count", count)
    modules = {slot.layer: model.get_submodule(slot.layer) for slot in group.slots}
    rows = per_layer_tensors(
        fan_in, group.producers, (count,), {s.layer: fan_in_shape(modules[s.layer]) for s in group.producers},
        "fan_in",
    )
    columns = per_layer_tensors(
        fan_out, group.consumers, (count,),
        {s.layer: fan_out_shape(modules[s.layer], s) for s in group.consumers}, "fan_out",
    )
    for slot in group.producers:
        rows.setdefault(slot.layer, default_fan_in(fan_in_shape(modules[slot.layer]), count, generator))
    depthwise = [slot for slot in group.passthrough if isinstance(modules[slot.layer], nn.Conv2d)]
    depthwise_filters = per_layer_tensors(
        passthrough, depthwise, (count,), {s.layer: fan_in_shape(modules[s.layer]) for s in depthwise}, "passthrough",
    )
    for slot in depthwise:
        depthwise_filters.setdefault(slot.layer, default_fan_in(fan_in_shape(modules[slot.layer]), count, generator))

    staged = StagedEdit(model)
    for slot in sorted(group.slots, key=lambda s: slot_offset(model, s), reverse=True):
        module = modules[slot.layer]
        for tensor_name, dim in slot_tensors(module, slot):
            axis = staged.axis(slot.layer, tensor_name, dim)
            entries = []
            for neuron in range(count):
                if slot.role == "consumer":
                    column = columns.get(slot.layer)
                    for part in range(slot.inner):
                        value = None if column is None else column[neuron].reshape(
                            module.weight.shape[0], slot.inner, *module.weight.shape[2:])[:, part]
                        entries.append(AxisEntry(-1, 0.0, value, existed=False))
                    continue
                if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    value = torch.full((), _FRESH_BATCHNORM[tensor_name], device="cpu")  # moved where the layer is
                elif tensor_name == "bias":
                    value = None
                elif slot.role == "producer":
                    value = rows[slot.layer][neuron]
                else:
                    value = depthwise_filters[slot.layer][neuron]
                entries.extend(AxisEntry(-1, 0.0, value, existed=False) for _ in range(slot.inner))
            axis.insert(slot_offset(model, slot) + width * slot.inner, entries)
    staged.commit(optimizer)
    return list(range(width, width + count))
