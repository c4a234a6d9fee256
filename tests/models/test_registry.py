"""The family registry: one record per family read by tasks, the workflow and the CLI, builders of one
signature, and a family of your own that grows, exports, reloads and reports by name."""
import pytest
import torch
from torch import nn

from edgegrow.checkpoint import load_checkpoint
from edgegrow.export import export_checkpoint
from edgegrow.grow import GrowConfig, grow
from edgegrow.growth.budget import Budget
from edgegrow.models import (
    DEFAULT_FAMILY,
    FAMILIES,
    Family,
    build_model,
    build_seed,
    families_of,
    family_growth_settings,
    get_family,
    mobilenet_v2,
    register_family,
)
from edgegrow.report import write_report
from edgegrow.tasks import load_task, task_of_family


def shapes(model: nn.Module) -> list[tuple]:
    return [tuple(p.shape) for p in model.parameters()]


def test_every_built_in_family_builds_its_reference_and_seed_with_one_signature():
    for name, family in FAMILIES.items():
        shape = (1, 49, 10) if family.task == "kws" else (3, 32, 32)
        network = family.network(num_classes=7, input_shape=shape)
        seed = family.seed(num_classes=7, input_shape=shape)
        wide_seed = family.seed(num_classes=7, input_shape=shape, width_multiplier=family.reference_width)
        for model in (network, seed, wide_seed):
            assert tuple(model.input_shape) == shape and model(torch.zeros(2, *shape)).shape == (2, 7), name
        assert shapes(wide_seed) == shapes(network), name  # --seed-width at the reference width is the reference
        assert sum(p.numel() for p in seed.parameters()) < sum(p.numel() for p in network.parameters()), name
    # the image builders' input_shape is their resolution and in_channels
    assert shapes(get_family("mobilenet-v2").network(5, (1, 48, 48), 0.5)) == \
        shapes(mobilenet_v2(0.5, 48, 5, in_channels=1))
    assert shapes(get_family("ds-cnn").network(12, (1, 49, 10))) == \
        shapes(build_model("ds-cnn", size="S", width_multiplier=0.5, num_classes=12))


def test_one_table_gives_tasks_defaults_widths_and_measured_settings():
    assert DEFAULT_FAMILY == {"kws": "ds-cnn", "image": "mobilenet-v2"}
    assert families_of("image") == ["mobilenet-v2", "mobilenet-v1", "resnet8"] and families_of("kws") == ["ds-cnn"]
    assert task_of_family("resnet8") == "image" and task_of_family("custom") is None
    assert get_family("ds-cnn").baseline_widths == (0.25, 0.5, 1.0) and get_family("ds-cnn").reference_width == 0.5
    assert get_family("mobilenet-v2").baseline_widths == (0.35, 0.5, 0.75)
    assert family_growth_settings("ds-cnn") == {"method": "tiny", "shrink": 0.5, "restart": True}
    assert family_growth_settings("no-such-family") == {}


@pytest.mark.parametrize("make, message", [
    (lambda: Family("", "kws", nn.Identity, nn.Identity), "a family needs a name"),
    (lambda: Family("custom", "kws", nn.Identity, nn.Identity), "not 'custom'"),
    (lambda: Family("x", "audio", nn.Identity, nn.Identity), "unknown task 'audio'; choose one of kws, image"),
    (lambda: Family("x", "kws", "not callable", nn.Identity), "build must be callable"),
    (lambda: Family("x", "kws", nn.Identity, nn.Identity, reference_width=0), "finite numbers > 0, got 0"),
    (lambda: register_family(Family("ds-cnn", "kws", nn.Identity, nn.Identity)), "already registered"),
    (lambda: register_family("ds-cnn"), "takes a Family record"),
    (lambda: get_family("ds_cnn"), "unknown model family 'ds_cnn'; known: ds-cnn, mobilenet-v1"),
    (lambda: build_seed("ds_cnn"), "unknown model family 'ds_cnn'"),
    (lambda: load_task("kws", family="resnet8"), "family 'resnet8' does not grow on the kws task; choose one of ds-cnn"),
])
def test_bad_families_are_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


class TinyCNN(nn.Module):
    """A user's own image network: two conv-BN-ReLU blocks, pooled, linear; 16 channels at width 1."""

    def __init__(self, num_classes: int, input_shape, channels: int):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.features = nn.Sequential(
            nn.Conv2d(input_shape[0], channels, 3, stride=2, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


def tiny_cnn(*, num_classes, input_shape, width_multiplier=1.0):
    return TinyCNN(num_classes, input_shape, max(1, round(16 * width_multiplier)))


def tiny_cnn_seed(*, num_classes, input_shape, width_multiplier=None):
    return tiny_cnn(num_classes=num_classes, input_shape=input_shape, width_multiplier=width_multiplier or 0.25)


@pytest.fixture
def tiny_family():
    family = register_family(Family("tiny-cnn", task="image", build=tiny_cnn, build_seed=tiny_cnn_seed,
                                    reference_width=1.0, baseline_widths=(0.5, 1.0)))
    yield family
    FAMILIES.pop("tiny-cnn")


def test_a_registered_family_grows_exports_reloads_and_reports_by_name(tiny_family, tmp_path):
    task = load_task("image", family="tiny-cnn", progress=False)  # scikit-learn's digits
    assert task.family == "tiny-cnn" and task.uniform(1.0)(torch.zeros(1, *task.data.input_shape)).shape == (1, 10)
    seed = task.seed()
    assert [m.out_channels for m in seed.modules() if isinstance(m, nn.Conv2d)] == [4, 4]
    from cost_models import estimate

    budget = Budget({"macs": 3 * estimate(seed, torch.zeros(1, *task.data.input_shape), "host").macs})
    config = GrowConfig(epochs=3, warmup_epochs=0.5, growth_end=0.5, growth_every=0.5, score_batches=1)
    result = grow(seed, task.data, "host", budget, config, tmp_path / "run", family=task.family,
                  seed_options=task.seed_options, log=lambda line: None, task_source=task.source)
    assert max(result.summary.widths.values()) > 4  # it grew
    model, checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint.pt")  # rebuilt through the registry by name
    assert checkpoint.family == "tiny-cnn" and shapes(model) == shapes(result.model)
    x = torch.randn(3, *task.data.input_shape)
    result.model.eval()
    torch.testing.assert_close(model.eval()(x), result.model(x))
    exported = export_checkpoint(tmp_path / "run", tmp_path / "exported", formats=["onnx"], progress=False,
                                 log=lambda line: None)
    assert (tmp_path / "exported" / "model.onnx").is_file() and exported is not None
    report = write_report(tmp_path / "run", export_dir=tmp_path / "exported")
    assert "tiny-cnn" in report.read_text()
    FAMILIES.pop("tiny-cnn")  # another process (or this one, unregistered) cannot rebuild it: said, not guessed
    with pytest.raises(ValueError, match="unknown model family 'tiny-cnn'.*register_family"):
        load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    register_family(tiny_family)
