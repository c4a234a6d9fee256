"""The embedded default job: grow a seed DS-CNN to a latency budget on the default synthetic KWS set.

1. Synthesise the default KWS set with espeak-ng, or reuse it from the cache folder.
2. Grow a seed DS-CNN (8 channels per layer) with fast energy-aware splitting on a target (default
   ``host``, the profile measured on this project's machine) to a latency budget (default: the
   predicted latency of DS-CNN-S ×0.5 there): train the seed, then score, select under the budget,
   split and fine-tune, step by step (``edgegrow.grow``), with short training so it runs in minutes.
3. Report widths, MACs, predicted latency and test accuracy of the seed and the grown network; the
   run folder keeps steps.jsonl, checkpoint.pt and summary.json.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from cost_models import estimate, load_target

from .data.cache import cache_root
from .data.synthesize_kws import SynthesisConfig, synthesize_speech_commands
from .grow import GrowConfig, GrowResult, grow
from .growth.budget import Budget
from .models import ds_cnn
from .tasks import load_task

DEFAULT_KWS_FOLDER = "kws-synthetic-v1"


@dataclass
class DemoResult:
    data_folder: Path
    data_reused: bool
    budget: Budget
    seed: dict  # the first row of the grow log: the trained seed
    grown: GrowResult
    seconds: float


def default_kws_folder(cache_dir: str | Path | None = None) -> Path:
    """Where the default synthetic KWS set lives: CACHE/kws-synthetic-v1."""
    return cache_root(cache_dir) / DEFAULT_KWS_FOLDER


def ensure_default_kws_set(cache_dir: str | Path | None = None, *, progress: bool = False):
    """Synthesise the default KWS set into the cache folder, or reuse it; returns the SynthesisReport."""
    return synthesize_speech_commands(default_kws_folder(cache_dir), SynthesisConfig(), progress=progress)


def run_demo(
    *,
    data: str | Path | None = None,
    cache_dir: str | Path | None = None,
    target: str = "host",
    budget_ms: float | None = None,
    steps: int = 4,
    seed_epochs: int = 4,
    epochs_per_step: int = 2,
    final_epochs: int = 4,
    out: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Run the default job; ``data`` is a Speech Commands folder (default: the synthetic set)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    started = time.perf_counter()
    reused = True
    if data is None:
        log(f"default KWS set: {default_kws_folder(cache_dir)}")
        report = ensure_default_kws_set(cache_dir, progress=progress)
        reused = report.reused
        log(f"  {'reused' if reused else f'synthesised in {report.seconds:.0f} s'}: "
            f"{sum(report.clips.values())} clips")
        data = report.folder
    task = load_task("kws", data, cache_dir=cache_dir, progress=progress)
    log(task.data.summary())
    profile = load_target(target)
    if budget_ms is None:
        reference = ds_cnn("S", width_multiplier=0.5, num_classes=task.data.num_classes,
                           input_shape=task.data.input_shape)
        budget_ms = estimate(reference, torch.zeros(1, *task.data.input_shape), profile).latency_ms
    budget = Budget({"latency_ms": budget_ms})
    if out is None:
        out = cache_root(cache_dir) / "runs" / datetime.now().strftime("demo-%Y%m%d-%H%M%S")
    out = Path(out)
    log(f"growing a seed DS-CNN on {profile.name} to {budget.describe()} by fast splitting; run folder {out}")
    torch.manual_seed(seed)
    config = GrowConfig(method="fast-split", seed_epochs=seed_epochs, epochs_per_step=epochs_per_step,
                        final_epochs=final_epochs, max_steps=steps, seed=seed)
    grown = grow(task.seed(), task.data, profile, budget, config, out, family=task.family,
                 seed_options=task.seed_options, progress=progress, log=log, task_source=task.source)
    return DemoResult(Path(data), reused, budget, grown.history[0], grown, time.perf_counter() - started)
