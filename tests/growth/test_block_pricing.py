"""Pricing an inserted block without inserting it: the block's layers (``deepen.block_layers``) spliced
into the traced graph (``KernelCostModel.report_with_modules_after``) give the same cost report, every
metric, as inserting the block with ``deepen`` and tracing the model again — after every block of the
zoo's and the user models' feature stacks (residual streams, squeeze-and-excitation, concatenations,
layers read twice), on a measured table and on an analytic microcontroller profile."""
import copy

import pytest
import torch
from test_function_preserving import DEEPEN_AFTER, MODELS, trained_like

from cost_models import estimate, load_target
from cost_models.marginal import METRICS, KernelCostModel
from edgegrow.growth import deepen
from edgegrow.growth.deepen import block_layers
from edgegrow.growth.firefly import _feature_blocks

TARGETS = ("host", "cortex-m4f-120mhz")


def points(model, name):
    """Every block of the features stack (Firefly's insertion points), or every child with parameters
    but the output layer, and the hand-picked layer of the growth tests; a ds-block after the first two."""
    after, kind = DEEPEN_AFTER[name]
    children = list(model.named_children())
    if len(children) == 1:  # a model that is one Sequential
        children = [(f"{children[0][0]}.{child}", module) for child, module in children[0][1].named_children()]
    blocks = _feature_blocks(model) or [child for child, module in children[:-1]
                                        if any(True for _ in module.parameters())]
    chosen = [(point, None) for point in blocks] + [(after, kind)]
    if kind != "linear":
        chosen += [(point, "ds-block") for point in blocks[:2]]
    return chosen


@pytest.mark.parametrize("target_name", TARGETS)
@pytest.mark.parametrize("name", MODELS)
def test_a_spliced_block_costs_what_the_inserted_block_costs(name, target_name):
    target = load_target(target_name)
    model, x = trained_like(MODELS[name])
    example = x[:1]
    costs = KernelCostModel(model, example, target)
    checked = 0
    for after, kind in points(model, name):
        deepened = copy.deepcopy(model)
        deepen(deepened, after, example, kind=kind)
        actual = estimate(deepened, example, target)
        spliced = costs.report_with_modules_after(after, block_layers(model, after, costs.output_shape_of(after),
                                                                      kind=kind))
        for metric in METRICS:
            assert getattr(spliced, metric) == pytest.approx(getattr(actual, metric), rel=1e-12, abs=0), \
                (after, kind, metric)
        assert spliced.parameters == actual.parameters
        assert [k.kind for k in spliced.kernels] == [k.kind for k in actual.kernels]
        checked += 1
    assert checked >= 2


def test_the_splice_leaves_the_traced_model_as_it_was():
    model, x = trained_like(MODELS["mobilenet-v2"])
    costs = KernelCostModel(model, x[:1], load_target("cortex-m4f-120mhz"))
    before = costs.report
    kernels = list(costs.kernels)
    layers = block_layers(model, "features.3", costs.output_shape_of("features.3"))
    costs.report_with_modules_after("features.3", layers)
    again = KernelCostModel(model, x[:1], load_target("cortex-m4f-120mhz"))
    assert costs.kernels == kernels and again.report == before
    assert [n.name for n in costs.graph.nodes] == [n.name for n in again.graph.nodes]


def test_an_output_the_graph_does_not_single_out_is_a_one_line_error():
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.conv(self.conv(x))

    model = Twice().eval()
    costs = KernelCostModel(model, torch.randn(1, 3, 4, 4), load_target("host"))
    with pytest.raises(ValueError, match="the traced graph runs no module `nowhere`"):
        costs.output_shape_of("nowhere")
    with pytest.raises(ValueError, match="module `conv` runs 2 times; expected once"):
        costs.output_shape_of("conv")
    class Pair(torch.nn.Module):
        def forward(self, x):
            return x * 2, x + 1

    class TwoOut(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = Pair()

        def forward(self, x):
            a, b = self.pair(x)
            return a + b

    with pytest.raises(ValueError, match="2 outputs of module `pair` are read outside it; expected one"):
        KernelCostModel(TwoOut(), torch.randn(1, 3, 4, 4), load_target("host")).output_shape_of("pair")
    layers = block_layers(model, "conv", (1, 3, 4, 4), kind="conv")
    with pytest.raises(ValueError, match="inserted module names must be new and distinct; conv is taken"):
        costs.report_with_modules_after("conv", [("conv", layers[0][1])])
    with pytest.raises(ValueError, match="inserted module names must be new and distinct; new comes twice"):
        costs.report_with_modules_after("conv", [("new", layers[0][1]), ("new", layers[0][1])])


def test_the_grow_loop_prices_a_block_spliced_or_else_inserted_the_same_as_deepen_and_a_trace():
    from edgegrow.grow.growth_step import CostCache, deepened_report

    class Passthrough(torch.nn.Module):  # no node of its own in the trace: priced by inserting the block
        def forward(self, x):
            return x

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), Passthrough(), torch.nn.Conv2d(8, 4, 1),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5)).eval()
    example = torch.randn(1, 3, 8, 8)
    target = load_target("cortex-m4f-120mhz")
    costs = CostCache(target, example)
    with pytest.raises(ValueError, match="runs no module `2`"):
        costs(model).output_shape_of("2")
    for after, kind in [("1", "ds-block"), ("2", "conv"), ("0", None), ("4", "linear")]:
        deepened = copy.deepcopy(model)
        deepen(deepened, after, example, kind=kind)
        actual = estimate(deepened, example, target)
        priced = deepened_report(model, after, kind, costs, example)
        assert [getattr(priced, m) for m in METRICS] == pytest.approx([getattr(actual, m) for m in METRICS], rel=1e-12)
    assert len(list(model.modules())) == 7  # the model is as it was


@pytest.mark.parametrize("target_name", TARGETS)
@pytest.mark.parametrize("name", MODELS)
def test_blocks_and_widened_groups_priced_together_cost_what_the_grown_model_costs(name, target_name):
    """Channel groups widened and blocks inserted in one selection (``apply_candidates``'s order: widen,
    then deepen at the new widths), priced on the traced model alone."""
    from edgegrow.growth import add_neurons, find_channel_groups, growable_groups

    target = load_target(target_name)
    model, x = trained_like(MODELS[name])
    example = x[:1]
    costs = KernelCostModel(model, example, target)
    groups = growable_groups(find_channel_groups(model, example))
    blocks = list(dict((after, kind) for after, kind in points(model, name) if kind != "ds-block").items())
    for widened_groups, chosen_blocks in [(groups, blocks[:2]), (groups[::2], blocks[-2:]), (groups[1:2], blocks)]:
        grown = copy.deepcopy(model)
        for group in widened_groups:
            add_neurons(grown, group, 3)
        for after, kind in chosen_blocks:
            deepen(grown, after, example, kind=kind)
        actual = estimate(grown, example, target)
        deepened = costs.with_modules_after([
            (after, block_layers(model, after, costs.output_shape_of(after), kind=kind))
            for after, kind in chosen_blocks])
        priced = deepened.widened_report({tuple(slot.layer for slot in group.producers): 3 for group in widened_groups})
        for metric in METRICS:
            assert getattr(priced, metric) == pytest.approx(getattr(actual, metric), rel=1e-12, abs=0), \
                ([g.name for g in widened_groups], chosen_blocks, metric)
        assert priced.parameters == actual.parameters, ([g.name for g in widened_groups], chosen_blocks)


@pytest.mark.parametrize("name", ["ds-cnn", "mobilenet-v2", "user-squeeze-excite", "user-concat"])
def test_a_selection_of_firefly_candidates_is_priced_as_the_copy_it_grows(name):
    """The grow loop's ``selection_report`` (``fit_to_budget``'s ``price``) against applying the
    candidates to a copy and tracing it: splits, new neurons and blocks, mixed as an event selects them."""
    import random

    import torch.nn.functional as F

    from edgegrow.grow.growth_step import selection_report
    from edgegrow.growth import find_channel_groups
    from edgegrow.growth.candidates import apply_candidates
    from edgegrow.growth.firefly import firefly_candidates

    target = load_target("cortex-m4f-120mhz")
    model, x = trained_like(MODELS[name])
    labels = torch.randint(0, model(x).shape[1], (x.shape[0],))
    candidates = firefly_candidates(model, x, [(x, labels)], F.cross_entropy, new_per_group=2, steps=1)
    kinds = {c.kind for c in candidates}  # blocks go after a features stack, which the user models have not
    assert kinds >= ({"split", "new", "layer"} if name.startswith(("ds-", "mobilenet")) else {"split", "new"})
    costs = KernelCostModel(model, x[:1], target)
    groups = {group.name: group for group in find_channel_groups(model, x[:1])}
    draw = random.Random(0)
    for size in (1, 3, len(candidates) // 3, len(candidates)):
        selected = draw.sample(candidates, size)
        grown = copy.deepcopy(model)
        apply_candidates(grown, selected, x[:1])
        actual = estimate(grown, x[:1], target)
        priced = selection_report(model, selected, costs, groups)
        for metric in METRICS:
            assert getattr(priced, metric) == pytest.approx(getattr(actual, metric), rel=1e-12, abs=0), (size, metric)
        assert priced.parameters == actual.parameters, size


def test_building_a_block_to_price_or_insert_it_leaves_the_global_random_stream_where_it_was():
    model, x = trained_like(MODELS["ds-cnn"])
    state = torch.get_rng_state()
    block_layers(model, "features.2", tuple(model.features[:3](x[:1]).shape), kind="ds-block")
    deepen(model, "features.2", x, kind="ds-block")
    assert torch.equal(torch.get_rng_state(), state)
