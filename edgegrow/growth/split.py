"""Split neurons into offspring: the growth move of splitting steepest descent and its variants.

Neuron ``i`` of a channel group becomes ``k`` offspring. Offspring ``j`` has fan-in
``w + ε·δ_j`` in every producer and fan-out ``ω_j · u`` in every consumer; pass-through
per-channel layers (BatchNorm parameters and running statistics, depthwise filters) are copied.
With ``Σ ω_j = 1`` the network computes the same function at ``ε = 0`` (S2D uses ω = ½, ½ and
δ = ±v; signed splitting uses weights of both signs).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .arguments import check_epsilon, check_neuron_indices, fan_in_shape, per_layer_tensors
from .channel_groups import ChannelGroup
from .staged_edit import AxisEntry, StagedEdit, check_group, slot_offset, slot_tensors


def _check_offspring_weights(weights, count: int) -> torch.Tensor:
    table = torch.as_tensor(weights, dtype=torch.float64, device="cpu")  # numbers, checked on the CPU
    if table.dim() == 1:
        table = table.expand(count, -1)
    if table.dim() != 2 or table.shape[0] != count or table.shape[1] < 2:
        raise ValueError(
            f"offspring_weights must be k >= 2 numbers, or one row of k per neuron ({count} rows); "
            f"got shape {tuple(torch.as_tensor(weights).shape)}"
        )
    if not torch.isfinite(table).all():
        raise ValueError("offspring_weights contain NaN or infinity")
    sums = table.sum(dim=1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-6):
        raise ValueError(
            f"offspring_weights must sum to 1 for each neuron (that keeps the function); got sums {sums.tolist()}"
        )
    return table


def split_neurons(
    model: nn.Module,
    group: ChannelGroup,
    neurons: Sequence[int] | int,
    *,
    offspring_weights: Sequence[float] | torch.Tensor = (0.5, 0.5),
    directions: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
    epsilon: float = 0.0,
    optimizer: torch.optim.Optimizer | None = None,
) -> list[list[int]]:
    """Split each of ``neurons`` (channel indices of ``group``) into ``k`` offspring, in place.

    Args:
        offspring_weights: ``ω``: k numbers summing to 1, or an (n, k) table, one row per neuron.
        directions: ``δ``: an (n, k, *fan_in) tensor when the group has one producer (fan_in is a
            weight row, e.g. (C_in, kh, kw)), or {producer name: tensor}; None or a missing
            producer means no perturbation.
        epsilon: step size ``ε`` of the perturbation.
        optimizer: its state is carried over (zero for the offspring).

    Returns:
        For each neuron, the channel indices of its offspring: ``[i, new, ...]``; offspring beyond
        the first are appended after the group's existing channels.

    Raises:
        ValueError: bad arguments; the model is then left untouched.
    """
    width = check_group(model, group)
    indices = check_neuron_indices(neurons, width, group)
    weights = _check_offspring_weights(offspring_weights, len(indices))
    offspring = weights.shape[1]
    epsilon = check_epsilon(epsilon)
    deltas = per_layer_tensors(
        directions, group.producers, (len(indices), offspring),
        {s.layer: fan_in_shape(model.get_submodule(s.layer)) for s in group.producers}, "directions",
    )

    staged = StagedEdit(model)
    # Slots sharing a layer (a concatenation read twice) are edited from the highest offset down,
    # so that inserting channels never shifts a position still to be edited.
    for slot in sorted(group.slots, key=lambda s: slot_offset(model, s), reverse=True):
        module = model.get_submodule(slot.layer)
        offset = slot_offset(model, slot)
        for tensor_name, dim in slot_tensors(module, slot):
            axis = staged.axis(slot.layer, tensor_name, dim)
            perturb = slot.role == "producer" and tensor_name == "weight" and slot.layer in deltas and epsilon != 0
            appended: list[AxisEntry] = []
            for row, neuron in enumerate(indices):
                for child in range(offspring):
                    scale = float(weights[row, child]) if slot.role == "consumer" else 1.0
                    addend = epsilon * deltas[slot.layer][row, child] if perturb else None
                    for part in range(slot.inner):
                        source = offset + neuron * slot.inner + part
                        if child == 0:
                            axis.entries[source].scale = scale
                            axis.entries[source].addend = addend
                        else:
                            appended.append(AxisEntry(source, scale, addend, existed=False))
            axis.insert(offset + width * slot.inner, appended)
    staged.commit(optimizer)
    per_neuron = offspring - 1
    return [[neuron] + [width + row * per_neuron + j for j in range(per_neuron)] for row, neuron in enumerate(indices)]

