"""Carry optimizer state across a growth step so that training resumes without a jolt.

A grown parameter is a new ``nn.Parameter`` object. Its state (SGD momentum, Adam's first and
second moments) is the old state re-indexed along the grown axis: entries that existed keep
theirs, new entries start at zero. Per-parameter scalars (Adam's step) are kept. Parameters a
growth step creates join the optimizer with empty state, i.e. zero moments.

A param group may set ``"newborn_state": "mean"``: new entries of a grown tensor then get the mean
second moment of its existing entries (Adam's ``exp_avg_sq``; first moments stay zero). Adam keeps
one step count per tensor, so a zero second moment in a tensor that has taken thousands of steps is
not bias-corrected: the new entry's normalised step is several times the learning rate until its
second moment catches up (hundreds of steps). The mean makes it step like its neighbours.
"""
from __future__ import annotations

import torch
from torch import nn

SECOND_MOMENTS = ("exp_avg_sq", "max_exp_avg_sq")  # Adam's, AdamW's (and amsgrad's) per-entry state
NEWBORN_STATES = ("zero", "mean")


def _reindex(value, old: nn.Parameter, dim: int, sources: list[int], fill_mean: bool = False):
    if not torch.is_tensor(value) or value.shape != old.shape:
        return value  # scalars such as Adam's step
    index = torch.tensor([max(s, 0) for s in sources], device=value.device)
    keep = torch.tensor([s >= 0 for s in sources], dtype=value.dtype, device=value.device)
    view = [1] * value.dim()
    view[dim] = len(sources)
    result = value.index_select(dim, index) * keep.view(view)
    if fill_mean and value.numel():
        result = result + value.mean() * (1 - keep).view(view)
    return result


def check_newborn_states(optimizer: torch.optim.Optimizer) -> None:
    """ValueError for a param group whose ``newborn_state`` is not one of NEWBORN_STATES (checked
    before an edit touches the model)."""
    for group in optimizer.param_groups:
        state = group.get("newborn_state", "zero")
        if state not in NEWBORN_STATES:
            raise ValueError(f"unknown newborn_state {state!r}; choose {', '.join(NEWBORN_STATES)}")


def _newborn_state(optimizer: torch.optim.Optimizer, parameter: nn.Parameter) -> str:
    for group in optimizer.param_groups:
        if any(p is parameter for p in group["params"]):
            return group.get("newborn_state", "zero")
    return "zero"


def replace_parameters(
    optimizer: torch.optim.Optimizer,
    replaced: list[tuple[nn.Parameter, nn.Parameter, int, list[int]]],
) -> None:
    """Swap each (old, new, axis, sources) parameter in ``optimizer`` and re-index its state.

    ``sources[j]`` is the old index whose state entry ``j`` of the new parameter keeps along
    ``axis``, or -1 for zero state.
    """
    for old, new, dim, sources in replaced:
        mean = _newborn_state(optimizer, old) == "mean"
        for group in optimizer.param_groups:
            group["params"] = [new if p is old else p for p in group["params"]]
        if old in optimizer.state:
            state = optimizer.state.pop(old)
            optimizer.state[new] = {key: _reindex(value, old, dim, sources, mean and key in SECOND_MOMENTS)
                                    for key, value in state.items()}


def add_parameters(optimizer: torch.optim.Optimizer, params: list[nn.Parameter],
                   like: nn.Parameter | None = None) -> None:
    """Register new parameters in the param group of ``like`` (the first group if None or absent)."""
    target = optimizer.param_groups[0]
    if like is not None:
        target = next((g for g in optimizer.param_groups if any(p is like for p in g["params"])), target)
    target["params"].extend(params)


def match_parameter_order(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """Order each param group's parameters as ``model.parameters()`` lists them. Growth appends the
    parameters of an inserted layer at the end of a group; after this, an optimizer built afresh over
    the model (``make_optimizer``) has the same order, so a saved ``state_dict`` loads into it."""
    position = {id(p): i for i, p in enumerate(model.parameters())}
    for group in optimizer.param_groups:
        missing = [p for p in group["params"] if id(p) not in position]
        if missing:
            raise ValueError(f"the optimizer holds {len(missing)} parameter(s) the model does not have")
        group["params"].sort(key=lambda p: position[id(p)])
