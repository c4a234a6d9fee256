"""Splits perturb fan-in by ε·δ_j and scale fan-out by ω_j: with Σ ω_j δ_j = 0 the first-order
change cancels and the output moves by O(ε²); without it, by O(ε)."""
import torch
from torch import nn

from edgegrow.growth import find_channel_groups, growable_groups, split_neurons


def smooth_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def output_change(offspring_weights, signs, epsilon):
    model = smooth_mlp()
    x = torch.randn(16, 4, dtype=torch.float64)
    reference = model(x)
    (group,) = growable_groups(find_channel_groups(model, x))
    v = torch.randn(4, dtype=torch.float64)
    directions = torch.stack([s * v for s in signs]).unsqueeze(0)
    split_neurons(model, group, [2], offspring_weights=offspring_weights, directions=directions, epsilon=epsilon)
    return (model(x) - reference).abs().max().item()


def test_balanced_split_changes_output_at_second_order():
    # ω = ½, ½ and δ = +v, −v: Σ ω δ = 0.
    small, smaller = output_change((0.5, 0.5), (1, -1), 1e-2), output_change((0.5, 0.5), (1, -1), 1e-3)
    assert 80 < small / smaller < 120


def test_signed_balanced_split_changes_output_at_second_order():
    # ω = 2, −1 and δ = v, 2v: Σ ω δ = 0 with a negative weight.
    small, smaller = output_change((2.0, -1.0), (1, 2), 1e-2), output_change((2.0, -1.0), (1, 2), 1e-3)
    assert 80 < small / smaller < 120


def test_unbalanced_split_changes_output_at_first_order():
    small, smaller = output_change((0.5, 0.5), (1, 1), 1e-2), output_change((0.5, 0.5), (1, 1), 1e-3)
    assert 8 < small / smaller < 12


def test_offspring_indices_and_values():
    model = smooth_mlp()
    x = torch.randn(2, 4, dtype=torch.float64)
    (group,) = growable_groups(find_channel_groups(model, x))
    w, u = model[0].weight.detach().clone(), model[2].weight.detach().clone()
    delta = torch.randn(2, 3, 4, dtype=torch.float64)
    offspring = split_neurons(model, group, [1, 4], offspring_weights=(0.2, 0.3, 0.5), directions=delta, epsilon=0.1)
    assert offspring == [[1, 6, 7], [4, 8, 9]]
    for row, children in enumerate(offspring):
        source = [1, 4][row]
        for j, child in enumerate(children):
            torch.testing.assert_close(model[0].weight[child], w[source] + 0.1 * delta[row, j])
            torch.testing.assert_close(model[2].weight[:, child], (0.2, 0.3, 0.5)[j] * u[:, source])
