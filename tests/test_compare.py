"""``edgegrow compare``: a network grown for every device at every rung of a ladder of budgets, each within
its rung's budget, measured where this machine can measure it and said to be predicted elsewhere; the
page's charts; the cheapest device and budget for an accuracy target, chosen on validation; resuming a
killed comparison; and refusals of bad input before anything slow runs."""
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from fake_speech_commands import write_speech_commands

import edgegrow.compare as compare_module
from cost_models import estimate, load_target
from edgegrow.cli import main
from edgegrow.compare import (
    COMPARISON,
    FORMAT,
    Choice,
    CompareConfig,
    Comparison,
    Device,
    GrownRun,
    Point,
    compare_targets,
    read_comparison,
    rung_budget,
)
from edgegrow.grow import GrowConfig
from edgegrow.growth.budget import Budget
from edgegrow.report.compare_report import render_comparison as comparison_page
from edgegrow.report.run_report import pareto_front
from edgegrow.tasks import load_task

MCU, GPU = "cortex-m4f-120mhz", "jetson-orin-nano"
TARGETS = ["host", MCU, GPU]
LADDER = (0.5, 1.0)
CONFIG = CompareConfig.quick(grow=GrowConfig.quick(epochs=2, score_batches=1), ladder=LADDER, bench_runs=8,
                             bench_warmup=1, calibration_examples=50)


def host_profile(folder: Path) -> None:
    """This project's measured onnxruntime profile as ``folder/host.json``: no profiling in the tests."""
    values = json.loads((Path(__file__).parents[1] / "bench" / "targets" / "x86-vm-onnxruntime.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "host.json").write_text(json.dumps({**values, "name": "host"}))


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    write_speech_commands(root / "data", clips_per_word=12)
    patch = pytest.MonkeyPatch()
    patch.setenv("EDGEGROW_TARGETS", str(root / "targets"))
    host_profile(root / "targets")
    lines = []
    result = compare_targets(TARGETS, "kws", data=root / "data", out=root / "out", cache_dir=root / "cache",
                             config=CONFIG, accuracy=0.2, progress=False, log=lines.append)
    yield result, root, lines
    patch.undo()


def test_every_device_gets_a_network_at_every_rung_within_that_rungs_budget(compared):
    result, root, _ = compared
    assert [(p.target, p.rung) for p in result.points] == [(t, r) for t in TARGETS for r in LADDER]
    task = load_task("kws", root / "data", cache_dir=root / "cache", progress=False)
    example = torch.zeros(1, *task.data.input_shape)
    for point in result.points:
        assert point.grown, point.skipped
        target = load_target(point.target)
        reference = estimate(task.uniform(point.rung).eval(), example, target)
        assert point.budget["latency_ms"] == pytest.approx(reference.latency_ms)
        assert set(point.budget) == ({"latency_ms", "sram_kb", "flash_kb"} if target.kind == "mcu" else {"latency_ms"})
        for metric, limit in point.budget.items():
            assert point.predicted[metric] <= limit * (1 + 1e-9), (point.target, point.rung, metric)
        (run,) = point.runs
        summary = json.loads((result.out_dir / run.run_dir / "summary.json").read_text())
        assert summary["target"] == point.target and summary["test_accuracy"] == point.test_accuracy
    for name in TARGETS:  # a higher rung buys a costlier network on every device
        low, high = result.points_of(name)
        assert low.budget["latency_ms"] < high.budget["latency_ms"] and low.macs < high.macs


def test_host_is_timed_a_microcontroller_is_measured_in_tflite_micro_and_the_gpu_is_predicted(compared):
    result, _, _ = compared
    for point in result.points_of("host"):
        (run,) = point.runs
        assert set(point.measured) == {"latency_ms"} and "onnxruntime" in run.measured_by["latency_ms"]
        assert (result.out_dir / run.export_dir / "model.onnx").is_file()
    for point in result.points_of(MCU):
        (run,) = point.runs
        card = json.loads((result.out_dir / run.export_dir / "model_card.json").read_text())
        int8 = result.out_dir / run.export_dir / "model_int8.tflite"
        assert point.measured["sram_kb"] == card["tflm"]["arena_bytes"] / 1024
        assert point.measured["flash_kb"] == int8.stat().st_size / 1024
        assert point.int8_test_accuracy == card["accuracy"]["tflite-int8"] is not None
        assert point.predicted["energy_mj"] > 0
    for point in result.points_of(GPU):
        assert point.measured == {} and point.runs[0].export_dir is None and point.predicted["energy_mj"] > 0
    sources = {device.name: device.sources for device in result.devices}
    assert sources["host"]["latency_ms"].startswith("measured: onnxruntime")
    assert sources["host"]["energy_mj"].startswith("no model")
    assert sources[MCU]["sram_kb"].startswith("measured: TFLite Micro arena")
    assert sources[MCU]["latency_ms"].startswith("predicted (analytic")
    assert all(source.startswith("predicted") for source in sources[GPU].values())
    printed = result.describe()
    assert "host: latency_ms measured: onnxruntime" in printed and f"{GPU}: latency_ms predicted" in printed
    assert "→" in printed  # predicted → measured


class Circles(HTMLParser):
    """The data points of every chart on a page, by chart."""

    def __init__(self):
        super().__init__()
        self.plot, self.points = None, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg" and "data-plot" in attrs:
            self.plot = attrs["data-plot"]
            self.points[self.plot] = []
        elif tag == "circle" and self.plot and "data-series" in attrs:
            self.points[self.plot].append(attrs)


def test_the_page_has_one_chart_per_metric_with_every_device_and_the_front_over_all(compared):
    result, _, _ = compared
    page = result.report.read_text()
    parser = Circles()
    parser.feed(page)
    charts = parser.points
    assert set(charts) == {"compare-latency-ms", "compare-energy-mj", "compare-sram-kb", "compare-flash-kb"}
    for plot, metric in (("compare-latency-ms", "latency_ms"), ("compare-sram-kb", "sram_kb")):
        drawn = [c for c in charts[plot] if "data-target" in c]
        assert sorted((c["data-target"], float(c["data-rung"])) for c in drawn) == sorted(
            (p.target, p.rung) for p in result.points)
        for circle in drawn:
            point = next(p for p in result.points if p.target == circle["data-target"]
                         and p.rung == float(circle["data-rung"]))
            assert float(circle["data-x"]) == pytest.approx(point.cost(metric), rel=1e-6)
            assert circle["data-measured"] == str(metric in point.measured).lower()
        front = {c["data-name"] for c in charts[plot] if c.get("data-pareto") == "true"}
        everything = [(p.cost(metric), 100 * p.test_accuracy, f"{p.target} {p.label}") for p in result.points]
        assert front == {everything[i][2] for i in pareto_front([(c, a) for c, a, _ in everything])}
    assert {c["data-target"] for c in charts["compare-energy-mj"] if "data-target" in c} == {MCU, GPU}
    assert "Not drawn: host (no energy_mj figure" in page
    assert "host (measured)" in page and f"{GPU} (predicted)" in page


def test_the_saved_comparison_declares_its_format_and_holds_every_point(compared):
    result, _, _ = compared
    saved = read_comparison(result.out_dir)
    assert saved["format"] == FORMAT and saved["finished"] is True
    assert len(saved["points"]) == len(TARGETS) * len(LADDER)
    assert saved["choice"]["accuracy"] == 0.2 and saved["config"]["ladder"] == saved["rungs"] == list(LADDER)


def made_up(points: list[Point], devices=("a", "b")) -> Comparison:
    return Comparison(Path("."), "kws", "ds-cnn", "", 100, 100, [Device(name, "mcu", "") for name in devices],
                      points, {})


def point(target, rung, validation, test, latency_ms, energy_mj=None) -> Point:
    run = GrownRun(0, "", validation_accuracy=validation, test_accuracy=test,
                   predicted={"latency_ms": latency_ms, "energy_mj": energy_mj})
    return Point(target, rung, {}, runs=[run])


def test_the_cheapest_rung_per_device_is_chosen_on_validation_and_the_cheapest_device_by_price_or_cost():
    points = [point("a", 0.25, 0.70, 0.95, 10.0, 3.0), point("a", 0.5, 0.86, 0.80, 20.0, 5.0),
              point("a", 1.0, 0.90, 0.90, 40.0, 9.0),
              point("b", 0.25, 0.85, 0.70, 2.0, 8.0), point("b", 0.5, 0.91, 0.91, 4.0, 16.0)]
    comparison = made_up(points)
    choice = comparison.cheapest(0.85)
    assert choice.per_device["a"] is points[1]  # ×0.25 has the better test accuracy, but misses on validation
    assert choice.per_device["b"] is points[3] and choice.best is points[3]
    assert comparison.cheapest(0.85, rank_by="energy_mj").best is points[1]
    for unmodelled in points[3:]:  # b has no energy model: it reaches, but cannot be ranked by energy
        unmodelled.runs[0].predicted["energy_mj"] = None
    by_energy = comparison.cheapest(0.85, rank_by="energy_mj")
    assert by_energy.best is points[1] and by_energy.unranked == ["b"] and by_energy.per_device["b"] is points[3]
    assert "not ranked, having no energy_mj figure: b" in by_energy.describe()
    assert comparison.cheapest(0.85, prices={"a": 3.0, "b": 5.0}).best is points[1]
    assert comparison.cheapest(0.85, prices={"b": 5.0}).best is points[3]  # the only priced device
    missed = comparison.cheapest(0.95)
    assert missed.best is None and missed.per_device == {"a": None, "b": None}
    assert missed.best_validation == {"a": 0.90, "b": 0.91}
    assert "no device reaches it" in missed.describe() and "best 90.0%" in missed.describe()
    assert "cheapest: b at ×0.25 (the lowest latency (ms))" in choice.describe()


def test_a_measured_cost_ranks_before_the_predicted_one():
    fast_when_measured = point("a", 0.5, 0.9, 0.9, 50.0)
    fast_when_measured.runs[0].measured["latency_ms"] = 1.0
    comparison = made_up([fast_when_measured, point("b", 0.5, 0.9, 0.9, 5.0)])
    assert comparison.cheapest(0.5).best is fast_when_measured


@pytest.mark.parametrize("call, needle", [
    (lambda c: c.cheapest(1.5), "accuracy target is a share in (0, 1]"),
    (lambda c: c.cheapest(0.5, rank_by="macs"), "cannot rank by 'macs'"),
    (lambda c: c.cheapest(0.5, prices={"c": 1.0}), "a price is given for 'c', which is not compared"),
    (lambda c: c.cheapest(0.5, prices={"a": -1.0}), "the price of a must be a number >= 0"),
])
def test_bad_questions_are_refused(call, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        call(made_up([point("a", 0.5, 0.9, 0.9, 1.0)]))


def test_a_rung_is_capped_by_the_budget_given_and_by_the_devices_own_memory():
    mcu = load_target(MCU)
    costs = {"latency_ms": 50.0, "sram_kb": 900.0, "flash_kb": 30.0}
    budget = rung_budget(mcu, costs, Budget({"flash_kb": 20.0, "energy_mj": 2.0}))
    assert budget.limits == {"latency_ms": 50.0, "sram_kb": mcu.sram_bytes.value / 1024, "flash_kb": 20.0,
                             "energy_mj": 2.0}
    assert rung_budget(load_target(GPU), costs, None).limits == {"latency_ms": 50.0}


def test_a_rung_whose_seed_cannot_fit_a_cap_is_skipped_with_the_reason(compared, tmp_path):
    _, root, _ = compared
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGEGROW_TARGETS", str(root / "targets"))
        result = compare_targets([MCU], "kws", data=root / "data", out=tmp_path / "out", cache_dir=root / "cache",
                                 config=CompareConfig.quick(grow=CONFIG.grow, ladder=(0.5,), measure=False),
                                 budget={"flash_kb": 1.0}, accuracy=0.2, progress=False, log=lambda line: None)
    (skipped,) = result.points
    assert not skipped.grown and skipped.skipped.startswith("no seed fits this budget (flash_kb ")
    assert skipped.budget["flash_kb"] == 1.0
    assert result.choice.best is None
    assert "skipped: no seed fits this budget" in result.describe()
    assert "skipped: no seed fits this budget" in result.report.read_text()


def test_a_killed_comparison_resumes_keeping_the_finished_rungs(compared, tmp_path, monkeypatch):
    result, root, _ = compared
    monkeypatch.setenv("EDGEGROW_TARGETS", str(root / "targets"))
    out = tmp_path / "out"
    shutil.copytree(result.out_dir, out)
    saved = json.loads((out / COMPARISON).read_text())
    last = saved["points"].pop()  # killed in the first epoch of the last rung's run: only its run.json is left
    run_dir = out / last["runs"][0]["run_dir"]
    for path in run_dir.iterdir():
        if path.name != "run.json":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(out / "exported" / Path(last["runs"][0]["run_dir"]).relative_to("runs"), ignore_errors=True)
    saved["finished"], saved["seconds"] = False, 1000.0
    (out / COMPARISON).write_text(json.dumps(saved))
    grown = []
    real_grow = compare_module.grow

    def counting_grow(*args, **kwargs):
        grown.append(args[2].name)
        return real_grow(*args, **kwargs)

    monkeypatch.setattr(compare_module, "grow", counting_grow)
    again = compare_targets(TARGETS, "kws", data=root / "data", out=out, cache_dir=root / "cache", config=CONFIG,
                            accuracy=0.2, resume=True, progress=False, log=lambda line: None)
    assert grown == [last["target"]]
    assert [(p.target, p.rung, p.test_accuracy) for p in again.points[:-1]] == [
        (p.target, p.rung, p.test_accuracy) for p in result.points[:-1]]
    assert again.points[-1].grown and read_comparison(out)["finished"] is True
    assert 1000.0 < again.seconds < 1000.0 + result.seconds * 5  # the killed run's time, then this one's
    with pytest.raises(ValueError, match="made with other settings \\(ladder\\)"):
        compare_targets(TARGETS, "kws", data=root / "data", out=out, cache_dir=root / "cache",
                        config=CompareConfig.quick(grow=CONFIG.grow, ladder=(0.5,), bench_runs=8, bench_warmup=1,
                                                   calibration_examples=50), resume=True, progress=False)
    with pytest.raises(ValueError, match="already holds results; .* --resume"):
        compare_targets(TARGETS, "kws", data=root / "data", out=out, cache_dir=root / "cache", config=CONFIG,
                        progress=False)


def test_the_command_prints_the_table_and_the_answer(compared, tmp_path, capsys, monkeypatch):
    _, root, _ = compared
    monkeypatch.setenv("EDGEGROW_TARGETS", str(root / "targets"))
    code = main(["compare", "--targets", GPU, "--data", str(root / "data"), "--cache-dir", str(root / "cache"),
                 "--ladder", "0.5", "--quick", "--epochs", "2", "--accuracy", "1", "--price", f"{GPU}=250",
                 "--out", str(tmp_path / "out"), "--json"])
    assert code == 0
    printed = capsys.readouterr()
    answer = json.loads(printed.out)  # --json: the result alone on stdout, what is said on stderr
    assert answer["format"] == FORMAT and answer["choice"]["best"] == {"target": GPU, "rung": 0.5}
    assert f"cheapest: {GPU} at ×0.5 (the lowest unit price)" in printed.err
    assert (tmp_path / "out" / "comparison.html").is_file()


@pytest.mark.parametrize("argv, needle", [
    (["--targets", "host,nowhere-board"], "unknown target"),
    (["--targets", f"{MCU},{MCU}"], f"target {MCU} is named twice"),
    (["--targets", ","], "no target to compare"),
    (["--ladder", "0.5,0"], "ladder rungs are width multipliers of the reference network in (0, 4], got 0.0"),
    (["--ladder", "0.5,0.5"], "the ladder repeats a rung: 0.5, 0.5"),
    (["--ladder", "half"], "expected width multipliers separated by commas"),
    (["--accuracy", "0.85"], "--accuracy is a percentage between 1 and 100 (e.g. 88 for 88 %), got 0.85"),
    (["--price", "cortex-m4f-120mhz"], "--price 'cortex-m4f-120mhz' is not TARGET=PRICE"),
    (["--price", "cortex-a76=3"], "a price is given for 'cortex-a76', which is not compared; the targets are host"),
    (["--targets", f"host,{MCU}", "--budget", "energy_mj=1"], "--budget energy_mj cannot be checked on host"),
    (["--rank-by", "macs"], "argument --rank-by: invalid choice: 'macs'"),
    (["--seeds", "0"], "need 1 or more seeds per rung, got 0"),
    (["--targets", MCU, "--price", f"{MCU}=-3"], f"the price of {MCU} must be a number >= 0, got -3.0"),
    (["--targets", MCU, "--price", f"{MCU}=nan"], f"the price of {MCU} must be a number >= 0, got nan"),
    (["--seed-width", "9"], "seed width must be auto, seed or a width multiplier in (0, 8], got 9.0"),
    (["--ladder", "0.5,0.5000001"], "the ladder repeats a rung: 0.5, 0.5"),
    (["--tensorboard"], "edgegrow compare does not take --tensorboard"),
])
def test_bad_input_is_one_line_before_anything_is_written(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGEGROW_TARGETS", str(tmp_path / "targets"))
    monkeypatch.setenv("EDGEGROW_CACHE", str(tmp_path / "cache"))
    code = main(["compare", "--out", str(tmp_path / "out"), "--quick", *argv])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and needle in error, error
    assert not any(tmp_path.iterdir())


def test_a_choice_describes_a_device_that_misses_and_one_that_reaches():
    reached = point("b", 0.5, 0.9, 0.88, 4.0)
    choice = Choice(0.85, "latency_ms", {}, {"a": None, "b": reached}, reached, {"a": 0.6, "b": 0.9})
    text = choice.describe()
    assert "a: no rung reaches it (best 60.0%)" in text and "b: ×0.5 — 4 ms" in text


def test_several_seeds_per_rung_give_the_medians_and_each_seeds_run(compared, tmp_path, monkeypatch):
    _, root, _ = compared
    monkeypatch.setenv("EDGEGROW_TARGETS", str(root / "targets"))
    config = CompareConfig.quick(grow=CONFIG.grow, ladder=(0.5,), seeds=3)
    result = compare_targets([GPU], "kws", data=root / "data", out=tmp_path / "out", cache_dir=root / "cache",
                             config=config, progress=False, log=lambda line: None)
    (point,) = result.points
    assert [run.seed for run in point.runs] == [0, 1, 2]
    assert len({run.run_dir for run in point.runs}) == 3
    tests = sorted(run.test_accuracy for run in point.runs)
    assert point.test_accuracy == tests[1] and point.test_range == (tests[0], tests[2])
    assert point.predicted["latency_ms"] == sorted(run.predicted["latency_ms"] for run in point.runs)[1]
    for run in point.runs:
        assert json.loads((result.out_dir / run.run_dir / "summary.json").read_text())["test_accuracy"] == \
            run.test_accuracy
    parser = Circles()
    parser.feed(result.report.read_text())
    dots = [c for c in parser.points["compare-latency-ms"] if "data-seed-of" in c]
    assert sorted(int(c["data-seed"]) for c in dots) == [0, 1, 2]
    assert "medians of 3 seeds per rung" in result.describe()
    saved = read_comparison(result.out_dir)["points"][0]
    assert saved["median"]["test_accuracy"] == point.test_accuracy and len(saved["runs"]) == 3


def test_without_a_ladder_the_rungs_are_the_familys_baseline_widths(compared, tmp_path, monkeypatch):
    _, root, _ = compared
    monkeypatch.setenv("EDGEGROW_TARGETS", str(root / "targets"))
    grown = []
    monkeypatch.setattr(compare_module, "_grow_run", lambda loaded, seeded, target, point, seed, *rest: grown.append(
        point.rung) or GrownRun(seed, "", validation_accuracy=0.5, test_accuracy=0.5))
    result = compare_targets([GPU], "kws", data=root / "data", out=tmp_path / "out", cache_dir=root / "cache",
                             config=CompareConfig(), progress=False, log=lambda line: None)
    assert grown == [0.25, 0.5, 1.0] and result.rungs == (0.25, 0.5, 1.0)
    assert read_comparison(result.out_dir)["config"]["ladder"] is None


def test_resume_needs_the_folder_it_continues(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--resume", "--quick"]) == 2
    assert "--resume continues the comparison in --out; give that folder" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_metric_measured_at_some_rungs_only_is_said_to_be_partly_measured():
    measured, failed = point(MCU, 0.5, 0.8, 0.8, 60.0), point(MCU, 1.0, 0.9, 0.9, 180.0)
    measured.runs[0].measured["sram_kb"], measured.runs[0].measured_by["sram_kb"] = 13.4, "TFLite Micro arena"
    failed.runs[0].not_measured = "tflite-int8: TFLite Micro cannot load the model"
    measured.runs[0].predicted["sram_kb"], failed.runs[0].predicted["sram_kb"] = 13.0, 23.0
    sources = compare_module._sources(load_target(MCU), [measured, failed])
    assert sources["sram_kb"].startswith("measured at 1 of 2 rungs (TFLite Micro arena), predicted at the others")
    device = Device(MCU, "mcu", "", sources)
    assert device.measured("sram_kb") == "some" and device.measured("latency_ms") == ""
    comparison = made_up([measured, failed], devices=(MCU,))
    comparison.devices = [device]
    parser = Circles()
    parser.feed(comparison_page(comparison))
    assert "cortex-m4f-120mhz (partly measured)" in comparison_page(comparison)
    drawn = {c["data-rung"]: c for c in parser.points["compare-sram-kb"] if "data-target" in c}
    assert drawn["0.5"]["data-measured"] == "true" and drawn["1"]["data-measured"] == "false"
