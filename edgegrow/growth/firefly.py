"""Firefly neural architecture descent (Wu, Liu et al. 2020): candidates trained and scored in an over-grown network.

One growth phase builds a copy of the model that holds every candidate at once, each scaled by its
own ``ε_i``:

- split (``splits``, on by default as in the paper; ``GrowConfig.firefly_splits``): every neuron
  ``i`` of every growable channel group has a twin; their fan-in rows are
  ``w ± ε_i δ_i`` in every producer and their fan-out ½, ½ (``split_neurons`` with zero directions
  builds the copy), so the pair computes ``½(σ(h + ε_i δ_i·x) + σ(h − ε_i δ_i·x))``;
- new neuron: ``new_per_group`` neurons per group with trainable fan-in ``δ_in`` in every producer,
  fresh BatchNorm channels (γ 1, β 0, mean 0, variance 1), a trainable filter in every depthwise
  pass-through conv, and fan-out ``ε_j δ_out`` in every consumer (``add_neurons`` with zero fan-out);
- new layer: after every block of the model's ``features`` stack (every child of an
  ``nn.Sequential`` model but the last), ``deepen``'s identity block with weights
  ``W_identity + ε_L Δ_L``: a ``ds-block`` after a 4-D output when the stack is made of
  depthwise-separable blocks (DS-CNN, MobileNet), a ``conv`` otherwise, a ``linear`` after a 2-D output.

The ε vector and the directions (δ, δ_in, δ_out, filters, Δ_L) are trained together with Adam on
the task loss, the model's own weights frozen and every BatchNorm in eval mode (running
statistics), projecting after every step onto ``|ε_i| ≤ epsilon`` and ``‖δ‖ ≤ 1`` per candidate
(one norm across all producers, consumers or block tensors of the candidate; a new neuron's
δ_in, δ_out and filters are three such directions).

Scoring. Firefly's step two scores candidate ``i`` by ``s_i = (1/ε̃_i)∫₀^ε̃_i ∂L/∂ε_i dζ``, so
that ``ε̃_i s_i`` is the loss change the candidate makes. The integral is taken by the midpoint
rule, for all candidates in one pass: ``score_i = ε̃_i · ∂L/∂ε_i`` at ``ε = ε̃/2``, averaged over
the batches, and ``predicted_decrease = −score_i`` (loss units). The midpoint rule is exact
when the loss is quadratic in ε_i, so it keeps both leading terms: the linear term ``g ε`` of a
new neuron or layer and the quadratic term ``a ε²`` of a split (a ±δ split is even in ε, its
linear term vanishes). The gradient at ε = 0 would score every split zero, and the gradient at
the end point ``ε̃`` would count the quadratic term twice (``2aε̃²``). Evaluated jointly,
``Σ_i score_i = d/dt L(tε̃)`` at ``t = ½``, the midpoint estimate of the change of applying all
candidates together.

Held-out scoring. The directions are trained on the first ⌈n/2⌉ of the n batches and scored on the
others (one batch does both). Thousands of candidates, each with its own trained direction, fit
the few hundred examples they were trained on, so scored on those same examples their decrease
is inflated. On MobileNetV2 at the growth benchmark's image setting (seed 0, first event) the
inflation sat in the 640 new-neuron candidates of the last 1×1 conv, the 1,280-channel head
(0.0064 ms a neuron on the Cortex-M4F, among the cheapest of the network; 640 of the 1,304
new-neuron candidates): 0.113 predicted in total on their training batches, 0.0145 on two other
batches, a correlation of 0.14 between the two. Scored in-sample, that run spent most of its
budget on the head (1,280 → 2,552 channels, the body near its seed widths) and ended at 81.1 %
test accuracy, 10–14 points behind every other method. Scored held out, the same seed reached
88.0 % with a 2,452-channel head: held out, a head neuron still predicts a small positive
decrease, and the head is cheap and holds half the candidates (docs/methods_benchmark.md).

Every tensor a candidate carries is shaped for the original model, so ``apply_candidates`` can
apply it there, and a single candidate applied to the model computes exactly what the over-grown
copy computes with that candidate's ε alone. So in the copy, split directions and new-neuron
fan-in read the producer's original input channels only (not other candidates' channels);
new-neuron fan-out and a new block's perturbation reach the original channels only, and the
split twins of those channels, which must stay copies of their originals; a new block leaves new
neurons' channels alone (identity). Groups with several producers (residual ties) are handled
like the others: a candidate's direction spans all its producers. Skipped, and listed in
``OvergrownNetwork.skipped``: groups whose producers read channels the channel-group analysis does
not place, and insertion points whose output does not keep the original channels first (an
output made of several concatenated groups).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from ..argument_checks import check_positive_integer
from .arguments import fan_in_shape, fan_out_shape
from .candidates import Candidate, Kind, new_neuron_count
from .channel_groups import ChannelGroup, find_channel_groups, growable_groups
from .deepen import deepen_many, run_with_hooks
from .new_neurons import add_neurons, default_fan_in
from .split import split_neurons
from .splitting_matrix import Batch, LossFn
from .staged_edit import group_width, slot_offset

LAYER_KINDS = ("auto", "conv", "ds-block")


@dataclass(frozen=True)
class Entry:
    """What one coordinate of the ε vector scales: a split of neuron ``index`` of channel group
    ``group``, new neuron number ``index`` of ``group``, or a block inserted after module ``group``."""

    kind: Kind
    group: str
    index: int = 0


@dataclass
class _Term:
    """One trainable addition to a tensor of the over-grown copy: ``tensor[index] += value``, the
    value read from ``directions[key]`` (n candidates × ...) and scaled by ``ε[span]``.

    ``form`` says how the value is laid out: ``rows`` as is; ``mirrored`` as rows ``+v`` then
    ``−v`` (the two offspring of splits); ``columns`` with candidates on the second axis (a
    consumer's input channels, ``inner`` entries each behind a flatten); ``block`` the single
    candidate's tensor without its leading axis (an inserted block). With ``twinned`` the value is
    written twice along the rows: to a split group's original channels and to their twins, which
    must stay copies of them."""

    module: nn.Module
    tensor: str
    index: tuple[torch.Tensor, ...]
    key: str
    span: slice | None
    form: str = "rows"
    inner: int = 1
    twinned: bool = False

    def value(self, epsilon: torch.Tensor, directions: dict[str, torch.Tensor]) -> torch.Tensor:
        value = directions[self.key]
        if self.span is not None:
            value = epsilon[self.span].view(-1, *([1] * (value.dim() - 1))) * value
        if self.form == "mirrored":
            value = torch.cat([value, -value])
        elif self.form == "columns":
            value = value.transpose(0, 1)
            value = value.reshape(value.shape[0], -1, *value.shape[3:]) if self.inner > 1 else value
        elif self.form == "block":
            value = value[0]
        return torch.cat([value, value]) if self.twinned else value


@dataclass
class _Family:
    """The candidates of one kind in one group (or one inserted block) and where their tensors live:
    {original layer name (or name inside the block): direction key}."""

    kind: Kind
    group: str
    span: slice
    fan_in: dict[str, str] = field(default_factory=dict)  # split δ or new δ_in, per producer
    fan_out: dict[str, str] = field(default_factory=dict)  # new δ_out, per consumer
    filters: dict[str, str] = field(default_factory=dict)  # new depthwise filters, per pass-through conv
    block: dict[str, tuple[str, torch.Tensor]] = field(default_factory=dict)  # layer: name → (key, identity)
    layer_kind: str = ""


class OvergrownNetwork:
    """A deep copy of a model holding every Firefly candidate, a function of (frozen weights, ε, directions).

    Build it with ``build_overgrown``. ``epsilon`` (one entry per candidate, described by
    ``entries``) and ``directions`` are leaf tensors that ``train_directions`` optimises; the copy's
    own parameters are frozen and the copy stays in eval mode.
    """

    def __init__(self, network: nn.Module, epsilon_bound: float, like: torch.Tensor):
        self.network = network
        self.epsilon_bound = epsilon_bound
        self.dtype, self.device = like.dtype, like.device
        self.entries: list[Entry] = []
        self.families: list[_Family] = []
        self.directions: dict[str, torch.Tensor] = {}
        self.unit_sets: list[list[str]] = []  # direction keys normalised together, per candidate
        self.skipped: list[str] = []
        self.epsilon = torch.zeros(0, dtype=self.dtype, device=self.device)
        self._terms: list[_Term] = []
        self._by_tensor: dict[str, list[_Term]] = {}

    # -- building --------------------------------------------------------------------------------

    def _add_family(self, family_kind: Kind, group: str, count: int, **fields) -> _Family:
        start = len(self.entries)
        self.entries.extend(Entry(family_kind, group, i) for i in range(count))
        family = _Family(family_kind, group, slice(start, start + count), **fields)
        self.families.append(family)
        return family

    def _add_direction(self, key: str, value: torch.Tensor) -> str:
        self.directions[key] = value.to(dtype=self.dtype, device=self.device).requires_grad_(True)
        return key

    def _add_unit_set(self, keys) -> None:
        if keys:
            self.unit_sets.append(list(keys))

    def _finish(self) -> None:
        """Fix ε's initial value and resolve each term's tensor name (deepen may have renamed layers)."""
        self.network.eval()  # inserted blocks are built in training mode
        self.epsilon = torch.full((len(self.entries),), self.epsilon_bound, dtype=self.dtype, device=self.device,
                                  requires_grad=True)
        names = {id(module): name for name, module in self.network.named_modules()}
        self._by_tensor = {}
        for term in self._terms:
            prefix = names[id(term.module)]
            self._by_tensor.setdefault(f"{prefix}.{term.tensor}" if prefix else term.tensor, []).append(term)
        self.project()

    # -- evaluating ------------------------------------------------------------------------------

    def logits(self, inputs: torch.Tensor, epsilon: torch.Tensor | None = None) -> torch.Tensor:
        """The over-grown network's output at ``epsilon`` (default: the current ε)."""
        epsilon = self.epsilon if epsilon is None else epsilon
        overrides = {}
        for name, terms in self._by_tensor.items():
            tensor = self.network.get_parameter(name)
            for term in terms:
                tensor = tensor.index_put(term.index, term.value(epsilon, self.directions), accumulate=True)
            overrides[name] = tensor
        return functional_call(self.network, overrides, (inputs,))

    def loss(self, epsilon: torch.Tensor, batches: Sequence[Batch], loss_fn: LossFn) -> float:
        """Mean over ``batches`` of the task loss at ``epsilon`` (no gradient)."""
        with torch.no_grad():
            return sum(float(loss_fn(self.logits(x, epsilon), y)) for x, y in batches) / len(batches)

    def epsilon_gradient(self, epsilon: torch.Tensor, batches: Sequence[Batch], loss_fn: LossFn) -> torch.Tensor:
        """∂L/∂ε at ``epsilon`` with the current directions, averaged over ``batches``: one entry per candidate."""
        if tuple(epsilon.shape) != tuple(self.epsilon.shape):
            raise ValueError(f"epsilon has shape {tuple(epsilon.shape)}; expected ({len(self.entries)},)")
        point = epsilon.detach().to(self.dtype).clone().requires_grad_(True)
        total = torch.zeros_like(point)
        for inputs, targets in batches:
            loss = loss_fn(self.logits(inputs, point), targets)
            total += torch.autograd.grad(loss, point)[0]
        return total / len(batches)

    def midpoint_scores(self, batches: Sequence[Batch], loss_fn: LossFn) -> torch.Tensor:
        """``ε̃_i · ∂L/∂ε_i`` at ``ε = ε̃/2``: each candidate's predicted loss change (loss units, < 0 helps)."""
        trained = self.epsilon.detach()
        return trained * self.epsilon_gradient(trained / 2, batches, loss_fn)

    # -- training --------------------------------------------------------------------------------

    def project(self) -> None:
        """Clamp ε into [−epsilon, epsilon] and scale each candidate's direction into the unit ball."""
        with torch.no_grad():
            self.epsilon.clamp_(-self.epsilon_bound, self.epsilon_bound)
            for keys in self.unit_sets:
                squares = sum(self.directions[k].flatten(1).pow(2).sum(1) for k in keys)
                scale = 1.0 / squares.sqrt().clamp_min(1.0)
                for key in keys:
                    tensor = self.directions[key]
                    tensor.mul_(scale.view(-1, *([1] * (tensor.dim() - 1))))

    def train_directions(self, batches: Sequence[Batch], loss_fn: LossFn, steps: int, learning_rate: float) -> None:
        """``steps`` Adam steps on ε and the directions, cycling over ``batches``, projecting after each."""
        if steps == 0 or not self.entries:
            return
        optimizer = torch.optim.Adam([self.epsilon, *self.directions.values()], lr=learning_rate)
        for step in range(steps):
            inputs, targets = batches[step % len(batches)]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(self.logits(inputs), targets).backward()
            optimizer.step()
            self.project()

    # -- reading candidates out ------------------------------------------------------------------

    def candidates(self, scores: torch.Tensor, *,
                   cost_of_block: Callable[[str, str], dict[str, float]] | None = None) -> list[Candidate]:
        """One ``Candidate`` per entry, in the order of ``entries``, for ``apply_candidates`` on the
        original model; ``predicted_decrease = −scores``; block candidates priced by ``cost_of_block``."""
        epsilon = self.epsilon.detach()
        result = []
        for family in self.families:
            for row, position in enumerate(range(family.span.start, family.span.stop)):
                decrease = -float(scores[position])
                trained = float(epsilon[position])
                result.append(self._candidate(family, row, trained, decrease, cost_of_block))
        return result

    def _candidate(self, family: _Family, row: int, trained: float, decrease: float, cost_of_block) -> Candidate:
        def direction(key: str) -> torch.Tensor:
            return self.directions[key][row].detach().clone()

        if family.kind == "split":
            sign = 1.0 if trained >= 0 else -1.0  # a ±δ split is even in ε: store ε ≥ 0
            directions = {layer: torch.stack([sign * direction(key), -sign * direction(key)])
                          for layer, key in family.fan_in.items()}
            return Candidate(kind="split", group=family.group, predicted_decrease=decrease, neuron=row,
                             weights=(0.5, 0.5), directions=directions, epsilon=abs(trained))
        if family.kind == "new":
            return Candidate(
                kind="new", group=family.group, predicted_decrease=decrease,
                fan_in={layer: direction(key) for layer, key in family.fan_in.items()},
                fan_out={layer: trained * direction(key) for layer, key in family.fan_out.items()},
                passthrough={layer: direction(key) for layer, key in family.filters.items()},
            )
        state = {name: (identity + trained * direction(key)).detach().clone()
                 for name, (key, identity) in family.block.items()}
        cost = {}
        if cost_of_block is not None:
            cost = {metric: float(value) for metric, value in cost_of_block(family.group, family.layer_kind).items()}
        return Candidate(kind="layer", group=family.group, predicted_decrease=decrease,
                         layer_kind=family.layer_kind, layer_state=state, layer_cost=cost)


# ---------------------------------------------------------------------------------------------
# Building the over-grown copy.

def build_overgrown(model: nn.Module, example_input: torch.Tensor, *, new_per_group: int | None = None,
                    new_fraction: float = 0.5, splits: bool = True, layers: bool = True, layer_kind: str = "auto",
                    epsilon: float = 1e-2, generator: torch.Generator | None = None) -> OvergrownNetwork:
    """The over-grown copy of ``model`` with every candidate at ``ε = epsilon`` and random directions.

    Args:
        new_per_group: new-neuron candidates per growable group; default ``ceil(new_fraction × width)``.
        splits: a split candidate for every neuron of every growable group (without them the copy holds
            no twins: about 0.7× a proposal's time on MobileNetV2, docs/methods_benchmark.md).
        layers: add a new-block candidate after every block of the features stack.
        layer_kind: the block after a 4-D output: ``auto``, ``conv`` or ``ds-block`` (see the module doc).
        epsilon: bound on |ε_i| (the ε-ball's radius, in the units of the weights).
        generator: draws the initial directions (default seed 0).

    Raises:
        ValueError: bad arguments, or a model without parameters.
    """
    _check_growth_arguments(new_per_group, new_fraction, splits, layer_kind, epsilon)
    generator = generator or torch.Generator().manual_seed(0)
    reference = copy.deepcopy(model).eval()
    grown = copy.deepcopy(model).eval()
    for parameter in grown.parameters():
        parameter.requires_grad_(False)
    like = next(model.parameters(), None)
    if like is None:
        raise ValueError("the model has no parameters to grow")
    network = OvergrownNetwork(grown, epsilon, like)

    def draw(shape: tuple[int, ...], unit: bool = True) -> torch.Tensor:
        """(n, ...) initial directions: unit rows, or PyTorch's default initialisation of weight rows."""
        if unit:
            values = torch.randn(shape, generator=generator, dtype=torch.float64, device="cpu")
            return values / values.flatten(1).norm(dim=1).view(-1, *([1] * (len(shape) - 1)))
        return default_fan_in(shape[1:], shape[0], generator)

    all_groups = find_channel_groups(reference, example_input)
    groups = growable_groups(all_groups)
    widths = {group.name: group_width(reference, group) for group in groups}
    counts = {name: new_neuron_count(width, new_per_group, new_fraction) for name, width in widths.items()}
    for group in groups:
        _widen(grown, group, widths[group.name], counts[group.name], splits)
    columns = _original_columns(reference, grown, all_groups)
    twins = {slot.layer: widths[group.name] for group in groups for slot in group.producers} if splits else {}
    for group in groups:
        _add_width_candidates(network, grown, reference, group, widths[group.name], counts[group.name],
                              columns, twins, draw, splits)
    if layers:
        points = _insertion_points(reference, grown, example_input, layer_kind, network.skipped, splits)
        names = deepen_many(grown, [(after, kind) for after, kind, *_ in points], example_input)
        for point, name in zip(points, names):
            _add_layer_candidate(network, grown.get_submodule(name), *point, draw)
    network._finish()
    return network


def _widen(grown: nn.Module, group: ChannelGroup, width: int, count: int, splits: bool) -> None:
    """Split every neuron (zero directions) if ``splits`` and append ``count`` new neurons with zero
    fan-in, filters and fan-out: channels [0, C) originals, [C, 2C) their twins, [2C, 2C + count)
    new; without splits [C, C + count) new."""
    if splits:
        split_neurons(grown, group, list(range(width)))
    if count == 0:
        return
    modules = {slot.layer: grown.get_submodule(slot.layer) for slot in group.slots}
    def zeros(layer: str) -> torch.Tensor:
        return torch.zeros(count, *fan_in_shape(modules[layer]), device=modules[layer].weight.device)

    fan_in = {s.layer: zeros(s.layer) for s in group.producers}
    filters = {s.layer: zeros(s.layer) for s in _depthwise(grown, group)}
    add_neurons(grown, group, count, fan_in=fan_in, passthrough=filters or None)


def _depthwise(model: nn.Module, group: ChannelGroup):
    return [s for s in group.passthrough if isinstance(model.get_submodule(s.layer), nn.Conv2d)]


def _original_columns(reference: nn.Module, grown: nn.Module, groups: list[ChannelGroup]) -> dict[str, torch.Tensor]:
    """For every layer whose input columns are all placed by some group: the widened copy's column of
    each of its original input columns (a group's original channels stay first in its run)."""
    runs: dict[str, list[tuple[int, int, int]]] = {}
    for group in groups:
        for slot in group.consumers:
            runs.setdefault(slot.layer, []).append((slot_offset(reference, slot), slot_offset(grown, slot),
                                                    group.width_at_discovery * slot.inner))
    columns = {}
    for layer, spans in runs.items():
        mapping = torch.full((reference.get_submodule(layer).weight.shape[1],), -1, dtype=torch.long, device="cpu")
        for old, new, length in spans:
            mapping[old:old + length] = torch.arange(new, new + length, device="cpu")
        if bool((mapping >= 0).all()):
            columns[layer] = mapping
    return columns


def _add_width_candidates(network: OvergrownNetwork, grown: nn.Module, reference: nn.Module, group: ChannelGroup,
                          width: int, count: int, columns: dict[str, torch.Tensor], twins: dict[str, int],
                          draw, splits: bool) -> None:
    """Split candidates for every neuron of ``group`` (if ``splits``) and ``count`` new-neuron candidates.

    ``columns``: each layer's original input columns in the widened copy; ``twins``: for the
    producers of split groups, where the twins' rows start (the group's original width)."""
    unplaced = [s.layer for s in group.producers if s.layer not in columns]
    if unplaced:
        network.skipped.append(f"group `{group.name}`: the input channels of {', '.join(unplaced)} are not all placed")
        return
    device = network.device
    columns = {layer: mapping.to(device) for layer, mapping in columns.items()}
    if splits:
        split = network._add_family("split", group.name, width)
        for slot in group.producers:
            module = grown.get_submodule(slot.layer)
            key = network._add_direction(f"split:{group.name}:{slot.layer}",
                                         draw((width, *fan_in_shape(reference.get_submodule(slot.layer)))))
            split.fan_in[slot.layer] = key
            rows = torch.arange(2 * width, device=device)
            network._terms.append(_Term(module, "weight", (rows[:, None], columns[slot.layer][None, :]), key,
                                        split.span, "mirrored"))
        network._add_unit_set(split.fan_in.values())
    if count == 0:
        return
    first_new = 2 * width if splits else width  # the new neurons' first channel in the copy
    new = network._add_family("new", group.name, count)
    rows = torch.arange(first_new, first_new + count, device=device)
    for slot in group.producers:
        shape = fan_in_shape(reference.get_submodule(slot.layer))
        key = network._add_direction(f"new-in:{group.name}:{slot.layer}", draw((count, *shape), unit=False))
        new.fan_in[slot.layer] = key
        network._terms.append(_Term(grown.get_submodule(slot.layer), "weight",
                                    (rows[:, None], columns[slot.layer][None, :]), key, None))
    for slot in _depthwise(grown, group):
        shape = fan_in_shape(reference.get_submodule(slot.layer))
        key = network._add_direction(f"new-filter:{group.name}:{slot.layer}", draw((count, *shape), unit=False))
        new.filters[slot.layer] = key
        offset = slot_offset(grown, slot)
        network._terms.append(_Term(grown.get_submodule(slot.layer), "weight", (offset + rows,), key, None))
    for slot in group.consumers:
        original = reference.get_submodule(slot.layer)
        key = network._add_direction(f"new-out:{group.name}:{slot.layer}",
                                     draw((count, *fan_out_shape(original, slot))))
        new.fan_out[slot.layer] = key
        offset = slot_offset(grown, slot)
        consumer_columns = torch.arange(offset + first_new * slot.inner, offset + (first_new + count) * slot.inner,
                                        device=device)
        # The fan-out reaches the consumer's original output channels and, where they were split, their twins.
        output_rows = torch.arange(original.weight.shape[0], device=device)
        twinned = slot.layer in twins
        if twinned:
            output_rows = torch.cat([output_rows, twins[slot.layer] + output_rows])
        network._terms.append(_Term(grown.get_submodule(slot.layer), "weight",
                                    (output_rows[:, None], consumer_columns[None, :]), key, new.span, "columns",
                                    slot.inner, twinned))
    for directions in (new.fan_in, new.fan_out, new.filters):
        network._add_unit_set(directions.values())


def _feature_blocks(model: nn.Module) -> list[str]:
    """Module names after which a block may go: the children of ``model.features`` (an ``nn.Sequential``),
    or of ``model`` itself when it is one (but its last, which makes the output); only children with
    parameters (a dropout or a pooling is the same point as the block before it)."""
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        prefix, children = "features.", list(features.named_children())
    elif isinstance(model, nn.Sequential):
        prefix, children = "", list(model.named_children())[:-1]
    else:
        return []
    return [prefix + name for name, child in children if any(True for _ in child.parameters())]


def _capture(model: nn.Module, names: list[str], example_input: torch.Tensor) -> dict[str, list]:
    """Every output of each named module on ``example_input`` (``model`` in eval mode)."""
    outputs: dict[str, list] = {name: [] for name in names}
    run_with_hooks(model, [(model.get_submodule(name), lambda _m, _i, out, name=name: outputs[name].append(
        out.clone() if torch.is_tensor(out) else out)) for name in names], example_input)
    return outputs


def _insertion_points(reference: nn.Module, grown: nn.Module, example_input: torch.Tensor, layer_kind: str,
                      skipped: list[str], splits: bool) -> list[tuple[str, str, int, bool]]:
    """(module name, block kind, original channels C, whether channels [C, 2C) are their split twins)
    of every place a block candidate goes (no twins without ``splits``)."""
    names = _feature_blocks(reference)
    before, after = _capture(reference, names, example_input), _capture(grown, names, example_input)
    depthwise_stack = any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in reference.modules())
    points = []
    for name in names:
        if len(before[name]) != 1 or len(after[name]) != 1:
            skipped.append(f"block after `{name}`: the layer runs {len(before[name])} times per forward pass")
            continue
        (original,), (widened,) = before[name], after[name]
        if not torch.is_tensor(original) or original.dim() not in (2, 4):
            skipped.append(f"block after `{name}`: its output is not a (N, C, H, W) or (N, F) tensor")
            continue
        channels = original.shape[1]
        if not torch.allclose(widened[:, :channels], original, rtol=1e-4, atol=1e-5):
            skipped.append(f"block after `{name}`: the grown copy does not keep its original channels first")
            continue
        if original.dim() == 2:
            kind = "linear"
        elif layer_kind == "auto":
            kind = "ds-block" if depthwise_stack else "conv"
        else:
            kind = layer_kind
        twinned = splits and widened.shape[1] >= 2 * channels and torch.allclose(
            widened[:, channels:2 * channels], original, rtol=1e-4, atol=1e-5)
        points.append((name, kind, channels, twinned))
    return points


def _add_layer_candidate(network: OvergrownNetwork, block: nn.Module, after: str, kind: str, channels: int,
                         twinned: bool, draw) -> None:
    """Make the weights of ``block``, the ``kind`` block inserted after ``after`` in the grown copy
    (``deepen_many``: blocks go after siblings of one stack, so no insertion renames another's
    ``after``), ``identity + ε Δ`` on the original ``channels`` (``Δ`` a random unit direction across the
    block's weights and biases); the rows of split twins get the same perturbation as their
    originals, so the twins stay copies."""
    family = network._add_family("layer", after, 1, layer_kind=kind)
    original = torch.arange(channels, device=network.device)
    rows = torch.cat([original, channels + original]) if twinned else original
    tensors = {}
    for name, module in block.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        depthwise = isinstance(module, nn.Conv2d) and module.groups > 1
        for tensor_name, tensor in (("weight", module.weight), ("bias", module.bias)):
            if tensor is None:
                continue
            square = tensor_name == "weight" and not depthwise
            original_index = (original[:, None], original[None, :]) if square else (original,)
            index = (rows[:, None], original[None, :]) if square else (rows,)
            tensors[f"{name}.{tensor_name}"] = (module, tensor_name, index, tensor.detach()[original_index].clone())
    sizes = [identity.numel() for *_, identity in tensors.values()]
    pieces = draw((1, sum(sizes)))[0].split(sizes)
    for (name, (module, tensor_name, index, identity)), piece in zip(tensors.items(), pieces):
        key = network._add_direction(f"layer:{after}:{name}", piece.view(1, *identity.shape))
        family.block[name] = (key, identity)
        network._terms.append(_Term(module, tensor_name, index, key, family.span, "block", twinned=twinned))
    network._add_unit_set(key for key, _ in family.block.values())


# ---------------------------------------------------------------------------------------------
# The method.

def firefly_candidates(model: nn.Module, example_input: torch.Tensor, batches: Sequence[Batch], loss_fn: LossFn, *,
                       new_per_group: int | None = None, new_fraction: float = 0.5, splits: bool = True,
                       layers: bool = True, layer_kind: str = "auto", epsilon: float = 1e-2, steps: int = 10, learning_rate: float = 1e-2,
                       generator: torch.Generator | None = None,
                       cost_of_block: Callable[[str, str], dict[str, float]] | None = None) -> list[Candidate]:
    """Firefly's candidates for ``model``, trained ``steps`` Adam steps and scored by the midpoint rule.

    Args:
        example_input: a batch the model accepts (finds channel groups, calibrates inserted blocks).
        batches: (inputs, targets) pairs; ``loss_fn(logits, targets)`` is a scalar batch mean. The
            first ⌈n/2⌉ train the directions and the rest score them (``held_out_split``).
        new_per_group: new-neuron candidates per growable group (default ``ceil(new_fraction × width)``).
        splits: also propose a split of every neuron of every growable group.
        layers: also propose a new block after every block of the features stack.
        layer_kind: block after a 4-D output: ``auto`` (``ds-block`` in a depthwise-separable stack,
            else ``conv``), ``conv`` or ``ds-block``; after a 2-D output it is always ``linear``.
        epsilon: radius of the ε-ball, |ε_i| ≤ epsilon (weight units).
        steps, learning_rate: Adam steps (cycling over ``batches``) and step size of the direction training.
        generator: draws the initial directions (default seed 0).
        cost_of_block: called with (layer name, block kind) of each block candidate; returns what that
            block (``deepen``'s, after that layer of ``model``) adds per metric, stored as the layer
            candidate's ``layer_cost`` (the grow loop prices it on the traced model without inserting it).

    Returns:
        Splits (if ``splits``) and new neurons group by group, then blocks; ``predicted_decrease`` in loss units.
        The model is left unchanged and in its training mode.
    """
    batches = _check_training_arguments(batches, steps, learning_rate, cost_of_block)
    training, scoring = held_out_split(batches)
    network = build_overgrown(model, example_input, new_per_group=new_per_group, new_fraction=new_fraction,
                              splits=splits, layers=layers, layer_kind=layer_kind, epsilon=epsilon, generator=generator)
    if not network.entries:
        return []
    network.train_directions(training, loss_fn, steps, learning_rate)
    scores = network.midpoint_scores(scoring, loss_fn)
    return network.candidates(scores, cost_of_block=cost_of_block)


def held_out_split(batches: Sequence[Batch]) -> tuple[list[Batch], list[Batch]]:
    """(the first ⌈n/2⌉ batches, to train directions on; the rest, to score them on); a single
    batch does both (its scores are then in-sample, and inflated: see the module docstring)."""
    batches = list(batches)
    if len(batches) == 1:
        return batches, batches
    half = (len(batches) + 1) // 2
    return batches[:half], batches[half:]


def _check_training_arguments(batches, steps, learning_rate, cost_of_block) -> list[Batch]:
    batches = list(batches) if batches is not None else []
    if not batches:
        raise ValueError("no batches given; pass at least one (inputs, targets) pair to train and score on")
    if any(not isinstance(b, (tuple, list)) or len(b) != 2 for b in batches):
        raise ValueError("each batch must be an (inputs, targets) pair")
    _check_positive("learning_rate", learning_rate)
    check_positive_integer("steps", steps, allow_zero=True)
    if cost_of_block is not None and not callable(cost_of_block):
        raise ValueError(f"cost_of_block must be callable or None, got {type(cost_of_block).__name__}")
    return batches


def _check_growth_arguments(new_per_group, new_fraction, splits, layer_kind, epsilon) -> None:
    _check_positive("epsilon", epsilon)
    if not isinstance(splits, bool):
        raise ValueError(f"splits must be True or False, got {splits!r}")
    if new_per_group is not None and (isinstance(new_per_group, bool) or not isinstance(new_per_group, int)
                                      or new_per_group < 0):
        raise ValueError(f"new_per_group must be None or an integer >= 0, got {new_per_group!r}")
    if isinstance(new_fraction, bool) or not isinstance(new_fraction, (int, float)) \
            or not math.isfinite(new_fraction) or new_fraction < 0:
        raise ValueError(f"new_fraction must be a finite number >= 0, got {new_fraction!r}")
    if layer_kind not in LAYER_KINDS:
        raise ValueError(f"unknown layer_kind {layer_kind!r}; choose one of {', '.join(LAYER_KINDS)}")


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
