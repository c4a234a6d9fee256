"""Latency prediction: lookup, staircase-aware interpolation, fitted fallback, roofline floor, layouts."""
import pytest
from profiles import analytic_profile, conv_sweep, table_profile, target

from cost_models.kernel_shape import KernelShape
from cost_models.latency import LatencyModel, blocked_layout
from cost_models.target import load_target


def conv(c_out, c_in=64, size=28):
    return KernelShape("conv", (c_in, size, size), (c_out, size, size), (3, 3), (1, 1), "relu")


def test_exact_lookup_returns_the_table_value():
    result = LatencyModel(target(table_profile())).kernel(conv(60))
    assert result.method == "table" and result.latency_ms == pytest.approx(0.68)


def test_channels_within_one_step_cost_the_same_and_the_step_shows():
    model = LatencyModel(target(table_profile()))
    at = {c: model.kernel(conv(c)) for c in (58, 61, 64, 66, 71, 72)}
    assert {at[c].method for c in at} == {"interpolated"}
    # 57..64 share the 8-channel step measured at 57, 60, 63; 65..72 the one measured at 65 and 70
    assert at[58].latency_ms == at[61].latency_ms == at[64].latency_ms == pytest.approx(0.68)
    assert at[66].latency_ms == at[71].latency_ms == at[72].latency_ms == pytest.approx(0.84)
    step_up = at[66].latency_ms - at[64].latency_ms
    assert step_up > 0.1 and at[64].latency_ms - model.kernel(conv(63)).latency_ms == 0


def test_between_measured_steps_interpolates_on_padded_channels():
    entries = conv_sweep([48], lambda c: 0.5) + conv_sweep([80], lambda c: 0.9)
    model = LatencyModel(target(table_profile(entries)))
    result = model.kernel(conv(64))  # padded 64 is half way between 48 and 80
    assert result.method == "interpolated" and result.latency_ms == pytest.approx(0.7)
    assert model.kernel(conv(60)).latency_ms == pytest.approx(0.7)  # 60 pads to 64 as well


def test_a_litert_table_prices_an_unmeasured_channel_count_by_its_fit_and_onnxruntimes_interpolates():
    # XNNPACK's kernels do not step with one channel block: cross-validated on a full litert table, the fit
    # beat interpolating on the block-rounded counts (depthwise convs 98 % against 73 % within 10 %)
    entries = conv_sweep([32], lambda c: 0.35) + conv_sweep([48], lambda c: 0.5) + conv_sweep([80], lambda c: 0.9)
    litert = table_profile([{**entry, "layout": "plain"} for entry in entries],
                           runtime={"name": "litert", "version": "1.0"})
    litert["latency"]["layout"] = {"rule": "none", "block_channels": 8}
    onnxruntime = LatencyModel(target(table_profile(entries))).kernel(conv(64))
    fitted = LatencyModel(target(litert)).kernel(conv(64))
    assert onnxruntime.method == "interpolated" and fitted.method == "fitted"
    assert 0.5 < fitted.latency_ms < 0.9  # the fit still lies between the two measured widths


def test_an_unseen_shape_is_fitted_and_grows_with_work():
    entries = []
    for size in (7, 14, 28):
        for c in (16, 32, 64, 128):
            macs = KernelShape("conv", (c, size, size), (c, size, size), (3, 3)).macs
            entries += [{**KernelShape("conv", (c, size, size), (c, size, size), (3, 3)).to_dict(),
                         "latency_ms": macs / 2e10 * 1e3 + 0.005, "layout": "blocked"}]
    model = LatencyModel(target(table_profile(entries)))
    shape = KernelShape("conv", (48, 20, 20), (48, 20, 20), (3, 3))
    result = model.kernel(shape)
    assert result.method == "fitted"
    assert result.latency_ms == pytest.approx(shape.macs / 2e10 * 1e3 + 0.005, rel=0.1)
    bigger = model.kernel(KernelShape("conv", (96, 20, 20), (96, 20, 20), (3, 3)))
    assert bigger.latency_ms > 2 * result.latency_ms


def test_never_below_the_roofline():
    entries = conv_sweep([64], lambda c: 1e-6)  # an impossible measurement
    model = LatencyModel(target(table_profile(entries)))
    result = model.kernel(conv(64))
    assert result.latency_ms == pytest.approx(conv(64).macs / 5e10 * 1e3) == result.roofline_ms


def test_an_unknown_kind_gets_the_roofline_and_says_so():
    model = LatencyModel(target(table_profile()))
    result = model.kernel(KernelShape("unknown", (32, 8, 8), (32, 8, 8)))
    assert result.method == "roofline" and result.latency_ms > 0


def test_analytic_profile_pads_channels_to_its_step():
    model = LatencyModel(target(analytic_profile()))
    point = lambda c_in, c_out: KernelShape("pointwise", (c_in, 10, 10), (c_out, 10, 10))  # noqa: E731
    assert model.kernel(point(64, 61)).latency_ms == model.kernel(point(64, 64)).latency_ms
    assert model.kernel(point(64, 65)).latency_ms > model.kernel(point(64, 64)).latency_ms
    assert model.kernel(point(64, 64)).method == "analytic"
    assert model.kernel(point(64, 64)).latency_ms == pytest.approx(64 * 64 * 100 / 1e7 * 1e3 + 0.1)


def test_model_latency_counts_layout_changes_and_overhead():
    model = LatencyModel(target(table_profile()))
    plain_reader = KernelShape("depthwise", (63, 28, 28), (63, 28, 28), (3, 3))  # 63 % 4: plain layout
    shapes = [conv(63), plain_reader]
    results, reorder_ms, total = model.model(shapes, [[-1], [0]])
    assert results[0].layout == "blocked" and model.layout(plain_reader) == "plain"
    # blocked input, blocked→plain between the two kernels; 64 input channels ≥ block: reorder the input
    expected_reorders = 2 * 0.002 + 1e-7 * (64 * 28 * 28 + 63 * 28 * 28)
    assert reorder_ms == pytest.approx(expected_reorders)
    assert total == pytest.approx(sum(r.latency_ms for r in results) + reorder_ms + 0.01)


def test_the_blocked_layout_rule_matches_what_the_host_profile_observed():
    host = load_target("host")
    disagreements = [e.shape for e in host.entries if e.shape.kind in ("conv", "pointwise", "depthwise")
                     and (e.layout == "blocked") != blocked_layout(e.shape, host.layout_block_channels)]
    assert not disagreements, disagreements[:5]
