"""Signed splitting (S3D): every plan is a feasible split whose reported Q is Σ ω_j δ_jᵀ S δ_j, the best
plan reaches the lower bound and no feasible split (random or optimised) beats it, the special cases
(c = 1, S positive semidefinite, S = 0), the per-channel choice, and the loss change of a real network."""
import copy
import itertools

import numpy as np
import pytest
import scipy.optimize
import torch
import torch.nn.functional as F
from torch import nn

from edgegrow.growth import find_channel_groups, growable_groups, split_neurons
from edgegrow.growth.signed_split import signed_split_options, signed_split_plan, splitting_bound
from edgegrow.growth.splitting_matrix import curvature_sites, splitting_matrices

# Spectra of the test matrices: both ends of either sign, one end zero, and S = 0.
SPECTRA = {
    "indefinite": (-1.0, 0.4, 3.0),
    "mostly-negative": (-2.5, -0.3, 0.7),
    "positive-definite": (0.2, 1.0, 2.0),
    "positive-semidefinite": (0.0, 0.0, 1.5),
    "negative-definite": (-2.0, -1.0, -0.5),
    "negative-semidefinite": (-1.2, 0.0, 0.0),
}
WEIGHT_BOUNDS = (1.0, 1.5, 2.0, 4.0)


def symmetric_matrix(spectrum, seed=0):
    """Q diag(spectrum) Qᵀ with a random orthogonal Q (float64)."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(spectrum), len(spectrum), generator=generator, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ q.T


def spectrum_ends(matrix):
    """(λ_min, v_min, λ_max, v_max) by eigh. An exact zero eigenvalue comes back as ±1e-17; it is
    snapped to zero so that a semidefinite matrix stays semidefinite."""
    values, vectors = torch.linalg.eigh(matrix)
    values = torch.where(values.abs() <= 1e-12 * values.abs().max(), torch.zeros_like(values), values)
    return float(values[0]), vectors[:, 0], float(values[-1]), vectors[:, -1]


def same_plan(plan, other):
    """SplitPlan equality (its dataclass ``==`` compares tensors and raises)."""
    if plan is None or other is None:
        return plan is other
    return (plan.weights == other.weights and plan.quadratic == other.quadratic
            and torch.equal(plan.directions, other.directions))


def quadratic(matrix, weights, directions):
    """Σ_j ω_j δ_jᵀ S δ_j for weights (..., k) and directions (..., k, D)."""
    weights = torch.as_tensor(weights, dtype=torch.float64)
    return (weights * torch.einsum("...kd,de,...ke->...k", directions, matrix, directions)).sum(-1)


def assert_feasible(weights, directions, weight_bound, tol=1e-12):
    weights = torch.as_tensor(weights, dtype=torch.float64)
    assert float(weights.sum()) == pytest.approx(1.0, abs=tol)
    assert float((weights[:, None] * directions).sum(0).norm()) <= tol
    assert float(directions.norm(dim=1).max()) <= 1 + tol
    assert float(weights.abs().sum()) <= weight_bound + tol


@pytest.mark.parametrize("weight_bound", WEIGHT_BOUNDS)
@pytest.mark.parametrize("spectrum", SPECTRA)
def test_every_option_is_a_feasible_split_that_lowers_the_loss_by_its_reported_quadratic(spectrum, weight_bound):
    matrix = symmetric_matrix(SPECTRA[spectrum])
    options = signed_split_options(*spectrum_ends(matrix), weight_bound=weight_bound)
    for plan in options:
        assert plan.directions.shape == (len(plan.weights), 3)
        assert plan.channels_added == len(plan.weights) - 1
        assert_feasible(plan.weights, plan.directions, weight_bound)
        assert plan.quadratic < 0
        assert plan.quadratic == pytest.approx(float(quadratic(matrix, plan.weights, plan.directions)), rel=1e-10)
    plan = signed_split_plan(*spectrum_ends(matrix), weight_bound=weight_bound)
    assert (plan is None) == (not options)
    assert plan is None or any(same_plan(plan, option) for option in options)


@pytest.mark.parametrize("weight_bound", WEIGHT_BOUNDS)
@pytest.mark.parametrize("spectrum", SPECTRA)
def test_the_best_option_reaches_the_splitting_bound(spectrum, weight_bound):
    lambda_min, v_min, lambda_max, v_max = spectrum_ends(symmetric_matrix(SPECTRA[spectrum]))
    bound = splitting_bound(lambda_min, lambda_max, weight_bound)
    options = signed_split_options(lambda_min, v_min, lambda_max, v_max, weight_bound)
    if not options:  # λ_min ≥ 0 and c = 1: nothing lowers the loss
        assert bound == 0
        return
    assert min(plan.quadratic for plan in options) == pytest.approx(bound, rel=1e-12)
    if lambda_min < 0 < lambda_max and weight_bound > 1:  # both ends help: it takes all four offspring
        best = min(options, key=lambda plan: plan.quadratic)
        assert len(best.weights) == 4
        positive, negative = (1 + weight_bound) / 2, (weight_bound - 1) / 2
        assert best.quadratic == pytest.approx(positive * lambda_min - negative * lambda_max, rel=1e-12)


def random_feasible_splits(count, offspring, dimension, weight_bound, generator):
    """``count`` random splits into ``offspring`` children: Σω = 1, Σ|ω| ≤ c, Σ ω_j δ_j = 0, max ‖δ_j‖ = 1."""
    signs = torch.where(torch.rand(count, offspring, generator=generator) < 0.5, -1.0, 1.0).double()
    signs[:, 0] = 1.0  # at least one positive weight
    magnitudes = torch.rand(count, offspring, generator=generator, dtype=torch.float64) + 1e-3
    positive_mass, negative_mass = (magnitudes * (signs > 0)), (magnitudes * (signs < 0))
    has_negative = negative_mass.sum(1, keepdim=True) > 0
    # N uniform in [0, (c−1)/2], P = 1 + N: Σω = P − N = 1 and Σ|ω| = 1 + 2N ≤ c
    negative_total = torch.rand(count, 1, generator=generator, dtype=torch.float64) * (weight_bound - 1) / 2
    negative_total = torch.where(has_negative, negative_total, torch.zeros_like(negative_total))
    weights = (positive_mass / positive_mass.sum(1, keepdim=True) * (1 + negative_total)
               - negative_mass / negative_mass.sum(1, keepdim=True).clamp_min(1e-300) * negative_total)
    directions = torch.randn(count, offspring, dimension, generator=generator, dtype=torch.float64)
    directions = directions - (weights[..., None] * directions).sum(1, keepdim=True)  # Σω = 1 ⇒ Σ ω_j δ_j = 0
    directions = directions / directions.norm(dim=2).amax(1)[:, None, None]
    return weights, directions


@pytest.mark.parametrize("weight_bound", (1.0, 2.0, 3.0))
@pytest.mark.parametrize("spectrum", ["indefinite", "positive-definite", "negative-definite"])
def test_no_random_feasible_split_beats_the_bound(spectrum, weight_bound):
    matrix = symmetric_matrix(SPECTRA[spectrum], seed=1)
    lambda_min, _, lambda_max, _ = spectrum_ends(matrix)
    bound = splitting_bound(lambda_min, lambda_max, weight_bound)
    generator = torch.Generator().manual_seed(2)
    for offspring in range(2, 7):
        weights, directions = random_feasible_splits(4000, offspring, 3, weight_bound, generator)
        assert torch.allclose(weights.sum(1), torch.ones(4000, dtype=torch.float64))
        assert float(weights.abs().sum(1).max()) <= weight_bound + 1e-12
        assert float((weights[..., None] * directions).sum(1).norm(dim=1).max()) < 1e-12
        assert float(directions.norm(dim=2).max()) <= 1 + 1e-12
        values = quadratic(matrix, weights, directions)
        assert float(values.min()) >= bound - 1e-9, (offspring, float(values.min()), bound)


def optimised_split(matrix, offspring, weight_bound, signs, start):
    """SLSQP minimisation of Q over splits into ``offspring`` children whose weights have the given
    signs (which makes Σ|ω| ≤ c linear), from ``start``; returns (Q, largest constraint violation)."""
    k, dimension = offspring, matrix.shape[0]
    s = np.asarray(signs, dtype=float)
    zeros = np.zeros((k, k * dimension))

    def unpack(x):
        return x[:k], x[k:].reshape(k, dimension)

    def objective(x):
        weights, directions = unpack(x)
        applied = directions @ matrix
        value = float((weights * (applied * directions).sum(1)).sum())
        return value, np.concatenate([(applied * directions).sum(1), (2 * weights[:, None] * applied).ravel()])

    def mean_jacobian(x):  # ∂(Σ ω_j δ_j)/∂(ω, δ)
        weights, directions = unpack(x)
        return np.hstack([directions.T, np.kron(weights[None], np.eye(dimension))])

    def norm_jacobian(x):  # ∂(1 − ‖δ_j‖²)/∂(ω, δ)
        _, directions = unpack(x)
        block = np.zeros((k, k * dimension))
        for j in range(k):
            block[j, j * dimension:(j + 1) * dimension] = -2 * directions[j]
        return np.hstack([np.zeros((k, k)), block])

    constraints = [
        {"type": "eq", "fun": lambda x: unpack(x)[0].sum() - 1,
         "jac": lambda x: np.concatenate([np.ones(k), np.zeros(k * dimension)])},
        {"type": "eq", "fun": lambda x: (unpack(x)[0][:, None] * unpack(x)[1]).sum(0), "jac": mean_jacobian},
        {"type": "ineq", "fun": lambda x: 1 - (unpack(x)[1] ** 2).sum(1), "jac": norm_jacobian},
        {"type": "ineq", "fun": lambda x: s * unpack(x)[0], "jac": lambda x: np.hstack([np.diag(s), zeros])},
        {"type": "ineq", "fun": lambda x: weight_bound - (s * unpack(x)[0]).sum(),
         "jac": lambda x: np.concatenate([-s, np.zeros(k * dimension)])},
    ]
    result = scipy.optimize.minimize(objective, start, jac=True, method="SLSQP", constraints=constraints,
                                     options={"maxiter": 300, "ftol": 1e-12})
    weights, directions = unpack(result.x)
    violation = max(abs(weights.sum() - 1), np.abs((weights[:, None] * directions).sum(0)).max(),
                    max(0.0, (directions ** 2).sum(1).max() - 1), max(0.0, np.abs(weights).sum() - weight_bound))
    return objective(result.x)[0], violation


@pytest.mark.parametrize(("spectrum", "weight_bound"),
                         [("indefinite", 2.0), ("indefinite", 3.0), ("positive-definite", 2.0),
                          ("mostly-negative", 1.5)])
def test_optimised_splits_do_not_beat_the_bound_and_the_best_gets_to_it(spectrum, weight_bound):
    matrix = symmetric_matrix(SPECTRA[spectrum], seed=3).numpy()
    lambda_min, _, lambda_max, _ = spectrum_ends(torch.from_numpy(matrix))
    bound = splitting_bound(lambda_min, lambda_max, weight_bound)
    rng = np.random.default_rng(4)
    best = np.inf
    for offspring in (2, 3, 4):
        for signs in itertools.product((1, -1), repeat=offspring):
            if signs[0] < 0:  # patterns are symmetric under reordering: keep one with a positive first
                continue
            for _ in range(2):
                start = np.concatenate([np.abs(rng.normal(size=offspring)) * signs / offspring,
                                        rng.normal(size=offspring * matrix.shape[0]) / 4])
                value, violation = optimised_split(matrix, offspring, weight_bound, signs, start)
                if violation > 1e-8:  # SLSQP did not reach a feasible point from this start
                    continue
                assert value >= bound - 1e-6, (offspring, signs, value, bound)
                best = min(best, value)
    # The search is strong enough to find the four-offspring optimum, so the check above has teeth.
    assert best == pytest.approx(bound, abs=1e-5)


def test_with_weight_bound_one_the_plan_is_the_s2d_split():
    matrix = symmetric_matrix(SPECTRA["indefinite"])
    lambda_min, v_min, lambda_max, v_max = spectrum_ends(matrix)
    plan = signed_split_plan(lambda_min, v_min, lambda_max, v_max, weight_bound=1.0)
    assert plan.weights == (0.5, 0.5)
    assert torch.allclose(plan.directions, torch.stack([v_min, -v_min]), rtol=0, atol=1e-15)
    assert plan.quadratic == pytest.approx(lambda_min)
    assert [p.weights for p in signed_split_options(lambda_min, v_min, lambda_max, v_max, 1.0)] == [(0.5, 0.5)]


@pytest.mark.parametrize("spectrum", ["positive-definite", "positive-semidefinite"])
def test_a_splitting_stable_neuron_still_has_a_signed_split_that_lowers_the_loss(spectrum):
    matrix = symmetric_matrix(SPECTRA[spectrum])
    lambda_min, v_min, lambda_max, v_max = spectrum_ends(matrix)
    assert lambda_min >= -1e-12 and lambda_max > 0  # S2D: splitting stable
    assert signed_split_plan(lambda_min, v_min, lambda_max, v_max, weight_bound=1.0) is None
    plan = signed_split_plan(lambda_min, v_min, lambda_max, v_max, weight_bound=2.0)
    assert plan is not None and min(plan.weights) < 0
    assert float(quadratic(matrix, plan.weights, plan.directions)) < 0
    # the negative offspring sit on v_max
    for weight, direction in zip(plan.weights, plan.directions):
        if weight < 0:
            assert abs(float(direction @ v_max)) == pytest.approx(float(direction.norm()), rel=1e-10)


@pytest.mark.parametrize("weight_bound", WEIGHT_BOUNDS)
def test_a_zero_splitting_matrix_has_no_split(weight_bound):
    matrix = torch.zeros(3, 3, dtype=torch.float64)
    lambda_min, v_min, lambda_max, v_max = spectrum_ends(matrix)
    assert signed_split_options(lambda_min, v_min, lambda_max, v_max, weight_bound) == []
    assert signed_split_plan(lambda_min, v_min, lambda_max, v_max, weight_bound) is None
    assert splitting_bound(lambda_min, lambda_max, weight_bound) == 0


def brute_force_plan(options, max_offspring):
    """Largest decrease per added channel among the options with at most ``max_offspring`` children;
    among equals, the fewest offspring, then the first listed."""
    allowed = [plan for plan in options if len(plan.weights) <= max_offspring]
    if not allowed:
        return None
    best = allowed[0]
    for plan in allowed[1:]:
        rate, best_rate = plan.quadratic / plan.channels_added, best.quadratic / best.channels_added
        if rate < best_rate or (rate == best_rate and len(plan.weights) < len(best.weights)):
            best = plan
    return best


def test_the_plan_has_the_largest_decrease_per_added_channel():
    generator = torch.Generator().manual_seed(5)
    v_min, v_max = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    # Ties at c = 3 (P = 2, N = 1): two and three offspring give −1 per channel on v_min alone, and
    # −½ per channel on v_max alone; the fewest offspring win.
    ties = [((-1.0, -0.5, 3.0), (0.5, 0.5)), ((0.5, 1.0, 3.0), (-1.0, 2.0))]
    cases = [case for case, _ in ties] + [(-1.0, 3.0, 2.0)]
    for _ in range(300):
        low, high = (torch.rand(2, generator=generator, dtype=torch.float64) * 4 - 2).sort().values.tolist()
        cases.append((low, high, 1 + 5 * float(torch.rand(1, generator=generator))))
    cases += [(-1.0, -0.5, 2.0), (0.5, 1.0, 6.0), (-0.1, 5.0, 1.2), (-3.0, 0.1, 1.2)]
    counts = {2: 0, 3: 0, 4: 0}
    for low, high, weight_bound in cases:
        options = signed_split_options(low, v_min, high, v_max, weight_bound)
        for max_offspring in (2, 3, 4, 6):
            plan = signed_split_plan(low, v_min, high, v_max, weight_bound, max_offspring=max_offspring)
            expected = brute_force_plan(options, max_offspring)
            assert same_plan(plan, expected), (low, high, weight_bound, max_offspring)
            if plan is not None and max_offspring == 4:
                counts[len(plan.weights)] += 1
    for (low, high, weight_bound), weights in ties:
        assert signed_split_plan(low, v_min, high, v_max, weight_bound).weights == weights
    assert all(counts.values()), counts  # the cases exercise every offspring count


def test_no_three_offspring_split_beats_the_best_three_offspring_option():
    lambda_min, lambda_max, weight_bound = -1.0, 3.0, 2.0
    matrix = torch.diag(torch.tensor([lambda_min, lambda_max], dtype=torch.float64))
    v_min, v_max = torch.eye(2, dtype=torch.float64)
    positive, negative = (1 + weight_bound) / 2, (weight_bound - 1) / 2
    shift, spread = negative / positive * v_max, (1 - (negative / positive) ** 2) ** 0.5 * v_min
    weights, directions = (positive / 2, positive / 2, -negative), torch.stack([spread + shift, -spread + shift, v_max])
    assert_feasible(weights, directions, weight_bound)
    mixed = float(quadratic(matrix, weights, directions))  # (c/P)·λ_min − (N/P)·λ_max = −7/3
    options = signed_split_options(lambda_min, v_min, lambda_max, v_max, weight_bound)
    assert min(plan.quadratic for plan in options if len(plan.weights) <= 3) <= mixed + 1e-12


def tanh_mlp():
    """The float64 tanh MLP and batch of tests/growth/test_splitting_matrix.py."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 3))
    return model.double().eval(), (torch.randn(32, 4, dtype=torch.float64), torch.randint(0, 3, (32,)))


def _loss(model, batch):
    with torch.no_grad():
        return float(F.cross_entropy(model(batch[0]), batch[1]))


@pytest.mark.parametrize("offspring", [3, 4])
def test_loss_change_of_a_signed_split_matches_the_second_order_prediction(offspring):
    model, batch = tanh_mlp()
    groups = growable_groups(find_channel_groups(model, batch[0][:1]))
    sites = curvature_sites(model, groups)
    matrices = splitting_matrices(model, sites, [batch], F.cross_entropy)
    # The neuron (over both hidden layers) with the largest possible signed decrease, both ends of S nonzero.
    candidates = []
    for group in groups:
        values = torch.linalg.eigvalsh(matrices[group.name])
        for neuron in range(values.shape[0]):
            if values[neuron, 0] < 0 < values[neuron, -1]:
                candidates.append((splitting_bound(values[neuron, 0], values[neuron, -1], 2.0), group, neuron))
    assert candidates
    _, group, neuron = min(candidates, key=lambda c: c[0])
    matrix = matrices[group.name][neuron]
    plans = [plan for plan in signed_split_options(*spectrum_ends(matrix), weight_bound=2.0)
             if len(plan.weights) == offspring]
    assert plans  # three: (P/2, P/2, −N) on ±v_min and (P, −N/2, −N/2) on ±v_max; four: both pairs
    fan_in = model.get_submodule(group.producers[0].layer).weight.shape[1:]
    before = _loss(model, batch)
    for plan in plans:
        assert min(plan.weights) < 0
        predicted = 0.5 * plan.quadratic  # per ε²
        for epsilon in (1e-2, 5e-3):
            grown = copy.deepcopy(model)
            split_neurons(grown, group, [neuron], offspring_weights=plan.weights,
                          directions=plan.directions.reshape(1, offspring, *fan_in), epsilon=epsilon)
            assert grown.get_submodule(group.producers[0].layer).weight.shape[0] == 6 + offspring - 1
            change = (_loss(grown, batch) - before) / epsilon**2
            assert change == pytest.approx(predicted, rel=0.05), (plan.weights, epsilon, change, predicted)


@pytest.mark.parametrize("weight_bound", [0.5, 0.999, 0.0, -2.0, float("nan")])
def test_a_weight_bound_below_one_is_rejected(weight_bound):
    lambda_min, v_min, lambda_max, v_max = spectrum_ends(symmetric_matrix(SPECTRA["indefinite"]))
    with pytest.raises(ValueError, match="weight_bound"):
        signed_split_options(lambda_min, v_min, lambda_max, v_max, weight_bound)
    with pytest.raises(ValueError, match="weight_bound"):
        signed_split_plan(lambda_min, v_min, lambda_max, v_max, weight_bound)
    with pytest.raises(ValueError, match="weight_bound"):
        splitting_bound(lambda_min, lambda_max, weight_bound)


@pytest.mark.parametrize("max_offspring", [1, 0, -3])
def test_fewer_than_two_offspring_are_rejected(max_offspring):
    lambda_min, v_min, lambda_max, v_max = spectrum_ends(symmetric_matrix(SPECTRA["indefinite"]))
    with pytest.raises(ValueError, match="max_offspring"):
        signed_split_plan(lambda_min, v_min, lambda_max, v_max, max_offspring=max_offspring)
