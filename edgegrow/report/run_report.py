"""The run report: one self-contained HTML page (inline CSS and SVG, no JavaScript, no network) that
shows what a grow run did and what the grown network costs.

``write_report(run_dir)`` reads the run folder ``edgegrow.grow.grow`` wrote (``steps.jsonl``,
``summary.json``, ``checkpoint.pt``) and writes ``run_dir/report.html`` atomically. The page holds:

- the run at a glance: task, family, method, target, budget and its usage, why growth stopped, test
  accuracy, widths, depth, MACs, parameters, seconds spent choosing growth against seconds training;
- "Training": validation accuracy and train/validation loss per epoch over the whole run, growth
  steps as numbered vertical lines, the seed and final phases shaded;
- "Width per layer": every channel group's width and the depth after each phase;
- "Accuracy against cost": the growth trajectory against the budget's metric (latency when the
  budget limits it), the budget line, and optional uniform baselines with the Pareto front;
- "Predicted against measured latency": from an export folder's ``model_card.json`` when given;
- tables: each phase of the run, widths per phase, and the final model's cost on every known target.
"""
from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import torch

from cost_models import estimate_targets, known_targets, load_target

from ..atomic import write_atomically
from ..checkpoint import CUSTOM_FAMILY, load_checkpoint, read_checkpoint
from ..export import model_card
from .svg_plot import Figure, Series, Span, VerticalMarker, figure_html, format_number, slug

REPORT_NAME = "report.html"
RUN_FILES = ("steps.jsonl", "summary.json", "checkpoint.pt")
METRIC_AXIS_LABELS = {
    "latency_ms": "predicted latency on {target} (ms)",
    "energy_mj": "predicted energy per inference on {target} (mJ)",
    "macs": "multiply-accumulates per inference (MACs)",
    "params": "parameters",
    "sram_kb": "SRAM (arena) on {target} (KiB)",
    "flash_kb": "weights plus overhead on {target} (KiB)",
}
GROWTH_COLOR, BUDGET_COLOR, BASELINE_COLOR = "#1f77b4", "#d62728", "#7f7f7f"
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 900px;
       margin: 24px auto; padding: 0 16px; line-height: 1.4; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.subtitle { color: #666; margin-top: 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; }
dl.facts dt { color: #555; } dl.facts dd { margin: 0; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.run-target td { font-weight: 600; background: #f3f7fc; }
.over { color: #b00020; } .note { color: #666; font-size: 13px; }
figure.chart { margin: 12px 0 20px 0; } figcaption { color: #555; font-size: 13px; max-width: 860px; }
svg.plot { max-width: 100%; height: auto; }
.bar { display: inline-block; height: 10px; vertical-align: middle; }
"""


def write_report(run_dir: str | Path, *, export_dir: str | Path | None = None,
                 baselines: list[dict] | None = None, model: torch.nn.Module | None = None) -> Path:
    """Write ``run_dir/report.html`` (atomically) and return its path.

    ``export_dir``: a folder ``edgegrow export`` wrote (holding ``model_card.json``), for the
    predicted-against-measured latency plot. ``baselines``: other networks to compare with, each
    ``{"name": str, "latency_ms": float, "accuracy": float}`` (accuracy a fraction; the cost key is
    the plot's metric: ``latency_ms``, or the binding budget metric when the budget has no latency).
    ``model``: the grown network, if at hand (default: rebuilt from the checkpoint; a network of your
    own, family ``custom``, cannot be rebuilt from the file and must be given).

    Raises:
        ValueError: a run file is missing (the run may not have finished), the export folder has no
            model card, or a baseline is malformed.
    """
    run_dir = Path(run_dir)
    page = render_report(run_dir, export_dir=export_dir, baselines=baselines, model=model)
    path = run_dir / REPORT_NAME
    write_atomically(path, page)
    return path


def render_report(run_dir: str | Path, *, export_dir: str | Path | None = None,
                  baselines: list[dict] | None = None, model: torch.nn.Module | None = None) -> str:
    """The report page as an HTML string (what ``write_report`` writes)."""
    run_dir = Path(run_dir)
    rows, summary = read_run(run_dir)
    checkpoint = read_checkpoint(run_dir / "checkpoint.pt")
    if model is None:
        if checkpoint.family == CUSTOM_FAMILY:
            raise ValueError(f"{run_dir} grew a network of your own, which cannot be rebuilt from its checkpoint: "
                             "write the report from Python, write_report(run_dir, model=grown_model)")
        model, checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    metric = cost_metric(summary)
    baselines = check_baselines(baselines, metric)
    card = read_card(Path(export_dir)) if export_dir is not None else None
    input_shape = tuple(checkpoint.meta.get("input_shape") or ())
    costs = target_costs(model, input_shape)
    target = summary.get("target", "?")
    sections = [
        f"<h1>edgegrow run: {_text(run_dir.name)}</h1>",
        f'<p class="subtitle">{_text(summary.get("method"))} growth of a {_text(checkpoint.family)} seed on '
        f"{_text(checkpoint.meta.get('task'))}, for {_text(target)}</p>",
        facts_html(summary, rows, checkpoint),
        "<h2>Training</h2>", figure_html(training_figure(rows)),
        "<h2>Width per layer</h2>", figure_html(widths_figure(rows)), widths_table_html(rows),
        "<h2>Accuracy against cost</h2>", figure_html(pareto_figure(rows, summary, metric, baselines)),
        "<h2>Predicted against measured latency</h2>",
        figure_html(latency_figure(card, Path(export_dir) if export_dir is not None else None)),
        "<h2>Phases</h2>", steps_table_html(rows, summary, metric),
        "<h2>Final model on every known target</h2>", costs_table_html(costs, target),
        f'<p class="note">Generated {datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")} from '
        f"{_text(run_dir.resolve())}. Predicted figures come from edgegrow's cost model (the target's "
        "profile); SRAM is the arena (peak activations plus the runtime's own allocations), flash the weights "
        "plus model overhead.</p>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>edgegrow run {_text(run_dir.name)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(sections) + "\n</body></html>\n")


# -- reading -----------------------------------------------------------------------------------------
def read_run(run_dir: Path) -> tuple[list[dict], dict]:
    """The plotted rows of ``steps.jsonl`` (seed, grow and final; not "stop") and ``summary.json``."""
    if not run_dir.is_dir():
        raise ValueError(f"run folder {run_dir} does not exist")
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise ValueError(f"{run_dir} has no {' or '.join(missing)}; the run may not have finished "
                         "(continue it with `edgegrow grow … --resume`)")
    try:
        rows = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines() if line.strip()]
        summary = json.loads((run_dir / "summary.json").read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{run_dir} holds a damaged steps.jsonl or summary.json ({error})") from None
    rows = [row for row in rows if row.get("phase") in ("seed", "grow", "final")]
    if not rows:
        raise ValueError(f"{run_dir / 'steps.jsonl'} has no seed, grow or final row; the run may not have finished")
    return rows, summary


def read_card(export_dir: Path) -> dict:
    """``model_card.json`` of an export folder."""
    path = export_dir / "model_card.json"
    if not path.is_file():
        raise ValueError(f"no model_card.json in {export_dir}; pass the folder `edgegrow export` wrote")
    return model_card.read_card(path)


def read_baselines(path: str | Path) -> list[dict]:
    """A baselines file: a JSON list of ``{name, latency_ms (or the plot's metric), accuracy}``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no baselines file at {path}")
    return model_card.read_json(path, list, "a JSON list of {name, latency_ms, accuracy} objects")


def cost_metric(summary: dict) -> str:
    """The x axis of the accuracy-against-cost plot: latency when the budget limits it, else the binding metric."""
    budget = summary.get("budget") or {}
    if "latency_ms" in budget or not budget:
        return "latency_ms"
    return summary.get("binding") if summary.get("binding") in budget else next(iter(budget))


def check_baselines(baselines: list[dict] | None, metric: str) -> list[dict] | None:
    """``baselines`` checked: each a dict with a string ``name``, a number ``metric`` and an ``accuracy`` in [0, 1]."""
    if baselines is None:
        return None
    shape = f"{{'name': str, '{metric}': float, 'accuracy': float}}"
    if not isinstance(baselines, (list, tuple)):
        raise ValueError(f"baselines must be a list of {shape}, got {type(baselines).__name__}")
    for number, baseline in enumerate(baselines):
        if not isinstance(baseline, dict) or not isinstance(baseline.get("name"), str):
            raise ValueError(f"baselines[{number}] is not {shape}")
        for key in (metric, "accuracy"):
            if not _is_number(baseline.get(key)):
                raise ValueError(f"baselines[{number}] ({baseline['name']!r}) needs a number {key!r}; each is {shape}")
        if not 0 <= baseline["accuracy"] <= 1:
            raise ValueError(f"baselines[{number}] ({baseline['name']!r}) accuracy {baseline['accuracy']!r} is not a "
                             "fraction in [0, 1]")
    return list(baselines)


def target_costs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, object]]:
    """``(target name, CostReport or the error text)`` for every known target, in name order."""
    targets, unreadable = {}, {}
    for name in known_targets():
        try:
            targets[name] = load_target(name)
        except ValueError as error:  # a profile that cannot be read: say so in its row
            unreadable[name] = str(error)
    reports = estimate_targets(model, torch.zeros(1, *input_shape), targets)
    return [(name, reports.get(name, unreadable.get(name))) for name in known_targets()]


# -- figures -----------------------------------------------------------------------------------------
def phase_label(row: dict) -> str:
    return "seed" if row["phase"] == "seed" else "final" if row["phase"] == "final" else str(row["step"])


def training_figure(rows: list[dict]) -> Figure:
    """Validation accuracy (%) above train and validation loss, per epoch over the whole run."""
    per_epoch = any(row.get("epochs") for row in rows)
    figure = Figure("Training", "training", "epoch (counted over the whole run)" if per_epoch
                    else "phase (one point each: this run's log has no per-epoch history)")
    accuracy = figure.panel("accuracy (%)", height_px=200)
    loss = figure.panel("loss (cross-entropy)", height_px=170)
    series = {key: [] for key in ("validation_accuracy", "train_accuracy", "train_loss", "validation_loss")}
    if per_epoch:
        done = 0
        for row in rows:
            epochs = row.get("epochs") or []
            start = done
            for epoch in epochs:
                done += 1
                for key, values in series.items():
                    values.append((float(done), _scaled(epoch.get(key), 100 if "accuracy" in key else 1)))
            if row["phase"] == "grow":
                figure.markers.append(VerticalMarker(float(start), str(row["step"]), kind="grow",
                                                     legend="growth step (numbered)"))
            elif row["phase"] in ("seed", "final") and done > start:
                figure.spans.append(Span(float(start), float(done), row["phase"],
                                         "#e3eefa" if row["phase"] == "seed" else "#e6f4e3"))
        figure.caption = ("Each point is one epoch. Vertical lines: growth steps, drawn where the grown network's "
                          "fine-tuning began; shaded: training the seed and the final fine-tune.")
    else:
        figure.x_ticks = [(float(i), phase_label(row)) for i, row in enumerate(rows)]
        for i, row in enumerate(rows):
            for key, values in series.items():
                values.append((float(i), _scaled(row.get(key), 100 if "accuracy" in key else 1)))
            if row["phase"] == "grow":
                figure.markers.append(VerticalMarker(i - 0.5, str(row["step"]), kind="grow",
                                                     legend="growth step (numbered)"))
        figure.caption = "This run's steps.jsonl has no per-epoch history: one point per phase, after its training."
    accuracy.add(Series("validation accuracy", series["validation_accuracy"], color=GROWTH_COLOR,
                        marker_radius_px=_radius(series["validation_accuracy"])))
    accuracy.add(Series("train accuracy", series["train_accuracy"], color="#9ecae1", dashed=True,
                        marker_radius_px=_radius(series["train_accuracy"]) * 0.7))
    loss.add(Series("train loss", series["train_loss"], color="#ff7f0e", dashed=True,
                    marker_radius_px=_radius(series["train_loss"]) * 0.7))
    loss.add(Series("validation loss", series["validation_loss"], color="#d62728",
                    marker_radius_px=_radius(series["validation_loss"])))
    return figure


def channel_groups(rows: list[dict]) -> list[str]:
    """Every channel group of the run in model order (the last row's), then any that only earlier rows had."""
    return list(dict.fromkeys([*rows[-1].get("widths", {}), *(g for row in rows for g in row.get("widths", {}))]))


def widths_figure(rows: list[dict]) -> Figure:
    """Each channel group's width (channels) and the depth (weighted layers) after each phase."""
    figure = Figure("Width per layer", "widths", "after phase (seed, growth step, final)",
                    x_ticks=[(float(i), phase_label(row)) for i, row in enumerate(rows)])
    widths = figure.panel("width (channels)", height_px=240, integer_ticks=True)
    groups = channel_groups(rows)
    for group in groups:
        widths.add(Series(group, [(float(i), row.get("widths", {}).get(group)) for i, row in enumerate(rows)],
                          style="step", key=f"width-{slug(group)}"))
    depth = figure.panel("depth (layers)", height_px=90, integer_ticks=True)
    depth.add(Series("depth (convolutions and fully connected layers)",
                     [(float(i), row.get("depth")) for i, row in enumerate(rows)], style="step", color="#333333",
                     key="depth"))
    figure.caption = ("Width of every growable channel group (a set of channels that must grow together) after each "
                      "phase. Groups with equal widths overlap; the table below lists every value. Groups that "
                      "appear later were created by a new layer.")
    return figure


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: none cheaper-or-equal and at-least-as-accurate with one
    of the two strictly better. ``points`` are ``(cost, accuracy)``."""
    front = []
    for i, (cost, accuracy) in enumerate(points):
        beaten = any(c <= cost and a >= accuracy and (c < cost or a > accuracy)
                     for j, (c, a) in enumerate(points) if j != i)
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def pareto_figure(rows: list[dict], summary: dict, metric: str, baselines: list[dict] | None) -> Figure:
    """Validation accuracy against the cost metric: the growth trajectory, the budget, baselines and the front."""
    target = summary.get("target", "the target")
    figure = Figure("Accuracy against cost", "pareto", METRIC_AXIS_LABELS[metric].format(target=target))
    panel = figure.panel("accuracy (%)", height_px=300)
    trajectory = [(_number_or_none(row.get("predicted", {}).get(metric)), _scaled(row.get("validation_accuracy"), 100))
                  for row in rows]
    panel.add(Series("growth trajectory (validation accuracy)", trajectory, color=GROWTH_COLOR, key="trajectory",
                     point_labels=[phase_label(row) for row in rows],
                     point_attributes=[{"data-phase": row["phase"], "data-step": str(row["step"])} for row in rows]))
    limit = (summary.get("budget") or {}).get(metric)
    if _is_number(limit):
        figure.markers.append(VerticalMarker(float(limit), f"budget {format_number(limit)}", kind="budget",
                                             color=BUDGET_COLOR, legend=f"budget ({metric})"))
    caption = ["Each growth point is the network after that phase (its validation accuracy); the dashed red line is "
               "the budget."]
    if baselines is None:
        caption.append(f"Uniform baselines not given: pass baselines=[{{'name': …, '{metric}': …, 'accuracy': …}}] "
                       "to write_report to compare with uniformly scaled networks and mark the Pareto front.")
    else:
        panel.add(Series("baselines", [(float(b[metric]), 100 * float(b["accuracy"])) for b in baselines],
                         style="scatter", color=BASELINE_COLOR, point_labels=[b["name"] for b in baselines],
                         point_attributes=[{"data-name": b["name"]} for b in baselines]))
        final = trajectory[-1]
        candidates = [(float(b[metric]), 100 * float(b["accuracy"]), b["name"]) for b in baselines]
        if final[0] is not None and final[1] is not None:
            candidates.append((final[0], final[1], "grown (final)"))
        front = [candidates[i] for i in pareto_front([(c, a) for c, a, _ in candidates])]
        panel.add(Series("Pareto front", [(c, a) for c, a, _ in front], style="step", color="#2ca02c", dashed=True,
                         key="pareto-line", show_points=False, in_legend=False))
        panel.add(Series("Pareto front (baselines + final)", [(c, a) for c, a, _ in front], style="ring",
                         color="#2ca02c", key="pareto-front",
                         point_attributes=[{"data-pareto": "true", "data-name": name} for _, _, name in front]))
        caption.append("Baselines' accuracy is as given. Ringed: the Pareto front of the baselines and the final "
                       "grown network (nothing else is both cheaper and more accurate).")
    figure.caption = " ".join(caption)
    return figure


def latency_figure(card: dict | None, export_dir: Path | None) -> Figure:
    """Measured median latency against the prediction, from a model card's benchmarks."""
    figure = Figure("Predicted against measured latency", "latency", "predicted latency (ms)",
                    empty_message="no latency measurement available")
    panel = figure.panel("measured median latency (ms)", height_px=260, identity_line=True)
    how_to = ("export the run (`edgegrow export RUN_DIR`), time the files (`edgegrow bench FILE --runtime … "
              "--target …`), then pass export_dir= to write_report.")
    if card is None:
        figure.caption = "No measurement available: " + how_to
        return figure
    bench, unpredicted = [], 0
    for row in card.get("measured") or []:
        if not isinstance(row, dict):
            continue
        predicted, measured = row.get("predicted_latency_ms"), row.get("latency_ms_median")
        if _is_number(predicted) and _is_number(measured):
            bench.append((float(predicted), float(measured), f"{row.get('runtime')} → {row.get('target')}"))
        elif _is_number(measured):
            unpredicted += 1
    at_export = []
    for name, target in (card.get("targets") or {}).items():
        measured = ((target or {}).get("measured") or {}).get("latency_ms_median")
        predicted = ((target or {}).get("predicted") or {}).get("latency_ms")
        if _is_number(measured) and _is_number(predicted):
            at_export.append((float(predicted), float(measured), name))
    for label, points, color in (("edgegrow bench", bench, "#9467bd"), ("measured at export", at_export, "#17becf")):
        if points:
            panel.add(Series(label, [(p, m) for p, m, _ in points], style="scatter", color=color,
                             point_labels=[text for _, _, text in points],
                             point_attributes=[{"data-name": text} for _, _, text in points]))
    values = [v for p, m, _ in bench + at_export for v in (p, m) if v > 0]
    if values and max(values) / min(values) > 20:
        figure.x_scale = panel.y_scale = "log"
    if not bench and not at_export:
        figure.caption = f"The model card in {export_dir} holds no latency measured beside a prediction: " + how_to
    else:
        figure.caption = ("Points above the dashed y = x line ran slower than predicted. "
                          + (f"{unpredicted} benchmark(s) without a target prediction are not drawn." if unpredicted
                             else ""))
    return figure


# -- tables and facts --------------------------------------------------------------------------------
def facts_html(summary: dict, rows: list[dict], checkpoint) -> str:
    """The run at a glance, as a definition list."""
    predicted = summary.get("predicted") or rows[-1].get("predicted", {})
    budget, usage = summary.get("budget") or {}, summary.get("usage") or {}
    binding = summary.get("binding")
    budget_lines = []
    for metric, limit in budget.items():
        share = usage.get(metric)
        used = f"{_fmt(share * limit)} used ({share:.0%})" if _is_number(share) else "usage unknown"
        budget_lines.append(f"{metric} ≤ {_fmt(limit)}: {used}" + (" — binding" if metric == binding else ""))
    growth, training = summary.get("growth_seconds") or 0.0, summary.get("training_seconds") or 0.0
    total = growth + training
    share = growth / total if total > 0 else 0.0
    time_bar = (f'<span class="bar" style="width:{200 * share:.0f}px;background:#ff7f0e"></span>'
                f'<span class="bar" style="width:{200 * (1 - share):.0f}px;background:#1f77b4"></span> '
                f"{growth:.1f} s choosing growth, {training:.1f} s training ({share:.0%} growth)")
    meta = checkpoint.meta
    test = summary.get("test_accuracy")
    validation = rows[-1].get("validation_accuracy")
    widths = summary.get("widths") or rows[-1].get("widths", {})
    facts = [
        ("task", f"{meta.get('task')} ({len(meta.get('class_names') or [])} classes, input "
                 f"{'×'.join(str(d) for d in meta.get('input_shape') or [])})"),
        ("family", checkpoint.family), ("method", summary.get("method")), ("target", summary.get("target")),
        ("budget", "; ".join(budget_lines) or "none recorded"),
        ("stopped", f"{summary.get('stopped_by')} after {summary.get('steps')} growth step(s)"),
        ("test accuracy", f"{test:.2%}" if _is_number(test) else "not measured (no test split)"),
        ("validation accuracy", f"{validation:.2%}" if _is_number(validation) else "not measured"),
        ("widths", ", ".join(f"{group} {width}" for group, width in widths.items())),
        ("depth", f"{summary.get('depth', rows[-1].get('depth'))} layers (convolutions and fully connected)"),
        ("MACs", _count(predicted.get("macs"))), ("parameters", _count(predicted.get("params"))),
        ("predicted cost", f"{_fmt(predicted.get('latency_ms'))} ms, "
                           + (f"{_fmt(predicted.get('energy_mj'))} mJ, " if _is_number(predicted.get("energy_mj"))
                              else "energy n/a (no power figure), ")
                           + f"SRAM {_fmt(predicted.get('sram_kb'))} KiB, flash {_fmt(predicted.get('flash_kb'))} KiB "
                           f"on {summary.get('target')}"),
    ]
    items = "".join(f"<dt>{_text(name)}</dt><dd>{_text(value)}</dd>" for name, value in facts)
    items += f"<dt>time</dt><dd>{time_bar}</dd>"
    return f'<dl class="facts">{items}</dl>'


def widths_table_html(rows: list[dict]) -> str:
    groups = channel_groups(rows)
    head = "".join(f"<th>{_text(phase_label(row))}</th>" for row in rows)
    body = "".join(f"<tr><td>{_text(group)}</td>"
                   + "".join(f"<td>{_text(row.get('widths', {}).get(group, '—'))}</td>" for row in rows) + "</tr>"
                   for group in groups)
    depth = "".join(f"<td>{_text(row.get('depth', '—'))}</td>" for row in rows)
    return (f'<table class="widths"><thead><tr><th>channel group</th>{head}</tr></thead>'
            f"<tbody>{body}<tr><td>depth (layers)</td>{depth}</tr></tbody></table>")


def steps_table_html(rows: list[dict], summary: dict, metric: str) -> str:
    binding = summary.get("binding") or metric
    head = ("<tr><th>phase</th><th>epochs</th><th>total width</th><th>depth</th><th>" + _text(metric) + "</th>"
            f"<th>{_text(binding)} used</th><th>val. accuracy</th><th>train loss</th><th>val. loss</th>"
            "<th>chosen</th><th>growth s</th><th>training s</th></tr>")
    body = []
    for row in rows:
        usage = (row.get("usage") or {}).get(binding)
        accuracy = row.get("validation_accuracy")
        chosen = ", ".join(f"{count} {kind}" for kind, count in (row.get("chosen") or {}).items())
        cells = [phase_label(row), len(row.get("epochs") or []), sum((row.get("widths") or {}).values()),
                 row.get("depth"), _fmt((row.get("predicted") or {}).get(metric)),
                 f"{usage:.0%}" if _is_number(usage) else "—", f"{accuracy:.1%}" if _is_number(accuracy) else "—",
                 _fmt(row.get("train_loss")), _fmt(row.get("validation_loss")), chosen or "—",
                 _seconds(row.get("growth_seconds")), _seconds(row.get("training_seconds"))]
        body.append("<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in cells) + "</tr>")
    return f'<table class="steps"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def costs_table_html(costs: list[tuple[str, object]], run_target: str) -> str:
    head = ("<tr><th>target</th><th>latency ms</th><th>energy mJ</th><th>SRAM KiB</th><th>flash KiB</th>"
            "<th>MACs</th><th>memory limits</th></tr>")
    body = []
    for name, report in costs:
        attributes = f' data-target="{_text(name)}"' + (' class="run-target"' if name == run_target else "")
        label = f"{name} (grown for)" if name == run_target else name
        if isinstance(report, str):
            body.append(f'<tr{attributes}><td>{_text(label)}</td><td colspan="6" class="over">cannot estimate: '
                        f"{_text(report)}</td></tr>")
            continue
        over = report.over_limits
        limits = f'<span class="over">over: {_text("; ".join(over))}</span>' if over else "fits"
        body.append(f'<tr{attributes} data-latency-ms="{report.latency_ms!r}" data-over-limits="{len(over)}">'
                    f"<td>{_text(label)}</td><td>{_fmt(report.latency_ms)}</td><td>{_fmt(report.energy_mj)}</td>"
                    f"<td>{_fmt(report.sram_bytes / 1024)}</td><td>{_fmt(report.flash_bytes / 1024)}</td>"
                    f"<td>{_count(report.macs)}</td><td>{limits}</td></tr>")
    return (f'<table class="targets">{head}{"".join(body)}</table>'
            '<p class="note">Energy is blank where the profile gives no power figure; memory limits are the '
            "target's SRAM and flash.</p>")


# -- small helpers -----------------------------------------------------------------------------------
def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number_or_none(value) -> float | None:
    return float(value) if _is_number(value) else None


def _scaled(value, factor: float) -> float | None:
    return float(value) * factor if _is_number(value) else None


def _radius(points: list) -> float:
    """Smaller dots when there are many epochs, so the line stays readable."""
    return 3.0 if len(points) <= 40 else 2.0 if len(points) <= 120 else 1.2


def _fmt(value) -> str:
    """A number for the page: 4 significant digits; "—" for None."""
    return f"{value:.4g}" if _is_number(value) else "—"


def _seconds(value) -> str:
    return f"{value:.1f}" if _is_number(value) else "—"


def _count(value) -> str:
    return f"{int(value):,}" if _is_number(value) else "—"


def _text(value) -> str:
    return html.escape(str(value))
