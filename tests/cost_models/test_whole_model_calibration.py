"""Calibrating an analytic profile from whole models measured on one device (issue 19 item 6): the fitted
scale is the least-squares answer, the new profile predicts every kernel that much slower or faster
(a model left out of the fit too), its record holds the scale and each model's residual, `edgegrow
targets` and the run report say which profiles are calibrated, and bad input is a one-line error."""
import json
from pathlib import Path

import pytest

from cost_models import estimate, load_target
from cost_models.whole_model_calibration import (
    MeasuredModel,
    calibrate_analytic_profile,
    calibration_status,
    fit_scale,
)
from edgegrow.cli import main
from edgegrow.models import build_model, example_input

BASE = "cortex-m4f-120mhz"


def zoo(spec: str):
    family, _, width = spec.partition("@")
    model = build_model(family, **({"width_multiplier": float(width)} if width else {})).eval()
    return model, example_input(model)


def test_fit_scale_is_the_least_squares_answer_on_relative_error():
    predicted, measured = [10.0, 20.0, 40.0], [13.0, 24.0, 60.0]
    scale = fit_scale(predicted, measured)
    loss = lambda s: sum(((s * p - m) / m) ** 2 for p, m in zip(predicted, measured))  # noqa: E731
    assert loss(scale) <= min(loss(scale + 1e-4), loss(scale - 1e-4))
    assert fit_scale([10.0, 20.0], [17.0, 34.0]) == pytest.approx(1.7)


def test_a_profile_calibrated_to_models_measured_1_7_times_slower_predicts_everything_1_7_times_slower():
    base = load_target(BASE)
    measured = []
    for spec in ("ds-cnn", "resnet8", "ds-cnn@0.5"):
        model, example = zoo(spec)
        measured.append(MeasuredModel(spec, model, example, 1.7 * estimate(model, example, base).latency_ms))
    profile = json.loads(open(base.path).read())
    calibrated, records = calibrate_analytic_profile(profile, measured, name="m4f-slow")
    assert calibrated["whole_model_calibration"]["scale"] == pytest.approx(1.7)
    assert all(abs(r["residual_after_pct"]) < 1e-6 for r in records)
    assert profile["name"] == BASE  # the base is not edited
    from cost_models.target import parse_target

    target = parse_target(calibrated, "m4f-slow")
    held_out, example = zoo("mobilenet-v2@0.35")  # not in the fit
    assert estimate(held_out, example, target).latency_ms == pytest.approx(
        1.7 * estimate(held_out, example, base).latency_ms, rel=1e-6)
    assert calibration_status(target).startswith("analytic, calibrated on 3 measured model(s)")
    assert calibration_status(base) == "analytic, uncalibrated here (edgegrow profile --calibrate)"


def test_the_command_writes_the_calibrated_profile_and_targets_lists_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEGROW_TARGETS", str(tmp_path / "targets"))
    base = load_target(BASE)
    model, example = zoo("ds-cnn")
    slow = 1.25 * estimate(model, example, base).latency_ms
    (tmp_path / "measured.csv").write_text(f"model,measured_ms\nds-cnn,{slow}\nresnet8,900\n")
    assert main(["profile", "--target", "my-board", "--calibrate", str(tmp_path / "measured.csv"), "--base", BASE,
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "targets" / "my-board.json").read_text())
    assert written["name"] == "my-board" and written["whole_model_calibration"]["base_profile"] == BASE
    assert [m["model"] for m in written["whole_model_calibration"]["models"]] == ["ds-cnn", "resnet8"]
    assert result["scale"] == pytest.approx(written["whole_model_calibration"]["scale"])
    assert main(["targets", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["my-board"]["calibration"].startswith("analytic, calibrated on 2 measured model(s)")
    assert rows[BASE]["calibration"].startswith("analytic, uncalibrated here")


@pytest.mark.parametrize("csv, flags, message", [
    ("model,measured_ms\nds-cnn,100\n", ["--base", "host"], "is a measured profile"),
    ("model,measured_ms\nds-cnn,100\n", [], "--calibrate needs --base PROFILE"),
    ("name,ms\nds-cnn,100\n", ["--base", BASE], "needs a header 'model,measured_ms'"),
    ("model,measured_ms\nds-cnn,fast\n", ["--base", BASE], "measured.csv:2: measured_ms 'fast' is not a number"),
    ("model,measured_ms\nds-cnn,-3\n", ["--base", BASE], "measured.csv:2: measured_ms must be a positive number"),
    ("model,measured_ms\nnot-a-model,3\n", ["--base", BASE], "measured.csv:2: 'not-a-model' is neither a zoo family"),
])
def test_bad_calibration_input_is_a_one_line_error_and_writes_nothing(tmp_path, monkeypatch, capsys, csv, flags,
                                                                      message):
    monkeypatch.setenv("EDGEGROW_TARGETS", str(tmp_path / "targets"))
    (tmp_path / "measured.csv").write_text(csv)
    if "host" in flags:  # the measured host profile shipped in targets/ (tests never see the user's own)
        flags = ["--base", str(Path(__file__).resolve().parents[2] / "targets" / "host.json")]
    assert main(["profile", "--target", "x", "--calibrate", str(tmp_path / "measured.csv"), *flags]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error
    assert not (tmp_path / "targets" / "x.json").exists()


def test_the_run_reports_cost_table_says_which_profiles_are_calibrated():
    from edgegrow.report.run_report import costs_table_html

    model, example = zoo("ds-cnn")
    html = costs_table_html([(BASE, estimate(model, example, BASE))], BASE)
    assert "latency from" in html and "analytic, uncalibrated here" in html
