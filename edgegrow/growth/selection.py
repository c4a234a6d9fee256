"""Cost-aware selection: keep the candidates with the most predicted loss decrease per unit of cost.

This is the energy-aware knapsack of fast splitting (Wang et al. 2019): choose β_i ∈ {0, 1} to
maximise Σ β_i d_i (d_i: predicted decrease) subject to Σ β_i c_i ≤ room. Its LP relaxation is
solved exactly by taking candidates in order of d_i / c_i; keeping the ones the LP takes whole
(β = 1) is the paper's rounding. Here the cost of a candidate is read from the target's cost model:

- the cost of ``k`` more channels in a group, for the ratio, is ``KernelCostModel`` read at the new
  shapes (the latency table at the new width, so the staircase shows) minus that of the group as it
  is; groups grow in whole vector blocks of the target (``Target.channel_step``), bundling their best
  candidates;
- whether a bundle fits is read at the joint widths of every group chosen so far
  (``KernelCostModel.widened_report``, no tracing): a pointwise conv between two grown groups costs
  more than the sum of the two groups' steps, and the SRAM arena is a peak, not a sum — on TFLite
  Micro's greedy planner uneven widths fragment it, so two groups' steps together can cost less
  than each alone says (summing them stopped a DS-CNN at 91 % of a Cortex-M4F arena);
- with several budgets a candidate's cost is its largest share of any limit, max_m Δ_m / limit_m
  (the usual scalarisation of a multi-dimensional knapsack), and every limit is checked;
- a layer candidate's cost is priced by its method (``Candidate.layer_cost``).

``fit_to_budget`` drops the last-chosen candidates until every limit holds on the grown model, and
confirms the selection it keeps by applying it to a copy and estimating the copy by tracing it: the
guarantee, whatever a method's own prices of inserted layers said. Given a ``price`` (the grow
loop's ``selection_report``: groups widened and blocks spliced into the traced graph, the same
figures), the selections it drops on the way cost no copy.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cost_models import CostReport, KernelCostModel

from ..argument_checks import check_positive_integer
from .budget import Budget, metric_value
from .candidates import Candidate, apply_candidates
from .channel_groups import ChannelGroup, find_channel_groups
from .staged_edit import group_width


@dataclass
class Selection:
    """The chosen candidates (in the order they were taken) and the predicted cost after applying them."""

    chosen: list[Candidate]
    report: CostReport | None = None
    dropped_to_fit: int = 0


def select_candidates(model: nn.Module, example_input: torch.Tensor, candidates: list[Candidate],
                      cost_model: KernelCostModel, budget: Budget, *, usage_cap: float = 1.0,
                      allow_non_positive: bool = False, channel_step: int = 1,
                      groups: dict[str, ChannelGroup] | None = None) -> list[Candidate]:
    """Greedy by decrease per cost under every limit × ``usage_cap`` (the step's share of the budget).

    A group grows by bundles of candidates that bring its width to the next multiple of
    ``channel_step`` (the target's vector width, ``Target.channel_step``): off-step widths are slow
    on most runtimes, and pricing a whole step keeps the channels under a step of the latency
    staircase from looking free. A bundle takes the group's best candidates; its gain is their sum.
    Candidates with predicted decrease ≤ 0 complete a bundle, and are taken on their own only with
    ``allow_non_positive`` (spending a budget when nothing is predicted to help), least harmful first.
    ``groups``: the model's channel groups by name, if the caller has them (else they are traced).
    """
    if not 0 < usage_cap <= 1:
        raise ValueError(f"usage_cap must be in (0, 1], got {usage_cap!r}")
    check_positive_integer("channel_step", channel_step)
    metrics = list(budget.limits)
    current = {m: metric_value(cost_model.report, m) for m in metrics}
    caps = {m: usage_cap * limit for m, limit in budget.limits.items()}
    groups = groups if groups is not None else {g.name: g for g in find_channel_groups(model, example_input)}
    cached: dict[frozenset, dict[str, float]] = {}

    def widened(growth: dict[str, int]) -> dict[str, float]:
        """Every metric after adding growth[group] channels to each group at once, exactly: the kernels
        between two grown groups and a peak (SRAM) that is not a sum are priced at the joint widths."""
        key = frozenset((group, channels) for group, channels in growth.items() if channels)
        if not key:
            return current
        if key not in cached:
            report = cost_model.widened_report({tuple(s.layer for s in groups[group].producers): channels
                                                for group, channels in key})
            cached[key] = {m: metric_value(report, m) for m in metrics}
        return cached[key]

    queues: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        key = candidate.group if candidate.kind != "layer" else f"layer:{id(candidate)}"
        queues[key].append(candidate)
    for queue in queues.values():
        queue.sort(key=lambda c: c.predicted_decrease, reverse=True)
    width = {name: group_width(model, groups[name]) for name in queues if name in groups}
    taken: dict[str, int] = defaultdict(int)  # channels chosen per group so far
    layers_spent = dict.fromkeys(metrics, 0.0)  # inserted layers, priced by their method, add up
    chosen: list[Candidate] = []
    while queues:
        options = []  # (ratio, key, bundle, increase, channels) of each queue's next bundle
        for key, queue in list(queues.items()):
            if queue[0].kind == "layer":
                bundle, added = queue[:1], 0
                increase = {m: float(queue[0].layer_cost.get(m, 0.0)) for m in metrics}
            else:
                bundle, added = [], 0
                goal = -(-(width[key] + taken[key] + 1) // channel_step) * channel_step - width[key] - taken[key]
                for candidate in queue:
                    if added >= goal:
                        break
                    bundle.append(candidate)
                    added += candidate.channels_added
                # the ratio's price: the group's own step (cached per group, so a round prices one new step)
                before, after = widened({key: taken[key]}), widened({key: taken[key] + added})
                increase = {m: after[m] - before[m] for m in metrics}
            if bundle[0].predicted_decrease <= 0 and not allow_non_positive:
                del queues[key]
                continue
            gain = sum(c.predicted_decrease for c in bundle)
            share = max(max(increase[m] / budget.limits[m] for m in metrics), 1e-9)
            ratio = gain / share if gain > 0 else gain * share  # non-positive: least harm per cost first
            options.append((ratio, key, bundle, increase, added))
        now = widened(taken)
        for _, key, bundle, increase, added in sorted(options, key=lambda option: option[0], reverse=True):
            # the fit: every limit at the joint widths (and the inserted layers' own prices)
            joint = {m: now[m] + increase[m] for m in metrics} if bundle[0].kind == "layer" else \
                widened({**taken, key: taken[key] + added})
            if any(joint[m] + layers_spent[m] > caps[m] for m in metrics):
                del queues[key]  # the group's next step does not fit in this growth step
                continue
            del queues[key][:len(bundle)]
            if not queues[key]:
                del queues[key]
            chosen.extend(bundle)
            if bundle[0].kind == "layer":
                for m in metrics:
                    layers_spent[m] += increase[m]
            else:
                taken[key] += added
            break
        else:
            break  # no queue's next step fits
    return chosen


def fit_to_budget(model: nn.Module, example_batch: torch.Tensor, chosen: list[Candidate],
                  estimate_grown: Callable[[nn.Module], CostReport], budget: Budget, *,
                  usage_cap: float = 1.0, drop_fraction: float = 0.1,
                  price: Callable[[list[Candidate]], CostReport] | None = None) -> Selection:
    """Apply ``chosen`` to a copy, estimate it, and drop the last-chosen ``drop_fraction`` until
    every limit × ``usage_cap`` holds. ``example_batch`` calibrates inserted layers (its first example
    does: the copy is only priced, and a price depends on shapes alone).

    ``price``, if given, prices a selection without applying it (the grow loop's
    ``selection_report``, the same figures as the copy's estimate): the selections it finds over a
    limit are dropped without a copy, and the first it finds within them is applied to a copy and
    estimated to confirm. Where it raises ValueError, or a confirmation disagrees, the copy decides,
    from there on."""
    chosen = list(chosen)
    dropped = 0
    while chosen:
        report = None
        if price is not None:
            try:
                report = price(chosen)
            except ValueError:
                price = None
        if report is None or _within(report, budget, usage_cap):
            trial = copy.deepcopy(model)
            with torch.random.fork_rng(devices=[]):  # a priced copy: its fillers' draws must not move training's stream
                apply_candidates(trial, chosen, example_batch[:1])
            report, priced = estimate_grown(trial), report
            if _within(report, budget, usage_cap):
                return Selection(chosen, report, dropped)
            price = None if priced is not None else price  # it said "fits" where the copy does not
        cut = max(1, int(len(chosen) * drop_fraction))
        chosen, dropped = chosen[:-cut], dropped + cut
    return Selection([], None, dropped)


def _within(report: CostReport, budget: Budget, usage_cap: float) -> bool:
    return all(metric_value(report, m) <= usage_cap * limit for m, limit in budget.limits.items())
