"""report.html in a real browser: headless Chromium lays the page out and draws it, and the
screenshot shows every plot with its series in their colours.

Two runs of Chromium: one dumps the DOM of a copy of the page with a probe script added (the page
itself carries no script), which records where each plot sits and how big each mark is drawn; one
takes a screenshot of the page as written, whose pixels are then checked plot by plot.
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgegrow.report import write_report

PLOTS = ("training", "widths", "pareto", "latency")
WINDOW_WIDTH_PX = 1280

PROBE = """<script>
const page = r => ({left: r.left + scrollX, top: r.top + scrollY, width: r.width, height: r.height});
const out = {height: document.documentElement.scrollHeight, plots: []};
for (const svg of document.querySelectorAll('svg.plot')) {
  const points = [...svg.querySelectorAll('circle[data-series]')].map(c => {
    const style = getComputedStyle(c);
    const hollow = style.fill === 'none';  // a ring shows its outline colour
    return {series: c.dataset.series, color: hollow ? style.stroke : style.fill, hollow,
            ...page(c.getBoundingClientRect())};
  });
  const markers = [...svg.querySelectorAll('g[data-marker] line')].map(l => ({
    kind: l.parentNode.dataset.marker, color: getComputedStyle(l).stroke, ...page(l.getBoundingClientRect())}));
  const title = svg.querySelector('text.plot-title').getBBox();
  out.plots.push({plot: svg.dataset.plot, ...page(svg.getBoundingClientRect()), points, markers,
                  title_width: title.width});
}
const pre = document.createElement('pre');
pre.id = 'probe';
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""
BACKGROUND = (255, 255, 255)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium to render the report in: install it with `sh scripts/install-chromium.sh`")


def run_chromium(*arguments: str, profile: Path) -> str:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
               f"--user-data-dir={profile}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rgb(color: str) -> tuple[int, int, int]:
    """'#1f77b4' or 'rgb(31, 119, 180)' as a triple."""
    if color.startswith("#"):
        return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
    triple = tuple(int(v) for v in re.findall(r"\d+", color)[:3])
    assert len(triple) == 3, f"not a colour: {color!r}"
    return triple


@pytest.fixture(scope="module")
def rendered(run, tmp_path_factory):
    """The report (with baselines and a model card, so every plot has data), its probe and its screenshot."""
    from PIL import Image

    folder = shutil.copytree(run[0], tmp_path_factory.mktemp("browser") / "run",
                             ignore=shutil.ignore_patterns("report.html"))
    limit = run[2].budget["latency_ms"]
    baselines = [{"name": "ds-cnn x0.25", "latency_ms": 0.4 * limit, "accuracy": 0.3},
                 {"name": "ds-cnn x1.0", "latency_ms": 3 * limit, "accuracy": 0.9}]
    export_dir = folder / "export"
    export_dir.mkdir()
    card = {"measured": [{"runtime": "onnxruntime", "target": "host", "predicted_latency_ms": 0.04,
                          "latency_ms_median": 0.05}],
            "targets": {"host": {"predicted": {"latency_ms": 0.04}, "measured": {"latency_ms_median": 0.06}}}}
    (export_dir / "model_card.json").write_text(json.dumps(card))
    page = write_report(folder, export_dir=export_dir, baselines=baselines)

    profile = folder / "chromium-profile"
    probed = folder / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = run_chromium("--dump-dom", "--window-size=%d,1000" % WINDOW_WIDTH_PX, probed.as_uri(), profile=profile)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe script did not run: " + dom[-500:]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))

    screenshot = folder / "page.png"
    run_chromium(f"--screenshot={screenshot}", f"--window-size={WINDOW_WIDTH_PX},{probe['height']}",
                 page.as_uri(), profile=profile)
    return probe, Image.open(screenshot).convert("RGB")


def pixels_in(image, box: dict, margin_px: int = 0) -> np.ndarray:
    """The screenshot's pixels inside a box (page coordinates, widened by ``margin_px``), as (n, 3)."""
    left, top = round(box["left"]) - margin_px, round(box["top"]) - margin_px
    right = round(box["left"] + box["width"]) + margin_px
    bottom = round(box["top"] + box["height"]) + margin_px
    crop = image.crop((left, top, max(right, left + 1), max(bottom, top + 1)))
    return np.asarray(crop, dtype=np.int16).reshape(-1, 3)


def count_near(pixels: np.ndarray, color: tuple[int, int, int], tolerance: int = 24) -> int:
    return int((np.abs(pixels - np.array(color)) <= tolerance).all(axis=1).sum())


def inked_rows(image, line: dict, color: tuple[int, int, int]) -> int:
    """Rows of a thin vertical line's box where some pixel is nearer the line's colour than the background
    is (a line at a fractional x is blended with what lies under it)."""
    left, top = round(line["left"]) - 1, round(line["top"])
    box = (left, top, left + max(3, round(line["width"]) + 2), top + max(1, round(line["height"])))
    rows = np.asarray(image.crop(box), dtype=np.int16)
    distance = np.abs(rows - np.array(color)).sum(axis=2).min(axis=1)
    return int((distance < 0.6 * sum(abs(a - b) for a, b in zip(color, BACKGROUND))).sum())


def distinct(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return sum(abs(x - y) for x, y in zip(a, b)) > 90


def test_every_plot_is_laid_out_with_its_marks_drawn(rendered):
    probe, image = rendered
    plots = {plot["plot"]: plot for plot in probe["plots"]}
    assert sorted(plots) == sorted(PLOTS)
    for name, plot in plots.items():
        assert plot["width"] > 300 and plot["height"] > 150, (name, plot["width"], plot["height"])
        assert plot["top"] + plot["height"] <= image.height and plot["left"] + plot["width"] <= image.width, name
        assert plot["title_width"] > 50, f"{name}: the title was not drawn (no font?)"
        assert plot["points"], f"{name}: no data points"
        assert all(point["width"] > 0 and point["height"] > 0 for point in plot["points"]), name


def overlaps(a: dict, b: dict) -> bool:
    return (a["left"] < b["left"] + b["width"] and b["left"] < a["left"] + a["width"]
            and a["top"] < b["top"] + b["height"] and b["top"] < a["top"] + a["height"])


def test_screenshot_shows_every_point_in_its_series_colour(rendered):
    """Each point shows its series' colour where the browser put it, unless a point drawn later covers it."""
    probe, image = rendered
    for plot in probe["plots"]:
        pixels = pixels_in(image, plot)
        inked = int((pixels.min(axis=1) < 200).sum())
        assert inked > 0.01 * len(pixels), f"{plot['plot']}: the plot area is blank in the screenshot"
        points = plot["points"]
        for number, point in enumerate(points):
            color = rgb(point["color"])
            assert distinct(color, BACKGROUND), f"{plot['plot']}/{point['series']}: colour {color} is lost on the page"
            covered = any(overlaps(point, later) for later in points[number + 1:])
            assert covered or count_near(pixels_in(image, point, margin_px=1), color) > 0, \
                f"{plot['plot']}/{point['series']}: point {number} does not show in the screenshot"


def test_screenshot_shows_the_growth_steps_and_the_budget_line(rendered):
    probe, image = rendered
    plots = {plot["plot"]: plot for plot in probe["plots"]}
    kinds = {(name, marker["kind"]) for name, plot in plots.items() for marker in plot["markers"]}
    assert {("training", "grow"), ("pareto", "budget")} <= kinds, kinds
    for name, plot in plots.items():
        for marker in plot["markers"]:
            color = rgb(marker["color"])
            assert distinct(color, BACKGROUND), f"{name}: the {marker['kind']} line's colour {color} is lost"
            assert inked_rows(image, marker, color) >= 0.3 * marker["height"], \
                f"{name}: the {marker['kind']} line is not drawn"


def test_pareto_plot_tells_grown_baselines_and_budget_apart(rendered):
    probe, _ = rendered
    (pareto,) = [plot for plot in probe["plots"] if plot["plot"] == "pareto"]
    series = {point["series"]: rgb(point["color"]) for point in pareto["points"] if not point["hollow"]}
    (budget,) = [rgb(marker["color"]) for marker in pareto["markers"] if marker["kind"] == "budget"]
    grown, baselines = series["trajectory"], series["baselines"]
    assert distinct(grown, baselines) and distinct(grown, budget) and distinct(baselines, budget), \
        (grown, baselines, budget)
