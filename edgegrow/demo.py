"""The embedded default job: grow a seed DS-CNN on the default synthetic keyword-spotting set.

1. Synthesise the default KWS set with espeak-ng, or reuse it from the cache folder.
2. Train a seed DS-CNN (8 channels per layer) for a few epochs.
3. Grow it a few steps by simple splitting: in every growable channel group, split the neurons
   with the largest fan-in norm into two offspring (ω = ½, ½) along a random ±δ (a small ε breaks
   the symmetry so the offspring can diverge), fine-tuning after each step.
4. Report widths, MACs, parameters and test accuracy before and after.

The cost-aware growth methods (S2D, fast and signed splitting, Firefly) replace the simple split
when they land; this job shows data, training and the growth core working together.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from cost_models import count_macs

from .data.cache import cache_root
from .data.speech_commands import load_speech_commands
from .data.synthesize_kws import SynthesisConfig, synthesize_speech_commands
from .growth import find_channel_groups, group_width, growable_groups, split_neurons
from .models import ds_cnn_seed, example_input
from .training import TrainConfig, evaluate, make_optimizer, train

DEFAULT_KWS_FOLDER = "kws-synthetic-v1"


@dataclass
class GrowthSnapshot:
    widths: dict[str, int]
    macs: int
    parameters: int
    test_accuracy: float


@dataclass
class DemoResult:
    data_folder: Path
    data_reused: bool
    before: GrowthSnapshot
    after: GrowthSnapshot
    accuracy_right_after_each_split: list[float]
    seconds: float


def default_kws_folder(cache_dir: str | Path | None = None) -> Path:
    """Where the default synthetic KWS set lives: CACHE/kws-synthetic-v1."""
    return cache_root(cache_dir) / DEFAULT_KWS_FOLDER


def ensure_default_kws_set(cache_dir: str | Path | None = None, *, progress: bool = False):
    """Synthesise the default KWS set into the cache folder, or reuse it; returns the SynthesisReport."""
    return synthesize_speech_commands(default_kws_folder(cache_dir), SynthesisConfig(), progress=progress)


def largest_fan_in_neurons(model: torch.nn.Module, group, count: int) -> list[int]:
    """Indices of the ``count`` neurons whose fan-in (summed over producers) has the largest norm."""
    norms = sum(model.get_submodule(s.layer).weight.detach().flatten(1).norm(dim=1) for s in group.producers)
    return norms.topk(count).indices.tolist()


def split_with_random_directions(model: torch.nn.Module, group, neurons: list[int], epsilon: float,
                                 generator: torch.Generator, optimizer=None) -> None:
    """Split ``neurons`` into two halves along ±δ, δ random with the norm of the neuron's fan-in."""
    directions = {}
    for slot in group.producers:
        weight = model.get_submodule(slot.layer).weight.detach()
        rows = weight[neurons].flatten(1)
        delta = torch.randn(rows.shape, generator=generator)
        delta = delta / delta.norm(dim=1, keepdim=True) * rows.norm(dim=1, keepdim=True)
        directions[slot.layer] = torch.stack([delta, -delta], dim=1)
    split_neurons(model, group, neurons, directions=directions, epsilon=epsilon, optimizer=optimizer)


def _snapshot(model, x, data) -> GrowthSnapshot:
    groups = growable_groups(find_channel_groups(model, x))
    report = count_macs(model, x)
    return GrowthSnapshot({g.name: group_width(model, g) for g in groups}, report.total, report.parameters,
                          evaluate(model, data.test, data.class_names).accuracy)


def run_demo(
    *,
    data: str | Path | None = None,
    cache_dir: str | Path | None = None,
    steps: int = 3,
    fraction: float = 0.5,
    seed_epochs: int = 8,
    epochs_per_step: int = 3,
    epsilon: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Run the default job; ``data`` is a Speech Commands folder (default: the synthetic set)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    started = time.perf_counter()
    reused = True
    if data is None:
        log(f"default KWS set: {default_kws_folder(cache_dir)}")
        report = ensure_default_kws_set(cache_dir, progress=progress)
        reused = report.reused
        log(f"  {'reused' if reused else f'synthesised in {report.seconds:.0f} s'}: "
            f"{sum(report.clips.values())} clips")
        data = report.folder
    task = load_speech_commands(data, cache_dir=cache_dir, progress=progress)
    log(task.summary())

    torch.manual_seed(seed)
    model = ds_cnn_seed()
    x = example_input(model, 8)
    config = TrainConfig(epochs=seed_epochs, seed=seed)
    log(f"training the seed DS-CNN for {seed_epochs} epochs")
    train(model, task, config, progress=progress)
    before = _snapshot(model, x, task)
    log(f"  seed: test accuracy {before.test_accuracy:.1%}, {before.macs:,} MACs")

    generator = torch.Generator().manual_seed(seed)
    right_after = []
    step_config = TrainConfig(epochs=epochs_per_step, seed=seed, learning_rate=config.learning_rate / 3)
    for step in range(steps):
        optimizer = make_optimizer(model, step_config)
        for group in growable_groups(find_channel_groups(model, x)):
            count = max(1, math.ceil(fraction * group_width(model, group)))
            split_with_random_directions(model, group, largest_fan_in_neurons(model, group, count), epsilon,
                                         generator, optimizer)
        right_after.append(evaluate(model, task.test, task.class_names).accuracy)
        train(model, task, step_config, optimizer=optimizer, progress=progress)
        snapshot = _snapshot(model, x, task)
        log(f"  step {step + 1}: split → {right_after[-1]:.1%} before fine-tuning, "
            f"{snapshot.test_accuracy:.1%} after, {snapshot.macs:,} MACs")
    return DemoResult(Path(data), reused, before, _snapshot(model, x, task), right_after,
                      time.perf_counter() - started)
