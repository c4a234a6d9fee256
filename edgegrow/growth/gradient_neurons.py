"""New neurons scored by the gradient of their fan-out: candidates for every growable channel group.

A new neuron with fan-in ``α`` (PyTorch's default initialisation) and fan-out ``ω = 0`` leaves the
network's function unchanged; the loss's gradient with respect to its fan-out, ``g = ∂L/∂ω``
(every consumer's column), is not zero: moving ``ω`` by ``t`` along ``−g/‖g‖`` lowers the loss by
``t·‖g‖`` to first order. That is the score of GradMax (Evci et al., ICLR 2022) and of TINY's fan-out
(ALGORITHMS.md §8) for a fan-in that is *not* optimised: TINY solves for the best fan-in where the
group has one dense producer and one pointwise consumer (``tiny.tiny_sites``); this module needs
neither, so it scores groups TINY and splitting cannot see — residual streams (several producers,
several consumers), concatenated branches, the channels a squeeze-and-excitation gate multiplies,
MobileNetV2's linear bottlenecks.

Every scored group's new neurons are added to one copy of the model (zero fan-out; a new row's entries
that would read another group's new channels are zero, so each score is what its group alone would
give; a BatchNorm on their path gets, as running statistics, the new channels' own mean and variance
on the scoring batches, as training would give it, so an un-normalised pre-activation does not inflate
the score); one backward pass over the scoring batches (eval mode) gives ``g`` for every neuron. The candidate's
predicted decrease is ``t·‖g‖`` with ``t`` the mean norm of the consumers' existing columns (a new
neuron's fan-out the size of its neighbours'); its fan-out is ``−t·g/‖g‖``, and the neuron is added as
scored (``GrowConfig.new_units = "fresh"`` turns only splits into fresh neurons). Unlike TINY's, that
fan-out's size is not line-searched: t is a scale for comparing groups, not a tuned step.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..argument_checks import check_positive_integer
from .arguments import fan_in_shape, fan_out_shape
from .candidates import Candidate
from .channel_groups import ChannelGroup, find_channel_groups, growable_groups
from .new_neurons import add_neurons, default_fan_in
from .splitting_matrix import Batch, LossFn
from .staged_edit import group_width, slot_offset


def _calibrate_batchnorms(model: nn.Module, new: list[tuple[ChannelGroup, slice]], batches: list[Batch]) -> None:
    """Set the running statistics of the new channels (``new``: each group and its new channel indices) of
    every BatchNorm on the groups' paths to their input's mean and variance over ``batches``, read in one
    pass (``model`` in eval mode; the new channels read no other new channel, so one pass serves all)."""
    targets = []  # (BatchNorm layer, module, first new entry, count)
    for group, channels in new:
        for slot in group.passthrough:
            module = model.get_submodule(slot.layer)
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and module.track_running_stats \
                    and slot.inner == 1:
                targets.append((slot.layer, module, slot_offset(model, slot) + channels.start,
                                channels.stop - channels.start))
    if not targets:
        return
    values: dict[int, list[torch.Tensor]] = {index: [] for index in range(len(targets))}
    by_layer: dict[str, list[int]] = {}
    for index, (layer, _, _, _) in enumerate(targets):
        by_layer.setdefault(layer, []).append(index)

    def reader(indices: list[int]):
        def hook(module, inputs, output):
            x = inputs[0].detach()
            channels = x.transpose(0, 1).reshape(x.shape[1], -1).double()
            for index in indices:
                _, _, start, count = targets[index]
                values[index].append(channels[start:start + count])
        return hook

    hooks = [model.get_submodule(layer).register_forward_hook(reader(indices)) for layer, indices in by_layer.items()]
    try:
        with torch.no_grad():
            for inputs, _ in batches:
                model(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        for index, (_, module, start, count) in enumerate(targets):
            read = torch.cat(values[index], dim=1)
            module.running_mean[start:start + count] = read.mean(dim=1).to(module.running_mean)
            module.running_var[start:start + count] = read.var(dim=1, unbiased=False).clamp_min(module.eps) \
                .to(module.running_var)


def _new_entries(model: nn.Module, slot, width: int, count: int) -> slice:
    """Where ``count`` channels appended to a group of ``width`` sit along ``slot``'s axis in ``model``."""
    start = slot_offset(model, slot) + width * slot.inner
    return slice(start, start + count * slot.inner)


def new_neuron_gradients(model: nn.Module, groups: list[ChannelGroup], counts: dict[str, int], batches: list[Batch],
                         loss_fn: LossFn, generator: torch.Generator | None = None) -> dict[str, list[Candidate]]:
    """``counts[name]`` new neurons for each of ``groups`` (of ``model`` as it is), scored in one copy of the
    model and one backward pass: each a ``new`` candidate with its fan-in, its fan-out ``−t·g/‖g‖`` and
    predicted decrease ``t·‖g‖`` (see the module docstring), by group name.

    The groups' neurons are added together; a new neuron's fan-in entries that read another group's new
    channels are zero, so every score is the one its group's neurons alone would get."""
    if not batches:
        raise ValueError("no batches given to score the new neurons on")
    for name, count in counts.items():
        check_positive_integer(f"count for group `{name}`", count)
    groups = [g for g in groups if g.name in counts]
    widths = {g.name: group_width(model, g) for g in groups}
    rows, filters, references = {}, {}, {}
    for group in groups:
        modules = {slot.layer: model.get_submodule(slot.layer) for slot in group.slots}
        count, width = counts[group.name], widths[group.name]
        rows[group.name] = {slot.layer: default_fan_in(fan_in_shape(modules[slot.layer]), count, generator)
                            for slot in group.producers}
        filters[group.name] = {slot.layer: default_fan_in(fan_in_shape(modules[slot.layer]), count, generator)
                               for slot in group.passthrough if isinstance(modules[slot.layer], nn.Conv2d)}
        columns = [modules[slot.layer].weight.detach().narrow(1, slot_offset(model, slot), width * slot.inner)
                   .transpose(0, 1).reshape(width, -1) for slot in group.consumers]
        references[group.name] = torch.cat(columns, dim=1).norm(dim=1).mean().item()

    probe = copy.deepcopy(model)
    probe.eval()  # a throwaway copy, read with running statistics like TINY's
    for group in groups:
        add_neurons(probe, group, counts[group.name], passthrough=filters[group.name] or None)
    # Each new row reads the original channels as sampled, and no other group's new channels.
    new_inputs: dict[str, torch.Tensor] = {}
    new_outputs: dict[str, torch.Tensor] = {}
    for group in groups:
        for slot in group.producers:
            weight = probe.get_submodule(slot.layer).weight
            mask = new_outputs.setdefault(slot.layer, torch.zeros(weight.shape[0], dtype=torch.bool,
                                                                  device=weight.device))
            mask[_new_entries(probe, slot, widths[group.name], counts[group.name])] = True
        for slot in group.consumers:
            weight = probe.get_submodule(slot.layer).weight
            mask = new_inputs.setdefault(slot.layer, torch.zeros(weight.shape[1], dtype=torch.bool,
                                                                 device=weight.device))
            mask[_new_entries(probe, slot, widths[group.name], counts[group.name])] = True
    with torch.no_grad():
        for group in groups:
            for slot in group.producers:
                weight = probe.get_submodule(slot.layer).weight
                block = weight[_new_entries(probe, slot, widths[group.name], counts[group.name])]  # a view
                mask = new_inputs.get(slot.layer, torch.zeros(weight.shape[1], dtype=torch.bool, device=weight.device))
                block.zero_()
                block[:, ~mask] = rows[group.name][slot.layer].to(block)
    _calibrate_batchnorms(probe, [(group, slice(widths[group.name], widths[group.name] + counts[group.name]))
                                  for group in groups], batches)
    probe.zero_grad(set_to_none=True)
    loss = torch.stack([loss_fn(probe(inputs), labels) for inputs, labels in batches]).mean()
    if not torch.isfinite(loss):
        return {}
    loss.backward()

    found = {}
    for group in groups:
        count, gradients = counts[group.name], {}
        for slot in group.consumers:
            weight = probe.get_submodule(slot.layer).weight
            shape = fan_out_shape(model.get_submodule(slot.layer), slot)
            if weight.grad is None:
                break
            kept = ~new_outputs.get(slot.layer, torch.zeros(weight.shape[0], dtype=torch.bool,
                                                            device=weight.device))  # the original rows
            columns = weight.grad[kept][:, _new_entries(probe, slot, widths[group.name], count)]  # (out, count·inner, *k)
            columns = columns.reshape(columns.shape[0], count, slot.inner, *columns.shape[2:]).transpose(0, 1)
            if columns[0].numel() != torch.Size(shape).numel():
                break  # a conv reading the group through a reshape: no fan-out shape to give
            gradients[slot.layer] = columns.reshape(count, *shape)
        else:
            slope = torch.cat([g.flatten(1) for g in gradients.values()], dim=1).norm(dim=1)  # ‖∂L/∂ω‖
            reference = references[group.name]
            found[group.name] = [Candidate(
                "new", group.name, reference * float(slope[k]),
                fan_in={layer: sampled[k] for layer, sampled in rows[group.name].items()},
                fan_out={layer: -(reference / float(slope[k]) if slope[k] > 0 else 0.0) * g[k]
                         for layer, g in gradients.items()},
                passthrough={layer: sampled[k] for layer, sampled in filters[group.name].items()},
            ) for k in range(count)]
    return found


def gradient_neurons(model: nn.Module, group: ChannelGroup, batches: list[Batch], loss_fn: LossFn, count: int,
                     generator: torch.Generator | None = None) -> list[Candidate]:
    """``count`` new neurons for ``group`` alone (``new_neuron_gradients`` of one group)."""
    return new_neuron_gradients(model, [group], {group.name: count}, batches, loss_fn, generator).get(group.name, [])


def gradient_candidates(model: nn.Module, example_input: torch.Tensor, batches: list[Batch], loss_fn: LossFn, *,
                        count: int = 16, groups: list[str] | None = None,
                        generator: torch.Generator | None = None) -> list[Candidate]:
    """``gradient_neurons`` for every growable group (or those named in ``groups``): at least ``count``
    neurons per group and as many as the group is wide, so a group may double in one event as a
    splitting method allows."""
    generator = generator or torch.Generator().manual_seed(0)
    chosen = [g for g in growable_groups(find_channel_groups(model, example_input))
              if groups is None or g.name in groups]
    counts = {g.name: max(count, group_width(model, g)) for g in chosen}
    found = new_neuron_gradients(model, chosen, counts, batches, loss_fn, generator)
    return [candidate for group in chosen for candidate in found.get(group.name, [])]
