"""Channel-group discovery on the zoo and on user-written models, including what it refuses."""
import pytest
import torch
from user_models import (
    MLP,
    ChannelShuffleNet,
    ConcatNet,
    DataDependentNet,
    GroupedConvNet,
    ResidualNet,
    SharedConvNet,
    SqueezeExciteNet,
)

from edgegrow.growth import find_channel_groups, group_named, growable_groups
from edgegrow.models import ds_cnn_seed, example_input, mobilenet_v2_seed, resnet8_seed


def groups_of(model, *shape):
    return find_channel_groups(model, torch.randn(2, *shape))


def layers(slots):
    return [slot.layer for slot in slots]


def test_ds_cnn_seed_has_one_growable_group_per_pointwise_layer():
    model = ds_cnn_seed()
    groups = find_channel_groups(model, example_input(model))
    growable = growable_groups(groups)
    assert [g.name for g in growable] == ["features.0.1", "features.1.1.0", "features.2.1.0", "features.3.1.0",
                                          "features.4.1.0"]
    stem = growable[0]
    assert layers(stem.passthrough) == ["features.0.2", "features.1.0.0", "features.1.0.1"]  # BN, depthwise, BN
    assert layers(stem.consumers) == ["features.1.1.0"]
    assert layers(growable[-1].consumers) == ["classifier"]
    not_growable = {g.name: g.reasons for g in groups if not g.growable}
    assert not_growable["classifier"] == ("feeds the model output",)
    assert any("model input" in reasons for reasons in not_growable.values())


def test_resnet8_ties_residual_producers_into_one_group():
    model = resnet8_seed()
    groups = growable_groups(find_channel_groups(model, example_input(model)))
    stage1 = group_named(groups, "features.0.0")
    assert layers(stage1.producers) == ["features.0.0", "features.1.body.1.0"]
    assert layers(stage1.consumers) == ["features.1.body.0.0", "features.2.body.0.0", "features.2.shortcut"]
    stage2 = group_named(groups, "features.2.body.1.0")
    assert layers(stage2.producers) == ["features.2.body.1.0", "features.2.shortcut"]


def test_mobilenet_v2_stage_with_three_residual_blocks_is_one_group():
    model = mobilenet_v2_seed(64, 2)
    groups = growable_groups(find_channel_groups(model, example_input(model)))
    stage = group_named(groups, "features.4.block.2.0")
    assert layers(stage.producers) == ["features.4.block.2.0", "features.5.block.2.0", "features.6.block.2.0"]
    # stem + 7 stage outputs + 16 expansions (every block but the first) + the last 1x1 conv
    assert len(groups) == 1 + 7 + 16 + 1


def test_user_residual_net_with_functional_ops():
    groups = growable_groups(groups_of(ResidualNet(), 3, 8, 8))
    main = group_named(groups, "stem")
    assert layers(main.producers) == ["stem", "conv2"]
    assert layers(main.passthrough) == ["stem_bn", "bn2"]
    assert layers(main.consumers) == ["conv1", "head"]
    assert layers(group_named(groups, "conv1").consumers) == ["conv2"]


def test_concatenation_offsets_and_flatten_multiplicity():
    groups = growable_groups(groups_of(ConcatNet(), 3, 8, 8))
    left, right = group_named(groups, "left"), group_named(groups, "right")
    assert layers(left.passthrough) == ["norm"] and layers(left.consumers) == ["mix"]
    assert left.consumers[0].before == ()
    (segment,) = right.consumers[0].before
    assert segment.width_layer == "left" and segment.fixed_width == 3
    mix = group_named(groups, "mix")
    assert mix.consumers[0].layer == "head" and mix.consumers[0].inner == 4  # 2×2 map flattened


def test_mlp_groups_pass_through_batchnorm1d():
    groups = growable_groups(groups_of(MLP(), 7))
    assert [g.name for g in groups] == ["net.0", "net.3"]
    assert layers(groups[0].passthrough) == ["net.1"]


def test_squeeze_excite_gate_joins_the_gated_group():
    groups = growable_groups(groups_of(SqueezeExciteNet(), 3, 6, 6))
    gated = group_named(groups, "conv")
    assert layers(gated.producers) == ["conv", "excite"]
    assert layers(gated.consumers) == ["squeeze", "head"]


def test_unknown_op_blocks_only_the_groups_through_it():
    groups = groups_of(ChannelShuffleNet(), 3, 4, 4)
    by_name = {g.name: g for g in groups}
    assert by_name["a"].growable and by_name["c"].growable
    assert not by_name["b"].growable
    assert "method `.view()`" in by_name["b"].reasons[0]


def test_shared_weights_are_not_growable():
    groups = groups_of(SharedConvNet(), 3, 4, 4)
    reasons = [r for g in groups for r in g.reasons]
    assert any("`shared` is called 2 times" in r for r in reasons)
    assert not any(g.growable and "shared" in [s.layer for s in g.slots] for g in groups)


def test_grouped_convolution_is_not_growable():
    groups = groups_of(GroupedConvNet(), 3, 4, 4)
    assert not group_named(groups, "a").growable
    assert "grouped convolution `grouped` (groups=2)" in group_named(groups, "a").reasons[0]


def test_untraceable_model_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot trace DataDependentNet with torch.fx"):
        groups_of(DataDependentNet(), 3, 4, 4)


def test_wrong_example_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"example input of shape \(2, 2, 8, 8\) does not run through ResidualNet"):
        groups_of(ResidualNet(), 2, 8, 8)


def test_discovery_changes_neither_training_mode_nor_statistics():
    model = ds_cnn_seed().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    find_channel_groups(model, example_input(model, 4))
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_group_named_lists_growable_groups_when_missing():
    model = ds_cnn_seed()
    with pytest.raises(ValueError, match="no channel group named 'nope'; growable groups: features.0.1"):
        group_named(find_channel_groups(model, example_input(model)), "nope")
