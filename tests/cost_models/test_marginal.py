"""Marginal cost of widening a channel group: equals the estimate of the actually grown model, and
reads the latency table at the new width (the staircase shows)."""
import copy

import pytest
import torch
from profiles import analytic_profile, table_profile, target

from cost_models import estimate
from cost_models.marginal import METRICS, KernelCostModel, marginal_cost
from edgegrow.growth import add_neurons, find_channel_groups, growable_groups
from edgegrow.models import ds_cnn_seed, example_input, mobilenet_v2_seed, resnet8_seed

SEEDS = {"ds-cnn": lambda: ds_cnn_seed(), "resnet8": lambda: resnet8_seed(),
         "mobilenet-v2": lambda: mobilenet_v2_seed(resolution=64, num_classes=10)}


def assert_same_costs(predicted, actual, where) -> None:
    """Every metric of two cost reports equal (energy where the target predicts it)."""
    for metric in METRICS:
        if metric == "energy_mj" and actual.energy_mj is None:
            continue
        assert getattr(predicted, metric) == pytest.approx(getattr(actual, metric), rel=1e-9), (*where, metric)
    assert predicted.parameters == actual.parameters, where


@pytest.mark.parametrize("family", SEEDS)
@pytest.mark.parametrize("profile", [table_profile, analytic_profile])
def test_marginal_cost_equals_the_cost_of_the_grown_model(family, profile):
    device = target(profile())
    model = SEEDS[family]().eval()
    x = example_input(model)
    costs = KernelCostModel(model, x, device)
    for group in growable_groups(find_channel_groups(model, x)):
        grown = copy.deepcopy(model)
        add_neurons(grown, group, 3)
        actual = estimate(grown, x, device)
        predicted = costs.marginal([slot.layer for slot in group.producers], 3)
        assert_same_costs(predicted.after, actual, (family, group.name))
        assert predicted.delta("macs") > 0 and predicted.delta("weight_bytes_int8") > 0
        if profile is analytic_profile:  # no layout switches: more channels never cost less
            assert predicted.delta("latency_ms") >= 0


def test_one_more_channel_past_a_step_costs_more_than_filling_a_step():
    device = target(analytic_profile())  # channel step 4
    model = torch.nn.Sequential(torch.nn.Conv2d(8, 63, 1), torch.nn.ReLU(), torch.nn.Conv2d(63, 16, 1)).eval()
    x = torch.zeros(1, 8, 10, 10)
    to_64 = marginal_cost(model, x, device, ["0"], 1).delta("latency_ms")
    model_64 = torch.nn.Sequential(torch.nn.Conv2d(8, 64, 1), torch.nn.ReLU(), torch.nn.Conv2d(64, 16, 1)).eval()
    to_65 = marginal_cost(model_64, x, device, ["0"], 1).delta("latency_ms")
    assert to_64 == 0 and to_65 > 0


def test_unknown_producer_and_bad_count_are_clear_errors():
    model = ds_cnn_seed().eval()
    costs = KernelCostModel(model, example_input(model), target(table_profile()))
    with pytest.raises(ValueError, match="no kernel runs layer"):
        costs.marginal(["features.99"], 2)
    with pytest.raises(ValueError, match="channels must be at least 1"):
        costs.marginal(["features.0.1"], 0)


@pytest.mark.parametrize("family", SEEDS)
@pytest.mark.parametrize("profile", [table_profile, analytic_profile])
def test_widening_several_groups_at_once_equals_the_cost_of_the_grown_model(family, profile):
    device = target(profile())
    model = SEEDS[family]().eval()
    x = example_input(model)
    costs = KernelCostModel(model, x, device)
    groups = growable_groups(find_channel_groups(model, x))
    for first, second in zip(groups, groups[1:]):  # neighbours: the kernel between them sees both widths
        grown = copy.deepcopy(model)
        add_neurons(grown, first, 3)
        add_neurons(grown, second, 5)
        actual = estimate(grown, x, device)
        predicted = costs.widened_report({tuple(s.layer for s in first.producers): 3,
                                          tuple(s.layer for s in second.producers): 5})
        assert_same_costs(predicted, actual, (family, first.name, second.name))
    one = tuple(s.layer for s in groups[0].producers)
    assert costs.widened_report({one: 0}).macs == costs.report.macs  # 0 channels leave a group as it is
