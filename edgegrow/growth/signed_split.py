"""The optimal signed split of a neuron (S3D) from the two ends of its splitting matrix's spectrum.

Offspring ``j`` gets output weight ``ω_j`` and fan-in ``w + ε δ_j``. Constraints: ``Σ ω_j = 1``
(the function is kept at ε = 0), ``Σ ω_j δ_j = 0`` (no first-order change), ``‖δ_j‖ ≤ 1`` and the
bound ``Σ |ω_j| ≤ c`` (``weight_bound``, c ≥ 1). The loss changes by ``ε²/2 · Q`` with
``Q = Σ_j ω_j δ_jᵀ S δ_j``.

Derivation. Write P = Σ of the positive weights and N = Σ |negative weights|; then P − N = 1 and
P + N ≤ c, so P ≤ (1+c)/2 and N ≤ (c−1)/2. A positive offspring contributes at least
ω_j·min(λ_min, 0) and a negative one at least −|ω_j|·max(λ_max, 0), hence

    Q ≥ P·min(λ_min, 0) − N·max(λ_max, 0) ≥ (1+c)/2 · min(λ_min, 0) − (c−1)/2 · max(λ_max, 0).

The bound is reached by four offspring, (P/2, ±v_min) and (−N/2, ±v_max), whose directions cancel
in pairs; when only one end helps, three suffice (the other side's weight on δ = 0); with c = 1
it is S2D's (½, ½, ±v_min). Reaching the bound needs both pairs because v_min ⟂ v_max.

With fewer offspring: two — S2D's λ_min, or (−N, v_max), (P, (N/P)·v_max) giving −(N/P)·λ_max;
three — either end alone as above, or both at once with (P/2, ±u + (N/P)·v_max), (−N, v_max),
u ⟂ v_max of norm √(1 − (N/P)²), giving (c/P)·λ_min − (N/P)·λ_max (a numerical search over all
three-offspring splits found nothing better; tests/growth/test_signed_split.py).
``signed_split_plan`` returns the plan with the largest decrease per added channel among 2, 3 and
4 offspring (at most ``max_offspring``), which is what a cost-aware selection compares.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)  # tensors do not compare with ==
class SplitPlan:
    """Offspring weights (k,), unit-or-shorter directions (k, D) and Q = Σ ω_j δ_jᵀ S δ_j (< 0 lowers the loss)."""

    weights: tuple[float, ...]
    directions: torch.Tensor
    quadratic: float

    @property
    def channels_added(self) -> int:
        return len(self.weights) - 1


def _check_bound(weight_bound: float) -> tuple[float, float]:
    if not weight_bound >= 1:
        raise ValueError(f"weight_bound (Σ|ω| of the offspring) must be >= 1, got {weight_bound!r}")
    return (1 + weight_bound) / 2, (weight_bound - 1) / 2


def signed_split_options(lambda_min: float, v_min: torch.Tensor, lambda_max: float, v_max: torch.Tensor,
                         weight_bound: float = 2.0) -> list[SplitPlan]:
    """Every plan of the derivation above that lowers the loss (Q < 0), with 2, 3 or 4 offspring."""
    positive, negative = _check_bound(weight_bound)
    # eigenvalues within rounding of zero (a semidefinite S from eigh) count as zero
    tolerance = 1e-12 * max(abs(float(lambda_min)), abs(float(lambda_max)), 1e-300)
    low = min(float(lambda_min), 0.0) if float(lambda_min) < -tolerance else 0.0
    high = max(float(lambda_max), 0.0) if float(lambda_max) > tolerance else 0.0
    v_min, v_max = v_min / v_min.norm(), v_max / v_max.norm()
    zero = torch.zeros_like(v_min)
    plans = []
    if low < 0:
        plans.append(SplitPlan((0.5, 0.5), torch.stack([v_min, -v_min]), low))
    if high > 0 and negative > 0:
        plans.append(SplitPlan((-negative, positive), torch.stack([v_max, (negative / positive) * v_max]),
                               -negative / positive * high))
    if negative > 0 and low < 0:
        plans.append(SplitPlan((positive / 2, positive / 2, -negative), torch.stack([v_min, -v_min, zero]),
                               positive * low))
    if negative > 0 and high > 0:
        plans.append(SplitPlan((positive, -negative / 2, -negative / 2), torch.stack([zero, v_max, -v_max]),
                               -negative * high))
    if negative > 0 and low < 0 and high > 0:
        # three offspring using both ends: (P/2, ±u + (N/P)·v_max) and (−N, v_max), u ⟂ v_max of norm
        # √(1 − (N/P)²): Q = (c/P)·λ_min − (N/P)·λ_max
        shift = (negative / positive) * v_max
        across = v_min - (v_min @ v_max) * v_max
        spread = (1 - (negative / positive) ** 2) ** 0.5 * across / across.norm()
        plans.append(SplitPlan((positive / 2, positive / 2, -negative),
                               torch.stack([spread + shift, -spread + shift, v_max]),
                               weight_bound / positive * low - negative / positive * high))
        plans.append(SplitPlan((positive / 2, positive / 2, -negative / 2, -negative / 2),
                               torch.stack([v_min, -v_min, v_max, -v_max]), positive * low - negative * high))
    return plans


def signed_split_plan(lambda_min: float, v_min: torch.Tensor, lambda_max: float, v_max: torch.Tensor,
                      weight_bound: float = 2.0, max_offspring: int = 4) -> SplitPlan | None:
    """The plan with the largest loss decrease per added channel (ties: fewer offspring), or None
    when no split lowers the loss (S = 0, or λ_min ≥ 0 with c = 1)."""
    if max_offspring < 2:
        raise ValueError(f"max_offspring must be at least 2, got {max_offspring}")
    options = [plan for plan in signed_split_options(lambda_min, v_min, lambda_max, v_max, weight_bound)
               if len(plan.weights) <= max_offspring]
    if not options:
        return None
    return min(options, key=lambda plan: (plan.quadratic / plan.channels_added, len(plan.weights)))


def splitting_bound(lambda_min: float, lambda_max: float, weight_bound: float) -> float:
    """The lowest Q any split (any number of offspring) can reach under the constraints."""
    positive, negative = _check_bound(weight_bound)
    return positive * min(float(lambda_min), 0.0) - negative * max(float(lambda_max), 0.0)
