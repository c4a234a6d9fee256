"""A restart's start (GrowConfig.restart_keep): the grown network's weights blended with a fresh draw,
and the same restart given to a uniform baseline (baseline.RestartAt)."""
import math

import pytest
import torch
from torch import nn
from toy import toy_task

import edgegrow.baseline as baseline_module
from edgegrow.baseline import RestartAt, largest_fitting_uniform, train_baseline
from edgegrow.grow import GrowConfig
from edgegrow.grow.growth_step import blend_with_fresh
from edgegrow.growth.budget import Budget
from edgegrow.tasks import Task
from edgegrow.training import TrainConfig


def network(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 3))
    model(torch.randn(8, 1, 6, 6))  # running statistics of its own
    return model


def unit(tensor):
    return tensor / tensor.norm()


def test_keep_zero_is_the_fresh_network_and_keep_one_the_grown_one():
    grown, fresh = network(0), network(1)
    before = {name: t.clone() for name, t in fresh.state_dict().items()}
    blend_with_fresh(fresh, grown, 0.0)
    for name, tensor in fresh.state_dict().items():
        torch.testing.assert_close(tensor, before[name])
    blend_with_fresh(fresh, grown, 1.0)
    for name, tensor in fresh.state_dict().items():
        torch.testing.assert_close(tensor, grown.state_dict()[name])  # statistics too


def test_a_blend_mixes_each_weight_tensors_direction_at_the_fresh_norm_and_restarts_the_statistics():
    grown, fresh = network(0), network(1)
    grown[0].weight.data.mul_(7.0)  # a grown norm far from a fresh one: the mix is of directions
    before = {name: t.clone() for name, t in fresh.state_dict().items()}
    blend_with_fresh(fresh, grown, 0.25)
    for name in ("0.weight", "4.weight"):
        old, new = grown.state_dict()[name], fresh.state_dict()[name]
        expected = unit(0.25 * unit(old) + 0.75 * unit(before[name])) * before[name].norm()
        torch.testing.assert_close(new, expected)
        assert new.norm() == pytest.approx(before[name].norm().item(), rel=1e-5)
    for name in ("0.bias", "1.weight", "1.bias", "4.bias"):
        torch.testing.assert_close(fresh.state_dict()[name], 0.25 * grown.state_dict()[name] + 0.75 * before[name])
    for name in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        torch.testing.assert_close(fresh.state_dict()[name], before[name])


def test_a_blend_of_two_architectures_is_refused():
    other = nn.Sequential(nn.Conv2d(1, 5, 3), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 4 * 4, 3))
    with pytest.raises(ValueError, match=r"cannot blend 0.weight: grown \(5, 1, 3, 3\), fresh \(6, 1, 3, 3\)"):
        blend_with_fresh(network(1), other, 0.5)


@pytest.mark.parametrize("keep", [-0.1, 1.5, math.nan])
def test_restart_keep_must_be_a_share(keep):
    with pytest.raises(ValueError, match="restart_keep must be a (share in \\[0, 1\\]|finite number)"):
        GrowConfig(restart_keep=keep)


def test_a_run_recorded_before_restart_keep_existed_resumes_with_the_fresh_start_it_was_made_with():
    recorded = GrowConfig(restart=True).to_dict()
    assert GrowConfig.from_dict(recorded).restart_keep == 0.5
    del recorded["restart_keep"]
    assert GrowConfig.from_dict(recorded).restart_keep == 0.0


def test_a_baseline_restarted_as_a_grow_run_trains_the_same_steps_and_blends_once(monkeypatch):
    """RestartAt: the baseline trains its compute's steps in two stretches (the first on the run's own
    schedule, the second on a schedule of its own) and is blended with a fresh draw between them."""
    task = Task(toy_task(), "ds-cnn", {"num_classes": 4})
    calls = []
    original = baseline_module.blend_with_fresh
    monkeypatch.setattr(baseline_module, "blend_with_fresh",
                        lambda fresh, grown, keep: (calls.append(keep), original(fresh, grown, keep))[1])
    found = largest_fitting_uniform(task, "host", Budget({"macs": 300_000}))
    config = TrainConfig(epochs=4, batch_size=64)  # 3 steps an epoch on the toy task
    plain = train_baseline(largest_fitting_uniform(task, "host", Budget({"macs": 300_000})), task, config)
    restarted = train_baseline(found, task, config, restart=RestartAt(5, 0.5, 0))
    assert calls == [0.5] and restarted.restarted and not plain.restarted
    assert restarted.epochs == plain.epochs == 4 and restarted.training.samples_seen == 7 * 64  # the second stretch
    calls.clear()
    late = train_baseline(found, task, config, restart=RestartAt(12, 0.5, 0))  # the baseline's 12 steps end first
    assert calls == [] and late.training.samples_seen == 12 * 64 and not late.restarted
    warm = TrainConfig(epochs=4, batch_size=64, warmup_epochs=1.0)  # 2 steps after step 10: inside the warm-up
    short = train_baseline(found, task, warm, restart=RestartAt(10, 0.5, 0))
    assert calls == [] and not short.restarted and short.epochs == 4
    assert train_baseline(found, task, TrainConfig(epochs=2, steps=9, batch_size=64)).training.samples_seen == 9 * 64
    with pytest.raises(ValueError, match="a restart needs at least one step before it, got step 0"):
        train_baseline(found, task, config, restart=RestartAt(0, 0.5, 0))
