"""The run report: a real (tiny) grow run rendered to one self-contained HTML page whose plots and
tables hold what the run folder says; and the SVG helper's ticks and degenerate inputs."""
import json
import math
import os
import re
import shutil
from collections import defaultdict
from html.parser import HTMLParser

import pytest
import torch
from toy import TINY, latency_budget

from cost_models import estimate, known_targets, load_target
from edgegrow.checkpoint import load_checkpoint
from edgegrow.report import write_report
from edgegrow.report.run_report import pareto_front
from edgegrow.report.svg_plot import Figure, Series, VerticalMarker, log_ticks, nice_ticks


class Page(HTMLParser):
    """Every start tag with its attributes and the plot (``data-plot`` of the enclosing svg) it sits in."""

    def __init__(self, text: str):
        super().__init__()
        self.elements, self.texts, self.plot = [], defaultdict(list), None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "svg":
            self.plot = attributes.get("data-plot")
        self.elements.append((tag, attributes, self.plot))

    def handle_endtag(self, tag):
        if tag == "svg":
            self.plot = None

    def handle_data(self, data):
        self.texts[self.plot].append(data)

    def find(self, tag, plot=None, **wanted):
        """Attributes of each ``tag`` in ``plot`` whose attributes match ``wanted`` (underscores as dashes)."""
        wanted = {key.replace("_", "-"): value for key, value in wanted.items()}
        return [a for t, a, p in self.elements if t == tag and (plot is None or p == plot)
                and all(a.get(key) == value for key, value in wanted.items())]

    def text(self, plot=None) -> str:
        return " ".join(self.texts[plot])


@pytest.fixture(scope="module")
def page(run):
    folder, _, _ = run
    path = write_report(folder)
    assert path == folder / "report.html"
    return Page(path.read_text())


def copy_run(run, tmp_path):
    """A copy of the run folder without its report, for tests that change it."""
    return shutil.copytree(run[0], tmp_path / "run", ignore=shutil.ignore_patterns("report.html"))


def test_report_has_the_four_plots_each_titled(page):
    plots = page.find("svg", **{"class": "plot"})
    assert sorted(p["data-plot"] for p in plots) == ["latency", "pareto", "training", "widths"]
    assert len(page.find("title")) >= 1 + 4  # the page's and each plot's (points add more)
    for name in ("training", "widths", "pareto", "latency"):
        assert page.find("text", name, **{"class": "plot-title"}), name


def test_training_plot_has_a_point_per_epoch_and_a_line_per_growth_event(page, run):
    _, log, _ = run
    total_epochs = len(log.epochs)
    assert total_epochs == 2 * TINY["epochs"]  # grown, then retrained
    points = page.find("circle", "training", data_series="validation-accuracy")
    assert len(points) == total_epochs
    assert [float(p["data-x"]) for p in points] == [float(i) for i in range(1, total_epochs + 1)]
    expected = [100 * row.validation_accuracy for row in log.epochs]
    assert [float(p["data-y"]) for p in points] == pytest.approx(expected)
    assert len(page.find("circle", "training", data_series="train-loss")) == total_epochs
    events = [row for row in log.growth if row.event and row.chosen]
    markers = page.find("g", "training", data_marker="grow")
    assert events and len(markers) == len(events)
    # a growth line sits where in the run the event happened (its step, in epochs)
    assert [float(m["data-x"]) for m in markers] == pytest.approx([row.step / 3 for row in events])
    (span,) = page.find("g", "training", **{"class": "span"})
    assert span["data-span"] == "retrain-from-scratch"


def test_widths_plot_has_a_series_per_group_with_a_point_per_event(page, run):
    _, log, _ = run
    rows = [row for row in log.growth if row.event == 0 or row.chosen]
    groups = list(rows[-1].widths)
    series = [a for a in page.find("g", "widths", **{"class": "series"}) if a["data-series"].startswith("width-")]
    assert [s["data-label"] for s in series] == groups
    for group, attributes in zip(groups, series):
        points = page.find("circle", "widths", data_series=attributes["data-series"])
        assert [float(p["data-y"]) for p in points] == [row.widths[group] for row in rows]
    depth = page.find("circle", "widths", data_series="depth")
    assert [float(p["data-y"]) for p in depth] == [row.depth for row in rows]


def test_budget_line_sits_at_the_budget_on_the_latency_axis(page, run):
    _, log, summary = run
    limit = summary.budget["latency_ms"]
    (marker,) = page.find("g", "pareto", data_marker="budget")
    assert float(marker["data-x"]) == limit
    trajectory = page.find("circle", "pareto", data_series="trajectory")
    assert [float(p["data-x"]) for p in trajectory] == [row.predicted["latency_ms"] for row in log.phase("grow")]
    (kept,) = page.find("circle", "pareto", data_series="kept")
    assert kept["data-kept"] == summary.kept
    # the line's pixel position follows the same data→pixel map as the points
    xs = sorted({(float(p["data-x"]), float(p["cx"])) for p in trajectory})
    (x0, px0), (x1, px1) = xs[0], xs[-1]
    scale = (px1 - px0) / (x1 - x0)
    expected_px = px0 + scale * (limit - x0)
    lines = [a for t, a, p in page.elements if t == "line" and p == "pareto" and a.get("x1") == a.get("x2")
             and abs(float(a["x1"]) - expected_px) < 0.2]
    assert lines, f"no vertical line at x≈{expected_px:.1f}"
    assert "baselines not given" in page.text(None).lower()


def test_facts_say_which_network_was_kept_and_both_accuracies(page, run):
    _, _, summary = run
    text = page.text(None)
    assert f"the {summary.kept} network (better on the validation split)" in text
    assert f"validation {summary.grown.validation_accuracy:.2%}" in text
    assert f"validation {summary.retrained.validation_accuracy:.2%}" in text
    assert "M MAC-epochs" in text


def test_baselines_are_labelled_and_the_pareto_front_marked(run, tmp_path):
    folder = copy_run(run, tmp_path)
    limit = run[2].budget["latency_ms"]
    baselines = [{"name": "tiny-uniform", "latency_ms": 0.1 * limit, "accuracy": 0.01},
                 {"name": "dominated-uniform", "latency_ms": 3 * limit, "accuracy": 0.0}]
    page = Page(write_report(folder, baselines=baselines).read_text())
    text = page.text("pareto")
    assert "tiny-uniform" in text and "dominated-uniform" in text
    assert len(page.find("circle", "pareto", data_series="baselines")) == 2
    front = page.find("circle", "pareto", data_pareto="true")
    assert sorted(p["data-name"] for p in front) == [f"{run[2].kept} (final)", "tiny-uniform"]
    assert "baselines not given" not in page.text(None).lower()


def test_bad_baselines_are_refused(run):
    with pytest.raises(ValueError, match="accuracy 85 is not a fraction"):
        write_report(run[0], baselines=[{"name": "a", "latency_ms": 1.0, "accuracy": 85}])
    with pytest.raises(ValueError, match="needs a number 'latency_ms'"):
        write_report(run[0], baselines=[{"name": "a", "accuracy": 0.5}])


def test_cost_table_has_every_known_target_at_its_estimate(page, run):
    model, checkpoint = load_checkpoint(run[0] / "checkpoint.pt")
    rows = page.find("tr", None)
    rows = [r for r in rows if "data-target" in r]
    assert [r["data-target"] for r in rows] == list(known_targets())
    example = torch.zeros(1, *checkpoint.meta["input_shape"])  # RunMeta.input_shape
    for row in rows:
        report = estimate(model, example, load_target(row["data-target"]))
        assert float(row["data-latency-ms"]) == report.latency_ms
        assert int(row["data-over-limits"]) == len(report.over_limits)
    assert [r["data-target"] for r in rows if r.get("class") == "run-target"] == ["host"]


def test_page_is_self_contained(run):
    text = (run[0] / "report.html").read_text() if (run[0] / "report.html").exists() else ""
    text = text or write_report(run[0]).read_text()
    assert "<script" not in text.lower() and "<link" not in text.lower() and "<img" not in text.lower()
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert not re.search(r"\b(nan|inf)\b", " ".join(re.findall(r'(?:cx|cy|x1|x2|y1|y2|points)="([^"]*)"', text)))


def test_missing_log_is_a_clear_error(run, tmp_path):
    folder = copy_run(run, tmp_path)
    (folder / "log.jsonl").unlink()
    with pytest.raises(ValueError, match=r"has no log\.jsonl; the run may not have finished .*--resume"):
        write_report(folder)
    assert not (folder / "report.html").exists()


def test_report_is_replaced_atomically(run, tmp_path, monkeypatch):
    folder = copy_run(run, tmp_path)
    (folder / "report.html").write_text("old report")
    before = set(os.listdir(folder))
    import edgegrow.atomic

    def failing_fsync(descriptor):
        raise OSError("disk full")

    monkeypatch.setattr(edgegrow.atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_report(folder)
    assert (folder / "report.html").read_text() == "old report"
    assert set(os.listdir(folder)) == before  # no temporary file left behind
    monkeypatch.undo()
    write_report(folder)
    assert set(os.listdir(folder)) == before and "<svg" in (folder / "report.html").read_text()


def test_latency_plot_from_a_model_card(run, tmp_path):
    folder = copy_run(run, tmp_path)
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    card = {"measured": [{"runtime": "onnxruntime", "target": "host", "predicted_latency_ms": 0.04,
                          "latency_ms_median": 0.05},
                         {"runtime": "tflm", "target": None, "predicted_latency_ms": None, "latency_ms_median": 3.0}],
            "targets": {"host": {"predicted": {"latency_ms": 0.04}, "measured": {"latency_ms_median": 0.06}},
                        "cortex-a76": {"predicted": {"latency_ms": 0.2}, "measured": {}}}}
    (export_dir / "model_card.json").write_text(json.dumps(card))
    page = Page(write_report(folder, export_dir=export_dir).read_text())
    bench = page.find("circle", "latency", data_series="edgegrow-bench")
    at_export = page.find("circle", "latency", data_series="measured-at-export")
    assert [(float(p["data-x"]), float(p["data-y"])) for p in bench] == [(0.04, 0.05)]
    assert [(float(p["data-x"]), float(p["data-y"])) for p in at_export] == [(0.04, 0.06)]
    assert page.find("polyline", "latency", **{"class": "identity"})
    assert "1 benchmark(s) without a target prediction" in page.text(None)
    with pytest.raises(ValueError, match="no model_card.json in"):
        write_report(folder, export_dir=tmp_path)


def test_latency_plot_without_measurements_says_how_to_get_one(page):
    assert not page.find("circle", "latency")
    caption = page.text(None)
    assert "No measurement available" in caption
    assert "edgegrow export RUN_DIR" in caption and "edgegrow bench" in caption


def test_a_damaged_log_is_a_clear_error(run, tmp_path):
    folder = copy_run(run, tmp_path)
    with (folder / "log.jsonl").open("a") as file:
        file.write('{"row": "phase", "step": 1}\n')
    with pytest.raises(ValueError, match="a row of unknown kind 'phase'"):
        write_report(folder)
    (folder / "log.jsonl").write_text('{"row": "epoch", "epoch": 1}\n')
    with pytest.raises(ValueError, match="a EpochRow record is missing a field"):
        write_report(folder)


# -- svg_plot -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("low, high, expected", [
    (0, 1, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0.43, 0.87, [0.4, 0.5, 0.6, 0.7, 0.8, 0.9]),
    (0, 97, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]),
    (0.0166, 0.0394, [0.015, 0.02, 0.025, 0.03, 0.035, 0.04]),
])
def test_nice_ticks_are_round_and_cover_the_range(low, high, expected):
    assert nice_ticks(low, high) == expected


@pytest.mark.parametrize("low, high", [(3.0, 3.0), (0.0, 0.0), (-5.0, -5.0), (1e-7, 1.3e-7), (12, 123456789)])
def test_nice_ticks_of_degenerate_and_odd_ranges(low, high):
    ticks = nice_ticks(low, high)
    assert len(ticks) >= 2 and ticks[0] <= low and ticks[-1] >= high
    steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:])}
    step = max(steps)
    assert all(abs(s - step) <= 1e-9 * step for s in steps)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1.0, 2.0, 2.5, 5.0)


def test_integer_ticks_are_whole_numbers():
    assert nice_ticks(10, 10, integer=True) == [9.0, 10.0, 11.0]
    assert nice_ticks(8, 20, integer=True) == [5.0, 10.0, 15.0, 20.0]
    assert all(t == int(t) for t in nice_ticks(0, 3, integer=True))


def test_ticks_refuse_non_finite_bounds():
    with pytest.raises(ValueError, match="finite"):
        nice_ticks(0.0, float("nan"))
    with pytest.raises(ValueError, match="positive"):
        log_ticks(0.0, 1.0)


def test_log_ticks():
    assert log_ticks(0.03, 0.2) == [0.02, 0.05, 0.1, 0.2]
    assert log_ticks(0.01, 100) == [0.01, 0.1, 1.0, 10.0, 100.0]
    ticks = log_ticks(5, 5)
    assert len(ticks) >= 2 and ticks[0] < 5 < ticks[-1]


def numbers_in(svg: str, attribute: str) -> list[float]:
    return [float(v) for v in re.findall(rf' {attribute}="([-0-9.e]+)"', svg)]


@pytest.mark.parametrize("points", [
    [(1.0, 2.0)],                              # one point
    [(0.0, 5.0), (1.0, 5.0), (2.0, 5.0)],      # all y equal
    [(3.0, 1.0), (3.0, 2.0)],                  # all x equal
    [(0.0, None), (1.0, 2.0), (2.0, float("nan")), (3.0, 4.0), (4.0, 5.0)],  # gaps
])
def test_degenerate_series_render_inside_the_frame(points):
    figure = Figure("T", "test", "x (ms)")
    figure.panel("y (%)").add(Series("s", points))
    svg = figure.to_svg()
    page = Page(svg)
    finite = [(x, y) for x, y in points if y is not None and not math.isnan(y)]
    circles = page.find("circle", "test", data_series="s")
    assert len(circles) == len(finite)
    (frame,) = [a for a in page.find("rect", "test") if a.get("fill") == "none"]
    left, top = float(frame["x"]), float(frame["y"])
    right, bottom = left + float(frame["width"]), top + float(frame["height"])
    for circle in circles:
        assert left <= float(circle["cx"]) <= right and top <= float(circle["cy"]) <= bottom
    assert "nan" not in svg.lower() and "inf" not in re.sub(r"<title>.*?</title>", "", svg).lower()


def test_a_gap_breaks_the_line():
    figure = Figure("T", "test", "x")
    figure.panel("y").add(Series("s", [(0.0, 1.0), (1.0, 2.0), (2.0, None), (3.0, 1.0), (4.0, 3.0)]))
    assert len(Page(figure.to_svg()).find("polyline", "test")) == 2


def test_empty_figure_says_so_and_markers_outside_the_data_still_fit():
    figure = Figure("Nothing", "empty", "x", empty_message="no measurement yet")
    figure.panel("y").add(Series("s", [(1.0, None)]))
    svg = figure.to_svg()
    assert "no measurement yet" in svg and "<circle" not in svg
    figure = Figure("Budget", "budget", "x")
    figure.panel("y").add(Series("s", [(1.0, 1.0), (2.0, 2.0)]))
    figure.markers.append(VerticalMarker(10.0, "budget", kind="budget"))
    page = Page(figure.to_svg())
    (marker,) = page.find("g", "budget", data_marker="budget")
    (frame,) = [a for a in page.find("rect", "budget") if a.get("fill") == "none"]
    line = [a for t, a, p in page.elements if t == "line" and p == "budget" and a.get("stroke-dasharray")][0]
    assert float(frame["x"]) < float(line["x1"]) <= float(frame["x"]) + float(frame["width"])


def test_log_axes_drop_non_positive_points():
    figure = Figure("T", "log", "x", x_scale="log")
    panel = figure.panel("y", y_scale="log", identity_line=True)
    panel.add(Series("s", [(0.0, 1.0), (0.1, 0.2), (10.0, 30.0)], style="scatter"))
    page = Page(figure.to_svg())
    assert [float(c["data-x"]) for c in page.find("circle", "log", data_series="s")] == [0.1, 10.0]
    assert page.find("polyline", "log", **{"class": "identity"})


def test_text_is_escaped():
    figure = Figure("a <b> & c", "escape", "x <ms>")
    figure.panel("y").add(Series("<script>", [(0.0, 1.0)]))
    svg = figure.to_svg()
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &lt;b&gt; &amp; c" in svg


def test_pareto_front_keeps_points_nothing_beats():
    points = [(1.0, 50.0), (2.0, 60.0), (2.0, 55.0), (3.0, 60.0), (0.5, 10.0), (4.0, 90.0)]
    assert pareto_front(points) == [4, 0, 1, 5]
    assert pareto_front([(1.0, 1.0)]) == [0]


def test_grow_writes_the_report_itself(quick_grow, tmp_path):
    quick_grow(budget=latency_budget(1.5))
    assert 'data-plot="training"' in (tmp_path / "run" / "report.html").read_text()


def test_cli_report_writes_the_page_and_refuses_bad_input_in_one_line(run, tmp_path, capsys):
    from edgegrow.cli import main

    folder = copy_run(run, tmp_path)
    baselines = tmp_path / "baselines.json"
    baselines.write_text(json.dumps([{"name": "ds-cnn x0.5", "latency_ms": 0.04, "accuracy": 0.8}]))
    assert main(["report", str(folder), "--baselines", str(baselines)]) == 0
    assert "ds-cnn x0.5" in (folder / "report.html").read_text()
    capsys.readouterr()
    for argv, needle in ((["report", str(tmp_path / "none")], "run folder"),
                         (["report", str(folder), "--baselines", str(tmp_path / "no.json")], "no baselines file"),
                         (["report", str(folder), "--export", str(tmp_path)], "model_card.json")):
        assert main(argv) == 2
        error = capsys.readouterr().err.strip()
        assert needle in error and len(error.splitlines()) == 1, error
