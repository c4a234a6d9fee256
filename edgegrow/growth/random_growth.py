"""The random baselines of the seeds: random splitting and random new neurons, at equal budget.

The candidates carry a random ``predicted_decrease`` (uniform in (0, 1)), so the same cost-aware
selection that serves the real methods picks a random subset that spends the same budget. That
selection ranks by decrease per unit of cost, so the cheaper a group's neurons, the more of them it
takes. ``random-new`` proposes ``new_per_group`` neurons per group, the count TINY, ``auto`` and
Firefly propose, so a group cannot take more in one event. Until 2026-12-06 it proposed one per
channel of the group (``new_fraction`` = 1): in MobileNetV2 at the growth benchmark's image setting
(Cortex-M4F) the 1,280-channel head then held about half the candidates, its neurons as cheap as
the last blocks' (0.0064 ms against 0.0046–0.0060 ms, a tenth or less of the first blocks'), and
``random-new`` put 992 new neurons there (seed 0, 1,280 → 2,272 channels).

- ``random-split``: every neuron of every growable group may split in two (ω = ½, ½) along ±δ, δ a
  random direction with the norm of the neuron's fan-in row, moved by ``epsilon`` (relative).
- ``random-new``: per group, ``new_per_group`` new neurons (or ``ceil(new_fraction × width)``) with
  PyTorch's default fan-in and a zero fan-out (the function is kept; training gives them a use).
"""
from __future__ import annotations

import torch
from torch import nn

from ..argument_checks import check_positive_integer
from .candidates import Candidate, new_neuron_count
from .channel_groups import find_channel_groups, growable_groups
from .staged_edit import group_width

RANDOM_METHODS = ("random-split", "random-new")


def random_candidates(model: nn.Module, example_input: torch.Tensor, *, method: str = "random-split",
                      epsilon: float = 0.1, new_per_group: int | None = None, new_fraction: float = 1.0,
                      generator: torch.Generator | None = None) -> list[Candidate]:
    """Random split or new-neuron candidates for every growable group: for ``random-new``,
    ``new_per_group`` per group, or ``ceil(new_fraction × width)`` when ``new_per_group`` is None."""
    if method not in RANDOM_METHODS:
        raise ValueError(f"unknown random method {method!r}; choose one of {', '.join(RANDOM_METHODS)}")
    if new_per_group is not None:
        check_positive_integer("new_per_group", new_per_group)
    generator = generator or torch.Generator().manual_seed(0)
    candidates = []
    for group in growable_groups(find_channel_groups(model, example_input)):
        width = group_width(model, group)
        if method == "random-new":
            for _ in range(max(1, new_neuron_count(width, new_per_group, new_fraction))):
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
