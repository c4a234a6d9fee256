"""TINY's new neurons (edgegrow/growth/tiny.py): the statistics against autograd, the function kept at
amplitude 0, the predicted first-order decrease against the measured one, where it applies, and on a
regression toy TINY's neurons against random new neurons at equal count and equal training."""
import copy
import statistics

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgegrow.growth import find_channel_groups, growable_groups
from edgegrow.growth.candidates import apply_candidates
from edgegrow.growth.new_neurons import add_neurons
from edgegrow.growth.tiny import bottleneck_directions, tiny_candidates, tiny_sites, tiny_statistics
from edgegrow.models import build_seed


def mlp(hidden=3, inputs=5, outputs=4):
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


def conv_net():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 4, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


def site_of(model, example):
    sites = tiny_sites(model, growable_groups(find_channel_groups(model, example)))
    assert len(sites) == 1
    return next(iter(sites.values()))


def test_statistics_match_autograd_on_a_linear_pair():
    torch.manual_seed(0)
    model, x, y = mlp(), torch.randn(32, 5), torch.randint(0, 4, (32,))
    stats = tiny_statistics(model, site_of(model, x[:1]), [(x, y)], F.cross_entropy)
    F.cross_entropy(model(x), y).backward()
    consumer = model[2]
    # E[v bᵀ] with v = −n·∂L/∂a is −∂L/∂W of the consumer (an independent autograd reading)
    torch.testing.assert_close(stats.v.T @ stats.b / 32, -consumer.weight.grad.double(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(stats.S, x.double().T @ x.double() / 32)
    # the bottleneck is what the consumer's own best update (weight and bias) cannot express
    b_aug = torch.cat([stats.b, torch.ones(32, 1, dtype=torch.float64)], dim=1)
    assert (stats.residual.T @ b_aug / 32).abs().max() < 1e-3 * stats.v.abs().max()
    torch.testing.assert_close(stats.N, stats.x.T @ stats.residual / 32)


def test_conv_patches_line_up_with_the_consumers_positions():
    torch.manual_seed(1)
    model, x, y = conv_net(), torch.randn(8, 2, 6, 5), torch.randint(0, 4, (8,))
    site = site_of(model, x[:1])
    assert (site.producer, site.consumer, site.pooled) == ("0", "3", False)
    stats = tiny_statistics(model, site, [(x, y)], F.cross_entropy)
    model.eval()
    produced = model[0](x)  # the patches times the producer's rows give its output, position by position
    rows = stats.x @ model[0].weight.detach().double().flatten(1).T + model[0].bias.detach().double()
    by_position = produced.detach().double().permute(0, 2, 3, 1).reshape(-1, 3)
    torch.testing.assert_close(rows, by_position, rtol=1e-5, atol=1e-6)
    F.cross_entropy(model(x), y).backward()
    # E over examples × 30 positions: E[v bᵀ] = −∂L/∂W / positions
    torch.testing.assert_close(stats.v.T @ stats.b / stats.b.shape[0],
                               -model[3].weight.grad.double().flatten(1) / 30, rtol=1e-5, atol=1e-8)


def test_the_directions_solve_the_linearised_problem():
    torch.manual_seed(2)
    model, x, y = mlp(), torch.randn(64, 5), torch.randint(0, 4, (64,))
    stats = tiny_statistics(model, site_of(model, x[:1]), [(x, y)], F.cross_entropy)
    fan_in, fan_out, singular = bottleneck_directions(stats, 2)
    assert torch.all(singular[:-1] >= singular[1:])
    # ωₖᵀ Nᵀ αₖ = λₖ² (the first-order decrease of the linearised problem, largest first)
    gains = torch.einsum("kd,da,ka->k", fan_in, stats.N, fan_out)
    torch.testing.assert_close(gains, singular ** 2, rtol=1e-4, atol=1e-10)
    # and no other unit-norm pair does better than the first: compare with random pairs in S's metric
    S_root = torch.linalg.cholesky(stats.S + 1e-9 * torch.eye(5, dtype=torch.float64))
    for _ in range(200):
        a, w = torch.randn(5, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
        a = a / (S_root.T @ a).norm()
        w = w / w.norm()
        assert (a @ stats.N @ w).abs() <= singular[0] * (1 + 1e-6)


def test_the_function_is_kept_at_amplitude_zero_and_the_predicted_decrease_is_measured():
    torch.manual_seed(3)
    model, x, y = conv_net(), torch.randn(16, 2, 6, 5), torch.randint(0, 4, (16,))
    batches = [(x, y)]
    candidates = tiny_candidates(model, x[:1], batches, F.cross_entropy, count=2)
    assert len(candidates) == 2 and all(c.predicted_decrease > 0 for c in candidates)
    model.eval()
    before = model(x).detach()
    loss_before = F.cross_entropy(before, y).item()
    silent = [copy.copy(c) for c in candidates]
    for c in silent:
        c.fan_out = {k: torch.zeros_like(v) for k, v in c.fan_out.items()}
    zero = copy.deepcopy(model)
    apply_candidates(zero, silent, x[:1])
    zero.eval()
    torch.testing.assert_close(zero(x), before)
    for candidate in candidates:  # a small step along the candidate: measured ≈ predicted × the step
        scale = 1e-3
        small = copy.copy(candidate)
        small.fan_out = {k: scale * v for k, v in candidate.fan_out.items()}
        grown = copy.deepcopy(model)
        apply_candidates(grown, [small], x[:1])
        grown.eval()
        measured = loss_before - F.cross_entropy(grown(x), y).item()
        assert measured == pytest.approx(scale * candidate.predicted_decrease, rel=0.05)


def test_sites_are_the_pointwise_and_depthwise_separable_paths_of_the_zoo_and_of_an_mlp():
    seed = build_seed("ds-cnn", num_classes=4)
    example = torch.zeros(1, 1, 49, 10)
    sites = tiny_sites(seed, growable_groups(find_channel_groups(seed, example)))
    # DS-CNN: every group, through the next block's depthwise conv, and the last one into the classifier
    assert [(s.producer, s.depthwise, s.consumer, s.pooled) for s in sites.values()] == [
        ("features.0.1", "features.1.0.0", "features.1.1.0", False),
        ("features.1.1.0", "features.2.0.0", "features.2.1.0", False),
        ("features.2.1.0", "features.3.0.0", "features.3.1.0", False),
        ("features.3.1.0", "features.4.0.0", "features.4.1.0", False),
        ("features.4.1.0", None, "classifier", True)]
    mobilenet = build_seed("mobilenet-v2", num_classes=10, resolution=32, in_channels=1)
    example = torch.zeros(1, 1, 32, 32)
    groups = growable_groups(find_channel_groups(mobilenet, example))
    sites = tiny_sites(mobilenet, groups)
    tied = {g.name for g in groups if len(g.producers) > 1}  # residual streams: not yet
    assert tied and not tied & set(sites) and len(sites) == len(groups) - len(tied)
    assert sites["features.2.block.0.0"].stride == (2, 2)  # an expansion, through a stride-2 depthwise conv
    deep = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 5), nn.GELU(), nn.Linear(5, 2))
    sites = tiny_sites(deep, growable_groups(find_channel_groups(deep, torch.zeros(1, 3))))
    assert [(s.producer, s.consumer) for s in sites.values()] == [("0", "2"), ("2", "4")]
    pooled_max = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 2, 1))
    example = torch.zeros(1, 1, 8, 8)
    assert tiny_sites(pooled_max, growable_groups(find_channel_groups(pooled_max, example))) == {}


@pytest.mark.parametrize("stride,padding", [(1, nn.Identity()), (2, nn.ZeroPad2d((0, 1, 0, 1))),
                                            (2, nn.ZeroPad2d((1, 0, 0, 1))), (2, nn.ZeroPad2d(1))])
def test_patches_follow_the_depthwise_centre_tap(stride, padding):
    """With linear activations, a new neuron's map at the consumer is the patches times its fan-in."""
    torch.manual_seed(4)
    own = 0 if isinstance(padding, nn.ZeroPad2d) else 1
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.Identity(), padding,
                          nn.Conv2d(3, 3, 3, stride=stride, padding=own, groups=3, bias=False), nn.Conv2d(3, 4, 1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x, y = torch.randn(4, 2, 7, 6), torch.randint(0, 4, (4,))
    site = site_of(model, x[:1])
    assert site.depthwise == "3" and site.stride == (stride, stride)
    stats = tiny_statistics(model, site, [(x, y)], F.cross_entropy)
    group = growable_groups(find_channel_groups(model, x[:1]))[0]
    fan_in = torch.randn(1, 2, 3, 3)
    tap = torch.zeros(1, 1, 3, 3)
    tap[0, 0, 1, 1] = 1.0
    add_neurons(model, group, 1, fan_in=fan_in, passthrough={"3": tap})
    seen = {}
    model[4].register_forward_pre_hook(lambda module, inputs: seen.setdefault("b", inputs[0]))
    model(x)
    new_map = seen["b"][:, 3]  # the new channel where the consumer reads it
    expected = (stats.x.float() @ fan_in.flatten()).reshape(new_map.shape)  # zero rows where the tap reads padding
    torch.testing.assert_close(new_map, expected, rtol=1e-4, atol=1e-5)


TEACHER_HIDDEN, STUDENT_HIDDEN, ADDED, STEPS = 12, 2, 3, 150  # ADDED: rank of N (3 outputs) at most


def regression_toy(seed):
    """A wide random teacher y = W₂ tanh(W₁ x) and a 2-neuron student trained on it for STEPS steps."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 6, generator=generator)
    w1 = torch.randn(TEACHER_HIDDEN, 6, generator=generator)
    w2 = torch.randn(3, TEACHER_HIDDEN, generator=generator) / TEACHER_HIDDEN ** 0.5
    y = torch.tanh(x @ w1.T) @ w2.T
    torch.manual_seed(seed)
    student = nn.Sequential(nn.Linear(6, STUDENT_HIDDEN), nn.Tanh(), nn.Linear(STUDENT_HIDDEN, 3))
    train(student, x, y)
    return student, x, y


def train(model, x, y, steps=STEPS):
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
    return F.mse_loss(model(x), y).item()


def test_tiny_neurons_beat_random_new_neurons_on_a_regression_toy():
    tiny_losses, random_losses = [], []
    for seed in (0, 1, 2):
        student, x, y = regression_toy(seed)
        tiny = copy.deepcopy(student)
        candidates = tiny_candidates(tiny, x[:1], [(x, y)], F.mse_loss, count=ADDED)
        assert len(candidates) == ADDED
        apply_candidates(tiny, candidates, x[:1])
        fresh = copy.deepcopy(student)  # PyTorch's default fan-in, zero fan-out: edgegrow's random-new neurons
        torch.manual_seed(seed)
        add_neurons(fresh, growable_groups(find_channel_groups(fresh, x[:1]))[0], ADDED)
        tiny_losses.append(train(tiny, x, y, steps=50))
        random_losses.append(train(fresh, x, y, steps=50))
    # measured: 0.048 / 0.065 / 0.075 against 0.057 / 0.086 / 0.094 (no growth: 0.080 / 0.142 / 0.139)
    assert all(t < r for t, r in zip(tiny_losses, random_losses)), (tiny_losses, random_losses)
    assert statistics.median(tiny_losses) < 0.9 * statistics.median(random_losses), (tiny_losses, random_losses)


def test_a_non_finite_batch_gives_no_neurons_instead_of_a_failed_svd():
    torch.manual_seed(3)
    model, x, y = conv_net(), torch.randn(16, 2, 6, 5), torch.randint(0, 4, (16,))
    x[3, 0, 0, 0] = float("inf")
    assert tiny_candidates(model, x[:1], [(x, y)], F.cross_entropy, count=2) == []


def test_computed_new_neurons_keep_their_tensors_when_fillers_join_them_in_one_group():
    """A group's new neurons are applied together: those whose fan-in and fan-out a method computed keep
    them, fillers without any get the defaults (fan-out zero). (Stacking over the layers every candidate
    gives once dropped TINY's tensors whenever a filler joined them.)"""
    from edgegrow.growth import find_channel_groups, growable_groups
    from edgegrow.growth.arguments import fan_in_shape, fan_out_shape
    from edgegrow.growth.candidates import Candidate, apply_candidates
    from edgegrow.models import ds_cnn_seed

    torch.manual_seed(0)
    model = ds_cnn_seed(num_classes=4).eval()
    example = torch.zeros(1, 1, 49, 10)
    group = growable_groups(find_channel_groups(model, example))[0]
    producer, consumer = group.producers[0], group.consumers[0]
    width = model.get_submodule(producer.layer).weight.shape[0]
    rows = torch.full(fan_in_shape(model.get_submodule(producer.layer)), 0.25)
    column = torch.full(fan_out_shape(model.get_submodule(consumer.layer), consumer), 0.5)
    computed = Candidate("new", group.name, 1.0, fan_in={producer.layer: rows}, fan_out={consumer.layer: column})
    apply_candidates(model, [computed, Candidate("new", group.name, 0.5), computed], example)
    weight_in = model.get_submodule(producer.layer).weight.detach()
    weight_out = model.get_submodule(consumer.layer).weight.detach()
    new_columns = weight_out.transpose(0, 1)[width:]  # one per new neuron, computed ones first
    kept = [bool(torch.equal(weight_in[width + i], rows)) for i in range(3)]
    assert kept.count(True) == 2
    assert sum(bool((c == 0.5).all()) for c in new_columns) == 2 and sum(bool((c == 0).all()) for c in new_columns) == 1
