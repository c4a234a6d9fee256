"""The fair baseline: the largest uniform width that fits every limit (even where cost is not monotone
in width), trained for the same epochs or the same training compute."""
import functools
import math
from pathlib import Path

import pytest
import torch
from toy import toy_task

from cost_models import count_macs, estimate
from edgegrow.baseline import largest_fitting_uniform, train_baseline
from edgegrow.growth.budget import Budget
from edgegrow.tasks import Task
from edgegrow.training import TrainConfig

EXAMPLE = torch.zeros(1, 1, 49, 10)


def task():
    return Task(toy_task(), "ds-cnn", {"num_classes": 4})


@pytest.mark.parametrize("reference", [0.3, 0.5, 0.75])
def test_the_largest_fitting_uniform_network_fits_and_a_wider_one_does_not(reference):
    budget = Budget({"macs": count_macs(task().uniform(reference).eval(), EXAMPLE).total})
    found = largest_fitting_uniform(task(), "host", budget)
    assert budget.violations(found.report) == [] and found.usage["macs"] <= 1
    assert found.width_multiplier >= reference * 0.98
    wider = task().uniform(found.width_multiplier * 1.05)
    if [p.shape for p in wider.parameters()] != [p.shape for p in found.model.parameters()]:
        assert budget.violations(estimate(wider.eval(), EXAMPLE, "host"))


def test_a_latency_budget_between_staircase_steps_is_found():
    latency = estimate(task().uniform(0.5).eval(), EXAMPLE, "host").latency_ms
    found = largest_fitting_uniform(task(), "host", Budget({"latency_ms": latency * 1.01}))
    assert found.usage["latency_ms"] <= 1 and found.width_multiplier >= 0.5


def test_no_width_fits_is_a_clear_error():
    with pytest.raises(ValueError, match="no uniform ds-cnn fits the budget"):
        largest_fitting_uniform(task(), "host", Budget({"macs": 10}))


def test_equal_compute_buys_steps_at_the_baseline_macs():
    found = largest_fitting_uniform(task(), "host", Budget({"macs": 300_000}))
    macs = count_macs(found.model.eval(), EXAMPLE).total
    config = TrainConfig(epochs=4, batch_size=64)
    trained = train_baseline(found, task(), config, mac_epochs=2.5 * macs)
    steps_per_epoch = math.ceil(192 / 64)
    assert trained.training.samples_seen == round(2.5 * steps_per_epoch) * 64
    assert trained.mac_epochs == pytest.approx(macs * trained.epochs)
    assert trained.epochs == pytest.approx(8 * 64 / 192)
    equal_epochs = train_baseline(largest_fitting_uniform(task(), "host", Budget({"macs": 300_000})), task(), config)
    assert equal_epochs.epochs == 4 and len(equal_epochs.training.history) == 4


def test_the_auto_seed_is_half_the_width_of_the_largest_fitting_uniform_network():
    from edgegrow.baseline import seed_width_for

    budget = Budget({"macs": 300_000})
    fair = largest_fitting_uniform(task(), "host", budget)
    assert seed_width_for(task(), "host", budget, "auto") == pytest.approx(fair.width_multiplier / 2)
    assert seed_width_for(task(), "host", budget, "seed") is None and seed_width_for(task(), "host", budget, 0.3) == 0.3
    seeded = task().with_seed_width(seed_width_for(task(), "host", budget, "auto"))
    assert count_macs(seeded.seed().eval(), EXAMPLE).total < 0.4 * count_macs(fair.model.eval(), EXAMPLE).total
    with pytest.raises(ValueError, match="'auto' or 'seed'"):
        seed_width_for(task(), "host", budget, "half")


def test_the_shrink_control_scales_the_convolutions_at_the_given_steps():
    found = largest_fitting_uniform(task(), "host", Budget({"macs": 300_000}))
    before = {name: p.detach().clone() for name, p in found.model.named_parameters()}
    config = TrainConfig(epochs=2, batch_size=64, learning_rate=1e-12)  # training itself changes nothing visible
    train_baseline(found, task(), config, shrink=([2, 4], 0.5))
    for name, parameter in found.model.named_parameters():
        conv = parameter.dim() == 4
        torch.testing.assert_close(parameter.detach(), before[name] * (0.25 if conv else 1.0), atol=1e-6, rtol=1e-4)


PINNED_CPU_PROFILE = str(Path(__file__).resolve().parents[1] / "bench" / "targets" / "x86-vm-onnxruntime.json")


@functools.lru_cache(maxsize=None)
def latency(channels: int) -> float:
    with torch.device("meta"):  # shapes alone, as the search prices them
        return estimate(task().uniform(channels / 64).eval(), EXAMPLE.to("meta"), PINNED_CPU_PROFILE).latency_ms


@pytest.mark.parametrize("latency_ms", [0.036, 0.046, 0.060, 0.350])
def test_the_widest_fitting_width_is_found_past_slow_widths_in_between(latency_ms):
    """On a measured onnxruntime profile widths that are not a multiple of 4 are several times slower
    (42 channels: 0.19 ms, 48: 0.05 ms), so the cost dips as the width grows. Every width up to 200
    channels, priced one by one: the search must return the widest that fits (0.35 ms: 176
    channels, where a 1 % step is more than one channel)."""
    budget = Budget({"latency_ms": latency_ms})
    widest = max(c for c in range(1, 201) if latency(c) <= latency_ms)
    assert widest < 200
    found = largest_fitting_uniform(task(), PINNED_CPU_PROFILE, budget)
    stem = next(m for m in found.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.out_channels == widest


@pytest.mark.parametrize("latency_ms", [0.036, 0.044, 0.046, 0.060])
def test_the_auto_seed_fits_the_budget_where_half_the_width_is_a_slow_step(latency_ms):
    """At 0.044 ms the widest fitting DS-CNN has 36 channels and half of it, 18, is predicted at twice the
    budget: the auto seed steps down to the widest width at most half the fitting one that fits."""
    from edgegrow.baseline import seed_width_for

    budget = Budget({"latency_ms": latency_ms})
    fair = largest_fitting_uniform(task(), PINNED_CPU_PROFILE, budget)
    fair_stem = next(m for m in fair.model.modules() if isinstance(m, torch.nn.Conv2d)).out_channels
    seed = task().with_seed_width(seed_width_for(task(), PINNED_CPU_PROFILE, budget, "auto")).seed()
    seed_stem = next(m for m in seed.modules() if isinstance(m, torch.nn.Conv2d)).out_channels
    assert budget.violations(estimate(seed.eval(), EXAMPLE, PINNED_CPU_PROFILE)) == []
    assert seed_stem == max(c for c in range(1, fair_stem // 2 + 1) if latency(c) <= latency_ms)
    if latency_ms == 0.044:
        assert latency(fair_stem // 2) > latency_ms  # the case this guards: half the width is a slow step
