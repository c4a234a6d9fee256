"""The zoo reproduces published MAC and parameter counts and builds seeds of the same topology."""
import pytest
import torch
from torch import nn

from cost_models import count_macs
from edgegrow.models import (
    DSCNN,
    InvertedResidual,
    build_model,
    build_seed,
    ds_cnn,
    ds_cnn_seed,
    example_input,
    mobilenet_v1,
    mobilenet_v1_seed,
    mobilenet_v2,
    mobilenet_v2_seed,
    resnet8,
    resnet8_seed,
)

# Published figures (../shared/docs/ANCHORS.md): MACs per example, and parameters where given.
MAC_ANCHORS = [
    ("DS-CNN-S (Hello Edge)", lambda: ds_cnn("S"), 2.66e6),
    ("MLPerf Tiny KWS reference", lambda: ds_cnn("mlperf"), 2.66e6),
    ("MobileNetV1 1.0/224", lambda: mobilenet_v1(1.0, 224), 569e6),
    ("MobileNetV1 0.75/224", lambda: mobilenet_v1(0.75, 224), 325e6),
    ("MobileNetV1 0.5/224", lambda: mobilenet_v1(0.5, 224), 150e6),
    ("MobileNetV1 0.25/224", lambda: mobilenet_v1(0.25, 224), 41e6),
    ("MobileNetV1 0.25/96, 2 classes (VWW)", lambda: mobilenet_v1(0.25, 96, 2), 7.5e6),
    ("MobileNetV2 1.0/224", lambda: mobilenet_v2(1.0, 224), 301e6),
    ("MobileNetV2 0.75/224", lambda: mobilenet_v2(0.75, 224), 209e6),
    ("MobileNetV2 0.5/224", lambda: mobilenet_v2(0.5, 224), 97e6),
    ("MobileNetV2 0.35/224", lambda: mobilenet_v2(0.35, 224), 59e6),
    ("ResNet-8 (MLPerf Tiny IC)", lambda: resnet8(), 12.5e6),
]
PARAMETER_ANCHORS = [
    ("DS-CNN-S", lambda: ds_cnn("S"), 23.2e3),
    ("DS-CNN-M", lambda: ds_cnn("M"), 136.6e3),
    ("DS-CNN-L", lambda: ds_cnn("L"), 413.7e3),
    ("MobileNetV1 1.0", lambda: mobilenet_v1(1.0), 4.23e6),
    ("MobileNetV1 0.5", lambda: mobilenet_v1(0.5), 1.33e6),
    ("MobileNetV2 1.0", lambda: mobilenet_v2(1.0), 3.50e6),
    ("MobileNetV2 0.5", lambda: mobilenet_v2(0.5), 1.97e6),
]


@pytest.mark.parametrize("name,build,published", MAC_ANCHORS, ids=[a[0] for a in MAC_ANCHORS])
def test_macs_match_published_within_one_percent(name, build, published):
    model = build()
    macs = count_macs(model, example_input(model)).total
    assert macs == pytest.approx(published, rel=0.01), f"{name}: {macs / 1e6:.2f} M MACs"


@pytest.mark.parametrize("name,build,published", PARAMETER_ANCHORS, ids=[a[0] for a in PARAMETER_ANCHORS])
def test_parameters_match_published_within_one_percent(name, build, published):
    assert sum(p.numel() for p in build().parameters()) == pytest.approx(published, rel=0.01)


@pytest.mark.parametrize("family,options,classes", [
    ("ds-cnn", {}, 12),
    ("mobilenet-v1", {"resolution": 64, "num_classes": 5}, 5),
    ("mobilenet-v2", {"resolution": 64, "num_classes": 5}, 5),
    ("resnet8", {}, 10),
])
def test_model_and_seed_share_topology_and_seed_is_tiny(family, options, classes):
    model, seed = build_model(family, **options), build_seed(family, **options)
    assert model(example_input(model, 2)).shape == (2, classes)
    assert seed(example_input(seed, 2)).shape == (2, classes)
    layer_types = lambda m: [type(x).__name__ for x in m.modules()]  # noqa: E731
    assert layer_types(model) == layer_types(seed)
    widths = [m.out_channels for m in seed.modules() if isinstance(m, nn.Conv2d)]
    assert max(widths) <= 128 and min(widths) <= 8
    assert count_macs(seed, example_input(seed)).total < count_macs(model, example_input(model)).total / 10


def test_mobilenet_v2_residuals_follow_the_table_not_channel_coincidence():
    # In the seed, the first block's input and output widths coincide; it still has no residual.
    for model in (mobilenet_v2(), mobilenet_v2_seed()):
        blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
        assert [b.use_residual for b in blocks] == [False, False, True, False, True, True, False, True,
                                                    True, True, False, True, True, False, True, True, False]


def test_ds_cnn_output_map_is_25_by_5_for_the_mlperf_input():
    model = ds_cnn("S")
    features = model.features(torch.zeros(1, 1, 49, 10))
    assert features.shape == (1, 64, 25, 5)
    assert ds_cnn_seed().features(torch.zeros(1, 1, 49, 10)).shape == (1, 8, 25, 5)


def test_width_multiplier_scales_ds_cnn():
    half = ds_cnn("S", width_multiplier=0.5)
    assert isinstance(half, DSCNN) and half.classifier.in_features == 32


@pytest.mark.parametrize("call,message", [
    (lambda: build_model("vgg"), "unknown model family 'vgg'"),
    (lambda: ds_cnn("XL"), "unknown DS-CNN size 'XL'"),
    (lambda: mobilenet_v1(0), "width_multiplier must be > 0"),
    (lambda: mobilenet_v2(1.0, 16), "resolution must be at least 32"),
    (lambda: resnet8(-1), "width_multiplier must be > 0"),
])
def test_bad_model_options_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_seeds_of_each_family_build_for_other_class_counts():
    assert mobilenet_v1_seed(96, 2)(torch.zeros(1, 3, 96, 96)).shape == (1, 2)
    assert resnet8_seed(100)(torch.zeros(1, 3, 32, 32)).shape == (1, 100)
