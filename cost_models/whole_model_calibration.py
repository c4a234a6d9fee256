"""Calibrating an analytic profile to one real device from a handful of whole models measured on it.

An analytic profile (``latency.analytic``: MAC rates per kernel kind, a per-kernel overhead) is fitted
to published figures of a reference board, not to the board on your desk. Measure a few whole models
on yours (``edgegrow bench`` there, or the vendor's tools) and this fits one scale ``s`` by least
squares on relative error,

    measured_ms ≈ s × (predicted_ms − model_overhead_ms) + model_overhead_ms,

then writes a new profile whose every latency term is ``s`` times the old one (MAC rates and the
element-wise byte rate divided by ``s``, the per-kernel overhead multiplied), with the fitted scale,
each model's measured, predicted-before and predicted-after latency and its residual in the profile's
``calibration`` record: the provenance of the new figures. One scale keeps the profile's shape (which
kernels are cheap) and moves its level; with the residuals in view a user sees whether that was enough.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import date

import torch
from torch import nn

from .estimate import estimate
from .target import parse_target


@dataclass(frozen=True)
class MeasuredModel:
    """A whole model measured on the device: what it is (``name``: a label for the record), the model and
    an example input to trace, and its measured latency in ms."""

    name: str
    model: nn.Module
    example: torch.Tensor
    measured_ms: float


def calibration_status(target) -> str:
    """How far to trust an analytic profile's latency on your board, in a few words: ``analytic,
    uncalibrated here`` (published figures of a reference board only) or ``analytic, calibrated on N
    measured model(s), worst residual R %``."""
    record = target.extra.get("whole_model_calibration")
    if target.measured:
        return "measured"
    if not record:
        return "analytic, uncalibrated here (edgegrow profile --calibrate)"
    worst = max((abs(m["residual_after_pct"]) for m in record["models"]), default=0.0)
    return f"analytic, calibrated on {len(record['models'])} measured model(s), worst residual {worst:.1f} %"


def fit_scale(predicted_ms: list[float], measured_ms: list[float], overhead_ms: float = 0.0) -> float:
    """The ``s`` minimising Σ ((s·(p − o) + o − m) / m)² over the models (closed form)."""
    numerator = sum((p - overhead_ms) * (m - overhead_ms) / m ** 2 for p, m in zip(predicted_ms, measured_ms))
    denominator = sum((p - overhead_ms) ** 2 / m ** 2 for p, m in zip(predicted_ms, measured_ms))
    if denominator <= 0:
        raise ValueError("the profile predicts no latency beyond its model overhead for these models: nothing to scale")
    return numerator / denominator


def calibrate_analytic_profile(profile: dict, measured: list[MeasuredModel], *, name: str,
                               source: str = "") -> tuple[dict, list[dict]]:
    """A copy of ``profile`` (an analytic profile's JSON) named ``name`` and scaled to ``measured``, and
    one record per model (measured, predicted before and after, residual after in %).

    Raises ValueError for a profile that is not analytic (a measured table is calibrated by the
    profiler's own chains), for fewer than one model, or for a latency that is not a positive number.
    """
    base = parse_target(profile, profile.get("name", "<profile>"))
    if base.analytic is None or base.measured:
        raise ValueError(f"{base.name} is a measured profile; only analytic profiles are calibrated from whole models "
                         "(a measured table is already calibrated by 'edgegrow profile')")
    if not measured:
        raise ValueError("no measured model to calibrate from: give at least one (three or more show the residuals)")
    for row in measured:
        if not (isinstance(row.measured_ms, (int, float)) and math.isfinite(row.measured_ms) and row.measured_ms > 0):
            raise ValueError(f"measured latency of {row.name} must be a positive number of ms, got {row.measured_ms!r}")
    overhead = (base.model_overhead_ms.value if base.model_overhead_ms is not None else None) or 0.0
    before = [estimate(row.model.eval(), row.example, base).latency_ms for row in measured]
    scale = fit_scale(before, [row.measured_ms for row in measured], overhead)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"the fitted scale is {scale!r}: the measurements do not fit this profile's shape")
    calibrated = copy.deepcopy(profile)
    calibrated["name"] = name
    analytic = calibrated["latency"]["analytic"]
    analytic["macs_per_s"] = {kind: rate / scale for kind, rate in analytic["macs_per_s"].items()}
    analytic["bytes_per_s_elementwise"] = analytic["bytes_per_s_elementwise"] / scale
    analytic["per_kernel_overhead_ms"] = analytic["per_kernel_overhead_ms"] * scale
    after_target = parse_target(calibrated, name)
    records = []
    for row, predicted_before in zip(measured, before):
        predicted_after = estimate(row.model.eval(), row.example, after_target).latency_ms
        records.append({"model": row.name, "measured_ms": row.measured_ms, "predicted_before_ms": predicted_before,
                        "predicted_after_ms": predicted_after,
                        "residual_after_pct": 100 * (predicted_after - row.measured_ms) / row.measured_ms})
    calibrated["whole_model_calibration"] = {
        "base_profile": base.name, "scale": scale, "models": records, "date": date.today().isoformat(),
        "source": source or "whole models measured on the device",
        "method": "one scale on every latency term, least squares on relative error (cost_models.whole_model_calibration)"}
    calibrated["latency"]["source"] = (f"{profile['latency'].get('source', '')} Then calibrated to this device: every "
                                       f"latency term ×{scale:.4g}, fitted to {len(records)} whole model(s) measured "
                                       "on it (see 'whole_model_calibration').").strip()
    return calibrated, records
