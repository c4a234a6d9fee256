"""Boosted trees, and the latency model's fitted fallback that uses them for what a line cannot say."""
import random

import numpy as np
import pytest
import torch
from profiles import table_profile, target

import cost_models.latency as latency
from cost_models.boosted_trees import BoostedTrees
from cost_models.kernel_shape import KernelShape
from cost_models.latency import LatencyModel


def test_learns_a_step_and_an_interaction_a_line_cannot():
    rng = np.random.default_rng(1)
    def truth_of(rows):  # a step in the first feature (a remainder, say) and an interaction of the others
        return 0.3 * (rows[:, 0] >= 8) + 0.2 * ((rows[:, 1] > 32) & (rows[:, 2] > 20))

    features = rng.integers(0, [16, 64, 64], size=(400, 3)).astype(float)
    trees = BoostedTrees(features, truth_of(features))
    fresh = rng.integers(0, [16, 64, 64], size=(200, 3)).astype(float)
    truth = truth_of(fresh)
    assert np.mean(np.abs(trees.predict(fresh) - truth) < 0.05) > 0.9
    line = np.linalg.lstsq(np.c_[features, np.ones(len(features))], truth_of(features), rcond=None)[0]
    assert np.mean(np.abs(np.c_[fresh, np.ones(len(fresh))] @ line - truth) < 0.05) < 0.5


def test_one_row_at_a_time_gives_the_same_numbers():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(120, 5))
    trees = BoostedTrees(features, np.sin(features[:, 0]) + features[:, 1] ** 2, trees=50, depth=4)
    rows = rng.normal(size=(30, 5))
    assert trees.predict(rows) == pytest.approx([trees.predict_one(row) for row in rows], abs=1e-12)


def test_the_same_data_gives_the_same_trees_and_leaves_the_global_random_streams_alone():
    rng = np.random.default_rng(3)
    features, targets = rng.normal(size=(80, 4)), rng.normal(size=80)
    np.random.seed(5)
    torch.manual_seed(5)
    random.seed(5)
    first = BoostedTrees(features, targets).predict(features)
    drawn = (np.random.random(), torch.rand(1).item(), random.random())
    np.random.seed(5)
    torch.manual_seed(5)
    random.seed(5)
    assert (np.random.random(), torch.rand(1).item(), random.random()) == drawn
    assert BoostedTrees(features, targets).predict(features) == pytest.approx(first, abs=0)


def test_too_few_rows_to_split_gives_every_row_their_mean():
    trees = BoostedTrees(np.arange(6.0)[:, None], np.array([1.0, 2, 3, 4, 5, 100]))
    assert trees.predict(np.array([[0.0], [5.0]])) == pytest.approx([115 / 6, 115 / 6], rel=1e-6)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="one row per target"):
        BoostedTrees(np.zeros((5, 2)), np.zeros(4))


def _pointwise(c_in, c_out, size):
    return KernelShape("pointwise", (c_in, size, size), (c_out, size, size), (1, 1), (1, 1), None)


def _regime_ms(shape):
    """A pointwise conv whose speed per MAC halves once its output map reaches 16×16 (a change of code path
    no term of the line has), plus a fixed cost."""
    return shape.macs / (4e9 if shape.output[1] < 16 else 8e9) * 1e3 + 0.002


def _regime_table(seed=0, count=120):
    rng = random.Random(seed)
    shapes = {_pointwise(rng.choice(range(16, 257, 16)), rng.choice(range(16, 257, 16)), rng.randint(6, 28))
              for _ in range(count)}
    return [{**shape.to_dict(), "latency_ms": _regime_ms(shape), "layout": "blocked"} for shape in sorted(
        shapes, key=lambda s: (s.input, s.output))]


def _share_within(model, shapes, limit):
    errors = [abs(model.kernel(shape).latency_ms / _regime_ms(shape) - 1) for shape in shapes]
    return float(np.mean(np.array(errors) <= limit))


def test_the_fitted_fallback_learns_a_regime_change_between_table_shapes(monkeypatch):
    profile = table_profile(_regime_table())
    rng = random.Random(9)
    unseen = [_pointwise(rng.choice(range(24, 249, 16)), rng.choice(range(24, 249, 16)), rng.randint(7, 27))
              for _ in range(60)]
    model = LatencyModel(target(profile))
    assert {model.kernel(shape).method for shape in unseen} == {"fitted"}
    assert _share_within(model, unseen, 0.05) >= 0.9
    # the nearest-neighbour correction alone, as before boosted trees, misses a good share of them
    monkeypatch.setattr(latency._Fit, "TREES_FROM", 10 ** 9)
    monkeypatch.setattr(latency, "_FIT_CACHE", type(latency._FIT_CACHE)())
    assert _share_within(LatencyModel(target(profile)), unseen, 0.05) < 0.8


def test_a_group_of_fewer_entries_than_trees_need_keeps_the_nearest_entries_correction():
    model = LatencyModel(target(table_profile(_regime_table(count=latency._Fit.TREES_FROM // 2))))
    fit = model._fits[("pointwise", "blocked")]
    assert fit.usable and fit.trees is None
    assert model.kernel(_pointwise(40, 40, 12)).method == "fitted"


def test_latency_models_of_the_same_table_share_their_fits_and_a_changed_table_does_not():
    first = LatencyModel(target(table_profile(_regime_table())))
    again = LatencyModel(target(table_profile(_regime_table())))
    other = LatencyModel(target(table_profile(_regime_table(seed=1))))
    key = ("pointwise", "blocked")
    assert again._fits[key] is first._fits[key]
    assert other._fits[key] is not first._fits[key]
