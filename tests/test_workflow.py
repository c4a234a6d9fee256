"""The whole workflow (``edgegrow workflow``) in quick mode on a tiny Speech Commands folder: this
machine profiled as host, a seed grown to a host and a Cortex-M budget, baselines trained, both
networks exported and benchmarked, the reports and the index written; and every file it names loads
in its runtime."""
import json
import re
from dataclasses import asdict
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from fake_speech_commands import write_speech_commands

from cost_models import estimate, load_target
from edgegrow.checkpoint import load_checkpoint
from edgegrow.export import runtimes
from edgegrow.models import ds_cnn
from edgegrow.workflow import WorkflowConfig, ensure_host_profile, run_workflow

MCU = "cortex-m4f-120mhz"


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("workflow")
    data = write_speech_commands(root / "data", clips_per_word=12)
    patch = pytest.MonkeyPatch()
    patch.setenv("EDGEGROW_TARGETS", str(root / "targets"))  # the host profile goes here, not to ~/.edgegrow
    lines = []
    result = run_workflow("kws", data=data, out=root / "out", cache_dir=root / "cache",
                          config=WorkflowConfig.quick(baseline_widths=(0.25, 0.5), tensorboard=True), progress=False,
                          log=lines.append, callbacks_for=lambda name: [Heard(name)])
    yield result, root, lines
    patch.undo()


HEARD: list[tuple[str, str, int]] = []  # (deployment, phase, step) of every epoch the workflow's callbacks heard


class Heard:
    def __init__(self, name):
        self.name = name

    def on_epoch_end(self, row):
        HEARD.append((self.name, row.phase, row.step))


def test_host_is_profiled_here_and_reused_afterwards(workflow):
    result, root, lines = workflow
    profile = root / "targets" / "host.json"
    assert any("measuring this machine's latency table" in line for line in lines)
    host = load_target(str(profile))
    assert host.name == "host" and host.measured
    assert result.deployments[0].target.name == "host"
    before = profile.stat().st_mtime_ns
    again = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGEGROW_TARGETS", str(root / "targets"))
        ensure_host_profile(progress=False, log=again.append)
    assert "reusing" in again[0] and profile.stat().st_mtime_ns == before


def test_both_networks_grow_within_their_budgets_and_default_budgets_are_the_reference_cost(workflow):
    result, _, _ = workflow
    host, mcu = result.deployments
    assert mcu.name == MCU and set(mcu.budget.limits) == {"latency_ms", "sram_kb", "flash_kb"}
    assert set(host.budget.limits) == {"latency_ms"}
    reference = ds_cnn("S", width_multiplier=0.5, num_classes=12, input_shape=(1, 49, 10)).eval()
    expected = estimate(reference, torch.zeros(1, 1, 49, 10), load_target(MCU))
    assert mcu.budget.limits["sram_kb"] == pytest.approx(expected.sram_bytes / 1024)
    assert mcu.budget.limits["flash_kb"] == pytest.approx(expected.flash_bytes / 1024)
    for deployment in result.deployments:
        summary = json.loads((deployment.run_dir / "summary.json").read_text())
        assert summary == json.loads(json.dumps(asdict(deployment.grown)))
        assert summary["target"] == deployment.target.name
        assert all(0 < share <= 1 for share in summary["usage"].values())
        model, _ = load_checkpoint(deployment.run_dir / "checkpoint.pt")
        cost = estimate(model.eval(), torch.zeros(1, 1, 49, 10), deployment.target)
        assert not deployment.budget.violations(cost)
        assert summary["predicted"]["macs"] > estimate(ds_cnn_seed_of(deployment), torch.zeros(1, 1, 49, 10),
                                                       deployment.target).macs  # it grew
        assert list((deployment.run_dir / "tensorboard").glob("events.out.tfevents.*"))  # WorkflowConfig.tensorboard
        assert (deployment.run_dir / "epochs.csv").is_file()


def test_each_grow_run_calls_the_callbacks_given_for_its_deployment(workflow):
    result, _, _ = workflow
    for deployment in result.deployments:
        log = [json.loads(line) for line in (deployment.run_dir / "log.jsonl").read_text().splitlines()]
        assert [(name, phase, step) for name, phase, step in HEARD if name == deployment.name] == [
            (deployment.name, row["phase"], row["step"]) for row in log if row["row"] == "epoch"]


def ds_cnn_seed_of(deployment):
    from edgegrow.checkpoint import build_seed_from_options

    _, checkpoint = load_checkpoint(deployment.run_dir / "checkpoint.pt")
    return build_seed_from_options(checkpoint.family, checkpoint.seed_options).eval()


@pytest.mark.parametrize("index", [0, 1])
def test_exported_files_load_and_agree_in_their_runtimes(workflow, index):
    result, _, _ = workflow
    deployment = result.deployments[index]
    folder = deployment.export_dir
    card = json.loads((folder / "model_card.json").read_text())
    model, _ = load_checkpoint(deployment.run_dir / "checkpoint.pt")
    x = torch.randn(4, 1, 49, 10)
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    onnx = runtimes.open_onnx(folder / "model.onnx")
    assert np.abs(onnx.run(x.numpy()) - expected).max() < 1e-4
    tflite = runtimes.open_litert(folder / "model.tflite")
    assert np.abs(tflite.run(x.permute(0, 2, 3, 1).numpy()) - expected).max() < 1e-4
    assert runtimes.open_onnx(folder / "model_int8.onnx").run(x.numpy()).shape == expected.shape
    int8 = (folder / "model_int8.tflite").read_bytes()
    litert = runtimes.open_litert(int8)
    micro = runtimes.open_tflm(int8, arena_bytes=card["tflm"]["arena_bytes"])
    batch = litert.input.quantize(x.permute(0, 2, 3, 1).numpy())
    assert np.abs(litert.run(batch).astype(int) - micro.run(batch).astype(int)).max() <= 1
    array = (folder / "model_int8.cc").read_text()
    assert len(re.findall(r"0x[0-9a-f]{2}", array)) == len(int8)


def test_benchmarks_are_recorded_in_each_card(workflow):
    result, _, _ = workflow
    host, mcu = result.deployments
    for deployment, runtimes_expected in ((host, ["onnxruntime", "litert", "litert"]),
                                          (mcu, ["onnxruntime", "litert", "litert", "tflm"])):
        card = json.loads((deployment.export_dir / "model_card.json").read_text())
        assert [m["runtime"] for m in card["measured"]] == runtimes_expected
        assert [b["runtime"] for b in deployment.benchmarks] == runtimes_expected
        assert all(m["latency_ms_median"] > 0 for m in card["measured"])
    tflm = json.loads((mcu.export_dir / "model_card.json").read_text())["measured"][-1]
    assert tflm["target"] == MCU and tflm["arena_bytes"] == mcu.export["tflm"]["arena_bytes"]


class Links(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.hrefs, self.plots = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "a":
            self.hrefs.append(attributes["href"])
        if tag == "circle" and attributes.get("data-series") == "baselines":
            self.plots.append(attributes.get("data-name"))


def test_reports_and_index_exist_and_link_to_real_files(workflow):
    result, _, _ = workflow
    out = result.out_dir
    index = Links(result.index.read_text())
    assert index.hrefs and all((out / href).exists() for href in index.hrefs)
    for deployment in result.deployments:
        assert f"runs/{deployment.name}/report.html" in index.hrefs
        report = Links((deployment.run_dir / "report.html").read_text())
        assert sorted(report.plots) == sorted(b["name"] for b in result.baselines
                                              if deployment.target.name in b["costs"])
    summary = json.loads((out / "workflow.json").read_text())
    assert [d["target"] for d in summary["deployments"]] == ["host", MCU]
    assert set(summary["seconds"]) == {"data", "profile", "grow", "baselines", "export", "bench", "report", "total"}
    baselines = json.loads((out / "baselines.json").read_text())
    fixed, fair = baselines[:2], baselines[2:]
    assert [b["width_multiplier"] for b in fixed] == [0.25, 0.5]
    assert all(set(b["costs"]) == {"host", MCU} and 0 <= b["accuracy"] <= 1 for b in fixed)
    assert [b["name"].endswith(f"(fits {d.name})") for b, d in zip(fair, result.deployments)] == [True, True]


def test_each_grown_network_is_compared_with_the_largest_uniform_network_at_equal_compute(workflow):
    result, _, _ = workflow
    from edgegrow.growth.budget import Budget

    for deployment in result.deployments:
        fair, grown = deployment.fair, deployment.grown
        assert all(share <= 1 for share in fair["usage"].values())
        wider = ds_cnn("S", width_multiplier=fair["width_multiplier"] * 1.25, num_classes=12).eval()
        assert Budget(deployment.budget.limits).violations(
            estimate(wider, torch.zeros(1, 1, 49, 10), deployment.target)), "a wider uniform network fits too"
        # the same training compute, to the optimizer step (this tiny set has few steps per epoch)
        assert fair["mac_epochs"] == pytest.approx(grown.mac_epochs, rel=0.15)
        assert fair["epochs"] < grown.grown.epochs  # the grown run spent part of its run smaller
        assert fair["test_difference"] == pytest.approx(grown.test_accuracy - fair["test_accuracy"])
    index = result.index.read_text()
    assert "Grown against the largest uniform network that fits" in index and "points" in index


def test_the_printed_outcome_names_each_devices_network_costs_baseline_and_files(workflow):
    result, _, _ = workflow
    text = result.describe()
    host, mcu = result.deployments
    for deployment in result.deployments:
        grown = deployment.grown
        assert f"{deployment.target.name}: {deployment.budget.describe()}" in text
        assert f"widths {'/'.join(str(w) for w in grown.widths.values())}, depth {grown.depth}" in text
        assert f"test accuracy {grown.test_accuracy:.1%}" in text
        assert f"against {deployment.fair['name']}" in text
        assert f"grown {100 * deployment.fair['test_difference']:+.1f} points" in text
    arena = mcu.export["tflm"]["arena_bytes"]
    assert f"TFLite Micro arena {arena / 1024:.1f} KiB" in text  # measured, beside the prediction
    measured = next(b for b in host.benchmarks if b["runtime"] == "onnxruntime")["latency_ms_median"]
    assert f"{measured:.4f} ms measured (onnxruntime, median)" in text
    assert f"{result.seconds['total']:.0f} s in all" in text and f"deployable files: {result.out_dir / 'exported'}" in text


def test_a_folder_with_results_is_refused_and_left_alone(workflow):
    result, root, _ = workflow
    before = sorted(path.name for path in result.out_dir.iterdir())
    with pytest.raises(ValueError, match="already holds results; choose another --out"):
        run_workflow("kws", data=root / "data", out=result.out_dir, progress=False, log=lambda line: None)
    assert sorted(path.name for path in result.out_dir.iterdir()) == before


def test_a_seed_over_a_budget_is_refused_before_training(workflow, tmp_path):
    _, root, _ = workflow
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGEGROW_TARGETS", str(root / "targets"))
        with pytest.raises(ValueError, match="seed"):
            run_workflow("kws", data=root / "data", out=tmp_path / "out", cache_dir=root / "cache",
                         mcu_budget={"sram_kb": 0.5}, progress=False, log=lambda line: None)
    assert not (tmp_path / "out").exists()


def test_the_image_task_grows_the_family_asked_for():
    from edgegrow.tasks import load_task

    task = load_task("image", family="mobilenet-v1")
    assert task.family == "mobilenet-v1" and task.seed_options["input_shape"] == list(task.data.input_shape)
    assert type(task.seed()).__name__ == "MobileNetV1" and task.seed().input_shape == task.data.input_shape
    assert task.source["family"] == "mobilenet-v1"
    # one default image family for grow and the workflow (models/registry.py): MobileNetV2
    assert load_task("image").family == "mobilenet-v2"


def test_baselines_train_with_the_grow_runs_shrink_steps(monkeypatch):
    """The fair baseline and the width ladder use the grow runs' recipe, shrink steps included (DS-CNN's
    family shrink 0.5 at every scheduled growth event), and no shrink for a family without one."""
    import math

    import edgegrow.workflow as workflow
    from edgegrow.grow import growth_events
    from edgegrow.tasks import Task
    from toy import toy_task

    config = WorkflowConfig.quick()
    kws = Task(toy_task(), "ds-cnn", {"num_classes": 4})
    steps, factor = workflow.recipe_shrink(kws, config)
    grow_config = config.grow.for_family("ds-cnn")
    expected = [e.step for e in growth_events(grow_config, math.ceil(len(kws.data.train) / grow_config.batch_size))]
    assert factor == 0.5 and steps == expected and steps
    assert workflow.recipe_shrink(Task(toy_task(), "mobilenet-v2", {"num_classes": 4}), config) == ([], 1.0)
    seen = []

    class Recorded(Exception):
        pass

    def record(*args, **kwargs):
        seen.append((kwargs["shrink"], kwargs["restart"]))
        raise Recorded

    monkeypatch.setattr(workflow, "train_baseline", record)
    with pytest.raises(Recorded):
        workflow.train_baselines(kws, [0.25], [], config, False, print)
    assert seen == [((expected, 0.5), None)]  # 3 steps an epoch: the grow runs grow in place, no restart


def test_baselines_restart_where_the_grow_runs_restart():
    """Where DS-CNN's grow runs restart after their search (enough data), the baselines restart at the same
    step with the same blend (recipe_restart); a family that grows in place gives none."""
    import math

    import edgegrow.workflow as workflow
    from edgegrow.baseline import RestartAt
    from edgegrow.grow.config import MIN_RESTART_STEPS
    from edgegrow.tasks import Task
    from toy import toy_task

    config = WorkflowConfig.quick()
    big = Task(toy_task(examples=64 * MIN_RESTART_STEPS), "ds-cnn", {"num_classes": 4})
    grow_config = config.grow.for_family("ds-cnn", len(big.data.train))
    assert grow_config.restart
    assert workflow.recipe_restart(big, config) == RestartAt(
        grow_config.search_epochs * math.ceil(len(big.data.train) / grow_config.batch_size),
        grow_config.restart_keep, grow_config.seed)
    assert workflow.recipe_restart(Task(big.data, "mobilenet-v2", {"num_classes": 4}), config) is None
