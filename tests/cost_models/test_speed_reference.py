"""The speed reference: kernels a profile times while it is made, timed again by whoever compares a
measurement with it, to say how much slower or faster the machine runs now."""
import copy

import numpy as np
import pytest
from profiles import table_profile, target

from cost_models import speed_reference
from cost_models.runner import Session
from cost_models.speed_reference import REFERENCE_KERNELS, drift_note, reference_block, speed_ratio


def with_reference(ms: list[float]) -> dict:
    profile = table_profile()
    profile["speed_reference"] = reference_block(ms, rounds=4, where="test")
    return profile


def test_the_ratio_is_the_median_of_now_over_then():
    assert speed_ratio([1.0, 2.0, 4.0], [1.1, 2.0, 8.0]) == pytest.approx(1.1)
    with pytest.raises(ValueError, match="as many times now"):
        speed_ratio([1.0, 2.0], [1.0])


@pytest.mark.parametrize(("ratio", "words"), [(1.0, None), (1.029, None), (0.975, None), (1.052, "5.2% slower"),
                                              (0.9, "10.0% faster")])
def test_only_a_drift_beyond_the_tolerance_is_reported(ratio, words):
    note = drift_note(ratio, "host")
    assert (note is None) == (words is None)
    if words:
        assert words in note and "(edgegrow profile --target host measures it again)" in note
        # a litert profile, or one of other threads, is measured again as it was made
        again = drift_note(ratio, "phone", what="40 calibration networks", runtime="litert", threads=2)
        assert "phone's 40 calibration networks" in again
        assert "(edgegrow profile --target phone --runtime litert --threads 2 measures it again)" in again


def test_a_profile_keeps_its_reference_kernels_and_their_times():
    times = [0.01 * (index + 1) for index in range(len(REFERENCE_KERNELS))]
    parsed = target(with_reference(times))
    assert [shape for shape, _ in parsed.speed_reference] == list(REFERENCE_KERNELS)
    assert [ms for _, ms in parsed.speed_reference] == times
    assert target(table_profile()).speed_reference == ()  # profiles made before it have none
    with pytest.raises(ValueError, match="reference times expected"):
        reference_block(times[:-1], rounds=4, where="test")


@pytest.mark.parametrize(("change", "field"), [
    (lambda block: block["ms"].pop(), "'speed_reference' needs as many"),
    (lambda block: block["ms"].__setitem__(0, -1.0), r"speed_reference.ms\[0\]"),
    (lambda block: block["kernels"].__setitem__(1, {"kind": "conv"}), r"speed_reference.kernels\[1\]"),
    (lambda block: block.pop("source"), "speed_reference.source"),
])
def test_a_malformed_speed_reference_names_its_field(change, field):
    profile = with_reference([0.01] * len(REFERENCE_KERNELS))
    broken = copy.deepcopy(profile)
    change(broken["speed_reference"])
    with pytest.raises(ValueError, match=field):
        target(broken)


def test_the_reference_kernels_run_and_take_microseconds_not_milliseconds():
    for model in speed_reference.reference_models():
        session = Session(model)
        session.run()
    shapes = {(shape.kind, shape.input[0] % 4 == 0) for shape in REFERENCE_KERNELS}
    assert {("conv", True), ("conv", False), ("depthwise", True), ("depthwise", False)} <= shapes
    assert all(1e5 <= shape.macs <= 1e7 for shape in REFERENCE_KERNELS if shape.macs)
    assert np.isfinite([shape.output_elements for shape in REFERENCE_KERNELS]).all()


def test_a_profiles_calibration_networks_are_rebuilt_from_their_seed_with_their_profiled_times(tmp_path, monkeypatch):
    import json

    from cost_models import kernel_tflite, load_target
    from cost_models.calibration import random_chains
    from cost_models.kernel_onnx import chain_model
    from cost_models.speed_reference import calibration_networks

    profile = table_profile()
    path = tmp_path / "test-cpu.json"
    path.write_text(json.dumps(profile))
    assert calibration_networks(load_target(str(path)), "onnxruntime") == ([], [], [])  # a profile that keeps no times
    profile["latency"]["calibration"] = {"scale": 1.0, "per_kernel_ms": 0.0, "measured_ms": [0.1, 0.2, 0.3],
                                         "source": "test"}
    path.write_text(json.dumps(profile))
    timed = load_target(str(path))
    chains, profiled_ms, models = calibration_networks(timed, "onnxruntime")
    assert chains == random_chains(3) and profiled_ms == [0.1, 0.2, 0.3]
    assert models == [chain_model(*chain).SerializeToString() for chain in chains]
    Session(models[2]).run()
    # litert's from the profile's cache where it has one, converted (and kept there) where not
    monkeypatch.setattr(kernel_tflite, "chain_tflite", lambda shapes, inputs: b"converted")
    assert calibration_networks(timed, "litert")[2] == [b"converted"] * 3
    folder = tmp_path / "test-cpu.json.tflite"
    folder.mkdir()
    (folder / "chain-1.tflite").write_bytes(b"cached")
    assert calibration_networks(timed, "litert", convert=False) == ([], [], [])  # not every one there: none
    assert calibration_networks(timed, "litert")[2] == [b"converted", b"cached", b"converted"]
    assert (folder / "chain-0.tflite").read_bytes() == b"converted"
    assert calibration_networks(timed, "litert", convert=False)[2] == [b"converted", b"cached", b"converted"]


def test_a_profiles_calibration_networks_are_checked_against_the_digest_it_keeps_of_them():
    from cost_models.calibration import chains_digest, random_chains
    from cost_models.speed_reference import CalibrationNetworksChanged, calibration_networks

    chains = random_chains(3)
    assert chains_digest(chains) == chains_digest(random_chains(3)) != chains_digest(random_chains(2))
    shapes, inputs = chains[1]
    rewired = [chains[0], (shapes, inputs[:1] + [inputs[1] + [-1]] + inputs[2:]), chains[2]]
    assert chains_digest(rewired) != chains_digest(chains)  # the wiring counts, not only the kernels
    profile = table_profile()
    profile["latency"]["calibration"] = {"scale": 1.0, "per_kernel_ms": 0.0, "measured_ms": [0.1, 0.2, 0.3],
                                         "networks_sha256": chains_digest(chains), "source": "test"}
    assert calibration_networks(target(profile), "onnxruntime")[0] == chains
    profile["latency"]["calibration"]["networks_sha256"] = chains_digest(random_chains(4)[1:])  # other networks
    with pytest.raises(CalibrationNetworksChanged, match="not the ones this edgegrow builds from their seed"):
        calibration_networks(target(profile), "onnxruntime")
    for malformed, words in ((7, "must be str"), ("", "must be 16 hex digits"), ("89c8bfa2", "must be 16 hex digits")):
        profile["latency"]["calibration"]["networks_sha256"] = malformed
        with pytest.raises(ValueError, match=rf"'latency.calibration.networks_sha256' {words}"):
            target(profile)


def test_the_profiler_keeps_a_digest_of_the_networks_it_calibrated_on():
    from cost_models import profiler
    from cost_models.calibration import chains_digest, random_chains

    chains = random_chains(4)
    calibrated = profiler.calibrate(table_profile(), chains, [0.5, 0.6, 0.7, 0.8], rounds=3)
    assert calibrated["latency"]["calibration"]["networks_sha256"] == chains_digest(chains)
    assert target(calibrated).calibration_networks_sha256 == chains_digest(chains)


@pytest.mark.parametrize("times", [[0.1, -0.2], [0.1, "fast"], [float("nan")]])
def test_malformed_calibration_times_name_their_field(times):
    profile = table_profile()
    profile["latency"]["calibration"] = {"scale": 1.0, "per_kernel_ms": 0.0, "measured_ms": times, "source": "test"}
    with pytest.raises(ValueError, match=r"'latency.calibration.measured_ms\[\d\]' must be a positive finite number"):
        target(profile)
