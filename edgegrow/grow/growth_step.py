"""One growth event: the method proposes candidates on scoring batches, selection keeps the most loss
decrease per unit of the target's cost under the event's share of the budget, and the kept ones are
applied to the model in place, carrying the optimizer's state. Before applying, existing convolutions
are shrunk by ``GrowConfig.shrink`` (see there), and what the candidates write into convolutions with
them (``on_shrunk_network``)."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

import torch
import torch.fx
from torch import nn

from cost_models import CostReport, KernelCostModel, LatencyModel, Target

from ..data.task_data import TaskData
from ..growth import find_channel_groups, group_width, growable_groups
from ..growth.budget import Budget, metric_value
from ..growth.candidates import Candidate, apply_candidates
from ..growth.channel_groups import ChannelGroup
from ..growth.deepen import block_inserted, block_layers
from ..growth.optimizer_state import match_parameter_order
from ..growth.selection import fit_to_budget, select_candidates
from ..training.device import model_device
from .config import GrowConfig
from .methods import ProposalContext, growth_method


def model_widths(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Channels of every growable channel group, in model order."""
    return {g.name: group_width(model, g) for g in growable_groups(find_channel_groups(model, example))}


def model_depth(model: nn.Module) -> int:
    """Weighted layers: convolutions (dense and depthwise) and fully connected layers."""
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


def predicted_costs(report: CostReport) -> dict[str, float | None]:
    return {"latency_ms": report.latency_ms, "energy_mj": report.energy_mj, "macs": report.macs,
            "params": report.parameters, "sram_kb": report.sram_bytes / 1024, "flash_kb": report.flash_bytes / 1024}


class CostCache:
    """Cost models of the run's model as it changes, reused while its layer shapes are the same:
    tracing is most of a cost model's price, and weights do not change the cost."""

    def __init__(self, target: Target, example: torch.Tensor, size: int = 4):
        self.target, self.example, self.size = target, example, size
        self.latency_model = LatencyModel(target)
        self.models: dict[tuple, KernelCostModel] = {}

    def __call__(self, model: nn.Module) -> KernelCostModel:
        key = tuple((name, tuple(tensor.shape)) for name, tensor in model.state_dict().items())
        if key not in self.models:
            if len(self.models) >= self.size:
                self.models.pop(next(iter(self.models)))
            self.models[key] = KernelCostModel(model, self.example, self.target, self.latency_model)
        return self.models[key]

    def report(self, model: nn.Module) -> CostReport:
        return self(model).report


@dataclass
class StepResult:
    """What one event did: the candidates applied (empty if none), how many were scored, the
    structural edits (for the checkpoint) and, if growth ends here, why."""

    applied: list[Candidate] = field(default_factory=list)
    scored: int = 0
    edits: list[dict] = field(default_factory=list)
    stopped_by: str | None = None

    @property
    def chosen(self) -> dict[str, int]:
        return dict(Counter(c.kind for c in self.applied))

    @property
    def predicted_decrease(self) -> float:
        return sum(c.predicted_decrease for c in self.applied)


def scoring_batches(task: TaskData, config: GrowConfig, event: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``config.score_batches`` training batches, drawn by the run's seed and the event number."""
    generator = torch.Generator().manual_seed(config.seed * 7919 + event)
    order = torch.randperm(len(task.train), generator=generator, device="cpu")  # the data is in host memory
    size = min(config.batch_size, len(order))
    batches = []
    for index in range(config.score_batches):
        chosen = order[index * size:(index + 1) * size]
        if len(chosen) == 0:
            break
        batches.append((task.train.take(chosen), task.train.labels[chosen]))
    return batches


def loss_is_finite(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], loss_fn) -> bool:
    """Whether ``model``'s loss on ``batches`` is finite, read in eval mode (BatchNorm's running statistics
    untouched) and the mode restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return all(bool(torch.isfinite(loss_fn(model(inputs), labels))) for inputs, labels in batches)
    finally:
        model.train(was_training)


def shrink_convolutions(model: nn.Module, factor: float) -> None:
    """θ ← factor·θ for every convolution's weight (see ``GrowConfig.shrink``), and the running statistics
    of every BatchNorm that reads a convolution's output scaled to match (the mean's part from the
    weight ×factor, the variance ×factor²), so that in eval mode the network computes what it did
    before (up to BatchNorm's ε) instead of normalising with statistics of the unshrunk network until
    training has replaced them (with momentum 0.1, some 50 steps: an evaluation in between, such as the
    epoch's validation right after an event, read near chance). Training mode normalises with the
    batch's statistics and is unchanged either way. A model torch.fx cannot trace keeps its statistics."""
    if factor == 1.0:
        return
    with torch.no_grad():
        for convolution, norm in _normalised_convolutions(model):
            bias = convolution.bias if convolution.bias is not None else torch.zeros_like(norm.running_mean)
            norm.running_mean.sub_(bias).mul_(factor).add_(bias)
            norm.running_var.mul_(factor * factor)
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.mul_(factor)


def _normalised_convolutions(model: nn.Module) -> list[tuple[nn.Conv2d, nn.modules.batchnorm._BatchNorm]]:
    """(convolution, BatchNorm) for every BatchNorm module with running statistics whose input is a Conv2d
    module's output, read from the model's torch.fx graph; none when it cannot be traced."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # fx raises many types; all mean "cannot trace", and the statistics then adapt in training
        return []
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        norm = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or norm.running_mean is None:
            continue
        source = node.args[0] if node.args else None
        if isinstance(source, torch.fx.Node) and source.op == "call_module" \
                and isinstance(modules.get(source.target), nn.Conv2d):
            pairs.append((modules[source.target], norm))
    return pairs


def blend_with_fresh(fresh: nn.Module, grown: nn.Module, keep: float) -> nn.Module:
    """``fresh`` (the same architecture as ``grown``, freshly initialised) moved ``keep`` of the way back
    to ``grown``, in place (``GrowConfig.restart_keep``). For 0 < keep < 1 a weight tensor of two or
    more dimensions becomes ‖θ_fresh‖ · unit(keep·unit(θ_grown) + (1 − keep)·unit(θ_fresh)) — its
    direction mixed, its norm the fresh one's, so behind a BatchNorm its effective learning rate is a
    fresh network's — and every other floating-point tensor but BatchNorm's running statistics
    keep·θ_grown + (1 − keep)·θ_fresh; the statistics (and integer buffers) stay as ``fresh`` has them
    (reset). keep 0 leaves ``fresh`` as it is; keep 1 is a special case, not the formula's limit: the
    grown network exactly, norms and statistics included."""
    if keep == 0.0:
        return fresh
    grown_state = grown.state_dict()
    with torch.no_grad():
        for name, tensor in fresh.state_dict().items():
            old = grown_state[name].to(tensor.device)
            if old.shape != tensor.shape:
                raise ValueError(f"cannot blend {name}: grown {tuple(old.shape)}, fresh {tuple(tensor.shape)}")
            if keep == 1.0:
                tensor.copy_(old)
            elif not tensor.is_floating_point() or "running_" in name:  # statistics start again
                continue
            elif tensor.dim() >= 2:
                mixed = keep * _unit(old) + (1 - keep) * _unit(tensor)
                tensor.copy_(_unit(mixed) * tensor.norm())
            else:
                tensor.copy_(keep * old + (1 - keep) * tensor)
    return fresh


def _unit(tensor: torch.Tensor) -> torch.Tensor:
    return tensor / tensor.norm().clamp_min(1e-12)


def as_fresh_units(candidates: list[Candidate]) -> list[Candidate]:
    """``GrowConfig.new_units = "fresh"``: each split becomes as many new neurons of its group as it adds
    channels, with the default fan-in and a zero fan-out (and the split's score); the rest stay."""
    fresh = []
    for candidate in candidates:
        if candidate.kind != "split":
            fresh.append(candidate)
            continue
        share = candidate.predicted_decrease / candidate.channels_added
        fresh.extend(Candidate("new", candidate.group, share) for _ in range(candidate.channels_added))
    return fresh


def on_shrunk_network(candidates: list[Candidate], model: nn.Module, factor: float) -> list[Candidate]:
    """``candidates``, proposed on ``model`` as it is, as edits of the network that
    ``shrink_convolutions(model, factor)`` leaves: every tensor a candidate writes into a convolution (fan-in
    rows, fan-out columns, depthwise filters, a split's fan-in perturbations) scaled by ``factor`` like the
    weights beside it. A new unit then keeps the size relative to the existing ones that its method
    chose (TINY's fan-in at the producer's mean row norm and its line-searched fan-out amplitude,
    Firefly's trained directions); unscaled, a shrink of 0.5 doubled it. Fresh neurons (default fan-in,
    zero fan-out) and inserted layers are new and stay as they are."""
    if factor == 1.0:
        return candidates
    convolutions = {name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)}

    def scaled(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {layer: tensor * factor if layer in convolutions else tensor for layer, tensor in tensors.items()}

    return [replace(candidate, fan_in=scaled(candidate.fan_in), fan_out=scaled(candidate.fan_out),
                    passthrough=scaled(candidate.passthrough), directions=scaled(candidate.directions))
            if candidate.kind in ("new", "split") else candidate for candidate in candidates]


def deepened_report(model: nn.Module, after: str, kind: str | None, costs: CostCache,
                    example: torch.Tensor) -> CostReport:
    """The predicted cost of ``model`` with the block ``deepen`` would insert after layer ``after``: the
    block's layers spliced into the traced model (``KernelCostModel.report_with_modules_after``, no
    tracing); a layer the trace cannot single out (no node of its own) is priced by inserting the block
    for the call and tracing again, the same figures and slower. ``example`` (one example) calibrates it."""
    cost_model = costs(model)
    try:
        layers = block_layers(model, after, cost_model.output_shape_of(after), kind=kind)
        return cost_model.report_with_modules_after(after, layers)
    except ValueError:
        with block_inserted(model, after, example, kind=kind):
            return costs.report(model)


def selection_report(model: nn.Module, candidates: list[Candidate], cost_model: KernelCostModel,
                     groups: dict[str, ChannelGroup]) -> CostReport:
    """The predicted cost of ``model`` after ``apply_candidates(model, candidates)``, on its traced cost
    model alone: each group widened by the channels its candidates add, and each block candidate's
    layers spliced in after its layer (``KernelCostModel.with_modules_after``, then ``widened_report``).

    Raises:
        ValueError: a candidate of a group not in ``groups``, or a block the traced graph cannot place.
    """
    growth: dict[tuple[str, ...], int] = defaultdict(int)
    blocks = []
    for candidate in candidates:
        if candidate.kind == "layer":
            after = candidate.group
            shape = cost_model.output_shape_of(after)
            blocks.append((after, block_layers(model, after, shape, kind=candidate.layer_kind)))
        elif candidate.group in groups:
            growth[tuple(slot.layer for slot in groups[candidate.group].producers)] += candidate.channels_added
        else:
            raise ValueError(f"candidate names channel group `{candidate.group}`, which this model does not have")
    return (cost_model.with_modules_after(blocks) if blocks else cost_model).widened_report(dict(growth))


def grow_step(model: nn.Module, task: TaskData, example: torch.Tensor, budget: Budget, costs: CostCache,
              config: GrowConfig, event: int, events: int, usage_cap: float, loss_fn,
              optimizer: torch.optim.Optimizer) -> StepResult:
    """Growth event ``event`` of ``events``: propose, select under ``usage_cap`` of the budget, shrink, apply."""
    cost_model = costs(model)
    _, usage = budget.binding(cost_model.report)
    device = model_device(model)
    example = example.to(device)
    batches = [(inputs.to(device), labels.to(device)) for inputs, labels in scoring_batches(task, config, event)]
    if not loss_is_finite(model, batches, loss_fn):  # NaN statistics would break a method's solver (TINY's SVD)
        return StepResult(stopped_by="the loss on the scoring batches is NaN or infinite")
    now = cost_model.report

    def cost_of_block(after: str, kind: str) -> dict[str, float]:
        deepened = deepened_report(model, after, kind, costs, batches[0][0][:1])
        return {m: metric_value(deepened, m) - metric_value(now, m) for m in budget.limits}

    seed = config.seed * 1_000_003 + event
    context = ProposalContext(config, example, batches, loss_fn, torch.Generator().manual_seed(seed), seed, event,
                              events, cost_of_block)
    candidates = growth_method(config.method).propose(model, context)
    if not candidates:
        return StepResult(stopped_by="no growable channel group has candidates")
    helpful = any(c.predicted_decrease > 0 for c in candidates)
    if not helpful and usage >= config.min_usage:
        return StepResult(scored=len(candidates), stopped_by="no candidate lowers the loss")
    # Helpful candidates first (most decrease per cost), then the least harmful (S2D's splitting-stable
    # neurons: a near-copy that training then differentiates). Whole vector blocks first; when no
    # group's next block fits, single channels finish the event's share.
    groups = {group.name: group for group in find_channel_groups(model, example)}
    chosen = []
    for channel_step in dict.fromkeys((costs.target.channel_step, 1)):
        chosen = select_candidates(model, example, candidates, cost_model, budget, usage_cap=usage_cap,
                                   allow_non_positive=True, channel_step=channel_step, groups=groups)
        if chosen:
            break
    if not chosen:
        return StepResult(scored=len(candidates))  # nothing fits this event's share; a later event may
    selection = fit_to_budget(model, batches[0][0], chosen, costs.report, budget, usage_cap=usage_cap,
                              price=lambda selected: selection_report(model, selected, cost_model, groups))
    if not selection.chosen:
        return StepResult(scored=len(candidates))
    applied = as_fresh_units(selection.chosen) if config.new_units == "fresh" else selection.chosen
    applied = on_shrunk_network(applied, model, config.shrink)
    shrink_convolutions(model, config.shrink)
    edits = apply_candidates(model, applied, batches[0][0], optimizer=optimizer)
    match_parameter_order(optimizer, model)
    return StepResult(applied, len(candidates), edits)
