"""A staged edit of a network's channels, committed all at once.

Growth operations describe what every affected tensor becomes along its channel axis (each new
entry is a scaled copy of an old entry plus an optional addend, or new values), check everything,
compute every new tensor, and only then swap them into the modules. A bad argument therefore
leaves the model untouched. The same description carries optimizer state over: entries that
existed keep their momentum/moments, new entries start at zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .channel_groups import ChannelGroup, Slot, structure_fingerprint
from .optimizer_state import check_newborn_states, replace_parameters


@dataclass
class AxisEntry:
    """One entry of the edited axis: a scaled copy of an old entry plus an addend, or fresh values."""

    source: int  # index in the old tensor, -1 for fresh values
    scale: float  # multiplies the copied old slice
    addend: torch.Tensor | None  # added after scaling; the whole slice for fresh values
    existed: bool  # an entry of the old tensor (keeps optimizer state)


@dataclass
class AxisEdit:
    """What one tensor becomes along one axis."""

    old_size: int
    entries: list[AxisEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.entries:
            self.entries = [AxisEntry(i, 1.0, None, True) for i in range(self.old_size)]

    def insert(self, position: int, entries: list[AxisEntry]) -> None:
        self.entries[position:position] = entries

    def apply(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        sources = torch.tensor([max(e.source, 0) for e in self.entries], device=tensor.device)
        scales = torch.tensor([e.scale for e in self.entries], dtype=tensor.dtype, device=tensor.device)
        view = [1] * tensor.dim()
        view[dim] = len(self.entries)
        result = tensor.index_select(dim, sources) * scales.view(view)
        for position, entry in enumerate(self.entries):
            if entry.addend is not None:
                result.select(dim, position).add_(entry.addend.to(result))
        return result

    def state_sources(self) -> list[int]:
        """Old index whose optimizer state each entry keeps, -1 for none (new entries)."""
        return [e.source if e.existed else -1 for e in self.entries]


# Tensors of a layer that hold one entry per channel of a slot, and the axis they hold it on.
def slot_tensors(module: nn.Module, slot: Slot) -> list[tuple[str, int]]:
    if slot.role == "consumer":
        return [("weight", 1)]
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        names = ["weight", "bias"] if module.affine else []
        names += ["running_mean", "running_var"] if module.track_running_stats else []
        return [(name, 0) for name in names]
    return [("weight", 0)] + ([("bias", 0)] if getattr(module, "bias", None) is not None else [])


def _tensor(module: nn.Module, name: str) -> torch.Tensor:
    return getattr(module, name)


def group_width(model: nn.Module, group: ChannelGroup) -> int:
    """Current number of channels of ``group`` in ``model`` (read from its producers)."""
    return check_group(model, group)


def _module(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ValueError(
            f"layer `{name}` of the channel group is not in this model; find the groups on this "
            "model with find_channel_groups"
        ) from None


def slot_offset(model: nn.Module, slot: Slot) -> int:
    """Index along the slot's axis where the group's first channel sits."""
    offset = 0
    for segment in slot.before:
        width = segment.fixed_width
        if segment.width_layer is not None:
            width = _tensor(_module(model, segment.width_layer), "weight").shape[0]
        offset += width * segment.inner
    return offset


def check_group(model: nn.Module, group: ChannelGroup) -> int:
    """The group's current width; ValueError unless ``group`` is growable and matches ``model`` as it is now."""
    if not isinstance(group, ChannelGroup):
        raise ValueError(f"expected a ChannelGroup from find_channel_groups, got {type(group).__name__}")
    if not group.growable:
        raise ValueError(f"channel group `{group.name}` is not growable: {'; '.join(group.reasons)}")
    if group.structure != structure_fingerprint(model):
        raise ValueError(
            f"channel group `{group.name}` was found on a model with other layers (a layer was "
            "inserted since, or it is another model): call find_channel_groups on this model again"
        )
    widths = {_tensor(_module(model, s.layer), "weight").shape[0] for s in group.producers}
    if len(widths) != 1:
        raise ValueError(
            f"the producers of channel group `{group.name}` disagree on its width ({sorted(widths)}); "
            "the model changed since the groups were found: call find_channel_groups again"
        )
    width = widths.pop()
    for slot in group.passthrough + group.consumers:
        module = _module(model, slot.layer)
        for name, dim in slot_tensors(module, slot):
            size = _tensor(module, name).shape[dim]
            if slot_offset(model, slot) + width * slot.inner > size:
                raise ValueError(
                    f"layer `{slot.layer}` has {size} entries on axis {dim} of `{name}`, too few for "
                    f"channel group `{group.name}` of width {width}; the model changed since the "
                    "groups were found: call find_channel_groups again"
                )
    return width


class StagedEdit:
    """Collects axis edits per (layer, tensor), then swaps all new tensors in at once."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.edits: dict[tuple[str, str], tuple[int, AxisEdit]] = {}

    def axis(self, layer: str, tensor_name: str, dim: int) -> AxisEdit:
        key = (layer, tensor_name)
        if key not in self.edits:
            size = _tensor(_module(self.model, layer), tensor_name).shape[dim]
            self.edits[key] = (dim, AxisEdit(size))
        return self.edits[key][1]

    def commit(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Compute every new tensor, then install them, fix layer attributes, remap optimizer state."""
        if optimizer is not None:
            check_newborn_states(optimizer)
        new_tensors = {}
        with torch.no_grad():
            for (layer, name), (dim, edit) in self.edits.items():
                new_tensors[(layer, name)] = edit.apply(_tensor(_module(self.model, layer), name), dim)
        replaced: list[tuple[nn.Parameter, nn.Parameter, int, list[int]]] = []
        for (layer, name), value in new_tensors.items():
            module = _module(self.model, layer)
            old = _tensor(module, name)
            dim, edit = self.edits[(layer, name)]
            if isinstance(old, nn.Parameter):
                new = nn.Parameter(value, requires_grad=old.requires_grad)
                setattr(module, name, new)
                replaced.append((old, new, dim, edit.state_sources()))
            else:
                module._buffers[name] = value
        for layer in {layer for layer, _ in new_tensors}:
            sync_layer_attributes(_module(self.model, layer))
        if optimizer is not None:
            replace_parameters(optimizer, replaced)


def sync_layer_attributes(module: nn.Module) -> None:
    """Make a layer's size attributes (in/out channels, features, groups) match its tensors."""
    if isinstance(module, nn.Conv2d):
        out_channels, in_per_group = module.weight.shape[:2]
        if module.groups > 1:  # depthwise: one channel per group, grows as a whole
            module.groups = out_channels
        module.out_channels = out_channels
        module.in_channels = in_per_group * module.groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        reference = module.running_mean if module.track_running_stats else module.weight
        module.num_features = reference.shape[0]
