"""New neurons scored by their fan-out's gradient, and the ``auto`` method that gives every group candidates."""
import copy

import pytest
import torch
import torch.nn.functional as F
from user_models import USER_MODELS, UserStyleNet, randomize_batchnorm

from edgegrow.growth import add_neurons, find_channel_groups, group_named, growable_groups
from edgegrow.growth.auto_candidates import auto_candidates
from edgegrow.growth.staged_edit import slot_offset
from edgegrow.growth.gradient_neurons import _calibrate_batchnorms, gradient_candidates, new_neuron_gradients
from edgegrow.models import build_seed


def batches_for(model, shape, count=2, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    classes = model.eval()(torch.zeros(1, *shape)).shape[1]
    return [(torch.randn(size, *shape, generator=generator), torch.randint(0, classes, (size,), generator=generator))
            for _ in range(count)]


def mean_loss(model, batches):
    with torch.no_grad():
        return torch.stack([F.cross_entropy(model(x), y) for x, y in batches]).mean().item()


def scored_copy(model, group, candidate, fan_out_scale, batches):
    """The model the candidate was scored on, with only its own neuron: added with its fan-in and filters, its
    BatchNorm statistics calibrated as the scorer does, and ``fan_out_scale`` × its fan-out."""
    trial = copy.deepcopy(model).eval()
    added = add_neurons(trial, group, 1, fan_in={k: v[None] for k, v in candidate.fan_in.items()},
                        fan_out={k: fan_out_scale * v[None] for k, v in candidate.fan_out.items()},
                        passthrough={k: v[None] for k, v in candidate.passthrough.items()} or None)
    _calibrate_batchnorms(trial, [(group, slice(added[0], added[0] + 1))], batches)
    return trial


@pytest.mark.parametrize("name", ["user-style", "residual", "concat", "squeeze-excite"])
def test_each_score_is_the_loss_slope_of_its_neuron_alone(name):
    """Scored together, each neuron's predicted decrease is the first-order decrease of adding it alone: the
    loss falls by ≈ t·predicted for a fan-out of t × the candidate's (t small), measured in the real network."""
    cls, shape = USER_MODELS[name]
    torch.manual_seed(0)
    model = randomize_batchnorm(cls()).eval().double()  # float64: a loss difference of 1e-7 is resolved
    batches = [(x.double(), y) for x, y in batches_for(model.float(), shape)]
    model.double()
    found = gradient_candidates(model, torch.zeros(1, *shape, dtype=torch.float64), batches, F.cross_entropy, count=3,
                                generator=torch.Generator().manual_seed(1))
    groups = growable_groups(find_channel_groups(model, torch.zeros(1, *shape, dtype=torch.float64)))
    assert {c.group for c in found} == {g.name for g in groups}
    base = mean_loss(model, batches)
    checked = 0
    for group in groups:
        candidate = max((c for c in found if c.group == group.name), key=lambda c: c.predicted_decrease)
        assert candidate.predicted_decrease > 0
        t = 1e-6  # small: a larger step moves downstream ReLUs across their kink
        kept = mean_loss(scored_copy(model, group, candidate, 0.0, batches), batches)
        assert kept == pytest.approx(base, abs=1e-12)  # zero fan-out: the function is kept
        below = mean_loss(scored_copy(model, group, candidate, -t, batches), batches)
        measured = (below - mean_loss(scored_copy(model, group, candidate, t, batches), batches)) / (2 * t)
        assert measured == pytest.approx(candidate.predicted_decrease, rel=1e-3), group.name
        checked += 1
    assert checked == len(groups)


def test_scoring_groups_together_equals_scoring_each_alone():
    torch.manual_seed(0)
    model = randomize_batchnorm(UserStyleNet()).eval()
    example = torch.zeros(1, 1, 49, 10)
    batches = batches_for(model, (1, 49, 10))
    groups = growable_groups(find_channel_groups(model, example))
    together = new_neuron_gradients(model, groups, {g.name: 2 for g in groups}, batches, F.cross_entropy,
                                    torch.Generator().manual_seed(3))
    for group in groups:
        # the same neurons scored alone: the model with only this group's neurons, read by autograd
        trial = copy.deepcopy(model).eval()
        candidates = together[group.name]
        added = add_neurons(trial, group, 2, fan_in={k: torch.stack([c.fan_in[k] for c in candidates])
                                                     for k in candidates[0].fan_in},
                            passthrough={k: torch.stack([c.passthrough[k] for c in candidates])
                                         for k in candidates[0].passthrough} or None)
        _calibrate_batchnorms(trial, [(group, slice(added[0], added[-1] + 1))], batches)
        trial.zero_grad()
        torch.stack([F.cross_entropy(trial(x), y) for x, y in batches]).mean().backward()
        for neuron, candidate in zip(added, candidates):
            assert all(slot.inner == 1 for slot in group.consumers)
            gradient = torch.cat([trial.get_submodule(slot.layer).weight.grad[:, slot_offset(model, slot) + neuron]
                                  .flatten() for slot in group.consumers])
            fan_out = torch.cat([candidate.fan_out[slot.layer].flatten() for slot in group.consumers])
            # predicted decrease = t·‖g‖ with t = ‖fan-out‖, and the fan-out points down the gradient
            assert candidate.predicted_decrease == pytest.approx(float(fan_out.norm() * gradient.norm()), rel=1e-4)
            assert float(fan_out @ gradient) == pytest.approx(-float(fan_out.norm() * gradient.norm()), rel=1e-4)


@pytest.mark.parametrize("name", ["user-style", "residual", "concat", "squeeze-excite", "mobilenet-v2"])
def test_auto_gives_every_growable_group_helpful_candidates(name):
    torch.manual_seed(0)
    if name == "mobilenet-v2":
        model, shape = build_seed("mobilenet-v2", resolution=32, in_channels=1, num_classes=10), (1, 32, 32)
    else:
        cls, shape = USER_MODELS[name]
        model = cls()
    model = randomize_batchnorm(model).eval()
    example = torch.zeros(1, *shape)
    proposal = auto_candidates(model, example, batches_for(model, shape, count=1, size=8), F.cross_entropy, count=4,
                               fast_steps=3)
    groups = [g.name for g in growable_groups(find_channel_groups(model, example))]
    assert set(proposal.source_of) == set(groups)
    assert {c.group for c in proposal.candidates if c.predicted_decrease > 0} == set(groups)
    assert all(scale > 0 for scale in proposal.scales.values())
    if name == "mobilenet-v2":  # its linear bottleneck projections are scored by the gradient; TINY and splitting are used
        projection = group_named(find_channel_groups(model, example), "features.2.block.2.0")
        assert proposal.source_of[projection.name] == "gradient"
        assert {"tiny", "split"} <= set(proposal.source_of.values())


def test_auto_takes_splitting_then_tiny_then_the_gradient():
    torch.manual_seed(0)
    model = randomize_batchnorm(UserStyleNet()).eval()
    proposal = auto_candidates(model, torch.zeros(1, 1, 49, 10), batches_for(model, (1, 49, 10), count=1),
                               F.cross_entropy, count=4, fast_steps=5)
    # the residual stream (with the SE gate's channels) has no curvature or TINY site; Hardswish and ReLU do
    assert proposal.source_of == {"stem": "gradient", "res1": "split", "se_reduce": "split", "left": "split",
                                  "right": "split", "block": "split"}
