"""Splitting reads an activation written as a function (``F.relu(x)``) as it reads an activation module."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from user_models import ConcatNet, ResidualNet, randomize_batchnorm

from edgegrow.growth import curvature_sites, find_channel_groups, growable_groups
from edgegrow.growth.splitting_candidates import splitting_candidates
from edgegrow.growth.splitting_matrix import with_activation_modules


class ConcatModules(ConcatNet):
    """ConcatNet with its activations as modules: what ``with_activation_modules`` should make of it."""

    def __init__(self):
        super().__init__()
        self.stem_act, self.norm_act, self.mix_act = nn.ReLU(), nn.ReLU6(), nn.ReLU()

    def forward(self, x):
        x = self.stem_act(self.stem(x))
        x = self.norm_act(self.norm(torch.cat([self.left(x), self.right(x)], dim=1)))
        x = self.mix_act(self.mix(x))
        return self.head(torch.flatten(x, 1))


class Leaky(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.bn = nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5)
        self.b, self.c = nn.Conv2d(5, 4, 1), nn.Conv2d(4, 6, 1)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = F.leaky_relu(self.bn(self.a(x)), 0.2)
        x = F.gelu(self.b(x), approximate="tanh")
        x = self.c(x).sigmoid()
        return self.head(x.mean((2, 3)))


def test_the_view_shares_the_layers_and_computes_the_same_function():
    torch.manual_seed(0)
    model = randomize_batchnorm(ResidualNet()).eval()
    view = with_activation_modules(model)
    assert view is not model
    assert dict(view.named_parameters()).keys() == dict(model.named_parameters()).keys()
    assert all(view.get_parameter(name) is parameter for name, parameter in model.named_parameters())
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(view(x), model(x))
    sites = curvature_sites(view, growable_groups(find_channel_groups(view, x[:1])))
    assert {name: (site.producer, site.batch_norm, site.kind) for name, site in sites.items()} == \
        {"conv1": ("conv1", "bn1", "relu")}  # the stem's group is a residual tie: no site
    assert curvature_sites(model, growable_groups(find_channel_groups(model, x[:1]))) == {}


def test_a_model_with_activation_modules_is_its_own_view():
    model = ConcatModules()
    assert with_activation_modules(model) is model


def test_activation_arguments_are_kept():
    torch.manual_seed(0)
    model = randomize_batchnorm(Leaky()).eval()
    view = with_activation_modules(model)
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(view(x), model(x), atol=0, rtol=0)
    sites = curvature_sites(view, growable_groups(find_channel_groups(view, x[:1])))
    assert {name: (site.kind, site.parameter) for name, site in sites.items()} == \
        {"a": ("leaky_relu", 0.2), "b": ("gelu", 0.0), "c": ("sigmoid", 0.0)}


def test_splits_of_functional_activations_equal_those_of_modules():
    torch.manual_seed(0)
    functional = ConcatNet()
    modules = ConcatModules()
    modules.load_state_dict(functional.state_dict())
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, 8, 8, generator=generator), torch.randint(0, 3, (8,), generator=generator))]
    example = torch.zeros(1, 3, 8, 8)
    found = {m: splitting_candidates(model, example, batches, F.cross_entropy, method="split")
             for m, model in (("functional", functional), ("modules", modules))}
    assert {c.group for c in found["functional"]} == {"stem", "mix"}  # left/right: a concat before the ReLU6
    assert len(found["functional"]) == len(found["modules"])
    for a, b in zip(found["functional"], found["modules"]):
        assert (a.group, a.neuron) == (b.group, b.neuron)
        assert a.predicted_decrease == pytest.approx(b.predicted_decrease, rel=1e-5, abs=1e-9)
