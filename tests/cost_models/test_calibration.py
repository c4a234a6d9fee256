"""Whole-model calibration: random chains are well-formed networks, the fit recovers known numbers,
and a profile's calibration is applied to table latencies."""
import json
import random

import numpy as np
import onnxruntime
import pytest
from profiles import conv_sweep, table_profile, target

from cost_models.calibration import (
    chains_digest,
    drift_warning,
    fit_calibration,
    kept_times,
    random_chain,
    random_chains,
    steady_timing,
)
from cost_models.kernel_onnx import chain_model
from cost_models.kernel_shape import KernelShape
from cost_models.latency import LatencyModel


@pytest.mark.parametrize("seed", range(6))
def test_random_chains_are_consistent_networks_that_run(seed):
    shapes, inputs = random_chain(random.Random(seed))
    for index, (shape, sources) in enumerate(zip(shapes, inputs)):
        for source in sources:
            produced = shapes[source].output if source >= 0 else shapes[0].input
            assert produced == shape.input, (index, shape, source)
    session = onnxruntime.InferenceSession(chain_model(shapes, inputs).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    (x,) = session.get_inputs()
    (output,) = session.run(None, {x.name: np.ones(x.shape, np.float32)})
    assert output.shape == (1, shapes[-1].output[0])


def test_fit_recovers_a_known_scale_and_offset():
    table_ms = [0.5, 1.0, 2.0, 4.0, 0.2]
    kernels = [10, 14, 30, 22, 8]
    measured = [1.2 * t - 0.003 * k + 0.01 for t, k in zip(table_ms, kernels)]
    scale, per_kernel = fit_calibration(table_ms, kernels, measured, model_overhead_ms=0.01)
    assert scale == pytest.approx(1.2) and per_kernel == pytest.approx(-0.003)


def test_calibration_applies_to_table_latencies_but_not_below_the_roofline():
    profile = table_profile(conv_sweep([64], lambda c: 0.8))
    profile["latency"]["calibration"] = {"scale": 1.1, "per_kernel_ms": -0.01, "source": "test"}
    model = LatencyModel(target(profile))
    shape = KernelShape("conv", (64, 28, 28), (64, 28, 28), (3, 3), (1, 1), "relu")
    assert model.kernel(shape).latency_ms == pytest.approx(1.1 * 0.8 - 0.01)  # roofline 0.58 ms
    profile["latency"]["calibration"]["per_kernel_ms"] = -1.0
    assert LatencyModel(target(profile)).kernel(shape).latency_ms == pytest.approx(shape.macs / 5e10 * 1e3)


def test_a_target_without_calibration_prices_its_table_as_measured():
    profile = table_profile(conv_sweep([64], lambda c: 0.8))
    profile["latency"]["calibration"] = {"scale": 1.1, "per_kernel_ms": 0.01, "source": "test"}
    shape = KernelShape("conv", (64, 28, 28), (64, 28, 28), (3, 3), (1, 1), "relu")
    assert LatencyModel(target(profile)).kernel(shape).latency_ms == pytest.approx(1.1 * 0.8 + 0.01)
    assert LatencyModel(target(profile).without_calibration()).kernel(shape).latency_ms == pytest.approx(0.8)


@pytest.mark.parametrize("offset_ms", [2e-5, -2e-5])
def test_a_per_node_offset_fitted_with_the_scale_is_never_below_zero_and_the_node_slope_is_only_recorded(offset_ms):
    # litert profiles fit the offset on the networks: the node chains' slope moved 0.028 -> 0.064 us a node in an hour
    # while the networks' times did not (x86 host, 2026-12-07); a negative fit (noise) would price networks under
    from cost_models.calibration import random_chains
    from cost_models.profiler import calibrate

    profile = table_profile()
    model = LatencyModel(target(profile))
    overhead = model.target.model_overhead_ms.value
    chains = random_chains(6)
    measured = [1.1 * (model.model(*chain)[2] - overhead) + offset_ms * model.nodes(*chain) + overhead
                for chain in chains]
    calibration = calibrate(profile, chains, measured, 3, node_slope_ms=6.4e-5)["latency"]["calibration"]
    assert calibration["per_kernel_ms"] == pytest.approx(max(offset_ms, 0.0), abs=1e-9)
    assert calibration["scale"] == pytest.approx(1.1, rel=0.01 if offset_ms < 0 else 1e-6)
    assert "(0.0640 us a node) is not used" in calibration["source"]


def test_the_scale_now_refits_the_profiles_networks_timed_again_on_its_table_as_measured_with_its_offset_kept():
    # a profile's calibration networks timed again 2.5 hours later ran 0.6-2.0 % faster at the median, the largest up to
    # 12 % (onnxruntime, 2026-12-07): the scale they give now is what re-timing the calibration alone would change
    from cost_models.calibration import random_chains, scale_now
    from cost_models.profiler import calibrate

    profile = table_profile()
    model = LatencyModel(target(profile))
    overhead = model.target.model_overhead_ms.value
    chains = random_chains(6)
    work = [model.model(*chain)[2] - overhead for chain in chains]
    nodes = [model.nodes(*chain) for chain in chains]
    measured = [1.1 * ms + 2e-5 * count + overhead for ms, count in zip(work, nodes)]
    calibrated = target(calibrate(profile, chains, measured, 3, per_node_ms=2e-5))
    assert calibrated.calibration_scale == pytest.approx(1.1)
    assert scale_now(calibrated, chains, measured) == pytest.approx(1.1)  # not 1.0: the table as measured
    faster = [0.97 * 1.1 * ms + 2e-5 * count + overhead for ms, count in zip(work, nodes)]
    assert scale_now(calibrated, chains, faster) == pytest.approx(0.97 * 1.1)
    # networks whose nodes cost more now: the scale takes it in, the offset stays the profile's
    dearer = [1.1 * ms + 6e-5 * count + overhead for ms, count in zip(work, nodes)]
    weights = 1 / np.array(dearer)
    target_ms = (np.array(dearer) - overhead - 2e-5 * np.array(nodes)) * weights
    expected = float(np.linalg.lstsq((np.array(work) * weights)[:, None], target_ms, rcond=None)[0][0])
    assert scale_now(calibrated, chains, dearer) == pytest.approx(expected) and expected > 1.1 * 1.001


def _timings(ratios, kept):
    """A calibration timed once per ratio: every network at that ratio of its kept time, and the calls counted."""
    calls = []

    def time_once():
        ratio = ratios[len(calls)]
        calls.append(ratio)
        return [ratio * ms for ms in kept]

    return time_once, calls


def test_the_calibration_is_timed_once_without_kept_times_or_where_it_runs_as_it_did():
    kept = [0.1, 0.5, 2.0]
    time_once, calls = _timings([1.3], kept)
    timing, drift = steady_timing(time_once, list, None)
    assert calls == [1.3] and drift is None  # nothing to compare with: as before
    for within in (1.04, 1.0499, 0.9501):
        time_once, calls = _timings([within, 2.0], kept)
        timing, drift = steady_timing(time_once, list, kept)
        assert calls == [within] and drift == {"tries": 1, "now_over_kept": pytest.approx(within), "steady": True}
        assert drift_warning(drift, "host.json") is None


def test_a_calibration_timed_while_the_machine_ran_slow_is_timed_again_and_the_fastest_try_kept():
    """2026-12-08: one run of a litert profile timed its networks 12.6 % slower than its last run (the halves of its
    rounds agreeing within 0.6 %), and within 0.1 % of them in the next; its scale went 1.008 -> 1.129 -> 1.008."""
    kept = [0.1, 0.5, 2.0]
    time_once, calls = _timings([1.126, 1.001, 1.5], kept)
    timing, drift = steady_timing(time_once, list, kept)
    assert calls == [1.126, 1.001] and timing == pytest.approx([1.001 * ms for ms in kept])
    assert drift == {"tries": 2, "now_over_kept": pytest.approx(1.001), "steady": True}
    time_once, calls = _timings([1.2, 1.1, 1.15], kept)
    timing, drift = steady_timing(time_once, list, kept)
    assert calls == [1.2, 1.1, 1.15] and timing == pytest.approx([1.1 * ms for ms in kept])
    assert drift["steady"] is False and drift["kept_ms"] == kept  # what the next run compares with again
    warning = drift_warning(drift, "/p/host.json")
    assert "10.0% slower" in warning and "each of 3 timings" in warning and "/p/host.json.measurements.jsonl" in warning
    time_once, calls = _timings([1.06], kept)
    assert steady_timing(time_once, list, kept, tries=1)[1]["steady"] is False  # just beyond 5 %
    time_once, calls = _timings([0.9, 0.92, 0.91], kept)  # faster throughout: said too
    assert "faster" in drift_warning(steady_timing(time_once, list, kept)[1], "host.json")


def _profile_file(path, chains, times, **calibration):
    profile = table_profile()
    profile["latency"]["calibration"] = {"measured_ms": times, "networks_sha256": chains_digest(chains), **calibration}
    path.write_text(json.dumps(profile))
    return path


def test_only_a_profile_that_timed_the_same_networks_the_same_way_gives_times_to_compare_with(tmp_path):
    chains = random_chains(3)
    path = tmp_path / "p.json"
    assert kept_times(path, chains, "onnxruntime", 1) is None  # no profile yet
    _profile_file(path, chains, [0.1, 0.2, 0.3])
    assert kept_times(path, chains, "onnxruntime", 1) == [0.1, 0.2, 0.3]
    assert kept_times(path, chains, "litert", 1) is None  # timed through another runtime
    assert kept_times(path, chains, "onnxruntime", 4) is None  # on other threads
    assert kept_times(path, random_chains(2), "onnxruntime", 1) is None  # other networks
    _profile_file(path, chains, [0.1, 0.2])
    assert kept_times(path, chains, "onnxruntime", 1) is None  # as many times as networks
    for bad in ([0.1, 0.0, 0.3], [0.1, -0.2, 0.3], [0.1, float("nan"), 0.3], [0.1, "x", 0.3]):
        _profile_file(path, chains, bad)
        assert kept_times(path, chains, "onnxruntime", 1) is None  # no time to divide by
    _profile_file(path, chains, [0.2, 0.4, 0.6], drift={"steady": False, "kept_ms": [0.1, 0.2, 0.3]})
    assert kept_times(path, chains, "onnxruntime", 1) == [0.1, 0.2, 0.3]  # the last steady times
    path.write_text("{not json")
    assert kept_times(path, chains, "onnxruntime", 1) is None
