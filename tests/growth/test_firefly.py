"""Firefly: the over-grown network is the model at ε = 0, its ε-gradient is the loss's derivative, the
midpoint score predicts the loss change of applying a candidate, and the model is never touched."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from user_models import randomize_batchnorm

from edgegrow.growth import find_channel_groups, group_named, group_width, growable_groups
from edgegrow.growth.candidates import apply_candidates
from edgegrow.growth.firefly import build_overgrown, firefly_candidates
from edgegrow.models import ds_cnn_seed, example_input

KINDS = ("split", "new", "layer")


class SmoothDSNet(nn.Module):
    """A stem and one depthwise-separable block with Tanh: smooth in ε, so the midpoint rule's
    error is the O(ε³) it should be (a ReLU's kinks make split effects piecewise)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.Tanh()),
            nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False), nn.BatchNorm2d(3), nn.Tanh(),
                          nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4), nn.Tanh()),
        )
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


class SmoothMLP(nn.Module):
    """Two hidden layers in a features stack: its block candidates are ``linear``."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Sequential(nn.Linear(5, 4), nn.Tanh()),
                                      nn.Sequential(nn.Linear(4, 3), nn.Tanh()))
        self.head = nn.Linear(3, 3)

    def forward(self, x):
        return self.head(self.features(x))


class OneGroupNet(nn.Module):
    """One growable channel group (conv → BN → ReLU → depthwise → BN → ReLU), read by the classifier."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU()),
            nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(4), nn.ReLU()),
        )
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def trained_like(cls, input_shape, dtype=torch.float64):
    """A model with non-trivial BatchNorm state, in eval mode, a calibration batch and two task batches."""
    torch.manual_seed(0)
    model = randomize_batchnorm(cls().to(dtype), torch.Generator().manual_seed(1)).eval()
    example = torch.randn(8, *input_shape, dtype=dtype)
    batches = [(torch.randn(32, *input_shape, dtype=dtype), torch.randint(0, 3, (32,))) for _ in range(2)]
    return model, example, batches


def trained_overgrown(model, example, batches, epsilon=0.05, steps=30, splits=True):
    network = build_overgrown(model, example, epsilon=epsilon, new_per_group=2, splits=splits)
    network.train_directions(batches, F.cross_entropy, steps, 1e-2)
    return network


def task_loss(model, batches):
    with torch.no_grad():
        return sum(float(F.cross_entropy(model(x), y)) for x, y in batches) / len(batches)


def only(entry: int, value: torch.Tensor) -> torch.Tensor:
    """An ε vector that is zero but at ``entry``."""
    epsilon = torch.zeros_like(value)
    epsilon[entry] = value[entry]
    return epsilon


def first_of_each_kind(network, scores=None):
    """Per kind, the entry with the largest |score| (or the first entry when no scores are given)."""
    picks = {}
    for kind in KINDS:
        entries = [i for i, entry in enumerate(network.entries) if entry.kind == kind]
        picks[kind] = entries[0] if scores is None else max(entries, key=lambda i: abs(float(scores[i])))
    return picks


@pytest.mark.parametrize("cls, input_shape", [(SmoothDSNet, (1, 6, 5)), (SmoothMLP, (5,))], ids=["ds-net", "mlp"])
def test_epsilon_gradient_matches_central_difference(cls, input_shape):
    model, example, batches = trained_like(cls, input_shape)
    network = trained_overgrown(model, example, batches, steps=5)
    generator = torch.Generator().manual_seed(3)
    point = (torch.rand(len(network.entries), generator=generator, dtype=torch.float64) * 2 - 1) * 0.05
    gradient = network.epsilon_gradient(point, batches, F.cross_entropy)
    step = 1e-6
    for kind, entry in first_of_each_kind(network).items():
        up, down = point.clone(), point.clone()
        up[entry] += step
        down[entry] -= step
        rise = network.loss(up, batches, F.cross_entropy) - network.loss(down, batches, F.cross_entropy)
        difference = rise / (2 * step)
        assert float(gradient[entry]) == pytest.approx(difference, rel=1e-3, abs=1e-9), kind


@pytest.mark.parametrize("kind", KINDS)
def test_midpoint_score_predicts_loss_change_of_applying_the_candidate(kind):
    model, example, batches = trained_like(SmoothDSNet, (1, 6, 5))
    network = trained_overgrown(model, example, batches)
    scores = network.midpoint_scores(batches, F.cross_entropy)
    entry = first_of_each_kind(network, scores)[kind]
    trained = network.epsilon.detach()
    alone = float(trained[entry] * network.epsilon_gradient(only(entry, trained / 2), batches, F.cross_entropy)[entry])

    candidate = network.candidates(scores)[entry]
    assert candidate.kind == kind and candidate.predicted_decrease == -float(scores[entry])
    grown = copy.deepcopy(model)
    apply_candidates(grown, [candidate], example)
    measured = task_loss(grown.eval(), batches) - task_loss(model, batches)
    assert abs(measured) > 1e-7  # the candidate does something measurable
    assert alone == pytest.approx(measured, rel=0.02)


def test_joint_midpoint_scores_add_up_to_the_change_of_all_candidates():
    model, example, batches = trained_like(SmoothDSNet, (1, 6, 5))
    network = trained_overgrown(model, example, batches)
    scores = network.midpoint_scores(batches, F.cross_entropy)
    trained = network.epsilon.detach()
    change = network.loss(trained, batches, F.cross_entropy) - network.loss(0 * trained, batches, F.cross_entropy)
    assert float(scores.sum()) == pytest.approx(change, rel=0.02)


def test_training_keeps_epsilon_in_the_ball_and_directions_in_the_unit_ball():
    model, example, batches = trained_like(SmoothDSNet, (1, 6, 5))
    network = build_overgrown(model, example, epsilon=0.05, new_per_group=2)
    network.train_directions(batches, F.cross_entropy, 5, learning_rate=1.0)  # steps far out of both balls
    assert float(network.epsilon.detach().abs().max()) <= 0.05
    for keys in network.unit_sets:
        norms = sum(network.directions[k].detach().flatten(1).pow(2).sum(1) for k in keys).sqrt()
        assert float(norms.max()) <= 1 + 1e-9
    candidates = network.candidates(torch.zeros(len(network.entries)))
    assert all(0 <= c.epsilon <= 0.05 for c in candidates if c.kind == "split")


@pytest.mark.parametrize("build", [
    lambda: (ds_cnn_seed().eval(), torch.randn(4, 1, 49, 10)),
    lambda: trained_like(SmoothDSNet, (1, 6, 5), torch.float32)[:2],
], ids=["ds-cnn-seed", "smooth-ds-net"])
@pytest.mark.parametrize("splits", [True, False], ids=["splits", "no-splits"])
def test_overgrown_network_at_zero_epsilon_is_the_model(build, splits):
    model, example = build()
    network = build_overgrown(model, example, splits=splits, generator=torch.Generator().manual_seed(0))
    assert {entry.kind for entry in network.entries} == set(KINDS) - ({"split"} if not splits else set())
    with torch.no_grad():
        torch.testing.assert_close(network.logits(example, torch.zeros_like(network.epsilon)), model(example),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("splits", [True, False], ids=["splits", "no-splits"])
def test_candidates_applied_together_compute_the_overgrown_network(splits):
    # The splits and new neurons of one group, of every group (in the order returned: upstream
    # groups first), and every block: the applied model is the over-grown network with just those
    # entries at their trained ε. Without splits the new neurons sit right after the originals.
    model, example, batches = trained_like(SmoothDSNet, (1, 6, 5))
    network = trained_overgrown(model, example, batches, steps=5, splits=splits)
    candidates = network.candidates(network.midpoint_scores(batches, F.cross_entropy))
    for chosen in (lambda e: e.group == "features.1.3", lambda e: e.kind != "layer", lambda e: e.kind == "layer"):
        keep = [i for i, entry in enumerate(network.entries) if chosen(entry)]
        epsilon = torch.zeros_like(network.epsilon)
        epsilon[keep] = network.epsilon.detach()[keep]
        grown = copy.deepcopy(model)
        apply_candidates(grown, [candidates[i] for i in keep], example)
        with torch.no_grad():
            torch.testing.assert_close(grown.eval()(example), network.logits(example, epsilon), rtol=1e-6, atol=1e-7)


def test_applying_every_widening_candidate_grows_each_group_by_the_expected_count():
    model, example, batches = trained_like(OneGroupNet, (1, 6, 5), torch.float32)
    candidates = firefly_candidates(model, example, batches, F.cross_entropy, layers=False, steps=3)
    (group,) = growable_groups(find_channel_groups(model, example))
    width = group_width(model, group)
    assert [c.kind for c in candidates] == ["split"] * width + ["new"] * 2  # ceil(0.5 × 4) new neurons
    apply_candidates(model, candidates, example)
    assert group_width(model, growable_groups(find_channel_groups(model, example))[0]) == 2 * width + 2


def test_without_splits_the_copy_holds_only_new_neurons_and_blocks_and_costs_less():
    model, example, batches = trained_like(OneGroupNet, (1, 6, 5), torch.float32)
    candidates = firefly_candidates(model, example, batches, F.cross_entropy, splits=False, new_per_group=3, steps=3)
    assert [c.kind for c in candidates] == ["new"] * 3 + ["layer"] * 2
    (group,) = growable_groups(find_channel_groups(model, example))
    widths = {splits: group_width(network.network, growable_groups(find_channel_groups(network.network, example))[0])
              for splits in (True, False)
              for network in [build_overgrown(model, example, splits=splits, new_per_group=3, layers=False)]}
    assert widths == {True: 2 * 4 + 3, False: 4 + 3}
    apply_candidates(model, candidates[:3], example)
    assert group_width(model, growable_groups(find_channel_groups(model, example))[0]) == 4 + 3


def test_applying_every_candidate_of_a_ds_cnn_grows_every_group_and_inserts_every_block():
    model = ds_cnn_seed().eval()
    example = example_input(model, 4)
    names = [g.name for g in growable_groups(find_channel_groups(model, example))]
    batches = [(example_input(model, 16), torch.randint(0, 12, (16,)))]
    candidates = firefly_candidates(model, example, batches, F.cross_entropy, steps=1)
    edits = apply_candidates(model, candidates, example)
    assert [e["after"] for e in edits if e["op"] == "deepen"] == [f"features.{i}" for i in range(5)]
    groups = find_channel_groups(model, example)
    assert {name: group_width(model, group_named(groups, name)) for name in names} == dict.fromkeys(names, 8 + 8 + 4)


@pytest.mark.parametrize("training", [True, False], ids=["train-mode", "eval-mode"])
def test_model_is_left_unchanged_and_in_its_mode(training):
    model = ds_cnn_seed().train(training)
    model.features[1].train(not training)  # a mixed state must come back as it was too
    modes = [m.training for m in model.modules()]
    state = copy.deepcopy(model.state_dict())
    example = example_input(model, 4)
    batches = [(example_input(model, 16), torch.randint(0, 12, (16,)))]
    candidates = firefly_candidates(model, example, batches, F.cross_entropy, steps=2)
    assert len(candidates) == 5 * (8 + 4) + 5
    assert [m.training for m in model.modules()] == modes
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_each_block_candidate_is_priced_by_cost_of_block_with_its_layer_and_kind():
    model, example, batches = trained_like(SmoothDSNet, (1, 6, 5), torch.float32)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    asked = []

    def cost_of_block(after, kind):
        asked.append((after, kind))
        return {"parameters": 10.0 * len(asked)}

    candidates = firefly_candidates(model, example, batches, F.cross_entropy, steps=1, cost_of_block=cost_of_block)
    assert asked == [("features.0", "ds-block"), ("features.1", "ds-block")]
    layers = [c for c in candidates if c.kind == "layer"]
    assert [(c.group, c.layer_kind, c.layer_cost) for c in layers] == [
        ("features.0", "ds-block", {"parameters": 10.0}),
        ("features.1", "ds-block", {"parameters": 20.0}),
    ]
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())


@pytest.mark.parametrize("arguments, message", [
    ({"batches": []}, "no batches given"),
    ({"epsilon": 0.0}, "epsilon must be a finite number > 0, got 0.0"),
    ({"epsilon": -1e-2}, "epsilon must be a finite number > 0, got -0.01"),
    ({"epsilon": float("nan")}, "epsilon must be a finite number > 0, got nan"),
    ({"steps": -1}, "steps must be a non-negative integer, got -1"),
    ({"steps": 2.5}, "steps must be a non-negative integer, got 2.5"),
    ({"learning_rate": 0}, "learning_rate must be a finite number > 0"),
    ({"new_per_group": -2}, "new_per_group must be None or an integer >= 0"),
    ({"splits": "no"}, "splits must be True or False, got 'no'"),
    ({"layer_kind": "attention"}, "unknown layer_kind 'attention'; choose one of auto, conv, ds-block"),
    ({"batches": [torch.zeros(2)]}, r"each batch must be an \(inputs, targets\) pair"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_bad_arguments_raise_one_line_value_error(arguments, message):
    model = ds_cnn_seed()
    example = example_input(model, 2)
    options = {"batches": [(example, torch.zeros(2, dtype=torch.long))], **arguments}
    batches = options.pop("batches")
    with pytest.raises(ValueError, match=message) as error:
        firefly_candidates(model, example, batches, F.cross_entropy, **options)
    assert "\n" not in str(error.value)


class NoiseMLP(nn.Module):
    """One hidden Tanh layer; trained on random labels nothing it learns carries to other examples."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Sequential(nn.Linear(8, 6), nn.Tanh()))
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        return self.head(self.features(x))


def noise_batches(seed: int, count: int = 4):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 8, generator=generator), torch.randint(0, 4, (16,), generator=generator))
            for _ in range(count)]


def test_candidates_are_scored_on_the_batches_their_directions_were_not_trained_on():
    torch.manual_seed(0)
    model, example, batches = NoiseMLP().eval(), torch.randn(8, 8), noise_batches(0)
    candidates = firefly_candidates(model, example, batches, F.cross_entropy, steps=20, layers=False,
                                    new_per_group=8, generator=torch.Generator().manual_seed(3))
    network = build_overgrown(model, example, layers=False, new_per_group=8, generator=torch.Generator().manual_seed(3))
    network.train_directions(batches[:2], F.cross_entropy, 20, 1e-2)
    expected = -network.midpoint_scores(batches[2:], F.cross_entropy)
    assert torch.allclose(torch.tensor([c.predicted_decrease for c in candidates]), expected.float(), atol=1e-7)


def test_on_random_labels_about_half_the_candidates_predict_a_decrease_not_nearly_all():
    """In-sample, a direction trained on noise predicts a decrease on that noise (97 % of candidates
    here); on the held-out batches about half do, as they should when nothing is learnable."""
    torch.manual_seed(0)
    model, example = NoiseMLP().eval(), torch.randn(8, 8)
    decreases = [c.predicted_decrease for seed in range(4)
                 for c in firefly_candidates(model, example, noise_batches(seed), F.cross_entropy, steps=20,
                                             layers=False, new_per_group=32,
                                             generator=torch.Generator().manual_seed(seed))]
    assert 0.2 < sum(d > 0 for d in decreases) / len(decreases) < 0.75
