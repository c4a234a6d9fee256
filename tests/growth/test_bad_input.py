"""Bad arguments to growth operations raise a clear ValueError and leave the model untouched."""
import math

import pytest
import torch
from user_models import SharedConvNet

from edgegrow.growth import (
    add_neurons,
    deepen,
    find_channel_groups,
    group_named,
    growable_groups,
    split_neurons,
)
from edgegrow.models import ds_cnn_seed, example_input, resnet8_seed


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = ds_cnn_seed().eval()
    x = example_input(model, 2)
    groups = find_channel_groups(model, x)
    return model, x, groups, growable_groups(groups)[0]  # the stem group: 8 channels, one producer


def classifier_group(groups):
    return next(g for g in groups if g.name == "classifier")


CASES = {
    "index out of range": (lambda m, x, gs, g: split_neurons(m, g, [8]),
                           "neuron index 8 is out of range for channel group `features.0.1` of width 8"),
    "negative index": (lambda m, x, gs, g: split_neurons(m, g, [-1]), "neuron index -1 is out of range"),
    "index not an integer": (lambda m, x, gs, g: split_neurons(m, g, [1.5]), "neuron index 1.5 is out of range"),
    "repeated index": (lambda m, x, gs, g: split_neurons(m, g, [2, 2]), "neuron indices repeat"),
    "no neurons": (lambda m, x, gs, g: split_neurons(m, g, []), "no neurons given"),
    "group not growable": (lambda m, x, gs, g: split_neurons(m, classifier_group(gs), [0]),
                           "channel group `classifier` is not growable: feeds the model output"),
    "not a group": (lambda m, x, gs, g: split_neurons(m, "features.0.1", [0]), "expected a ChannelGroup"),
    "direction of wrong shape": (
        lambda m, x, gs, g: split_neurons(m, g, [0], directions=torch.ones(1, 2, 5), epsilon=0.1),
        r"directions for `features.0.1` has shape \(1, 2, 5\); expected \(1, 2, 1, 10, 4\)"),
    "direction with NaN": (
        lambda m, x, gs, g: split_neurons(m, g, [0], directions=torch.full((1, 2, 40), math.nan), epsilon=0.1),
        "directions for `features.0.1` contains NaN or infinity"),
    "direction for an unknown layer": (
        lambda m, x, gs, g: split_neurons(m, g, [0], directions={"features.9": torch.ones(1, 2, 40)}),
        "directions names layer `features.9`, which is not one of features.0.1"),
    "epsilon infinite": (lambda m, x, gs, g: split_neurons(m, g, [0], epsilon=math.inf),
                         "epsilon must be a finite number, got inf"),
    "epsilon NaN": (lambda m, x, gs, g: split_neurons(m, g, [0], epsilon=math.nan), "epsilon must be a finite number"),
    "epsilon not a number": (lambda m, x, gs, g: split_neurons(m, g, [0], epsilon="big"),
                             "epsilon must be a finite number, got 'big'"),
    "weights not summing to one": (lambda m, x, gs, g: split_neurons(m, g, [0], offspring_weights=(0.5, 0.6)),
                                   "offspring_weights must sum to 1"),
    "a single offspring": (lambda m, x, gs, g: split_neurons(m, g, [0], offspring_weights=(1.0,)),
                           "offspring_weights must be k >= 2 numbers"),
    "weights with NaN": (lambda m, x, gs, g: split_neurons(m, g, [0], offspring_weights=(math.nan, 1.0)),
                         "offspring_weights contain NaN"),
    "count zero": (lambda m, x, gs, g: add_neurons(m, g, 0), "count must be a positive integer, got 0"),
    "count fractional": (lambda m, x, gs, g: add_neurons(m, g, 1.5), "count must be a positive integer, got 1.5"),
    "fan-in of wrong shape": (lambda m, x, gs, g: add_neurons(m, g, 2, fan_in=torch.ones(2, 7)),
                              r"fan_in for `features.0.1` has shape \(2, 7\); expected \(2, 1, 10, 4\)"),
    "fan-out of wrong shape": (lambda m, x, gs, g: add_neurons(m, g, 1, fan_out=torch.ones(3)),
                               r"fan_out for `features.1.1.0` has shape \(3,\); expected \(1, 8, 1, 1\)"),
    "group of a deepened model": (lambda m, x, gs, g: (deepen(m, "features.1", x), split_neurons(m, g, [0])),
                                  None),
    "group of another model": (lambda m, x, gs, g: split_neurons(resnet8_seed(), g, [0]),
                               "was found on a model with other layers"),
    "deepen unknown layer": (lambda m, x, gs, g: deepen(m, "features.9", x), "the model has no layer `features.9`"),
    "deepen empty name": (lambda m, x, gs, g: deepen(m, "", x), "after must name a layer"),
    "deepen unknown kind": (lambda m, x, gs, g: deepen(m, "features.1", x, kind="lstm"), "unknown kind 'lstm'"),
    "deepen even kernel": (lambda m, x, gs, g: deepen(m, "features.1", x, kernel_size=2),
                           "kernel_size must be a positive odd integer, got 2"),
    "deepen linear after a feature map": (lambda m, x, gs, g: deepen(m, "features.1", x, kind="linear"),
                                          "a 'linear' block cannot follow `features.1`"),
    "deepen with a wrong input": (lambda m, x, gs, g: deepen(m, "features.1", torch.ones(2, 3, 8, 8)),
                                  r"example input of shape \(2, 3, 8, 8\) does not run through the model"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_argument_is_a_clear_error_and_the_model_is_untouched(setup, case):
    model, x, groups, group = setup
    call, message = CASES[case]
    if message is None:  # the model legitimately changes first (deepen), then the stale group is refused
        with pytest.raises(ValueError, match="was found on a model with other layers"):
            call(model, x, groups, group)
        return
    before = {k: v.clone() for k, v in model.state_dict().items()}
    widths = [(n, getattr(mod, "in_channels", None), getattr(mod, "out_channels", None), getattr(mod, "groups", None))
              for n, mod in model.named_modules()]
    with pytest.raises(ValueError, match=message):
        call(model, x, groups, group)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert widths == [(n, getattr(mod, "in_channels", None), getattr(mod, "out_channels", None),
                       getattr(mod, "groups", None)) for n, mod in model.named_modules()]


def test_deepen_refuses_a_layer_that_runs_twice():
    model = SharedConvNet()
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="layer `shared` runs 2 times per forward pass"):
        deepen(model, "shared", x)
    assert type(model.shared).__name__ == "Conv2d"


def test_group_named_accepts_a_member_layer():
    model = ds_cnn_seed()
    groups = find_channel_groups(model, example_input(model))
    assert group_named(groups, "features.1.0.0").name == "features.0.1"  # a depthwise conv of the stem group
