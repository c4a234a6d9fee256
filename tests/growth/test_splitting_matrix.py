"""Splitting matrices: the product trick equals S @ v, the fast λ_min agrees with eigh, and the loss
change of a small split matches the second-order prediction (positive and signed weights)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgegrow.growth import find_channel_groups, growable_groups, split_neurons
from edgegrow.growth.splitting_matrix import (
    curvature_sites,
    min_eigenpairs,
    min_eigenpairs_fast,
    second_derivative,
    splitting_matrices,
    splitting_products,
)


def conv_net(activation=nn.SiLU):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5), activation(),
                          nn.Conv2d(5, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), activation(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    for norm in (model[1], model[4]):  # statistics that are not the identity
        norm.running_mean.uniform_(-0.2, 0.2)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.uniform_(0.5, 1.5)
    return model.double().eval(), (torch.randn(16, 2, 6, 6, dtype=torch.float64), torch.randint(0, 3, (16,)))


def mlp(activation=nn.Tanh):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), activation(), nn.Linear(6, 6), activation(), nn.Linear(6, 3))
    return model.double().eval(), (torch.randn(32, 4, dtype=torch.float64), torch.randint(0, 3, (32,)))


MODELS = {"conv-silu": conv_net, "conv-relu": lambda: conv_net(nn.ReLU), "mlp-tanh": mlp,
          "mlp-relu6": lambda: mlp(nn.ReLU6), "conv-hardswish": lambda: conv_net(nn.Hardswish),
          "conv-gelu": lambda: conv_net(nn.GELU), "mlp-hardsigmoid": lambda: mlp(nn.Hardsigmoid),
          "mlp-leaky-relu": lambda: mlp(lambda: nn.LeakyReLU(0.1)), "mlp-elu": lambda: mlp(lambda: nn.ELU(0.5)),
          "mlp-gelu": lambda: mlp(nn.GELU)}


def sites_of(model, batch):
    return curvature_sites(model, growable_groups(find_channel_groups(model, batch[0][:1])))


@pytest.mark.parametrize("name", MODELS)
def test_products_from_the_auxiliary_term_equal_explicit_matrix_products(name):
    model, batch = MODELS[name]()
    sites = sites_of(model, batch)
    assert len(sites) == 2
    matrices = splitting_matrices(model, sites, [batch], F.cross_entropy)
    vectors = {n: torch.randn(m.shape[:2], dtype=torch.float64) for n, m in matrices.items()}
    products = splitting_products(model, sites, vectors, batch, F.cross_entropy)
    for n, matrix in matrices.items():
        assert matrix.abs().max() > 0
        expected = torch.einsum("cde,ce->cd", matrix, vectors[n])
        torch.testing.assert_close(products[n], expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", ["conv-silu", "mlp-tanh"])
def test_fast_minimum_eigenvalue_is_within_one_percent_of_eigh(name):
    model, batch = MODELS[name]()
    sites = sites_of(model, batch)
    exact = min_eigenpairs(splitting_matrices(model, sites, [batch], F.cross_entropy))
    fast = min_eigenpairs_fast(model, sites, [batch], F.cross_entropy, steps=40)
    for n in sites:
        spread = exact[n].values.abs().max()
        torch.testing.assert_close(fast[n].values, exact[n].values, rtol=0.01, atol=1e-6 * float(spread))


def _loss(model, batch):
    with torch.no_grad():
        return float(F.cross_entropy(model(batch[0]), batch[1]))


@pytest.mark.parametrize("name", ["conv-silu", "mlp-tanh", "conv-gelu", "mlp-gelu"])
@pytest.mark.parametrize("signed", [False, True])
def test_loss_change_of_a_small_split_matches_the_second_order_prediction(name, signed):
    model, batch = MODELS[name]()
    groups = growable_groups(find_channel_groups(model, batch[0][:1]))
    sites = curvature_sites(model, groups)
    matrices = splitting_matrices(model, sites, [batch], F.cross_entropy)
    group = next(g for g in groups if g.name in sites)
    matrix = matrices[group.name]
    values, vectors = torch.linalg.eigh(matrix)
    neuron = int(values[:, 0].argmin()) if not signed else int(values[:, -1].argmax())
    v = vectors[neuron, :, 0] if not signed else vectors[neuron, :, -1]
    weights, scales = ((0.5, 0.5), (1.0, -1.0)) if not signed else ((1.5, -0.5), (1.0, 3.0))  # Σωδ = 0
    predicted_per_eps2 = 0.5 * sum(w * s * s for w, s in zip(weights, scales)) * float(v @ matrix[neuron] @ v)
    fan_in = model.get_submodule(group.producers[0].layer).weight.shape[1:]
    directions = torch.stack([s * v for s in scales]).reshape(1, 2, *fan_in)
    before = _loss(model, batch)
    changes = {}
    for epsilon in (1e-2, 5e-3):
        grown = copy.deepcopy(model)
        split_neurons(grown, group, [neuron], offspring_weights=weights, directions=directions, epsilon=epsilon)
        changes[epsilon] = (_loss(grown, batch) - before) / epsilon**2
    assert predicted_per_eps2 < 0  # a split that lowers the loss
    for epsilon, change in changes.items():
        assert change == pytest.approx(predicted_per_eps2, rel=0.05), (epsilon, changes, predicted_per_eps2)


def test_relu_surrogate_is_the_second_derivative_of_softplus():
    h = torch.linspace(-3, 9, 101, dtype=torch.float64, requires_grad=True)
    beta = 3.0
    (first,) = torch.autograd.grad(F.softplus(h, beta=beta).sum(), h, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), h)
    torch.testing.assert_close(second_derivative("relu", h.detach(), beta), second)
    clipped = F.softplus(h, beta=beta) - F.softplus(h - 6, beta=beta)  # smooth ReLU6
    (first,) = torch.autograd.grad(clipped.sum(), h, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), h)
    torch.testing.assert_close(second_derivative("relu6", h.detach(), beta), second)


# activation, its kinks (where the surrogate's spikes sit), the parameter σ'' reads
KINKED = {"relu": (nn.ReLU(), (0.0,), 0.0), "relu6": (nn.ReLU6(), (0.0, 6.0), 0.0),
          "leaky_relu": (nn.LeakyReLU(0.1), (0.0,), 0.1), "hardsigmoid": (nn.Hardsigmoid(), (-3.0, 3.0), 0.0),
          "hardswish": (nn.Hardswish(), (-3.0, 3.0), 0.0), "elu": (nn.ELU(0.5), (0.0,), 0.5),
          "gelu": (nn.GELU(), (), 0.0), "silu": (nn.SiLU(), (), 0.0), "tanh": (nn.Tanh(), (), 0.0)}


def _derivatives(activation, h):
    """σ' by autograd, σ'' by central differences of σ' (Hardswish has no double backward)."""
    h = h.clone().requires_grad_(True)
    (first,) = torch.autograd.grad(activation(h).sum(), h)
    (second,) = torch.gradient(first, spacing=(h.detach(),))
    return first, second


@pytest.mark.parametrize("kind", KINKED)
def test_second_derivative_is_exact_away_from_kinks_and_its_spikes_carry_the_slope_jumps(kind):
    """Away from kinks σ'' is the activation's own (autograd); across them ∫σ'' = σ'(b) − σ'(a), so
    every kink's spike has the slope jump it stands for (S2D's softplus surrogate for ReLU, generalised)."""
    activation, kinks, parameter = KINKED[kind]
    h = torch.linspace(-12, 16, 56_001, dtype=torch.float64)
    surrogate = second_derivative(kind, h, parameter=parameter)
    first, exact = _derivatives(activation, h)
    far = torch.ones_like(h, dtype=torch.bool)
    for k in kinks:
        far &= (h - k).abs() > 2.5
    torch.testing.assert_close(surrogate[far], exact[far], atol=2e-3, rtol=1e-6)
    # between every pair of neighbouring points halfway between kinks (and beyond the outer ones), the
    # integral of σ'' is the change of σ': each spike carries its own kink's slope jump
    ends = sorted({-12.0, 16.0, *[(a + b) / 2 for a, b in zip(kinks, kinks[1:])],
                   *([kinks[0] - 4.0, kinks[-1] + 4.0] if kinks else [])})
    integral = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(surrogate, h)])
    index = [int(torch.argmin((h - end).abs())) for end in ends]
    for i, j in zip(index, index[1:]):
        assert float(integral[j] - integral[i]) == pytest.approx(float(first[j] - first[i]), abs=5e-3), \
            (kind, float(h[i]), float(h[j]))


def test_every_supported_activation_gives_a_site_with_its_parameter():
    for kind, (activation, _, parameter) in KINKED.items():
        model = nn.Sequential(nn.Linear(4, 6), activation, nn.Linear(6, 3)).double()
        (site,) = curvature_sites(model, growable_groups(find_channel_groups(model, torch.zeros(1, 4,
                                                                                                   dtype=torch.float64)))).values()
        assert (site.kind, site.parameter) == (kind, parameter)


def test_groups_without_an_activation_after_their_producer_have_no_site():
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 3)).double()  # linear bottleneck
    x = torch.randn(2, 4, dtype=torch.float64)
    assert curvature_sites(model, growable_groups(find_channel_groups(model, x))) == {}


def test_the_model_keeps_its_mode_and_trainable_parameters():
    model, batch = MODELS["conv-silu"]()
    model.train()
    sites = sites_of(model, batch)
    splitting_matrices(model, sites, [batch], F.cross_entropy)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_zoo_seed_sites_and_products():
    from edgegrow.models import ds_cnn_seed, mobilenet_v1_seed

    for model in (ds_cnn_seed(), mobilenet_v1_seed(resolution=32, num_classes=4)):
        model = model.double().eval()
        torch.manual_seed(0)
        x = torch.randn(4, *model.input_shape, dtype=torch.float64)
        batch = (x, torch.randint(0, 4, (4,)))
        groups = growable_groups(find_channel_groups(model, x[:1]))
        sites = curvature_sites(model, groups)
        assert len(sites) == len(groups)  # every growable group: conv → BatchNorm → ReLU(6)
        matrices = splitting_matrices(model, sites, [batch], F.cross_entropy)
        vectors = {n: torch.randn(m.shape[:2], dtype=torch.float64) for n, m in matrices.items()}
        products = splitting_products(model, sites, vectors, batch, F.cross_entropy)
        for n, matrix in matrices.items():
            torch.testing.assert_close(products[n], torch.einsum("cde,ce->cd", matrix, vectors[n]))
