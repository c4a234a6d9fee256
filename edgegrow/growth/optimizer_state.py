"""Carry optimizer state across a growth step so that training resumes without a jolt.

A grown parameter is a new ``nn.Parameter`` object. Its state (SGD momentum, Adam's first and
second moments) is the old state re-indexed along the grown axis: entries that existed keep
theirs, new entries start at zero. Per-parameter scalars (Adam's step) are kept. Parameters a
growth step creates join the optimizer with empty state, i.e. zero moments.
"""
from __future__ import annotations

import torch
from torch import nn


def _reindex(value, old: nn.Parameter, dim: int, sources: list[int]):
    if not torch.is_tensor(value) or value.shape != old.shape:
        return value  # scalars such as Adam's step
    index = torch.tensor([max(s, 0) for s in sources], device=value.device)
    keep = torch.tensor([s >= 0 for s in sources], dtype=value.dtype, device=value.device)
    view = [1] * value.dim()
    view[dim] = len(sources)
    return value.index_select(dim, index) * keep.view(view)


def replace_parameters(
    optimizer: torch.optim.Optimizer,
    replaced: list[tuple[nn.Parameter, nn.Parameter, int, list[int]]],
) -> None:
    """Swap each (old, new, axis, sources) parameter in ``optimizer`` and re-index its state.

    ``sources[j]`` is the old index whose state entry ``j`` of the new parameter keeps along
    ``axis``, or -1 for zero state.
    """
    for old, new, dim, sources in replaced:
        for group in optimizer.param_groups:
            group["params"] = [new if p is old else p for p in group["params"]]
        if old in optimizer.state:
            state = optimizer.state.pop(old)
            optimizer.state[new] = {key: _reindex(value, old, dim, sources) for key, value in state.items()}


def add_parameters(optimizer: torch.optim.Optimizer, params: list[nn.Parameter],
                   like: nn.Parameter | None = None) -> None:
    """Register new parameters in the param group of ``like`` (the first group if None or absent)."""
    target = optimizer.param_groups[0]
    if like is not None:
        target = next((g for g in optimizer.param_groups if any(p is like for p in g["params"])), target)
    target["params"].extend(params)
