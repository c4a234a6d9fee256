"""The page of ``edgegrow compare``: ``comparison.html`` over a ``Comparison`` (see ``edgegrow.compare``).

One self-contained page (inline CSS and SVG, no JavaScript): the answer for the accuracy target when
one was asked, one accuracy-against-cost chart per metric (latency, energy, SRAM, flash) with every
device on it and the Pareto front over all of them, a table of every rung, and where each device's
figures come from. A point is drawn at its measured cost where there is one (a filled circle, and
the legend says "measured") and at its predicted cost otherwise.
"""
from __future__ import annotations

import html
from pathlib import Path

from ..atomic import write_atomically
from ..compare import COST_METRICS, REPORT, Comparison
from .run_report import CSS, pareto_front
from .svg_plot import PALETTE, Figure, Series, figure_html, slug

AXES = {"latency_ms": "latency per inference (ms, log scale)",
        "energy_mj": "energy per inference (mJ, log scale)",
        "sram_kb": "SRAM: arena (KiB, log scale)",
        "flash_kb": "flash: weights plus overhead (KiB, log scale)"}
TITLES = {"latency_ms": "Accuracy against latency", "energy_mj": "Accuracy against energy",
          "sram_kb": "Accuracy against SRAM", "flash_kb": "Accuracy against flash"}
FRONT_COLOR = "#111111"  # not a device colour
WIDE = "body { max-width: 1180px; } td { vertical-align: top; }"


def write_comparison_report(comparison: Comparison) -> Path:
    """Write ``comparison.html`` (atomically) into the comparison's folder and return its path."""
    path = comparison.out_dir / REPORT
    write_atomically(path, render_comparison(comparison))
    return path


def render_comparison(comparison: Comparison) -> str:
    sections = [f"<h1>edgegrow compare: {_text(comparison.task)}, {_text(comparison.family)}</h1>",
                f'<p class="subtitle">{_text(comparison.data)} · {len(comparison.devices)} devices × '
                f"{len(comparison.rungs)} budgets · {comparison.seconds:.0f} s</p>",
                '<p class="note">Each rung is a budget: the predicted cost, on that device, of the family\'s reference '
                "network at the rung's width multiplier (latency; on a microcontroller also SRAM and flash). A "
                "network was grown for every device at every rung a seed fits. Accuracy is the float network's "
                "top-1 on the "                f"test split ({comparison.test_examples} examples: one example is "
                f"{100 / max(comparison.test_examples, 1):.2g} points), "
                + ("one seed per rung" if comparison.config.get("seeds", 1) == 1 else
                   f"the median of {comparison.config['seeds']} seeds per rung") + ".</p>"]
    if comparison.choice is not None:
        sections += ["<h2>Cheapest device and budget for the accuracy target</h2>",
                     f"<pre>{_text(comparison.choice.describe())}</pre>",
                     '<p class="note">Chosen on the validation split, never the test split.</p>']
    for metric in COST_METRICS:
        sections.append(figure_html(cost_figure(comparison, metric)))
    sections += ["<h2>Every rung</h2>", points_table(comparison),
                 "<h2>Where the figures come from</h2>", sources_table(comparison)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>edgegrow compare {_text(comparison.task)}</title><style>{CSS}{WIDE}</style></head>\n<body>\n"
            + "\n".join(sections) + "\n</body></html>\n")


def cost_figure(comparison: Comparison, metric: str) -> Figure:
    """Test accuracy against ``metric`` for every device's rungs, on a log axis, with the Pareto front
    over all devices ringed."""
    figure = Figure(TITLES[metric], f"compare-{metric.replace('_', '-')}", AXES[metric], x_scale="log",
                    empty_message=f"no device here has a {metric} figure")
    panel = figure.panel("test accuracy (%)", height_px=300)
    candidates, missing = [], []
    for index, device in enumerate(comparison.devices):  # a device keeps its colour on every chart
        points = sorted((p for p in comparison.points_of(device.name) if p.grown and p.cost(metric) is not None),
                        key=lambda p: p.cost(metric))
        if not points:
            missing.append(device.name)
            continue
        how = {"all": "measured", "some": "partly measured"}.get(device.measured(metric), "predicted")
        panel.add(Series(f"{device.name} ({how})", [(p.cost(metric), 100 * p.test_accuracy) for p in points],
                         color=PALETTE[index % len(PALETTE)], key=f"device-{slug(device.name)}",
                         point_labels=[p.label for p in points],
                         point_attributes=[{"data-target": device.name, "data-rung": f"{p.rung:g}",
                                            "data-measured": str(metric in p.measured).lower()} for p in points]))
        seeds = [(run.measured[metric] if metric in p.measured else run.predicted.get(metric),
                  100 * run.test_accuracy, p, run)
                 for p in points for run in p.runs if len(p.runs) > 1 and run.test_accuracy is not None]
        if seeds:
            panel.add(Series(f"{device.name}, each seed", [(x, y) for x, y, _, _ in seeds], style="scatter",
                             color=PALETTE[index % len(PALETTE)], key=f"seeds-{slug(device.name)}",
                             marker_radius_px=1.5, in_legend=False,
                             point_attributes=[{"data-seed-of": device.name, "data-rung": f"{p.rung:g}",
                                                "data-seed": str(run.seed)} for _, _, p, run in seeds]))
        candidates += [(p.cost(metric), 100 * p.test_accuracy, f"{device.name} {p.label}") for p in points]
    if candidates:
        front = [candidates[i] for i in pareto_front([(c, a) for c, a, _ in candidates])]
        panel.add(Series("Pareto front, all devices", [(c, a) for c, a, _ in front], style="ring", color=FRONT_COLOR,
                         key="pareto-front", point_attributes=[{"data-pareto": "true", "data-name": name}
                                                               for _, _, name in front]))
    caption = ["Each line is one device, its points the rungs (labelled by width multiplier; with several seeds, the "
               "medians, and each seed's run a small dot). Ringed black: the Pareto front over all devices (nothing "
               "else is both cheaper and more accurate)."]
    if missing:
        caption.append(f"Not drawn: {', '.join(missing)} (no {metric} figure for that device).")
    figure.caption = " ".join(caption)
    return figure


def points_table(comparison: Comparison) -> str:
    head = ("<tr><th>target</th><th>rung</th><th>budget</th><th>widths, depth</th><th>valid. acc.</th>"
            "<th>test acc. [lowest, highest]</th><th>int8 test acc.</th>"
            + "".join(f"<th>{html.escape(AXES[m].split(' (')[0])} (predicted / measured)</th>" for m in COST_METRICS)
            + "<th>runs</th></tr>")
    rows = []
    for point in comparison.points:
        budget = ", ".join(f"{metric} ≤ {limit:.4g}" for metric, limit in point.budget.items())
        if not point.grown:
            rows.append(f"<tr><td>{_text(point.target)}</td><td>{_text(point.label)}</td><td>{_text(budget)}</td>"
                        f"<td colspan=\"{5 + len(COST_METRICS)}\">skipped: {_text(point.skipped)}</td></tr>")
            continue
        widths = "<br>".join(f"{_text('/'.join(str(w) for w in run.widths.values()))}, {_text(run.depth)}"
                             for run in point.runs)
        test = _percent(point.test_accuracy) + (
            f" [{_percent(point.test_range[0])}, {_percent(point.test_range[1])}]" if len(point.runs) > 1 else "")
        costs = "".join(f"<td>{_number(point.predicted.get(m))} / {_number(point.measured.get(m))}</td>"
                        for m in COST_METRICS)
        runs = "<br>".join(_text(run.run_dir) for run in point.runs)
        rows.append(f"<tr><td>{_text(point.target)}</td><td>{_text(point.label)}</td><td>{_text(budget)}</td>"
                    f"<td>{widths}</td><td>{_percent(point.validation_accuracy)}</td>"
                    f"<td>{test}</td><td>{_percent(point.int8_test_accuracy)}</td>{costs}<td>{runs}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def sources_table(comparison: Comparison) -> str:
    head = "<tr><th>device</th>" + "".join(f"<th>{html.escape(m)}</th>" for m in COST_METRICS) + "</tr>"
    rows = [f"<tr><td>{_text(d.name)}<br><small>{_text(d.description)}</small></td>"
            + "".join(f"<td>{_text(d.sources.get(m))}</td>" for m in COST_METRICS) + "</tr>"
            for d in comparison.devices]
    reasons = sorted({f"{p.target}: {p.not_measured}" for p in comparison.points if p.not_measured})
    notes = "".join(f'<p class="note">Not measured, {_text(reason)}</p>' for reason in reasons)
    return f"<table>{head}{''.join(rows)}</table>{notes}"


def _text(value) -> str:
    return "—" if value is None else html.escape(str(value))


def _number(value) -> str:
    return "—" if value is None else f"{value:.4g}"


def _percent(share) -> str:
    return "—" if share is None else f"{100 * share:.1f} %"
