"""The random baselines of the seeds: random splitting and random new neurons, at equal budget.

The candidates carry a random ``predicted_decrease`` (uniform in (0, 1)), so the same cost-aware
selection that serves the real methods picks a random subset that spends the same budget. That
selection ranks by decrease per unit of cost, and a group has as many candidates as it has
channels (``new_fraction`` × width), so the subset is not spread evenly over the groups: the
cheaper a group's neurons and the wider the group, the more of them it takes. In MobileNetV2 at
the growth benchmark's image setting (Cortex-M4F) the 1,280-channel head's neurons cost
0.0064 ms each, as little as the last blocks' (0.0046–0.0060 ms) and a tenth or less of the first
blocks', and the head holds about half the candidates: ``random-new`` put 992 of its new neurons
there (seed 0, 1,280 → 2,272 channels).

- ``random-split``: every neuron of every growable group may split in two (ω = ½, ½) along ±δ, δ a
  random direction with the norm of the neuron's fan-in row, moved by ``epsilon`` (relative).
- ``random-new``: per group, ``new_per_group`` new neurons with PyTorch's default fan-in and a zero
  fan-out (the function is kept; training gives them a use).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .candidates import Candidate
from .channel_groups import find_channel_groups, growable_groups
from .staged_edit import group_width

RANDOM_METHODS = ("random-split", "random-new")


def random_candidates(model: nn.Module, example_input: torch.Tensor, *, method: str = "random-split",
                      epsilon: float = 0.1, new_fraction: float = 1.0,
                      generator: torch.Generator | None = None) -> list[Candidate]:
    """Random split or new-neuron candidates for every growable group."""
    if method not in RANDOM_METHODS:
        raise ValueError(f"unknown random method {method!r}; choose one of {', '.join(RANDOM_METHODS)}")
    generator = generator or torch.Generator().manual_seed(0)
    candidates = []
    for group in growable_groups(find_channel_groups(model, example_input)):
        width = group_width(model, group)
        if method == "random-new":
            for _ in range(max(1, math.ceil(new_fraction * width))):
                score = float(torch.rand((), generator=generator, device="cpu"))
                candidates.append(Candidate(kind="new", group=group.name, predicted_decrease=score))
            continue
        for neuron in range(width):
            directions = {}
            for slot in group.producers:
                row = model.get_submodule(slot.layer).weight.detach()[neuron]
                delta = torch.randn(row.shape, generator=generator, device="cpu").to(row)
                delta = delta / delta.norm() * row.norm()
                directions[slot.layer] = torch.stack([delta, -delta])
            score = float(torch.rand((), generator=generator, device="cpu"))
            candidates.append(Candidate(kind="split", group=group.name, neuron=neuron, directions=directions,
                                        epsilon=epsilon, predicted_decrease=score))
    return candidates
