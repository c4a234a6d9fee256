"""The fair baseline: the largest uniform width that fits every limit (even where cost is not monotone
in width), trained for the same epochs or the same training compute."""
import math

import pytest
import torch
from test_grow import toy_task

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
