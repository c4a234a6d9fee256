"""Budgets (parsing, usage, clear errors) and cost-aware selection (ratio order, vector blocks, fit check)."""
import copy

import pytest
import torch

from cost_models import KernelCostModel, estimate, load_target
from edgegrow.growth import add_neurons, find_channel_groups, group_width, growable_groups
from edgegrow.growth.budget import Budget, metric_value
from edgegrow.growth.candidates import Candidate, apply_candidates
from edgegrow.growth.random_growth import random_candidates
from edgegrow.growth.selection import fit_to_budget, select_candidates
from edgegrow.models import ds_cnn_seed

EXAMPLE = torch.zeros(1, 1, 49, 10)


def test_budget_parse_and_usage():
    budget = Budget.parse(["latency_ms=0.05", "sram_kb=64", "macs=1e6"])
    assert dict(budget.limits) == {"latency_ms": 0.05, "sram_kb": 64.0, "macs": 1e6}
    report = estimate(ds_cnn_seed(), EXAMPLE, "host")
    usage = budget.usage(report)
    assert usage["latency_ms"] == pytest.approx(report.latency_ms / 0.05)
    assert usage["sram_kb"] == pytest.approx(report.sram_bytes / 1024 / 64)
    assert budget.binding(report)[0] == max(usage, key=usage.get)
    assert budget.violations(report) == []
    assert Budget({"macs": 1000}).violations(report) == [f"macs {report.macs:.4g} > 1000"]


@pytest.mark.parametrize("items,message", [
    (["latency_ms"], "is not metric=value"),
    (["latency=0.1"], "unknown budget metric 'latency'"),
    (["latency_ms=fast"], "'fast' is not a number"),
    (["latency_ms=-1"], "must be a positive number"),
    (["latency_ms=nan"], "must be a positive number"),
    (["macs=1", "macs=2"], "budget macs is given twice"),
    ([], "no budget given"),
])
def test_bad_budgets_are_one_line_errors(items, message):
    with pytest.raises(ValueError, match=message) as error:
        Budget.parse(items)
    assert "\n" not in str(error.value)


def test_energy_budget_needs_a_power_figure():
    report = estimate(ds_cnn_seed(), EXAMPLE, "host")
    if report.energy_mj is not None:
        pytest.skip("the host profile has a power figure")
    with pytest.raises(ValueError, match="has no power figure"):
        metric_value(report, "energy_mj")


def _candidates(model, gains: dict[str, float]) -> list[Candidate]:
    """Two new-neuron candidates per channel of each group, with the given gain per group."""
    out = []
    for group in growable_groups(find_channel_groups(model, EXAMPLE)):
        for _ in range(2 * group_width(model, group)):
            out.append(Candidate(kind="new", group=group.name, predicted_decrease=gains.get(group.name, 0.0)))
    return out


def test_selection_prefers_decrease_per_cost_and_respects_the_cap():
    model = ds_cnn_seed()
    cost_model = KernelCostModel(model, EXAMPLE, "host")
    names = [g.name for g in growable_groups(find_channel_groups(model, EXAMPLE))]
    budget = Budget({"latency_ms": cost_model.report.latency_ms * 1.3})
    first, second = names[1], names[2]
    chosen = select_candidates(model, EXAMPLE, _candidates(model, {first: 1.0, second: 0.001}), cost_model, budget,
                               channel_step=8)
    assert chosen and chosen[0].group == first
    # the predicted cost of the grown model stays within the budget after the exact check
    selection = fit_to_budget(model, EXAMPLE, chosen, lambda m: estimate(m, EXAMPLE, "host"), budget)
    assert selection.report.latency_ms <= budget.limits["latency_ms"]
    # non-positive candidates are left alone unless asked for
    assert select_candidates(model, EXAMPLE, _candidates(model, {}), cost_model, budget) == []
    assert select_candidates(model, EXAMPLE, _candidates(model, {}), cost_model, budget, allow_non_positive=True)


def test_groups_grow_in_whole_vector_blocks():
    model = ds_cnn_seed()
    cost_model = KernelCostModel(model, EXAMPLE, "host")
    budget = Budget({"macs": cost_model.report.macs * 3})
    gains = {g.name: 1.0 for g in growable_groups(find_channel_groups(model, EXAMPLE))}
    chosen = select_candidates(model, EXAMPLE, _candidates(model, gains), cost_model, budget, channel_step=8)
    apply_candidates(model, chosen, EXAMPLE)
    widths = [group_width(model, g) for g in growable_groups(find_channel_groups(model, EXAMPLE))]
    assert any(width > 8 for width in widths)
    assert all(width % 8 == 0 for width in widths), widths


def test_fit_to_budget_drops_candidates_until_the_grown_model_fits():
    model = ds_cnn_seed()
    before = estimate(model, EXAMPLE, "host")
    candidates = random_candidates(model, EXAMPLE, method="random-new", generator=torch.Generator().manual_seed(0))
    budget = Budget({"macs": before.macs * 1.5})
    selection = fit_to_budget(model, EXAMPLE, candidates, lambda m: estimate(m, EXAMPLE, "host"), budget)
    assert selection.dropped_to_fit > 0
    assert 0 < len(selection.chosen) < len(candidates)
    assert selection.report.macs <= budget.limits["macs"]


def test_fit_to_budget_with_a_price_copies_only_to_confirm_and_falls_back_when_the_price_is_wrong():
    from edgegrow.grow.growth_step import selection_report

    model = ds_cnn_seed()
    before = estimate(model, EXAMPLE, "host")
    candidates = random_candidates(model, EXAMPLE, method="random-new", generator=torch.Generator().manual_seed(0))
    budget = Budget({"macs": before.macs * 1.5})
    copies = []

    def traced(grown):
        copies.append(grown)
        return estimate(grown, EXAMPLE, "host")

    plain = fit_to_budget(model, EXAMPLE, candidates, traced, budget)
    copies_without_price = len(copies)
    copies.clear()
    groups = {group.name: group for group in find_channel_groups(model, EXAMPLE)}
    cost_model = KernelCostModel(model, EXAMPLE, "host")
    priced = fit_to_budget(model, EXAMPLE, candidates, traced, budget,
                           price=lambda chosen: selection_report(model, chosen, cost_model, groups))
    assert copies_without_price > 1 and len(copies) == 1  # the same selection, one copy to confirm it
    assert (priced.chosen, priced.dropped_to_fit) == (plain.chosen, plain.dropped_to_fit)
    assert priced.report.macs == plain.report.macs
    # a price that says everything fits is caught by the copy; one that cannot price leaves it to the copies
    for wrong in (lambda chosen: before, lambda chosen: (_ for _ in ()).throw(ValueError("cannot"))):
        copies.clear()
        fallback = fit_to_budget(model, EXAMPLE, candidates, traced, budget, price=wrong)
        assert (fallback.chosen, fallback.dropped_to_fit) == (plain.chosen, plain.dropped_to_fit)
        assert len(copies) == copies_without_price


def test_fit_to_budget_leaves_the_global_random_stream_where_it_was():
    """Fillers (new neurons without tensors) draw their fan-in when applied; on a priced copy those
    draws must not move the training's stream, however many copies a fit takes."""
    model = ds_cnn_seed()
    groups = growable_groups(find_channel_groups(model, EXAMPLE))
    fillers = [Candidate("new", group.name, 1.0) for group in groups for _ in range(8)]
    budget = Budget({"macs": estimate(model, EXAMPLE, "host").macs * 1.2})
    state = torch.get_rng_state()
    selection = fit_to_budget(model, EXAMPLE, fillers, lambda m: estimate(m, EXAMPLE, "host"), budget)
    assert selection.dropped_to_fit > 0 and torch.equal(torch.get_rng_state(), state)


def test_selection_under_a_parameter_limit_prices_the_parameters_it_adds():
    """A widened report counts the parameters of the widths it prices, so the selection stops at the
    limit itself, and fit_to_budget has nothing to drop (it read the model's count as it was, so
    every channel looked free under a ``params`` limit)."""
    model = ds_cnn_seed()
    cost_model = KernelCostModel(model, EXAMPLE, "host")
    budget = Budget({"params": cost_model.report.parameters * 1.3})
    gains = {g.name: 1.0 for g in growable_groups(find_channel_groups(model, EXAMPLE))}
    candidates = _candidates(model, gains)
    chosen = select_candidates(model, EXAMPLE, candidates, cost_model, budget, channel_step=8)
    assert 0 < len(chosen) < len(candidates)
    selection = fit_to_budget(model, EXAMPLE, chosen, lambda m: estimate(m, EXAMPLE, "host"), budget)
    assert selection.dropped_to_fit == 0
    assert cost_model.report.parameters < selection.report.parameters <= budget.limits["params"]


def test_channel_step_of_targets():
    assert load_target("host").channel_step == 8
    assert load_target("cortex-m4f-120mhz").channel_step == 4


def test_selection_under_a_peak_sram_limit_leaves_no_group_step_that_still_fits():
    """SRAM is the arena's peak, not a sum over groups: uneven widths fragment TFLite Micro's greedy plan.
    Priced at the joint widths, selection stops only when no group's next vector block fits any more
    (summing one-group increases, it took only the last group's 16 channels from this DS-CNN, a state a
    grow run to this budget passed through, and left three groups a 4-channel block that still fit)."""
    from edgegrow.models.ds_cnn import DSCNN

    model = DSCNN(24, [16, 16, 24, 24], [(1, 1)] * 4).eval()
    device = load_target("cortex-m4f-120mhz")
    budget = Budget({"latency_ms": 60.0, "sram_kb": 13.0, "flash_kb": 19.0})
    groups = growable_groups(find_channel_groups(model, EXAMPLE))
    candidates = [Candidate("new", g.name, 1.0 + index) for index, g in enumerate(groups) for _ in range(16)]
    chosen = select_candidates(model, EXAMPLE, candidates, KernelCostModel(model, EXAMPLE, device), budget,
                               channel_step=device.channel_step)
    assert len(chosen) > 16
    grown = copy.deepcopy(model)
    apply_candidates(grown, chosen, EXAMPLE)
    assert budget.violations(estimate(grown, EXAMPLE, device)) == []
    taken = {g.name: sum(c.group == g.name for c in chosen) for g in groups}
    for group in groups:
        if taken[group.name] + device.channel_step > 16:
            continue  # no candidates left for another block
        probe = copy.deepcopy(grown)
        add_neurons(probe, next(g for g in growable_groups(find_channel_groups(probe, EXAMPLE))
                                if g.name == group.name), device.channel_step)
        assert budget.violations(estimate(probe, EXAMPLE, device)), f"{group.name} could still grow by a block"
