"""Reading a CSV of whole models measured on a device, for ``edgegrow profile --calibrate``.

One row per model, header ``model,measured_ms``: ``model`` is a zoo family (``ds-cnn``), a zoo family at
a width (``mobilenet-v1@0.25``), a grow run folder or a checkpoint (``runs/kws/checkpoint.pt``; a
relative path is read from the CSV's folder); ``measured_ms`` is its latency on the device in ms.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

from cost_models.whole_model_calibration import MeasuredModel


def _model(spec: str, folder: Path):
    from .checkpoint import load_checkpoint
    from .models import MODELS, build_model, example_input

    family, _, width = spec.partition("@")
    if family in MODELS:
        try:
            model = build_model(family, **({"width_multiplier": float(width)} if width else {}))
        except (TypeError, ValueError) as error:
            raise ValueError(f"cannot build {spec!r}: {error}") from None
        return model.eval(), example_input(model)
    path = Path(spec) if Path(spec).is_absolute() else folder / spec
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise ValueError(f"{spec!r} is neither a zoo family ({', '.join(MODELS)}, optionally @WIDTH) nor a "
                         "checkpoint or run folder that exists")
    model, checkpoint = load_checkpoint(path)
    shape = checkpoint.meta.get("input_shape") or getattr(model, "input_shape", None)
    if not shape:
        raise ValueError(f"{path} does not record its input shape; measure a zoo model or a grow run's checkpoint")
    return model.eval(), torch.zeros(1, *shape)


def read_measured_models(path: str | Path) -> list[MeasuredModel]:
    """The models of a ``model,measured_ms`` CSV; ValueError naming the line of a bad row."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"model", "measured_ms"} <= set(rows[0]):
        raise ValueError(f"{path} needs a header 'model,measured_ms' and one row per measured model")
    measured = []
    for line, row in enumerate(rows, start=2):
        try:
            latency = float(row["measured_ms"])
        except (TypeError, ValueError):
            raise ValueError(f"{path}:{line}: measured_ms {row['measured_ms']!r} is not a number") from None
        if not (math.isfinite(latency) and latency > 0):
            raise ValueError(f"{path}:{line}: measured_ms must be a positive number of ms, got {row['measured_ms']}")
        try:
            model, example = _model((row["model"] or "").strip(), path.parent)
        except ValueError as error:
            raise ValueError(f"{path}:{line}: {error}") from None
        measured.append(MeasuredModel(row["model"].strip(), model, example, latency))
    return measured
