"""benchmark(): latency statistics, child-process memory, TFLM arena, the prediction beside the
measurement, and the record appended to the model card. Files are a tiny DS-CNN exported here."""
import hashlib
import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from cost_models import estimate, load_target
from edgegrow.checkpoint import Checkpoint, save_checkpoint
from edgegrow.export.benchmark import CARD_NAME, TFLM_NOTE, BenchResult, benchmark
from edgegrow.models import build_seed

FAST = {"warmup": 2, "runs": 10}
INPUT_SHAPE = (1, 49, 10)


@pytest.fixture(scope="module")
def seed_model():
    torch.manual_seed(0)
    return build_seed("ds-cnn").eval()


@pytest.fixture(scope="module")
def onnx_file(seed_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and constant-folding notices
        warnings.simplefilter("ignore")
        torch.onnx.export(seed_model, (torch.randn(1, *INPUT_SHAPE),), str(path), dynamo=False)
    return path


@pytest.fixture(scope="module")
def tflite_files(seed_model, tmp_path_factory):
    """A float .tflite (NHWC) and its int8 version (static int8 weights and activations)."""
    litert_torch = pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_quantizer")
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    folder = tmp_path_factory.mktemp("tflite")
    float_path, int8_path = folder / "model.tflite", folder / "model_int8.tflite"
    example = torch.randn(1, *INPUT_SHAPE)
    nhwc = litert_torch.to_channel_last_io(seed_model, args=[0])
    litert_torch.convert(nhwc.eval(), (example.permute(0, 2, 3, 1),)).export(str(float_path))

    signatures = Interpreter(model_path=str(float_path)).get_signature_list()
    key = next(iter(signatures))
    input_name = signatures[key]["inputs"][0]
    rng = np.random.default_rng(0)
    calibration_set = [{input_name: rng.standard_normal((1, 49, 10, 1)).astype(np.float32)} for _ in range(8)]
    with warnings.catch_warnings():  # the quantizer's debug-interpreter notice
        warnings.simplefilter("ignore")
        quantize = quantizer.Quantizer(str(float_path))
        quantize.load_quantization_recipe(recipe.static_wi8_ai8())
        calibration = quantize.calibrate({key: calibration_set})
        int8_path.write_bytes(quantize.quantize(calibration).quantized_model)
    return float_path, int8_path


def copy_into(tmp_path, *files):
    """The files copied into a fresh folder (each test owns its model card); returns the copies."""
    copies = [tmp_path / file.name for file in files]
    for file, copy in zip(files, copies):
        shutil.copy(file, copy)
    return copies[0] if len(copies) == 1 else copies


def write_card(folder, targets: dict, **extra) -> dict:
    card = {"format": "test-card", "targets": {name: {"predicted": predicted} for name, predicted in targets.items()},
            **extra}
    (folder / CARD_NAME).write_text(json.dumps(card))
    return card


def predicted(latency_ms=0.02, sram_kb=6.0, flash_kb=4.0, energy_mj=None) -> dict:
    return {"latency_ms": latency_ms, "energy_mj": energy_mj, "sram_kb": sram_kb, "flash_kb": flash_kb}


def check_latency(result: BenchResult):
    assert result.runs == FAST["runs"] and result.warmup == FAST["warmup"]
    assert 0 < result.latency_ms_min <= result.latency_ms_median <= result.latency_ms_p90


# --- latency and memory ---------------------------------------------------------------------------
def test_onnx_latency_statistics_are_ordered_and_positive(onnx_file, tmp_path):
    result = benchmark(copy_into(tmp_path, onnx_file), "onnxruntime", target=None, **FAST)
    check_latency(result)
    assert result.input_shape == (1, *INPUT_SHAPE) and result.input_dtype == "float32"
    assert result.arena_bytes is None and result.prediction is None


def test_model_share_is_peak_rss_above_a_torch_free_baseline(onnx_file, tmp_path):
    result = benchmark(copy_into(tmp_path, onnx_file), "onnxruntime", target=None, **FAST)
    assert result.peak_rss_bytes > result.baseline_rss_bytes > 0
    assert result.model_rss_bytes == result.peak_rss_bytes - result.baseline_rss_bytes
    assert not any("torch was imported" in note for note in result.notes)  # the measuring process is lean


# --- the prediction beside the measurement ---------------------------------------------------------
def test_latency_ratio_is_measured_median_over_the_cards_prediction(onnx_file, tmp_path):
    path = copy_into(tmp_path, onnx_file)
    write_card(tmp_path, {"host": predicted(latency_ms=0.0125, sram_kb=7.5, flash_kb=4.0, energy_mj=0.001)})
    result = benchmark(path, "onnxruntime", target="host", record=False, **FAST)
    assert result.prediction.source == CARD_NAME
    assert result.prediction.latency_ms == 0.0125 and result.prediction.energy_mj == 0.001
    assert result.prediction.sram_bytes == 7680 and result.prediction.flash_bytes == 4096  # KiB -> bytes
    assert result.latency_ratio == pytest.approx(result.latency_ms_median / 0.0125)
    assert result.fast_latency_ratio == pytest.approx(result.latency_ms_fast / 0.0125)
    assert result.latency_ms_min <= result.latency_ms_fast <= result.latency_ms_p90
    assert not any("another runtime" in note for note in result.notes)  # host runs onnxruntime
    assert "measured/predicted" in result.table()


def test_prediction_comes_from_the_checkpoint_when_the_card_lacks_the_target(seed_model, onnx_file, tmp_path):
    path = copy_into(tmp_path, onnx_file)
    write_card(tmp_path, {"cortex-m4f-120mhz": predicted()})
    save_checkpoint(tmp_path / "checkpoint.pt", seed_model,
                    Checkpoint("ds-cnn", {}, [], {"input_shape": list(INPUT_SHAPE)}))
    expected = estimate(seed_model, torch.zeros(1, *INPUT_SHAPE), load_target("host"))
    result = benchmark(path, "onnxruntime", target="host", record=False, **FAST)
    assert "checkpoint.pt" in result.prediction.source
    assert result.prediction.latency_ms == pytest.approx(expected.latency_ms)
    assert result.prediction.sram_bytes == expected.sram_bytes
    assert result.prediction.flash_bytes == expected.flash_bytes
    assert result.latency_ratio == pytest.approx(result.latency_ms_median / expected.latency_ms)


def test_no_card_and_no_checkpoint_gives_no_prediction_and_says_so(onnx_file, tmp_path):
    result = benchmark(copy_into(tmp_path, onnx_file), "onnxruntime", target="host", **FAST)
    assert result.prediction is None and result.latency_ratio is None
    assert any("no prediction for host" in note for note in result.notes)
    assert "predicted  none for host" in result.table()
    assert not (tmp_path / CARD_NAME).exists()  # nothing to record into, and none created


def test_a_litert_profile_measured_on_this_machine_is_neither_another_runtime_nor_another_device():
    # 'edgegrow profile --target host-litert --runtime litert' writes runtime "litert" and names this machine
    import dataclasses

    from cost_models.runner import machine_tag
    from edgegrow.export.benchmark import _comparison_notes
    from edgegrow.export.runtimes import TensorSpec

    here = machine_tag()
    source = f"measured here by 'edgegrow profile --runtime litert' on 2026-12-07 {here}: 1955 single-kernel models"
    profile = dataclasses.replace(load_target("host"), name="host-litert", runtime="litert", latency_source=source)
    spec = TensorSpec("input", (1, 32, 32, 3), np.dtype(np.float32))
    assert _comparison_notes("litert", spec, profile) == []
    assert "another runtime" in " ".join(_comparison_notes("onnxruntime", spec, profile))
    elsewhere = dataclasses.replace(profile, latency_source=source.replace(here, "(aarch64, phone)"))
    assert "another device" in " ".join(_comparison_notes("litert", spec, elsewhere))


def test_a_prediction_for_another_runtime_and_device_is_flagged(onnx_file, tmp_path):
    path = copy_into(tmp_path, onnx_file)
    write_card(tmp_path, {"cortex-m4f-120mhz": predicted(latency_ms=40.0)})
    result = benchmark(path, "onnxruntime", target="cortex-m4f-120mhz", record=False, **FAST)
    notes = " ".join(result.notes)
    assert "another runtime" in notes and "tflite-micro" in notes
    assert "another device" in notes
    assert "predicted for int8 tensors" in notes
    assert result.latency_ratio == pytest.approx(result.latency_ms_median / 40.0)


# --- the record -------------------------------------------------------------------------------------
def test_the_card_gains_a_measured_entry_and_keeps_its_content(onnx_file, tmp_path):
    path = copy_into(tmp_path, onnx_file)
    before = write_card(tmp_path, {"host": predicted()}, measured=[{"file": "earlier.onnx"}], notes="keep me")
    result = benchmark(path, "onnxruntime", target="host", **FAST)
    after = json.loads((tmp_path / CARD_NAME).read_text())
    assert {key: after[key] for key in ("format", "targets", "notes")} == {
        key: before[key] for key in ("format", "targets", "notes")}
    assert after["measured"][0] == {"file": "earlier.onnx"}
    assert len(after["measured"]) == 2
    entry = after["measured"][1]
    assert entry == json.loads(json.dumps(result.to_dict()))
    assert entry["file"] == "model.onnx" and entry["runtime"] == "onnxruntime" and entry["threads"] == 1
    assert entry["latency_ms_median"] == result.latency_ms_median and entry["runs"] == FAST["runs"]
    assert entry["model_rss_bytes"] == entry["peak_rss_bytes"] - entry["baseline_rss_bytes"]
    assert entry["predicted_latency_ms"] == 0.02 and entry["latency_ratio"] == pytest.approx(result.latency_ratio)
    assert entry["date"] and entry["machine"]
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_record_false_leaves_the_card_untouched(onnx_file, tmp_path):
    path = copy_into(tmp_path, onnx_file)
    write_card(tmp_path, {"host": predicted()})
    text = (tmp_path / CARD_NAME).read_text()
    benchmark(path, "onnxruntime", target="host", record=False, **FAST)
    assert (tmp_path / CARD_NAME).read_text() == text


# --- mistakes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"path": "missing.onnx"}, "no model file"),
    ({"runtime": "litert"}, "runs .tflite files"),
    ({"runtime": "tensorrt"}, "unknown runtime 'tensorrt'"),
    ({"threads": 0}, "--threads must be 1 or more"),
    ({"runs": 0}, "runs >= 1"),
    ({"target": "no-such-board"}, "unknown target 'no-such-board'; known targets: .*host"),
    ({"card": "{not json"}, "model_card.json is not valid JSON .*fix or remove it"),
    ({"card": '{"measured": 3}'}, "is not a model card"),
])
def test_mistakes_are_one_line_value_errors(onnx_file, tmp_path, change, message):
    path = copy_into(tmp_path, onnx_file)
    if "card" in change:
        (tmp_path / CARD_NAME).write_text(change.pop("card"))
    arguments = {"path": path, "runtime": "onnxruntime", "threads": 1, "target": "host", **FAST, **change}
    if arguments["path"] == "missing.onnx":
        arguments["path"] = tmp_path / "missing.onnx"
    with pytest.raises(ValueError, match=message) as raised:
        benchmark(arguments.pop("path"), arguments.pop("runtime"), **arguments)
    assert "\n" not in str(raised.value)


# --- TFLite -----------------------------------------------------------------------------------------
def test_litert_runs_float_and_int8_files(tflite_files, tmp_path):
    float_path, int8_path = copy_into(tmp_path, *tflite_files)
    for path, dtype in ((float_path, "float32"), (int8_path, "int8")):
        result = benchmark(path, "litert", target="host", **FAST)
        check_latency(result)
        assert result.input_shape == (1, 49, 10, 1) and result.input_dtype == dtype
        assert result.peak_rss_bytes > result.baseline_rss_bytes
        assert result.arena_bytes is None
    assert any("no prediction for host" in note for note in result.notes)


def test_tflm_reports_the_arena_beside_predicted_sram_and_never_compares_latency(tflite_files, tmp_path):
    from edgegrow.export.runtimes import open_tflm

    int8_path = copy_into(tmp_path, tflite_files[1])
    write_card(tmp_path, {"cortex-m4f-120mhz": predicted(latency_ms=40.0, sram_kb=5.0)})
    result = benchmark(int8_path, "tflm", threads=2, target="cortex-m4f-120mhz", **FAST)
    check_latency(result)
    assert result.arena_bytes == open_tflm(int8_path).arena_bytes > 0
    assert result.arena_ratio == pytest.approx(result.arena_bytes / 5120)
    assert result.latency_ratio is None  # the reference build's latency is not an MCU's
    assert result.threads == 1 and any("single-threaded" in note for note in result.notes)
    assert TFLM_NOTE in result.notes
    table = result.table()
    assert "arena" in table and "predicted SRAM on cortex-m4f-120mhz 5,120 B" in table
    assert "not compared" in table and "reference build" in table
    entry = json.loads((tmp_path / CARD_NAME).read_text())["measured"][-1]
    assert entry["arena_bytes"] == result.arena_bytes and entry["runtime"] == "tflm"


def test_a_file_that_changed_since_its_export_is_refused(onnx_file, tmp_path):
    path = copy_into(tmp_path, onnx_file)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    write_card(tmp_path, {"host": predicted()}, files={"onnx": {"path": path.name, "sha256": digest}})
    assert benchmark(path, "onnxruntime", target="host", **FAST).latency_ms_median > 0  # as exported: fine
    card_before = (tmp_path / CARD_NAME).read_text()
    path.write_bytes(path.read_bytes()[:-10])  # cut short after the export
    with pytest.raises(ValueError, match=r"model.onnx does not match the SHA-256 its model_card.json recorded"):
        benchmark(path, "onnxruntime", target="host", **FAST)
    assert (tmp_path / CARD_NAME).read_text() == card_before  # nothing recorded for a refused file


@pytest.mark.parametrize(("profiled_ms", "words"), [(1e-6, "slower"), (10.0, "faster")])
def test_a_machine_that_runs_the_profiles_reference_kernels_at_another_speed_says_so(onnx_file, tmp_path,
                                                                                      profiled_ms, words):
    """A profile keeps how long its reference kernels took when it was made; bench times them again
    (a machine drifts by several per cent in minutes, and the probe does not see it)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cost_models"))
    from profiles import table_profile

    from cost_models.speed_reference import REFERENCE_KERNELS, reference_block

    profile = table_profile()
    profile["speed_reference"] = reference_block([profiled_ms] * len(REFERENCE_KERNELS), rounds=4, where="test")
    profile_path = tmp_path / "test-cpu.json"
    profile_path.write_text(json.dumps(profile))
    model = copy_into(tmp_path, onnx_file)
    result = benchmark(model, "onnxruntime", target=str(profile_path), **FAST)
    assert (result.speed_vs_profile > 100) if words == "slower" else (result.speed_vs_profile < 0.5)
    assert any("reference kernels" in note and words in note for note in result.notes)
    assert "reference kernels ran at" in result.table()
    # another runtime, or a profile without reference times: nothing to compare, nothing said
    del profile["speed_reference"]
    profile_path.write_text(json.dumps(profile))
    plain = benchmark(model, "onnxruntime", target=str(profile_path), **FAST)
    assert plain.speed_vs_profile is None and not any("reference kernels" in note for note in plain.notes)


@pytest.mark.parametrize(("profiled_ms", "words"), [(1e-6, "slower"), (1e3, "faster")])
def test_bench_times_the_profiles_calibration_networks_again_and_says_when_they_drifted(
        onnx_file, tmp_path, monkeypatch, profiled_ms, words):
    """Whole networks drift more than single kernels: on 2026-12-07 a profile's calibration networks ran up to
    12 % faster 2.5 hours later while its reference kernels ran within 0.7 %."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "cost_models"))
    from profiles import table_profile

    profile = table_profile()
    profile["latency"]["calibration"] = {"scale": 1.0, "per_kernel_ms": 0.0, "measured_ms": [profiled_ms] * 2,
                                         "source": "test"}
    profile_path = tmp_path / "test-cpu.json"
    profile_path.write_text(json.dumps(profile))
    model = copy_into(tmp_path, onnx_file)
    result = benchmark(model, "onnxruntime", target=str(profile_path), **FAST)
    assert (result.calibration_speed_vs_profile > 100) if words == "slower" else (
        result.calibration_speed_vs_profile < 0.5)
    assert any("2 calibration networks" in note and words in note for note in result.notes)
    assert "the profile's calibration networks ran at" in result.table()  # no reference kernels in this profile
    assert result.to_dict()["calibration_speed_vs_profile"] == result.calibration_speed_vs_profile
    # another thread count than the profile's: not timed as the profiler timed them, so nothing said
    other = benchmark(model, "onnxruntime", target=str(profile_path), threads=2, **FAST)
    assert other.calibration_speed_vs_profile is None and not any("calibration" in note for note in other.notes)


def test_bench_does_not_time_calibration_networks_other_than_the_profiles_and_says_so(onnx_file, tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "cost_models"))
    from profiles import table_profile

    from cost_models.calibration import chains_digest, random_chains

    profile = table_profile()
    profile["latency"]["calibration"] = {"scale": 1.0, "per_kernel_ms": 0.0, "measured_ms": [1e3] * 2,
                                         "networks_sha256": chains_digest(random_chains(2)), "source": "test"}
    profile_path = tmp_path / "test-cpu.json"
    profile_path.write_text(json.dumps(profile))
    model = copy_into(tmp_path, onnx_file)
    assert benchmark(model, "onnxruntime", target=str(profile_path), **FAST).calibration_speed_vs_profile < 0.5
    profile["latency"]["calibration"]["networks_sha256"] = chains_digest(random_chains(3))  # other networks
    profile_path.write_text(json.dumps(profile))
    result = benchmark(model, "onnxruntime", target=str(profile_path), **FAST)
    assert result.calibration_speed_vs_profile is None
    assert [note for note in result.notes if "calibration networks" in note] == [
        f"target 'test-cpu': its calibration networks are not the ones this edgegrow builds from their seed "
        f"(latency.calibration.networks_sha256 {chains_digest(random_chains(3))}, built here "
        f"{chains_digest(random_chains(2))}), so they were not timed again; profile the target again with this "
        "edgegrow to time them"]


def test_bench_times_a_litert_profiles_calibration_networks_only_from_its_cache(tmp_path, monkeypatch):
    """Converting a litert profile's 40 calibration networks would take over a minute: bench reads them from the
    profile's cache of them or times none."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "cost_models"))
    from profiles import table_profile

    from cost_models import kernel_tflite, load_target
    from edgegrow.export.benchmark import _calibration_networks

    def refuse(*_):
        raise AssertionError("converted a calibration network")

    monkeypatch.setattr(kernel_tflite, "chain_tflite", refuse)
    profile = table_profile()
    profile["runtime"]["name"] = "litert"
    profile["latency"]["calibration"] = {"scale": 1.0, "per_kernel_ms": 0.0, "measured_ms": [0.1, 0.2], "source": "t"}
    path = tmp_path / "test-cpu.json"
    path.write_text(json.dumps(profile))
    folder = tmp_path / "test-cpu.json.tflite"
    folder.mkdir()
    (folder / "chain-0.tflite").write_bytes(b"zero")
    assert _calibration_networks(load_target(str(path)), "litert", 1, []) == []  # one of two: none
    (folder / "chain-1.tflite").write_bytes(b"one")
    assert _calibration_networks(load_target(str(path)), "litert", 1, []) == [(b"zero", 0.1), (b"one", 0.2)]
    assert _calibration_networks(load_target(str(path)), "litert", 2, []) == []  # not the profile's threads
    assert _calibration_networks(load_target(str(path)), "onnxruntime", 1, []) == []  # not its runtime
