"""Growth candidates: what a method proposes, what selection weighs, what ``apply_candidates`` does.

Every growth method (S2D, fast and signed splitting, Firefly, the random baselines) scores its
proposals as ``Candidate`` objects: plain data naming the edit, the loss decrease the method
predicts for it, and how many channels it adds to which channel group (so the cost model can price
it). Selection (``selection.py``) keeps a subset under the budget; ``apply_candidates`` edits the
model with the kept ones, widening first and deepening last, because inserting a layer renames
layers and makes channel groups stale.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from .arguments import fan_in_shape, fan_out_shape
from .channel_groups import ChannelGroup, find_channel_groups
from .deepen import deepen
from .new_neurons import add_neurons
from .split import split_neurons

Kind = Literal["split", "new", "layer"]


@dataclass
class Candidate:
    """One proposed edit.

    - ``split``: split neuron ``neuron`` of ``group`` into ``len(weights)`` offspring with output
      weights ``weights`` and fan-in perturbations ``epsilon · directions[producer][j]``; it adds
      ``len(weights) - 1`` channels.
    - ``new``: one new neuron in ``group`` with fan-in rows ``fan_in[producer]``, fan-out columns
      ``fan_out[consumer]`` and, optionally, per-channel filters ``passthrough[layer]`` of
      depthwise layers it flows through; it adds one channel.
    - ``layer``: insert an identity-initialised block of ``layer_kind`` after module ``group``
      (here a module name, not a channel group); ``layer_state`` optionally overrides the new
      block's parameters (names relative to the block) and ``layer_cost`` is its cost increase
      per metric, priced by the method.

    ``predicted_decrease`` is the loss decrease the method predicts (loss units; > 0 lowers the
    loss). Candidates of different methods are not comparable; within a method they are.
    """

    kind: Kind
    group: str
    predicted_decrease: float
    neuron: int | None = None
    weights: tuple[float, ...] = (0.5, 0.5)
    directions: dict[str, torch.Tensor] = field(default_factory=dict)
    epsilon: float = 0.0
    fan_in: dict[str, torch.Tensor] = field(default_factory=dict)
    fan_out: dict[str, torch.Tensor] = field(default_factory=dict)
    passthrough: dict[str, torch.Tensor] = field(default_factory=dict)
    layer_kind: str = "conv"
    layer_state: dict[str, torch.Tensor] = field(default_factory=dict)
    layer_cost: dict[str, float] = field(default_factory=dict)

    @property
    def channels_added(self) -> int:
        """Channels this candidate adds to its group (0 for a layer)."""
        if self.kind == "split":
            return len(self.weights) - 1
        return 1 if self.kind == "new" else 0

    def describe(self) -> str:
        if self.kind == "split":
            weights = ", ".join(f"{w:+.3g}" for w in self.weights)
            return (f"split {self.group}[{self.neuron}] into ({weights}), "
                    f"predicted loss change {-self.predicted_decrease:+.3g}")
        if self.kind == "new":
            return f"new neuron in {self.group}, predicted loss change {-self.predicted_decrease:+.3g}"
        return f"{self.layer_kind} layer after {self.group}, predicted loss change {-self.predicted_decrease:+.3g}"


def new_neuron_count(width: int, new_per_group: int | None, new_fraction: float) -> int:
    """How many new-neuron candidates a method proposes in a group of ``width`` channels:
    ``new_per_group``, or ``ceil(new_fraction × width)`` when that is None (``GrowConfig.new_per_group``)."""
    return new_per_group if new_per_group is not None else math.ceil(new_fraction * width)


def apply_candidates(model: nn.Module, candidates: list[Candidate], example_input: torch.Tensor, *,
                     optimizer: torch.optim.Optimizer | None = None) -> list[dict]:
    """Apply ``candidates`` to ``model`` in place: splits and new neurons group by group, then new layers.

    Returns the structural edits made, as plain records (``{"op": "widen", "group": name,
    "channels": n}`` and ``{"op": "deepen", "after": name, "kind": kind}``), which a checkpoint
    replays to rebuild the architecture.

    Candidates are scored on the model as it was; a group widened earlier in the same call widens
    the fan-in or fan-out of others, and their tensors are padded with zeros there (the new channels
    get no perturbation). A layer's state is copied where it overlaps the new block (new channels
    keep the identity).
    """
    groups = {group.name: group for group in find_channel_groups(model, example_input)}
    by_group: dict[str, list[Candidate]] = defaultdict(list)
    layers = []
    for candidate in candidates:
        if candidate.kind == "layer":
            layers.append(candidate)
        elif candidate.group not in groups:
            raise ValueError(f"candidate names channel group `{candidate.group}`, which this model does not have")
        else:
            by_group[candidate.group].append(candidate)
    edits = []
    for name in [name for name in groups if name in by_group]:  # upstream groups first, as traced
        group, members = groups[name], by_group[name]
        added = _apply_to_group(model, group, members, optimizer)
        edits.append({"op": "widen", "group": name, "channels": added})
    for candidate in layers:
        inserted = deepen(model, candidate.group, example_input, kind=candidate.layer_kind, optimizer=optimizer)
        if candidate.layer_state:
            block = model.get_submodule(inserted)
            with torch.no_grad():
                tensors = {**dict(block.named_parameters()), **dict(block.named_buffers())}
                for key, value in candidate.layer_state.items():
                    tensor = tensors[key]
                    if tensor.dim() == 0:
                        tensor.copy_(value)
                        continue
                    overlap = tuple(slice(0, min(a, b)) for a, b in zip(tensor.shape, value.shape))
                    tensor[overlap] = value[overlap].to(tensor.dtype)
        edits.append({"op": "deepen", "after": candidate.group, "kind": candidate.layer_kind})
    return edits


def _padded(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``tensor`` zero-padded at the end of each trailing dim to ``shape`` (the layer grew since scoring)."""
    if tuple(tensor.shape[-len(shape):]) == shape:
        return tensor
    out = tensor.new_zeros(*tensor.shape[:tensor.dim() - len(shape)], *shape)
    out[(...,) + tuple(slice(0, n) for n in tensor.shape[-len(shape):])] = tensor
    return out


def _apply_to_group(model: nn.Module, group: ChannelGroup, members: list[Candidate],
                    optimizer: torch.optim.Optimizer | None) -> int:
    added = 0
    modules = {slot.layer: model.get_submodule(slot.layer) for slot in group.slots}
    shapes = {slot.layer: fan_in_shape(modules[slot.layer]) for slot in group.producers + group.passthrough}
    shapes.update({slot.layer: fan_out_shape(modules[slot.layer], slot) for slot in group.consumers})
    splits = [c for c in members if c.kind == "split"]
    by_shape: dict[tuple[int, float], list[Candidate]] = defaultdict(list)
    for candidate in splits:
        by_shape[(len(candidate.weights), candidate.epsilon)].append(candidate)
    for (offspring, epsilon), batch in by_shape.items():
        directions = {}
        for slot in group.producers:
            if all(slot.layer in c.directions for c in batch):
                directions[slot.layer] = torch.stack([_padded(c.directions[slot.layer], shapes[slot.layer])
                                                      for c in batch])
        split_neurons(model, group, [c.neuron for c in batch],
                      offspring_weights=torch.tensor([c.weights for c in batch], dtype=torch.float64, device="cpu"),
                      directions=directions or None, epsilon=epsilon, optimizer=optimizer)
        added += len(batch) * (offspring - 1)
    # New neurons in batches of the same given layers: a neuron whose fan-in, fan-out or filter a method
    # computed (TINY, the gradient) keeps it, and one without (a filler) gets add_neurons' defaults. (One
    # batch over the layers all of them give dropped a computed neuron's tensors whenever a filler joined it.)
    batches: dict[tuple, list[Candidate]] = defaultdict(list)
    for candidate in (c for c in members if c.kind == "new"):
        batches[tuple(frozenset(getattr(candidate, a)) for a in ("fan_in", "fan_out", "passthrough"))].append(candidate)
    for batch in batches.values():
        def stacked(attribute: str) -> dict[str, torch.Tensor]:
            return {layer: torch.stack([_padded(getattr(c, attribute)[layer], shapes[layer]).to(
                modules[layer].weight.device) for c in batch]) for layer in getattr(batch[0], attribute)}
        add_neurons(model, group, len(batch), fan_in=stacked("fan_in") or None, fan_out=stacked("fan_out") or None,
                    passthrough=stacked("passthrough") or None, optimizer=optimizer)
        added += len(batch)
    return added
