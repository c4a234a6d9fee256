"""The run report: one self-contained HTML page (inline CSS and SVG, no JavaScript, no network) that
shows what a grow run did and what the grown network costs.

``write_report(run_dir)`` reads the run folder ``edgegrow.grow.grow`` wrote (through
``edgegrow.grow.read_run``: ``log.jsonl``, ``summary.json``, ``checkpoint.pt``) and writes
``run_dir/report.html`` atomically. The page holds:

- the run at a glance: task, family, method, target, budget and its usage, why growth stopped, which
  network was kept (grown, or retrained from scratch) with both accuracies, widths, depth, MACs,
  parameters, training compute, seconds spent choosing growth against seconds training;
- "Training": validation accuracy and train/validation loss per epoch over the whole run, growth
  events as numbered vertical lines where they happened, a retraining shaded;
- "Width per layer": every channel group's width and the depth after each growth event;
- "Accuracy against cost": the growth trajectory (one point per epoch) against the budget's metric
  (latency when the budget limits it), the kept model, the budget line, and optional uniform
  baselines with the Pareto front;
- "Predicted against measured latency": from an export folder's ``model_card.json`` when given;
- tables: each growth event, widths per event, and the final model's cost on every known target.
"""
from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path

import torch

from cost_models import estimate_targets, known_targets, load_known_targets, load_target
from cost_models.whole_model_calibration import calibration_status

from ..atomic import write_atomically
from ..checkpoint import CUSTOM_FAMILY, load_checkpoint, read_checkpoint
from ..export import model_card
from ..grow.run_folder import CHECKPOINT, GrowthRow, RunLog, RunMeta, Summary, read_run
from .svg_plot import Figure, Series, Span, VerticalMarker, figure_html, format_number, slug

REPORT_NAME = "report.html"
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
    log, summary = read_run(run_dir)
    checkpoint = read_checkpoint(run_dir / CHECKPOINT)
    if model is None:
        if checkpoint.family == CUSTOM_FAMILY:
            raise ValueError(f"{run_dir} grew a network of your own, which cannot be rebuilt from its checkpoint: "
                             "write the report from Python, write_report(run_dir, model=grown_model)")
        model, checkpoint = load_checkpoint(run_dir / CHECKPOINT)
    meta = RunMeta.from_dict(checkpoint.meta, str(run_dir / CHECKPOINT))
    metric = cost_metric(summary)
    baselines = check_baselines(baselines, metric)
    card = read_card(Path(export_dir)) if export_dir is not None else None
    costs = target_costs(model, tuple(meta.input_shape))
    sections = [
        f"<h1>edgegrow run: {_text(run_dir.name)}</h1>",
        f'<p class="subtitle">{_text(summary.method)} growth of a {_text(checkpoint.family)} seed on '
        f"{_text(meta.task)}, for {_text(summary.target)}</p>",
        facts_html(summary, log, meta, checkpoint.family),
        "<h2>Training</h2>", figure_html(training_figure(log)),
        "<h2>Width per layer</h2>", figure_html(widths_figure(log)), widths_table_html(log),
        "<h2>Accuracy against cost</h2>", figure_html(pareto_figure(log, summary, metric, baselines)),
        "<h2>Predicted against measured latency</h2>",
        figure_html(latency_figure(card, Path(export_dir) if export_dir is not None else None)),
        "<h2>Growth events</h2>", events_table_html(log, summary, metric),
        "<h2>Final model on every known target</h2>", costs_table_html(costs, summary.target),
        f'<p class="note">Generated {datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")} from '
        f"{_text(run_dir.resolve())}. Predicted figures come from edgegrow's cost model (the target's "
        "profile); SRAM is the arena (peak activations plus the runtime's own allocations), flash the weights "
        "plus model overhead.</p>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>edgegrow run {_text(run_dir.name)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(sections) + "\n</body></html>\n")


# -- reading -----------------------------------------------------------------------------------------
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


def cost_metric(summary: Summary) -> str:
    """The x axis of the accuracy-against-cost plot: latency when the budget limits it, else the binding metric."""
    budget = summary.budget or {}
    if "latency_ms" in budget or not budget:
        return "latency_ms"
    return summary.binding if summary.binding in budget else next(iter(budget))


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
    targets, unreadable = load_known_targets()  # a profile that cannot be read: said in its row
    reports = estimate_targets(model, torch.zeros(1, *input_shape), targets)
    return [(name, reports.get(name, unreadable.get(name))) for name in known_targets()]


# -- figures -----------------------------------------------------------------------------------------
def applied_events(log: RunLog) -> list[GrowthRow]:
    """The seed (event 0) and every growth event that changed the network."""
    return [row for row in log.growth if row.event == 0 or row.chosen]


def event_label(row: GrowthRow) -> str:
    return "seed" if row.event == 0 else str(row.event)


def training_figure(log: RunLog) -> Figure:
    """Validation accuracy (%) above train and validation loss, per epoch over the whole run."""
    figure = Figure("Training", "training", "epoch (counted over the whole run)")
    accuracy = figure.panel("accuracy (%)", height_px=200)
    loss = figure.panel("loss (cross-entropy)", height_px=170)
    series = {key: [] for key in ("validation_accuracy", "train_accuracy", "train_loss", "validation_loss")}
    grow_epochs = len(log.phase("grow"))
    for number, row in enumerate(log.epochs, start=1):
        for key, values in series.items():
            values.append((float(number), _scaled(getattr(row, key), 100 if "accuracy" in key else 1)))
    for row in applied_events(log):
        if row.event:
            figure.markers.append(VerticalMarker(float(row.epoch), str(row.event), kind="grow",
                                                 legend="growth event (numbered)"))
    retrained = len(log.epochs) - grow_epochs
    if retrained:
        figure.spans.append(Span(float(grow_epochs), float(len(log.epochs)), "retrain from scratch", "#e6f4e3"))
    figure.caption = ("Each point is one epoch of the run's one schedule. Vertical lines: growth events, drawn where "
                      "in the run they happened" + ("; shaded: the found architecture retrained from scratch with "
                                                    "the same schedule." if retrained else "."))
    accuracy.add(Series("validation accuracy", series["validation_accuracy"], color=GROWTH_COLOR,
                        marker_radius_px=_radius(series["validation_accuracy"])))
    accuracy.add(Series("train accuracy", series["train_accuracy"], color="#9ecae1", dashed=True,
                        marker_radius_px=_radius(series["train_accuracy"]) * 0.7))
    loss.add(Series("train loss", series["train_loss"], color="#ff7f0e", dashed=True,
                    marker_radius_px=_radius(series["train_loss"]) * 0.7))
    loss.add(Series("validation loss", series["validation_loss"], color="#d62728",
                    marker_radius_px=_radius(series["validation_loss"])))
    return figure


def channel_groups(log: RunLog) -> list[str]:
    """Every channel group of the run in model order (the last event's), then any that only earlier ones had."""
    rows = log.growth
    return list(dict.fromkeys([*rows[-1].widths, *(g for row in rows for g in row.widths)])) if rows else []


def widths_figure(log: RunLog) -> Figure:
    """Each channel group's width (channels) and the depth (weighted layers) after each growth event."""
    rows = applied_events(log)
    figure = Figure("Width per layer", "widths", "after growth event (seed, then each event that grew)",
                    x_ticks=[(float(i), event_label(row)) for i, row in enumerate(rows)])
    widths = figure.panel("width (channels)", height_px=240, integer_ticks=True)
    for group in channel_groups(log):
        widths.add(Series(group, [(float(i), row.widths.get(group)) for i, row in enumerate(rows)],
                          style="step", key=f"width-{slug(group)}"))
    depth = figure.panel("depth (layers)", height_px=90, integer_ticks=True)
    depth.add(Series("depth (convolutions and fully connected layers)",
                     [(float(i), row.depth) for i, row in enumerate(rows)], style="step", color="#333333",
                     key="depth"))
    figure.caption = ("Width of every growable channel group (a set of channels that must grow together) after each "
                      "growth event. Groups with equal widths overlap; the table below lists every value. Groups that "
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


def pareto_figure(log: RunLog, summary: Summary, metric: str, baselines: list[dict] | None) -> Figure:
    """Validation accuracy against the cost metric: the growth trajectory, the budget, baselines and the front."""
    figure = Figure("Accuracy against cost", "pareto", METRIC_AXIS_LABELS[metric].format(target=summary.target))
    panel = figure.panel("accuracy (%)", height_px=300)
    epochs = log.phase("grow")
    trajectory = [(_number_or_none(row.predicted.get(metric)), _scaled(row.validation_accuracy, 100)) for row in epochs]
    panel.add(Series("growth trajectory (validation accuracy after each epoch)", trajectory, color=GROWTH_COLOR,
                     key="trajectory", point_labels=[f"epoch {row.epoch}" for row in epochs],
                     point_attributes=[{"data-epoch": str(row.epoch)} for row in epochs]))
    final = (_number_or_none(summary.predicted.get(metric)), _scaled(summary.validation_accuracy, 100))
    panel.add(Series(f"kept model ({summary.kept})", [final], style="ring", color=GROWTH_COLOR, key="kept",
                     point_labels=[summary.kept], point_attributes=[{"data-kept": summary.kept}]))
    limit = summary.budget.get(metric)
    if _is_number(limit):
        figure.markers.append(VerticalMarker(float(limit), f"budget {format_number(limit)}", kind="budget",
                                             color=BUDGET_COLOR, legend=f"budget ({metric})"))
    caption = ["Each growth point is the network after an epoch (its validation accuracy); the ring is the kept "
               "model; the dashed red line is the budget."]
    if baselines is None:
        caption.append(f"Uniform baselines not given: pass baselines=[{{'name': …, '{metric}': …, 'accuracy': …}}] "
                       "to write_report to compare with uniformly scaled networks and mark the Pareto front.")
    else:
        panel.add(Series("baselines", [(float(b[metric]), 100 * float(b["accuracy"])) for b in baselines],
                         style="scatter", color=BASELINE_COLOR, point_labels=[b["name"] for b in baselines],
                         point_attributes=[{"data-name": b["name"]} for b in baselines]))
        candidates = [(float(b[metric]), 100 * float(b["accuracy"]), b["name"]) for b in baselines]
        if final[0] is not None and final[1] is not None:
            candidates.append((final[0], final[1], f"{summary.kept} (final)"))
        front = [candidates[i] for i in pareto_front([(c, a) for c, a, _ in candidates])]
        panel.add(Series("Pareto front", [(c, a) for c, a, _ in front], style="step", color="#2ca02c", dashed=True,
                         key="pareto-line", show_points=False, in_legend=False))
        panel.add(Series("Pareto front (baselines + final)", [(c, a) for c, a, _ in front], style="ring",
                         color="#2ca02c", key="pareto-front",
                         point_attributes=[{"data-pareto": "true", "data-name": name} for _, _, name in front]))
        caption.append("Baselines' accuracy is as given. Ringed green: the Pareto front of the baselines and the "
                       "kept network (nothing else is both cheaper and more accurate).")
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
def facts_html(summary: Summary, log: RunLog, meta: RunMeta, family: str) -> str:
    """The run at a glance, as a definition list."""
    predicted, budget, usage = summary.predicted, summary.budget, summary.usage
    budget_lines = []
    for metric, limit in budget.items():
        share = usage.get(metric)
        used = f"{_fmt(share * limit)} used ({share:.0%})" if _is_number(share) else "usage unknown"
        budget_lines.append(f"{metric} ≤ {_fmt(limit)}: {used}" + (" — binding" if metric == summary.binding else ""))
    growth, training = summary.growth_seconds, summary.training_seconds
    total = growth + training
    share = growth / total if total > 0 else 0.0
    time_bar = (f'<span class="bar" style="width:{200 * share:.0f}px;background:#ff7f0e"></span>'
                f'<span class="bar" style="width:{200 * (1 - share):.0f}px;background:#1f77b4"></span> '
                f"{growth:.1f} s choosing growth, {training:.1f} s training ({share:.0%} growth)")
    outcomes = []
    for name, outcome in (("grown", summary.grown), ("retrained from scratch", summary.retrained)):
        if outcome is not None:
            outcomes.append(f"{name}: validation {_percent(outcome.validation_accuracy)}, test "
                            f"{_percent(outcome.test_accuracy)} ({outcome.epochs} epochs, "
                            f"{outcome.mac_epochs / 1e6:,.1f} M MAC-epochs)")
    facts = [
        ("task", f"{meta.task} ({len(meta.class_names)} classes, input {'×'.join(str(d) for d in meta.input_shape)})"),
        ("family", family), ("method", summary.method), ("target", summary.target),
        ("budget", "; ".join(budget_lines) or "none recorded"),
        ("growth", f"{summary.events} growth event(s); stopped: {summary.stopped_by}"),
        ("kept", f"the {summary.kept} network (better on the validation split)" if summary.retrained is not None
         else "the grown network"),
        ("test accuracy", _percent(summary.test_accuracy) if _is_number(summary.test_accuracy)
         else "not measured (no test split)"),
        ("validation accuracy", _percent(summary.validation_accuracy)),
        ("candidates", "; ".join(outcomes) or "—"),
        ("widths", ", ".join(f"{group} {width}" for group, width in summary.widths.items())),
        ("depth", f"{summary.depth} layers (convolutions and fully connected)"),
        ("MACs", _count(predicted.get("macs"))), ("parameters", _count(predicted.get("params"))),
        ("training compute", f"{summary.mac_epochs / 1e6:,.1f} M MAC-epochs (MACs per example × epochs, summed "
                             "over the run)"),
        ("predicted cost", f"{_fmt(predicted.get('latency_ms'))} ms, "
                           + (f"{_fmt(predicted.get('energy_mj'))} mJ, " if _is_number(predicted.get("energy_mj"))
                              else "energy n/a (no power figure), ")
                           + f"SRAM {_fmt(predicted.get('sram_kb'))} KiB, flash {_fmt(predicted.get('flash_kb'))} KiB "
                           f"on {summary.target}"),
    ]
    items = "".join(f"<dt>{_text(name)}</dt><dd>{_text(value)}</dd>" for name, value in facts)
    items += f"<dt>time</dt><dd>{time_bar}</dd>"
    return f'<dl class="facts">{items}</dl>'


def widths_table_html(log: RunLog) -> str:
    rows = applied_events(log)
    groups = channel_groups(log)
    head = "".join(f"<th>{_text(event_label(row))}</th>" for row in rows)
    body = "".join(f"<tr><td>{_text(group)}</td>"
                   + "".join(f"<td>{_text(row.widths.get(group, '—'))}</td>" for row in rows) + "</tr>"
                   for group in groups)
    depth = "".join(f"<td>{_text(row.depth)}</td>" for row in rows)
    return (f'<table class="widths"><thead><tr><th>channel group</th>{head}</tr></thead>'
            f"<tbody>{body}<tr><td>depth (layers)</td>{depth}</tr></tbody></table>")


def events_table_html(log: RunLog, summary: Summary, metric: str) -> str:
    binding = summary.binding or metric
    head = ("<tr><th>event</th><th>epoch</th><th>total width</th><th>depth</th><th>" + _text(metric) + "</th>"
            f"<th>{_text(binding)} used</th><th>cap</th><th>candidates</th><th>chosen</th><th>growth s</th>"
            "<th>note</th></tr>")
    body = []
    for row in log.growth:
        usage = row.usage.get(binding)
        chosen = ", ".join(f"{count} {kind}" for kind, count in row.chosen.items())
        cells = [event_label(row), f"{row.epoch:.2f}", sum(row.widths.values()), row.depth,
                 _fmt(row.predicted.get(metric)), f"{usage:.0%}" if _is_number(usage) else "—",
                 f"{row.usage_cap:.0%}" if _is_number(row.usage_cap) else "—", row.candidates, chosen or "—",
                 _seconds(row.growth_seconds), row.stopped_by or ""]
        body.append("<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in cells) + "</tr>")
    return f'<table class="events"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def costs_table_html(costs: list[tuple[str, object]], run_target: str) -> str:
    head = ("<tr><th>target</th><th>latency ms</th><th>energy mJ</th><th>SRAM KiB</th><th>flash KiB</th>"
            "<th>MACs</th><th>memory limits</th><th>latency from</th></tr>")
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
                    f"<td>{_count(report.macs)}</td><td>{limits}</td><td>{_text(_profile_status(name))}</td></tr>")
    return (f'<table class="targets">{head}{"".join(body)}</table>'
            '<p class="note">Energy is blank where the profile gives no power figure; memory limits are the '
            "target's SRAM and flash.</p>")


# -- small helpers -----------------------------------------------------------------------------------
def _profile_status(name: str) -> str:
    """Measured, or analytic and whether calibrated on this device (``calibration_status``)."""
    try:
        return calibration_status(load_target(name))
    except ValueError:
        return "unreadable profile"


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


def _percent(value) -> str:
    return f"{value:.2%}" if _is_number(value) else "not measured"


def _seconds(value) -> str:
    return f"{value:.1f}" if _is_number(value) else "—"


def _count(value) -> str:
    return f"{int(value):,}" if _is_number(value) else "—"


def _text(value) -> str:
    return html.escape(str(value))
