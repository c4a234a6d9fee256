"""Reports on grow runs: ``write_report(run_dir)`` writes ``run_dir/report.html``, one self-contained
page (inline CSS and SVG charts, no JavaScript, no network); ``svg_plot`` draws its charts."""
from .run_report import render_report, write_report

__all__ = ["render_report", "write_report"]
