"""Budgets: upper limits on a grown model's predicted cost on the target, one metric or several.

Metrics and where their value comes from (``cost_models.CostReport``):

- ``latency_ms``: predicted latency (ms); ``energy_mj``: predicted energy per inference (mJ);
- ``macs``: multiply-accumulates per inference; ``params``: parameter count;
- ``sram_kb``: the runtime's arena, peak activations plus TFLite Micro's own allocations (KiB, 1024 B);
  ``flash_kb``: weights plus model overhead (KiB).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cost_models import CostReport

BUDGET_METRICS = {
    "latency_ms": "predicted latency (ms)",
    "energy_mj": "predicted energy per inference (mJ)",
    "macs": "multiply-accumulates per inference",
    "params": "parameters",
    "sram_kb": "arena: peak activations plus the runtime's own (KiB)",
    "flash_kb": "weights plus model overhead (KiB)",
}


def metric_value(report: CostReport, metric: str) -> float:
    """The value of budget ``metric`` in ``report``; ValueError if the target cannot predict it."""
    if metric == "latency_ms":
        return float(report.latency_ms)
    if metric == "energy_mj":
        if report.energy_mj is None:
            raise ValueError(f"target {report.target} has no power figure, so an energy_mj budget cannot be "
                             "checked; use latency_ms or give the profile a power_w")
        return float(report.energy_mj)
    if metric == "macs":
        return float(report.macs)
    if metric == "params":
        return float(report.parameters)
    if metric == "sram_kb":
        return report.sram_bytes / 1024
    if metric == "flash_kb":
        return report.flash_bytes / 1024
    raise ValueError(f"unknown budget metric {metric!r}; choose one of {', '.join(BUDGET_METRICS)}")


@dataclass(frozen=True)
class Budget:
    """Upper limits {metric: value}; a model fits when every metric is at or below its limit."""

    limits: Mapping[str, float]

    def __post_init__(self):
        if not self.limits:
            raise ValueError("no budget given; e.g. --budget latency_ms=0.05")
        for metric, value in self.limits.items():
            if metric not in BUDGET_METRICS:
                raise ValueError(f"unknown budget metric {metric!r}; choose one of {', '.join(BUDGET_METRICS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"budget {metric} must be a positive number, got {value!r}")

    @classmethod
    def parse(cls, items: Iterable[str]) -> Budget:
        """From ``metric=value`` strings, e.g. ``["latency_ms=0.05", "sram_kb=64"]``."""
        limits: dict[str, float] = {}
        for item in items:
            metric, separator, text = item.partition("=")
            metric = metric.strip()
            if not separator or not metric:
                raise ValueError(f"budget {item!r} is not metric=value; e.g. latency_ms=0.05 or sram_kb=64")
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"budget {item!r}: {text!r} is not a number") from None
            if metric in limits:
                raise ValueError(f"budget {metric} is given twice")
            limits[metric] = value
        return cls(limits)

    def usage(self, report: CostReport) -> dict[str, float]:
        """Share of each limit the model uses (1.0 = exactly at the limit)."""
        return {metric: metric_value(report, metric) / limit for metric, limit in self.limits.items()}

    def binding(self, report: CostReport) -> tuple[str, float]:
        """The metric closest to (or furthest over) its limit, and its usage."""
        usage = self.usage(report)
        metric = max(usage, key=usage.get)
        return metric, usage[metric]

    def violations(self, report: CostReport) -> list[str]:
        """Readable lines for every exceeded limit (empty when the model fits)."""
        return [f"{metric} {metric_value(report, metric):.4g} > {limit:.4g}"
                for metric, limit in self.limits.items() if metric_value(report, metric) > limit]

    def describe(self) -> str:
        return ", ".join(f"{metric} ≤ {limit:g}" for metric, limit in self.limits.items())
