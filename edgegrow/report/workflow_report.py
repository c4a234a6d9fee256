"""The workflow's front page: ``index.html`` over what ``edgegrow workflow`` made (see
``edgegrow.workflow``), from the summary it writes to ``workflow.json``.

One self-contained page (inline CSS, no JavaScript): per deployment the budget and how much of it
the grown network uses, its accuracy in PyTorch and in the int8 runtimes, predicted against measured
latency, the TFLite Micro arena against the predicted SRAM, the int8 file against the predicted
flash, with links to the run's report, the export folder and its model card; every benchmark; the
uniform baselines; and the time each step took.
"""
from __future__ import annotations

import html
from pathlib import Path

from ..atomic import write_atomically
from .run_report import CSS

INDEX_NAME = "index.html"
WIDE = "body { max-width: 1180px; } td { vertical-align: top; }"


def write_index(out_dir: str | Path, summary: dict) -> Path:
    """Write ``out_dir/index.html`` (atomically) from the workflow summary and return its path."""
    path = Path(out_dir) / INDEX_NAME
    write_atomically(path, render_index(summary))
    return path


def render_index(summary: dict) -> str:
    deployments = summary.get("deployments", [])
    seconds = summary.get("seconds", {})
    sections = [
        f"<h1>edgegrow workflow: {_text(summary.get('task'))}, {_text(summary.get('family'))}</h1>",
        f'<p class="subtitle">{_text(summary.get("data"))} · made {_text(summary.get("created"))} in '
        f"{_seconds(seconds.get('total'))}</p>",
        "<h2>Grown networks</h2>", deployments_table(deployments),
        '<p class="note">Accuracy is top-1 on the test split: PyTorch, and the int8 file in ai-edge-litert and '
        "TFLite Micro. Measured latency is the median of batch-1 runs on this machine; a microcontroller's "
        "latency is predicted only (TFLite Micro here runs reference kernels on a PC). SRAM is compared with "
        "the arena TFLite Micro asks for, flash with the int8 file.</p>",
        "<h2>Grown against the largest uniform network that fits</h2>", fair_table(deployments),
        "<h2>Benchmarks</h2>", benchmarks_table(deployments),
        "<h2>Uniform baselines</h2>", baselines_table(summary.get("baselines", []), deployments),
        "<h2>Time per step</h2>", steps_table(seconds),
        f'<p class="note">All files: {_text(summary.get("out_dir"))}. workflow.json holds everything on this '
        "page.</p>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>edgegrow workflow {_text(summary.get('task'))}</title><style>{CSS}{WIDE}</style></head>\n<body>\n"
            + "\n".join(sections) + "\n</body></html>\n")


def deployments_table(deployments: list[dict]) -> str:
    head = ("<tr><th>target</th><th>budget (used)</th><th>widths, depth</th><th>test acc.</th>"
            "<th>int8 acc. (litert / TFLM)</th><th>latency ms (predicted / measured)</th>"
            "<th>SRAM KiB (pred. / arena)</th><th>flash KiB (pred. / int8 file)</th><th>files</th></tr>")
    rows = []
    for deployment in deployments:
        grown, export = deployment.get("grown", {}), deployment.get("export", {})
        predicted = grown.get("predicted", {})
        usage = grown.get("usage", {})
        budget = ", ".join(f"{metric} ≤ {_number(limit)} ({_share(usage.get(metric))})"
                           for metric, limit in deployment.get("budget", {}).items())
        widths = "/".join(str(w) for w in (grown.get("widths") or {}).values())
        accuracy = export.get("accuracy", {})
        int8 = export.get("files", {}).get("tflite-int8", {})
        measured = next((b for b in deployment.get("benchmarks", []) if b.get("runtime") == "onnxruntime"), None)
        latency = _number(predicted.get("latency_ms"))
        if measured and deployment.get("target_kind") != "mcu":
            latency += f" / {_number(measured.get('latency_ms_median'))} (onnxruntime)"
        arena = (export.get("tflm") or {}).get("arena_bytes")
        links = " · ".join(f'<a href="{html.escape(href)}">{label}</a>' for label, href in (
            ("report", deployment.get("report", "")), ("export", deployment.get("export_dir", "")),
            ("model card", f"{deployment.get('export_dir', '')}/model_card.md")))
        rows.append(
            f"<tr><td>{_text(deployment.get('target'))}</td><td>{_text(budget)}</td>"
            f"<td>{_text(widths)}, {_text(grown.get('depth'))}</td><td>{_percent(grown.get('test_accuracy'))}</td>"
            f"<td>{_percent(accuracy.get('tflite-int8'))} / {_percent(int8.get('accuracy_tflm'))}</td>"
            f"<td>{latency}</td>"
            f"<td>{_number(predicted.get('sram_kb'))} / {_number(arena / 1024 if arena else None)}</td>"
            f"<td>{_number(predicted.get('flash_kb'))} / {_number(int8['bytes'] / 1024 if int8 else None)}</td>"
            f"<td>{links}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def fair_table(deployments: list[dict]) -> str:
    """Per deployment: the largest uniform network within its budget, trained with the grown run's schedule
    and training compute, and the grown network's accuracy minus it."""
    head = ("<tr><th>target</th><th>uniform network</th><th>budget used</th><th>epochs (equal compute)</th>"
            "<th>its test acc.</th><th>grown test acc.</th><th>grown − uniform, test</th>"
            "<th>grown − uniform, validation</th></tr>")
    rows = []
    for deployment in deployments:
        fair, grown = deployment.get("fair") or {}, deployment.get("grown") or {}
        if not fair:
            continue
        used = max((fair.get("usage") or {}).values(), default=None)
        rows.append(f"<tr><td>{_text(deployment.get('target'))}</td><td>{_text(fair.get('name'))}</td>"
                    f"<td>{_share(used)}</td><td>{_number(fair.get('epochs'))}</td>"
                    f"<td>{_percent(fair.get('test_accuracy'))}</td><td>{_percent(grown.get('test_accuracy'))}</td>"
                    f"<td>{_points(fair.get('test_difference'))}</td>"
                    f"<td>{_points(fair.get('validation_difference'))}</td></tr>")
    if not rows:
        return '<p class="note">No fair baseline was trained.</p>'
    return (f"<table>{head}{''.join(rows)}</table>"
            '<p class="note">The uniform network is the family at the largest width multiplier whose predicted cost '
            "fits every limit of the budget, trained from scratch with the grow run's schedule for as many optimizer "
            "steps as the grow run's training compute (MACs × examples, summed over the run) buys at its MACs. One "
            "seed: differences of a point or two are within run-to-run spread on small test sets; "
            "bench/grow_vs_uniform.py reports the spread over seeds.</p>")


def _noise(bench: dict) -> str:
    """The protocol's noise floor of one benchmark, and whether it was too noisy to trust."""
    split = bench.get("noise_split_half")
    text = "n/a" if split is None else f"{split:.1%}"
    return text if bench.get("trusted", True) else f"{text}, too noisy to trust"


def benchmarks_table(deployments: list[dict]) -> str:
    head = ("<tr><th>network</th><th>file</th><th>runtime</th><th>median ms</th><th>fast ms</th><th>p90 ms</th>"
            "<th>noise (halves apart)</th>"
            "<th>predicted ms (target)</th><th>measured / predicted</th><th>arena B</th><th>model RSS MiB</th></tr>")
    rows = []
    for deployment in deployments:
        for bench in deployment.get("benchmarks", []):
            predicted = bench.get("predicted_latency_ms") if bench.get("runtime") != "tflm" else None
            model_rss = bench.get("model_rss_bytes")
            model_rss = model_rss / 2**20 if isinstance(model_rss, (int, float)) else None
            rows.append(
                f"<tr><td>{_text(deployment.get('target'))}</td><td>{_text(Path(str(bench.get('file'))).name)}</td>"
                f"<td>{_text(bench.get('runtime'))}</td><td>{_number(bench.get('latency_ms_median'))}</td>"
                f"<td>{_number(bench.get('latency_ms_fast', bench.get('latency_ms_p10')))}</td>"
                f"<td>{_number(bench.get('latency_ms_p90'))}</td><td>{_noise(bench)}</td>"
                f"<td>{_number(predicted)} ({_text(bench.get('target'))})</td>"
                f"<td>{_number(bench.get('latency_ratio'))}</td><td>{_count(bench.get('arena_bytes'))}</td>"
                f"<td>{_number(model_rss)}</td></tr>")
    if not rows:
        return '<p class="note">No benchmarks.</p>'
    return f"<table>{head}{''.join(rows)}</table>"


def baselines_table(baselines: list[dict], deployments: list[dict]) -> str:
    if not baselines:
        return '<p class="note">No baselines were trained.</p>'
    targets = [d.get("target") for d in deployments]
    head = ("<tr><th>network</th><th>epochs</th><th>validation acc.</th><th>test acc.</th>"
            + "".join(f"<th>latency ms on {_text(t)}</th>" for t in targets) + "</tr>")
    rows = []
    for baseline in baselines:
        costs = baseline.get("costs", {})
        rows.append(f"<tr><td>{_text(baseline.get('name'))}</td><td>{_text(baseline.get('epochs'))}</td>"
                    f"<td>{_percent(baseline.get('validation_accuracy'))}</td>"
                    f"<td>{_percent(baseline.get('test_accuracy'))}</td>"
                    + "".join(f"<td>{_number(costs.get(t, {}).get('latency_ms'))}</td>" for t in targets) + "</tr>")
    return (f"<table>{head}{''.join(rows)}</table>"
            '<p class="note">Each baseline is the family at that width multiplier, trained from scratch with the grow '
            "runs' schedule (as many epochs, or for the ones that fit a budget, the same training compute) on the same "
            "data; each run's report places them on its accuracy-against-cost plot.</p>")


def steps_table(seconds: dict) -> str:
    rows = "".join(f"<tr><td>{_text(step)}</td><td>{_seconds(value)}</td></tr>"
                   for step, value in seconds.items() if step != "total")
    return f"<table><tr><th>step</th><th>time</th></tr>{rows}</table>"


def _text(value) -> str:
    return "—" if value is None else html.escape(str(value))


def _number(value) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "—"
    return f"{value:.4g}"


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "—"


def _percent(value) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def _points(value) -> str:
    return f"{100 * value:+.1f} points" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def _share(value) -> str:
    return f"{100 * value:.0f} %" if isinstance(value, (int, float)) else "—"


def _seconds(value) -> str:
    return f"{value:.0f} s" if isinstance(value, (int, float)) else "—"
