"""Split candidates of the splitting methods: S2D (exact), fast splitting and signed splitting.

Every neuron of every channel group with a curvature site (``curvature_sites``) becomes one
candidate. Directions are the unit eigenvectors scaled by the norm of the neuron's fan-in row, so
that ``epsilon`` is a *relative* perturbation (δ = ‖w‖·v, ε = 0.1 moves the row by 10 % of its
norm) and the predicted decrease is comparable across layers of different scale:

    predicted decrease = −ε²/2 · ‖w‖² · Q,   Q = λ_min (S2D) or the signed plan's Σ ω δᵀSδ.

- ``split``: exact S per neuron and ``eigh`` (the baseline of the fast method).
- ``fast-split``: λ_min and v_min by Rayleigh-quotient descent on S·v products (S never formed).
- ``signed-split``: λ_min and λ_max (fast), then ``signed_split_plan`` under Σ|ω| ≤ ``weight_bound``.

Neurons whose best split does not lower the loss are still returned (predicted decrease ≤ 0), so
that selection can tell "nothing helps" from "nothing fits".
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .candidates import Candidate
from .channel_groups import find_channel_groups, growable_groups
from .signed_split import signed_split_plan
from .splitting_matrix import (
    Batch,
    CurvatureSite,
    LossFn,
    curvature_sites,
    max_eigenpairs_fast,
    min_eigenpairs,
    min_eigenpairs_fast,
    splitting_matrices,
    with_activation_modules,
)

SplitMethod = Literal["split", "fast-split", "signed-split"]
SPLIT_METHODS = ("split", "fast-split", "signed-split")


def splitting_candidates(model: nn.Module, example_input: torch.Tensor, batches: list[Batch], loss_fn: LossFn, *,
                         method: SplitMethod = "fast-split", epsilon: float = 0.1, fast_steps: int = 30,
                         weight_bound: float = 2.0, seed: int = 0,
                         sites: dict[str, CurvatureSite] | None = None) -> list[Candidate]:
    """One split candidate per neuron of every group with a curvature site, scored by ``method``.

    ``sites``: the curvature sites when the caller has found them already, on ``model`` as given (which
    is then read as it is, without ``with_activation_modules``)."""
    if method not in SPLIT_METHODS:
        raise ValueError(f"unknown splitting method {method!r}; choose one of {', '.join(SPLIT_METHODS)}")
    if not batches:
        raise ValueError("no batches given to score the splits on")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
    if sites is None:
        model = with_activation_modules(model)  # F.relu(x) and the like read as modules (same layers, same names)
        sites = curvature_sites(model, growable_groups(find_channel_groups(model, example_input)))
    if not sites:
        return []
    if method == "split":
        lowest = min_eigenpairs(splitting_matrices(model, sites, batches, loss_fn))
        highest = None
    else:
        lowest = min_eigenpairs_fast(model, sites, batches, loss_fn, steps=fast_steps, seed=seed)
        highest = max_eigenpairs_fast(model, sites, batches, loss_fn, steps=fast_steps, seed=seed + 1) \
            if method == "signed-split" else None

    candidates = []
    for name, site in sites.items():
        weight = model.get_submodule(site.producer).weight.detach()
        shape = tuple(weight.shape[1:])
        norms = weight.flatten(1).norm(dim=1).double()
        for neuron in range(weight.shape[0]):
            scale = float(norms[neuron])
            v_min = lowest[name].vectors[neuron].double()
            if highest is None:
                weights, directions = (0.5, 0.5), torch.stack([v_min, -v_min])
                quadratic = float(lowest[name].values[neuron])
            else:
                plan = signed_split_plan(float(lowest[name].values[neuron]), v_min,
                                         float(highest[name].values[neuron]), highest[name].vectors[neuron].double(),
                                         weight_bound)
                if plan is None:
                    continue
                weights, directions, quadratic = plan.weights, plan.directions, plan.quadratic
            candidates.append(Candidate(
                kind="split", group=name, neuron=neuron, weights=tuple(float(w) for w in weights),
                directions={site.producer: (scale * directions).float().reshape(len(weights), *shape)},
                epsilon=epsilon, predicted_decrease=-0.5 * epsilon ** 2 * scale ** 2 * quadratic,
            ))
    return candidates
