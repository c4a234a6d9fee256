"""The analytic device profiles shipped in targets/ (written by targets/calibrate_analytic.py).

They load, every calibration entry is reproduced by ``estimate`` on the model it names (so a stale
file fails), the Cortex-M4F profile stays near the MLPerf Tiny reference figures, and the MCU
profiles keep a visible channel step and real memory limits.
"""
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from torch import nn

from cost_models.estimate import estimate
from cost_models.kernel_shape import KernelShape
from cost_models.latency import LatencyModel
from cost_models.target import load_target
from edgegrow.models import ds_cnn, example_input, mobilenet_v1, resnet8

TARGETS = Path(__file__).resolve().parents[2] / "targets"
ANALYTIC = {"cortex-m4f-120mhz": "mcu", "cortex-m7-480mhz": "mcu", "cortex-a76": "cpu", "jetson-orin-nano": "gpu"}
MCUS = [name for name, kind in ANALYTIC.items() if kind == "mcu"]

# MLPerf Tiny v0.5 reference submission, NUCLEO-L4R5ZI (../shared/docs/ANCHORS.md). Written out here rather
# than read from the profile, so that a profile whose recorded figures drift cannot pass by itself.
MLPERF_TINY_M4F_MS = {"kws": 181.9, "vww": 600.5, "ic": 704.3}
MLPERF_TINY_M4F_KWS_MJ = 7.37
MLPERF_TINY_M4F_AD_MS, MLPERF_TINY_M4F_AD_MJ = 10.05, 0.417  # anomaly detection: not used by the fit


def _load_script():
    spec = importlib.util.spec_from_file_location("calibrate_analytic", TARGETS / "calibrate_analytic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CALIBRATE = _load_script()


def _profile_json(name: str) -> dict:
    return json.loads((TARGETS / f"{name}.json").read_text())


def _calibration_cases():
    for name in ANALYTIC:
        path = TARGETS / f"{name}.json"
        entries = _profile_json(name).get("calibration", []) if path.is_file() else [None]
        for index, _ in enumerate(entries):
            yield pytest.param(name, index, id=f"{name}-{index}")


@lru_cache(maxsize=None)
def _report(target_name: str, spec_json: str):
    model = CALIBRATE.build_model(json.loads(spec_json))
    return estimate(model, example_input(model), load_target(target_name))


def _report_for(target_name: str, spec: dict):
    return _report(target_name, json.dumps(spec, sort_keys=True))


@pytest.mark.parametrize("name", ANALYTIC)
def test_every_analytic_profile_loads_with_sourced_rates_below_its_peak(name):
    target = load_target(name)
    assert target.kind == ANALYTIC[name] and target.name == name
    assert not target.measured and target.analytic is not None
    assert target.extra.get("calibration"), "an analytic profile must record what it was calibrated to"
    rates = target.analytic.macs_per_s
    assert set(rates) >= {"conv", "depthwise", "pointwise", "fully_connected", "default"}
    assert max(rates.values()) <= target.peak_macs_per_s.value
    assert target.analytic.bytes_per_s_elementwise <= target.memory_bandwidth_bytes_per_s.value
    assert target.analytic.channel_step > 1
    for field in ("peak_macs_per_s", "memory_bandwidth_bytes_per_s", "sram_bytes", "flash_bytes", "active_power_mw",
                  "model_overhead_ms", "model_overhead_flash_bytes"):
        assert len(getattr(target, field).source) > 20, f"{name}.{field} needs a real source"


@pytest.mark.parametrize(("name", "index"), list(_calibration_cases()))
def test_calibration_entries_are_reproduced_by_estimate(name, index):
    entry = _profile_json(name)["calibration"][index]
    report = _report_for(name, entry["model"])
    assert report.latency_ms == pytest.approx(entry["predicted_ms"], rel=0.01), entry["anchor"]
    assert not report.uncosted, report.uncosted
    if "predicted_mj" in entry:
        assert report.energy_mj == pytest.approx(entry["predicted_mj"], rel=0.01)


def test_profiles_match_the_spec_in_the_calibration_script():
    for device in CALIBRATE.DEVICES:
        data = _profile_json(device["name"])
        assert [e["anchor"] for e in data["calibration"]] == [a["anchor"] for a in device["anchors"]]
        assert [e["published_ms"] for e in data["calibration"]] == [a["published_ms"] for a in device["anchors"]]
        assert [e["model"] for e in data["calibration"]] == [a["model"] for a in device["anchors"]]
        for field, fact in device["facts"].items():
            assert data[field] == fact, f"{device['name']}.{field}: re-run python targets/calibrate_analytic.py"
        assert data["latency"]["analytic"]["channel_step"] == device["analytic"]["channel_step"][0]


@pytest.mark.parametrize(("task", "model"), [
    ("kws", lambda: ds_cnn("mlperf")),
    ("vww", lambda: mobilenet_v1(0.25, 96, 2)),
    ("ic", lambda: resnet8()),
])
def test_regression_guard_cortex_m4f_latency_on_the_three_anchors_it_was_fitted_on(task, model):
    """A regression guard, not a measure of accuracy: targets/calibrate_analytic.py fitted the M4F
    profile's two rates to these three published figures, so within 10 % here says the fit still holds.
    The out-of-sample check is the anomaly-detection test below."""
    network = model().eval()
    report = estimate(network, example_input(network), load_target("cortex-m4f-120mhz"))
    published = MLPERF_TINY_M4F_MS[task]
    assert abs(report.latency_ms / published - 1) < 0.10, (task, report.latency_ms, published)


def test_regression_guard_cortex_m4f_energy_on_the_keyword_spotting_anchor_it_was_fitted_on():
    """A regression guard: the M4F's active power is the mean power of the three anchors' runs and its
    latency was fitted to them (see the latency guard), so this energy is in sample too."""
    network = ds_cnn("mlperf").eval()
    report = estimate(network, example_input(network), load_target("cortex-m4f-120mhz"))
    assert report.energy_mj is not None
    assert abs(report.energy_mj / MLPERF_TINY_M4F_KWS_MJ - 1) < 0.10, report.energy_mj


def mlperf_tiny_anomaly_detection() -> nn.Module:
    """MLPerf Tiny's anomaly-detection model (the FC autoencoder on 640 log-mel values: four dense
    layers of 128 with BatchNorm and ReLU, a bottleneck of 8, four of 128, 640 out; 264 k MACs)."""
    layers, width = [], 640
    for out in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        layers += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.ReLU()]
        width = out
    return nn.Sequential(*layers, nn.Linear(width, 640)).eval()


def _anomaly_detection_error() -> tuple[float, float]:
    report = estimate(mlperf_tiny_anomaly_detection(), torch.zeros(1, 640), load_target("cortex-m4f-120mhz"))
    return report.latency_ms / MLPERF_TINY_M4F_AD_MS - 1, report.energy_mj / MLPERF_TINY_M4F_AD_MJ - 1


def test_out_of_sample_cortex_m4f_anomaly_detection_stays_within_its_measured_error():
    """Out of sample: the fourth MLPerf Tiny v0.5 reference figure on the M4F (10.05 ms, 0.417 mJ), which
    the fit never saw. The analytic profile predicts 14.8 ms and 0.60 mJ, +47 % and +45 %: its rates
    are conv rates, and dense layers run faster per MAC on the M4F. Guarded at that error (a worse
    prediction fails); the 10 % an in-sample anchor meets is the xfail below."""
    latency_error, energy_error = _anomaly_detection_error()
    assert 0 < latency_error < 0.55 and 0 < energy_error < 0.55, (latency_error, energy_error)


@pytest.mark.xfail(strict=True, reason="out of sample the M4F profile is +47 % on a dense-only network "
                                       "(issue 19 item 6: calibrate analytic profiles from measured models)")
def test_out_of_sample_cortex_m4f_anomaly_detection_within_10_percent():
    latency_error, _ = _anomaly_detection_error()
    assert abs(latency_error) < 0.10, latency_error


@pytest.mark.parametrize("name", MCUS)
def test_the_channel_step_shows_on_the_mcu_targets(name):
    model = LatencyModel(load_target(name))

    def cost(c_in, c_out):
        return model.kernel(KernelShape("pointwise", (c_in, 16, 16), (c_out, 16, 16))).latency_ms

    assert cost(64, 65) > cost(63, 64)
    # 64 -> 65 costs what 64 -> 68 costs (one step of 4 output channels), more than its 1.6 % more MACs
    assert cost(64, 65) == pytest.approx(cost(64, 68))
    assert cost(64, 65) / cost(63, 64) > 1.05
    assert cost(61, 64) == pytest.approx(cost(64, 64))


@pytest.mark.parametrize("name", MCUS)
def test_mcu_profiles_have_memory_limits_and_ds_cnn_s_fits(name):
    target = load_target(name)
    assert target.sram_bytes.value is not None and target.flash_bytes.value is not None
    network = ds_cnn("S").eval()
    report = estimate(network, example_input(network), target)
    assert report.limits == {"sram_bytes": int(target.sram_bytes.value), "flash_bytes": int(target.flash_bytes.value)}
    assert 0 < report.sram_bytes <= target.sram_bytes.value
    assert 0 < report.flash_bytes <= target.flash_bytes.value
    assert report.over_limits == []


def test_the_gpu_profile_charges_a_fitted_launch_overhead_per_kernel():
    target = load_target("jetson-orin-nano")
    assert target.analytic.per_kernel_overhead_ms > 0
    assert "fitted" in target.latency_source
