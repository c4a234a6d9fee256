"""Every growth operation keeps the network's function (eval mode, atol 1e-5), on the zoo and on
user models, changes parameter and MAC counts as a freshly built wider model has them, and the grown
model still exports with torch.export and torch.onnx."""
import copy

import onnxruntime
import pytest
import torch
from torch import nn
from user_models import USER_MODELS, randomize_batchnorm

from cost_models import count_macs
from edgegrow.growth import (
    add_neurons,
    deepen,
    find_channel_groups,
    group_named,
    group_width,
    growable_groups,
    split_neurons,
)
from edgegrow.models import DSCNN, MobileNetV1, build_seed, ds_cnn_seed, example_input, mobilenet_v1_seed

ATOL = 1e-5


def zoo(family, **options):
    def build():
        model = build_seed(family, **options)
        return model, example_input(model, 4)
    return build


def user(name):
    def build():
        cls, shape = USER_MODELS[name]
        return cls(), torch.randn(4, *shape)
    return build


MODELS = {
    "ds-cnn": zoo("ds-cnn"),
    "mobilenet-v1": zoo("mobilenet-v1", resolution=32, num_classes=3),
    "mobilenet-v2": zoo("mobilenet-v2", resolution=32, num_classes=3),
    "resnet8": zoo("resnet8"),
    **{f"user-{name}": user(name) for name in USER_MODELS},
}
# Where to deepen each model: a DS block, a ReLU-ended conv, a layer with no activation, a Tanh.
DEEPEN_AFTER = {
    "ds-cnn": ("features.2", "ds-block"), "mobilenet-v1": ("features.1", "ds-block"),
    "mobilenet-v2": ("features.0", "conv"), "resnet8": ("features.1", "conv"),
    "user-residual": ("stem_bn", "conv"), "user-concat": ("norm", "conv"),
    "user-mlp": ("net.2", "linear"), "user-squeeze-excite": ("bn", "conv"), "user-user-style": ("block_act", "conv"),
}


def trained_like(build):
    torch.manual_seed(0)
    model, x = build()
    randomize_batchnorm(model, torch.Generator().manual_seed(1))
    return model.eval(), x


def split_halves(model, group, x):
    width = group_width(model, group)
    split_neurons(model, group, sorted({0, width - 1}))


def split_signed_three_ways(model, group, x):
    directions = {s.layer: torch.randn(1, 3, *model.get_submodule(s.layer).weight.shape[1:]) for s in group.producers}
    split_neurons(model, group, [0], offspring_weights=(1.5, -0.7, 0.2), directions=directions, epsilon=0.0)


def add_two(model, group, x):
    add_neurons(model, group, 2, generator=torch.Generator().manual_seed(2))


OPERATIONS = {"split": split_halves, "signed-split": split_signed_three_ways, "add": add_two}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("name", MODELS)
def test_width_operations_keep_the_function_on_every_growable_group(name, operation):
    model, x = trained_like(MODELS[name])
    reference = model(x)
    groups = growable_groups(find_channel_groups(model, x))
    assert groups, "every test model has something to grow"
    for group in groups:
        width = group_width(model, group)
        OPERATIONS[operation](model, group, x)
        assert group_width(model, group) > width
        torch.testing.assert_close(model(x), reference, atol=ATOL, rtol=0, msg=f"after growing {group.name}")


@pytest.mark.parametrize("name", MODELS)
def test_deepen_keeps_the_function_and_the_model_stays_growable(name):
    model, x = trained_like(MODELS[name])
    reference = model(x)
    after, kind = DEEPEN_AFTER[name]
    layers_before = len(list(model.modules()))
    inserted = deepen(model, after, x, kind=kind)
    assert isinstance(model.get_submodule(inserted), nn.Sequential)
    assert len(list(model.modules())) > layers_before
    torch.testing.assert_close(model(x), reference, atol=ATOL, rtol=0)
    # The inserted layer is an ordinary layer: its channels form a group that can grow too.
    for group in growable_groups(find_channel_groups(model, x)):
        split_neurons(model, group, [0])
    torch.testing.assert_close(model(x), reference, atol=ATOL, rtol=0)


def test_deepen_without_batchnorm_is_exact_in_training_mode_too():
    model, x = trained_like(MODELS["ds-cnn"])
    model.train()
    torch.manual_seed(3)
    reference = model(x)
    deepen(model, "features.1", x, kind="ds-block", batch_norm=False)
    torch.testing.assert_close(model(x), reference, atol=ATOL, rtol=0)


def test_split_in_training_mode_keeps_batch_statistics_per_offspring():
    model, x = trained_like(MODELS["resnet8"])
    model.train()
    reference = model(x)
    for group in growable_groups(find_channel_groups(model, x)):
        split_halves(model, group, x)
    torch.testing.assert_close(model(x), reference, atol=ATOL, rtol=0)


def widths_of(model):
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1]


@pytest.mark.parametrize("seed,rebuild", [
    (lambda: ds_cnn_seed(),
     lambda w: DSCNN(w[0], w[1:], [(1, 1)] * 4)),
    (lambda: mobilenet_v1_seed(32, 3),
     lambda w: MobileNetV1(w[0], w[1:], [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1], num_classes=3,
                           input_shape=(3, 32, 32))),
], ids=["ds-cnn", "mobilenet-v1"])
def test_grown_seed_counts_like_a_freshly_built_model_of_the_same_widths(seed, rebuild):
    model = seed()
    x = example_input(model, 2)
    for extra, group in enumerate(growable_groups(find_channel_groups(model, x))):
        split_neurons(model, group, list(range(extra % 3 + 1)))
        add_neurons(model, group, extra % 2 + 1)
    fresh = rebuild(widths_of(model))
    assert widths_of(fresh) == widths_of(model)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in fresh.parameters())
    assert count_macs(model, x).by_layer == count_macs(fresh, x).by_layer
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in fresh.state_dict().items()}


def test_split_adds_exactly_one_fan_in_fan_out_and_per_channel_state_per_offspring():
    model, x = trained_like(MODELS["user-concat"])
    groups = growable_groups(find_channel_groups(model, x))
    right = group_named(groups, "right")
    before = sum(p.numel() for p in model.parameters())
    split_neurons(model, right, [1, 2])
    # right: 4·3·3 weights + 1 bias per neuron; norm: γ, β; mix: 6·3·3 fan-out per neuron.
    assert sum(p.numel() for p in model.parameters()) - before == 2 * (4 * 9 + 1 + 2 + 6 * 9)
    mix = group_named(groups, "mix")
    before = sum(p.numel() for p in model.parameters())
    add_neurons(model, mix, 1)
    # mix reads the concatenation, now 3 + 5 + 2 channels: 10·3·3 + bias; head: 3 outputs × 4 positions.
    assert sum(p.numel() for p in model.parameters()) - before == 10 * 9 + 1 + 3 * 4


@pytest.mark.parametrize("name", ["ds-cnn", "resnet8", "user-concat", "user-residual"])
def test_grown_model_exports_with_torch_export_and_onnx(name, tmp_path):
    model, x = trained_like(MODELS[name])
    after, kind = DEEPEN_AFTER[name]
    deepen(model, after, x, kind=kind)
    for group in growable_groups(find_channel_groups(model, x)):
        split_halves(model, group, x)
        add_two(model, group, x)
    expected = model(x)
    exported = torch.export.export(copy.deepcopy(model), (x,))
    torch.testing.assert_close(exported.module()(x), expected, atol=ATOL, rtol=0)
    path = tmp_path / "grown.onnx"
    torch.onnx.export(model, (x,), str(path), external_data=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(output), expected, atol=1e-4, rtol=0)


def test_operations_follow_the_model_dtype_even_after_a_parameter_free_layer():
    model, x = trained_like(MODELS["ds-cnn"])
    model, x = model.double(), x.double()
    reference = model(x)
    inserted = deepen(model, "features.0.3", x)  # after the stem's ReLU, which has no parameters
    assert all(p.dtype == torch.float64 for p in model.get_submodule(inserted).parameters())
    for group in growable_groups(find_channel_groups(model, x)):
        add_two(model, group, x)
        split_halves(model, group, x)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    torch.testing.assert_close(model(x), reference, atol=1e-10, rtol=0)


def test_deepen_is_close_to_identity_in_training_mode_once_statistics_are_calibrated():
    torch.manual_seed(0)
    model = build_seed("ds-cnn")
    x = example_input(model, 64)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative averages: running statistics converge to the data's
    model.train()
    with torch.no_grad():
        for _ in range(20):
            model(torch.randn_like(x))
        reference = model(x)
        deepen(model, "features.2", x, kind="ds-block")
        drift = (model(x) - reference).abs().max() / reference.abs().max()
    assert drift < 1e-2


@pytest.mark.parametrize("name", MODELS)
def test_block_inserted_puts_the_model_back_exactly_even_when_the_body_raises(name):
    from edgegrow.growth.deepen import block_inserted

    model, x = trained_like(MODELS[name])
    after, kind = DEEPEN_AFTER[name]
    modules = [(n, id(m)) for n, m in model.named_modules()]
    tensors = [(n, id(t)) for n, t in (*model.named_parameters(), *model.named_buffers())]
    reference = model(x)
    with block_inserted(model, after, x[:1], kind=kind) as inserted:
        assert isinstance(model.get_submodule(inserted), nn.Sequential)
        assert len(list(model.modules())) > len(modules)
    with pytest.raises(RuntimeError, match="priced"):
        with block_inserted(model, after, x[:1], kind=kind):
            raise RuntimeError("priced")
    assert [(n, id(m)) for n, m in model.named_modules()] == modules
    assert [(n, id(t)) for n, t in (*model.named_parameters(), *model.named_buffers())] == tensors
    torch.testing.assert_close(model(x), reference, atol=0, rtol=0)
    with pytest.raises(ValueError, match="the model has no layer `nowhere`"):
        with block_inserted(model, "nowhere", x[:1]):
            pass


@pytest.mark.parametrize("name", ["ds-cnn", "mobilenet-v2", "user-residual"])
def test_deepen_many_builds_in_one_pass_the_blocks_deepen_builds_one_by_one(name):
    from edgegrow.growth.deepen import deepen_many
    from edgegrow.growth.firefly import _feature_blocks

    model, x = trained_like(MODELS[name])
    points = [(after, None) for after in _feature_blocks(model)] or [
        ("stem_bn", None), ("bn1", None), ("head", "linear")]
    one_by_one, at_once = copy.deepcopy(model), copy.deepcopy(model)
    names = [deepen(one_by_one, after, x, kind=kind) for after, kind in points]
    assert deepen_many(at_once, points, x) == names
    assert one_by_one.state_dict().keys() == at_once.state_dict().keys()
    for key, value in one_by_one.state_dict().items():
        assert torch.equal(value, at_once.state_dict()[key]), key
    assert [m.training for m in one_by_one.modules()] == [m.training for m in at_once.modules()]
    with pytest.raises(ValueError, match="the model has no layer `nowhere`"):
        deepen_many(at_once, [("nowhere", None)], x)
    state = {key: value.clone() for key, value in at_once.state_dict().items()}
    with pytest.raises(ValueError, match="a 'linear' block cannot follow"):
        deepen_many(at_once, [(points[0][0], "linear")], x)
    assert at_once.state_dict().keys() == state.keys()
