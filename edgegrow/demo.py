"""The embedded default job: grow a seed DS-CNN a few steps by simple splitting.

No data and no training yet: each step splits, in every growable channel group, the neurons
with the largest fan-in norm into two halves (ω = ½, ½, ε = 0, as Net2Net widens). This shows
the growth core end to end on a real model: widths and MACs grow while the network's function
stays the same (the report gives the largest output change, which should be ~1e-7).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cost_models import count_macs

from .growth import find_channel_groups, group_width, growable_groups, split_neurons
from .models import ds_cnn_seed, example_input


@dataclass
class GrowthSnapshot:
    widths: dict[str, int]
    macs: int
    parameters: int


@dataclass
class DemoResult:
    before: GrowthSnapshot
    after: GrowthSnapshot
    steps: int
    max_output_change: float


def _snapshot(model: torch.nn.Module, x: torch.Tensor) -> GrowthSnapshot:
    groups = growable_groups(find_channel_groups(model, x))
    report = count_macs(model, x)
    return GrowthSnapshot({g.name: group_width(model, g) for g in groups}, report.total, report.parameters)


def largest_fan_in_neurons(model: torch.nn.Module, group, count: int) -> list[int]:
    """Indices of the ``count`` neurons whose fan-in (summed over producers) has the largest norm."""
    norms = sum(model.get_submodule(s.layer).weight.detach().flatten(1).norm(dim=1) for s in group.producers)
    return norms.topk(count).indices.tolist()


def grow_seed_by_splitting(steps: int = 3, fraction: float = 0.5, seed: int = 0) -> DemoResult:
    """Split ``fraction`` of every growable group's neurons, ``steps`` times, on a seed DS-CNN."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    torch.manual_seed(seed)
    model = ds_cnn_seed().eval()
    x = example_input(model, 8)
    reference = model(x).detach()
    before = _snapshot(model, x)
    for _ in range(steps):
        for group in growable_groups(find_channel_groups(model, x)):
            count = max(1, math.ceil(fraction * group_width(model, group)))
            split_neurons(model, group, largest_fan_in_neurons(model, group, count))
    change = (model(x).detach() - reference).abs().max().item()
    return DemoResult(before, _snapshot(model, x), steps, change)
