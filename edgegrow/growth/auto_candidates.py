"""The ``auto`` growth method: candidates for every growable group, each from the best scorer it has.

Splitting (fast splitting, ALGORITHMS.md §2–3) needs a curvature site: one dense producer followed by
an activation module. TINY (§8) needs one dense producer and one pointwise consumer. A network of
one's own has groups with neither — a residual stream, the channels a squeeze-and-excitation gate
multiplies, two concatenated branches, MobileNetV2's linear bottlenecks, any activation written as a
function — and a method that scores only some groups never widens the others. ``auto`` gives each
group its candidates from, in this order:

1. ``split``: fast splitting, where the group has a curvature site;
2. ``tiny``: TINY's new neurons, where it has a TINY site (and no curvature site); the rest of the
   group's candidates are gradient-scored new neurons, so a bottleneck of low rank does not cap it;
3. ``gradient``: new neurons scored by their fan-out's gradient (``gradient_neurons``), everywhere else,
   and in a group whose own source predicts no decrease (every split splitting-stable, no bottleneck).

The three score in different units (a split's second-order decrease at ε; TINY's first-order decrease
at its line-searched amplitude; the gradient's at a neighbour-sized fan-out), and selection compares
decreases across groups. The gradient score exists for every group, so it is the common currency:
each other source's decreases are multiplied by the median, over the groups it scored, of the ratio
of the group's best gradient decrease to the group's best decrease from that source. The ranking
within a source is kept; only its scale is set. ``AutoProposal.scales`` records the factors.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from .candidates import Candidate
from .channel_groups import find_channel_groups, growable_groups
from .gradient_neurons import new_neuron_gradients
from .splitting_candidates import splitting_candidates
from .splitting_matrix import Batch, LossFn, curvature_sites, with_activation_modules
from .staged_edit import group_width
from .tiny import tiny_neurons, tiny_sites

@dataclass
class AutoProposal:
    """The candidates, the source each group's came from, and each source's factor to gradient units."""

    candidates: list[Candidate]
    source_of: dict[str, str]
    scales: dict[str, float] = field(default_factory=dict)


def _best(candidates: list[Candidate]) -> dict[str, float]:
    best: dict[str, float] = {}
    for candidate in candidates:
        best[candidate.group] = max(best.get(candidate.group, float("-inf")), candidate.predicted_decrease)
    return best


def _scale(source: list[Candidate], currency: dict[str, float]) -> float:
    """Median over groups of (best gradient decrease / best decrease of ``source``), both positive; 1 if none."""
    ratios = [currency[group] / value for group, value in _best(source).items()
              if value > 0 and currency.get(group, 0.0) > 0]
    return statistics.median(ratios) if ratios else 1.0


def auto_candidates(model: nn.Module, example_input: torch.Tensor, batches: list[Batch], loss_fn: LossFn, *,
                    epsilon: float = 0.1, fast_steps: int = 30, count: int = 16, seed: int = 0) -> AutoProposal:
    """Candidates for every growable group of ``model`` (see the module docstring); ``count`` is the
    number of new neurons scored per group (at least the group's width for gradient-scored groups)."""
    if not batches:
        raise ValueError("no batches given to score the candidates on")
    groups = growable_groups(find_channel_groups(model, example_input))
    view = with_activation_modules(model)  # functional activations read as modules, the same layers
    curvature = curvature_sites(view, groups)
    sites = tiny_sites(model, [g for g in groups if g.name not in curvature])
    source_of = {g.name: "split" if g.name in curvature else "tiny" if g.name in sites else "gradient" for g in groups}

    counts = {g.name: max(count, group_width(model, g)) for g in groups}
    gradient = new_neuron_gradients(model, groups, counts, batches, loss_fn, torch.Generator().manual_seed(seed))
    currency = _best([c for found in gradient.values() for c in found])

    by_source: dict[str, list[Candidate]] = defaultdict(list)
    if curvature:
        by_source["split"] = splitting_candidates(view, example_input, batches, loss_fn, method="fast-split",
                                                  epsilon=epsilon, fast_steps=fast_steps, seed=seed, sites=curvature)
    by_group = {g.name: g for g in groups}
    for name, site in sites.items():
        by_source["tiny"].extend(tiny_neurons(model, site, by_group[name], batches, loss_fn, count))
    scales = {source: _scale(found, currency) for source, found in by_source.items()}
    scales["gradient"] = 1.0

    candidates = []
    helped = set()  # groups whose own source found a candidate that lowers the loss
    for source, found in by_source.items():
        for candidate in found:
            candidates.append(replace(candidate, predicted_decrease=candidate.predicted_decrease * scales[source]))
            if candidate.predicted_decrease > 0:
                helped.add(candidate.group)
    for group in groups:
        if source_of[group.name] == "split" and group.name in helped:
            continue
        if group.name not in helped:
            # its own source found nothing that lowers the loss (splitting-stable, no bottleneck to fill)
            source_of[group.name] = "gradient"
        candidates.extend(gradient.get(group.name, []))  # a TINY group's rest, or the group's own candidates
    return AutoProposal(candidates, source_of, scales)
