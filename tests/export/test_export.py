"""Export: every file loads in its real runtime and matches PyTorch, int8 files are fully integer and
run in TFLite Micro, the C array holds the model's exact bytes, the card describes it, and bad input
or a failure never leaves a half-written folder."""
import hashlib
import json
import shutil
import subprocess

import numpy as np
import onnx
import pytest
import torch
from toy import grown_kws_run
from torch import nn

pytest.importorskip("litert_torch")

from cost_models import estimate  # noqa: E402
from edgegrow.checkpoint import load_checkpoint  # noqa: E402
from edgegrow.cli import main  # noqa: E402
from edgegrow.export import (  # noqa: E402  # noqa: E402
    ExportError,
    export_checkpoint,
    export_model,
    exporter,
    parse_formats,
    runtimes,
    tflite_format,
)

# a run long enough on the 12-clips-a-word folder that int8 files can be checked against a trained network
EXPORTED_RUN = dict(epochs=18, growth_every=2.0, growth_end=0.3, score_batches=1, fast_steps=5, batch_size=32)
FILES = {"model.onnx", "model_int8.onnx", "model.tflite", "model_int8.tflite", "model_int8.cc", "model_int8.h",
         "labels.txt", "model_card.json", "model_card.md", "pipeline.py", "checkpoint.pt"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real grow run on a small Speech Commands folder: the run folder and its task."""
    root = tmp_path_factory.mktemp("kws")
    folder, task = grown_kws_run(root, 12, EXPORTED_RUN)
    return folder, task, root / "cache"


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    folder, _, cache = run
    out = tmp_path_factory.mktemp("exported") / "kws"
    result = export_checkpoint(folder, out, cache_dir=cache, progress=False, log=lambda line: None)
    return result


def _tree(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def test_export_writes_every_file_and_nothing_else(exported):
    assert {path.name for path in exported.out_dir.iterdir()} == FILES
    assert not [path for path in exported.out_dir.parent.iterdir() if path.name.startswith(".")]


def test_onnx_float_is_one_checker_clean_file_matching_pytorch(exported, run):
    path = exported.out_dir / "model.onnx"
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert not any(init.data_location == onnx.TensorProto.EXTERNAL for init in proto.graph.initializer)
    ops = {node.op_type for node in proto.graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops  # folded and simplified
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    assert json.loads(metadata["classes"]) == run[1].data.class_names
    model, _ = load_checkpoint(exported.out_dir / "checkpoint.pt")
    inputs = run[1].data.test.inputs[:32]
    with torch.no_grad():
        expected = model(inputs).numpy()
    loaded = runtimes.open_onnx(path)
    assert np.abs(loaded.run(inputs.numpy()) - expected).max() <= 1e-4


def test_tflite_float_takes_nhwc_and_matches_pytorch(exported, run):
    model, _ = load_checkpoint(exported.out_dir / "checkpoint.pt")
    inputs = run[1].data.test.inputs[:16]
    with torch.no_grad():
        expected = model(inputs).numpy()
    loaded = runtimes.open_litert(exported.out_dir / "model.tflite")
    assert loaded.input.shape == (1, 49, 10, 1)
    assert np.abs(loaded.run(inputs.permute(0, 2, 3, 1).numpy()) - expected).max() <= 1e-4


def test_tflite_int8_is_fully_integer_and_tflm_agrees_with_litert(exported, run):
    content = (exported.out_dir / "model_int8.tflite").read_bytes()
    litert = runtimes.open_litert(content)
    assert litert.input.dtype == np.int8 and litert.output.dtype == np.int8
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(runtimes.litert_ops(content))
    card = exported.card
    micro = runtimes.open_tflm(content, arena_bytes=card["tflm"]["arena_bytes"])  # the card's arena suffices
    batch = litert.input.quantize(run[1].data.test.inputs[:16].permute(0, 2, 3, 1).numpy())
    assert np.abs(litert.run(batch).astype(int) - micro.run(batch).astype(int)).max() <= 1
    reference = runtimes.open_litert(content, kernels="reference")  # TFLM's kernels are ports of these
    assert np.abs(reference.run(batch).astype(int) - micro.run(batch).astype(int)).max() <= 1
    assert card["files"]["tflite-int8"]["max_step_difference_tflm"] <= 1
    with pytest.raises(ValueError, match="unknown litert kernel set 'fast'; choose from builtin, reference"):
        runtimes.open_litert(content, kernels="fast")
    assert card["input"]["int8"] == {"scale": litert.input.scale, "zero_point": litert.input.zero_point}
    with pytest.raises(ValueError, match="arena"):
        runtimes.open_tflm(content, arena_bytes=card["tflm"]["arena_bytes"] - 256)


def test_int8_accuracy_is_reported_beside_float(exported):
    accuracy = exported.card["accuracy"]
    assert accuracy["examples"] > 0 and accuracy["pytorch"] > 0.25  # a trained model (12 classes), not a constant
    for fmt in ("pytorch", "onnx", "onnx-int8", "tflite", "tflite-int8", "c"):
        assert 0.0 <= accuracy[fmt] <= 1.0
    assert accuracy["onnx"] == accuracy["pytorch"] == accuracy["tflite"]
    assert exported.card["files"]["tflite-int8"]["accuracy_tflm"] == accuracy["c"]


def test_int8_files_give_the_float_models_answers(exported, run):
    """The int8 files answer as the float model does on most test inputs, read here in the runtimes
    (not from the card): a broken quantisation (wrong scales, a lost layer) changes the top-1."""
    inputs = run[1].data.test.inputs
    floating = runtimes.open_litert((exported.out_dir / "model.tflite").read_bytes())
    expected = floating.run(inputs.permute(0, 2, 3, 1).numpy()).argmax(axis=1)
    litert = runtimes.open_litert((exported.out_dir / "model_int8.tflite").read_bytes())
    tflite_int8 = litert.run(litert.input.quantize(inputs.permute(0, 2, 3, 1).numpy())).argmax(axis=1)
    onnx_int8 = runtimes.open_onnx((exported.out_dir / "model_int8.onnx").read_bytes()).run(inputs.numpy()).argmax(axis=1)
    assert len(expected) >= 20 and len(set(expected.tolist())) > 2  # answers that differ, not one class
    assert (tflite_int8 == expected).mean() >= 0.9, (tflite_int8 == expected).mean()
    assert (onnx_int8 == expected).mean() >= 0.9, (onnx_int8 == expected).mean()


@pytest.mark.skipif(shutil.which("g++") is None,
                    reason="no C++ compiler here: install one with `sh scripts/install-cxx.sh`")
def test_c_array_compiles_and_holds_the_int8_model_aligned(exported, tmp_path):
    main_source = tmp_path / "main.cc"
    main_source.write_text(
        '#include <cstdio>\n#include <cstdint>\n#include "model_int8.h"\n'
        "int main() { std::fprintf(stderr, \"%d %d\", int(reinterpret_cast<std::uintptr_t>(g_model) % 16), "
        "G_MODEL_ARENA_BYTES); std::fwrite(g_model, 1, g_model_len, stdout); return 0; }\n")
    binary = tmp_path / "check"
    subprocess.run(["g++", "-std=c++17", f"-I{exported.out_dir}", str(main_source),
                    str(exported.out_dir / "model_int8.cc"), "-o", str(binary)], check=True)
    done = subprocess.run([str(binary)], capture_output=True, check=True)
    assert done.stdout == (exported.out_dir / "model_int8.tflite").read_bytes()
    misalignment, arena = done.stderr.decode().split()
    assert misalignment == "0" and int(arena) == exported.card["tflm"]["arena_bytes"]


def test_card_has_input_spec_costs_and_files(exported, run):
    card = json.loads((exported.out_dir / "model_card.json").read_text())
    assert card["format"] == "edgegrow-model-card/1" and card["task"] == "kws" and card["family"] == "ds-cnn"
    assert card["classes"] == (exported.out_dir / "labels.txt").read_text().split()
    pre = card["input"]["preprocessing"]
    assert pre == run[1].data.preprocessing and pre["kind"] == "mfcc" and "normalization" in pre
    assert card["input"]["shape_nhwc"] == [1, 49, 10, 1]
    assert {"host", "cortex-m4f-120mhz"} <= set(card["targets"])
    model, _ = load_checkpoint(exported.out_dir / "checkpoint.pt")
    report = estimate(model, torch.zeros(1, 1, 49, 10), "cortex-m4f-120mhz")
    predicted = card["targets"]["cortex-m4f-120mhz"]["predicted"]
    assert predicted["latency_ms"] == pytest.approx(report.latency_ms)
    assert predicted["sram_kb"] == pytest.approx(report.sram_bytes / 1024)
    assert card["targets"]["cortex-m4f-120mhz"]["measured"]["arena_kb"] == card["tflm"]["arena_bytes"] / 1024
    # the predicted SRAM is the arena TFLite Micro asked for (bench/tflm_arena.py: the zoo within 1 %)
    assert report.sram_bytes == pytest.approx(card["tflm"]["arena_bytes"], rel=0.02)
    # and the predicted flash is the int8 file (bench/tflm_arena.py: the zoo within 0.5 %)
    int8_bytes = (exported.out_dir / "model_int8.tflite").stat().st_size
    assert report.flash_bytes == pytest.approx(int8_bytes, rel=0.02)
    host = card["targets"]["host"]["measured"]
    assert host["latency_ms_median"] > 0 and host["measured_over_predicted"] == pytest.approx(
        host["latency_ms_median"] / card["targets"]["host"]["predicted"]["latency_ms"])
    for fmt, entry in card["files"].items():
        content = (exported.out_dir / entry["path"]).read_bytes()
        assert entry["bytes"] == len(content)
        if "sha256" in entry:
            assert entry["sha256"] == hashlib.sha256(content).hexdigest()
    markdown = (exported.out_dir / "model_card.md").read_text()
    assert "window 480" in markdown and "cortex-m4f-120mhz" in markdown and "arena" in markdown


def test_tensor_names_are_short(exported):
    content = (exported.out_dir / "model_int8.tflite").read_bytes()
    names = [layer for _, layer in tflite_format.operator_layers(content)]
    assert names and max(len(name) for name in names) < 64


def test_existing_folder_is_refused_without_force_and_left_alone(exported, run, capsys):
    before = _tree(exported.out_dir)
    code = main(["export", str(run[0]), "--out", str(exported.out_dir), "--format", "onnx", "--cache-dir", str(run[2])])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "--force" in error and len(error.splitlines()) == 1
    assert _tree(exported.out_dir) == before


def test_a_crash_mid_export_leaves_the_previous_export_intact(exported, run, monkeypatch):
    before = _tree(exported.out_dir)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tflite_format, "quantize_tflite_int8", crash)
    with pytest.raises(KeyboardInterrupt):
        export_checkpoint(run[0], exported.out_dir, force=True, cache_dir=run[2], progress=False,
                          measure_host=False, log=lambda line: None)
    assert _tree(exported.out_dir) == before
    assert not [path for path in exported.out_dir.parent.iterdir() if path.name.startswith(".")]


def test_a_file_failing_verification_is_not_written(run, tmp_path, monkeypatch, capsys):
    from edgegrow.export import onnx_format

    real = onnx_format.export_onnx_float

    def wrong_weights(model, example, metadata=None):  # a file that does not compute what the model does
        weight = next(model.parameters())
        with torch.no_grad():
            weight.add_(0.5)
            try:
                return real(model, example, metadata)
            finally:
                weight.sub_(0.5)

    monkeypatch.setattr(onnx_format, "export_onnx_float", wrong_weights)
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_checkpoint(run[0], tmp_path / "bad", formats="onnx", cache_dir=run[2], progress=False,
                          log=lambda line: None)
    assert not (tmp_path / "bad").exists() and not list(tmp_path.iterdir())
    code = main(["export", str(run[0]), "--out", str(tmp_path / "bad"), "--format", "onnx",
                 "--cache-dir", str(run[2]), "--quiet"])
    assert code == 1 and "failed: model.onnx differs" in capsys.readouterr().err


def test_the_printed_outcome_gives_each_formats_accuracy_the_arena_and_the_files(exported):
    text, card = exported.describe(), exported.card
    assert f"accuracy on {card['accuracy']['examples']} test examples" in text
    for fmt in ("pytorch", "onnx", "tflite-int8"):
        assert f"{fmt} {card['accuracy'][fmt]:.1%}" in text
    assert f"TFLite Micro arena: {card['tflm']['arena_bytes']:,} bytes" in text
    assert all(name in text.splitlines()[-1] for name in FILES)


def test_int8_files_record_their_agreement_with_the_float_model(exported):
    for fmt in ("onnx-int8", "tflite-int8", "c"):
        entry = exported.card["files"][fmt]
        assert entry["agreement_examples"] == exported.card["accuracy"]["examples"]
        assert exporter.MIN_INT8_AGREEMENT <= entry["top1_agreement"] <= 1


def test_an_int8_file_that_answers_otherwise_is_refused_and_not_written(run, tmp_path, monkeypatch, capsys):
    """Ranges calibrated on inputs 1,000 times too large squash every activation onto a few int8 steps:
    the file runs, TFLite Micro agrees with ai-edge-litert, and its answers are not the model's."""
    real = tflite_format.quantize_tflite_int8
    monkeypatch.setattr(tflite_format, "quantize_tflite_int8",
                        lambda content, calibration, ranges: real(content, calibration * 1000, ranges))
    with pytest.raises(ExportError, match=r"model_int8.tflite gives the float model's top-1 class on only .*"
                                          r"--format onnx,tflite"):
        export_checkpoint(run[0], tmp_path / "bad", formats="tflite-int8", cache_dir=run[2], progress=False,
                          log=lambda line: None)
    assert not list(tmp_path.iterdir())
    code = main(["export", str(run[0]), "--out", str(tmp_path / "bad"), "--format", "tflite-int8",
                 "--cache-dir", str(run[2]), "--quiet"])
    assert code == 1 and "gives the float model's top-1 class on only" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_an_int8_file_that_loses_more_accuracy_than_allowed_is_refused():
    card = {"accuracy": {"pytorch": 0.90}, "files": {"onnx-int8": {
        "path": "model_int8.onnx", "top1_agreement": 0.95, "agreement_examples": 200, "accuracy": 0.84}}}
    exporter._check_int8(card, min_agreement=0.8, max_drop=0.07)  # 6 points: allowed
    with pytest.raises(ExportError, match="model_int8.onnx loses 6.0% test accuracy against the float model "
                                          r"\(at most 5% allowed\)"):
        exporter._check_int8(card, min_agreement=0.8, max_drop=0.05)


def test_force_replaces_the_folder_and_a_killed_exports_staging_is_cleared(run, tmp_path):
    out = tmp_path / "kws"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    killed = tmp_path / ".kws.partial-999999999"  # no such process
    killed.mkdir()
    (killed / "model.onnx").write_bytes(b"half")
    result = export_checkpoint(run[0], out, formats="onnx", force=True, cache_dir=run[2], progress=False,
                               measure_host=False, log=lambda line: None)
    assert {path.name for path in out.iterdir()} == {"model.onnx", "labels.txt", "model_card.json", "model_card.md",
                                                     "checkpoint.pt"}
    assert result.card["accuracy"]["onnx"] == result.card["accuracy"]["pytorch"]
    assert [path.name for path in tmp_path.iterdir()] == ["kws"]


class ErfInv(nn.Module):
    """An op neither ONNX nor TFLite can express."""

    def forward(self, x):
        return torch.special.erfinv(torch.tanh(x) * 0.5)


def _task(run):
    return run[1].data


def test_a_previous_export_moved_aside_by_a_killed_export_is_put_back(run, tmp_path):
    aside = tmp_path / ".kws.old-999999999"  # killed between moving the old folder aside and the new one in
    aside.mkdir()
    (aside / "model.onnx").write_bytes(b"previous")
    code = main(["export", str(run[0]), "--out", str(tmp_path / "kws"), "--format", "onnx",
                 "--cache-dir", str(run[2]), "--quiet"])
    assert code == 2  # the restored folder exists, and --force was not given
    assert (tmp_path / "kws" / "model.onnx").read_bytes() == b"previous"
    assert [path.name for path in tmp_path.iterdir()] == ["kws"]


def test_an_op_a_format_cannot_express_names_the_layer_and_format(run, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), ErfInv(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 12))
    for fmt, name in (("onnx", "ONNX"), ("tflite", "TFLite")):
        with pytest.raises(ValueError) as caught:
            export_model(model, _task(run), tmp_path / fmt, formats=fmt, measure_host=False, log=lambda line: None)
        message = str(caught.value)
        assert "layer '2' (ErfInv)" in message and f"cannot be expressed in {name}" in message, message
        assert "\n" not in message
        assert not (tmp_path / fmt).exists()


def test_untrained_batchnorm_is_refused_for_int8_with_the_fix(run, tmp_path):
    model = run[1].seed().eval()  # fresh seed: BatchNorm statistics never updated
    with pytest.raises(ValueError, match="never trained.*train the model"):
        export_model(model, _task(run), tmp_path / "x", formats="tflite-int8", measure_host=False,
                     log=lambda line: None)
    export_model(model, _task(run), tmp_path / "y", formats="onnx", measure_host=False, log=lambda line: None)


@pytest.mark.parametrize("formats, expected", [
    ("onnx", ["onnx"]), ("c,onnx", ["onnx", "c"]), (["tflite-int8", "tflite"], ["tflite", "tflite-int8"]),
    ("all", list(exporter.FORMATS)), ("onnx, tflite", ["onnx", "tflite"]),
])
def test_parse_formats(formats, expected):
    assert parse_formats(formats) == expected


@pytest.mark.parametrize("argv, needle", [
    (["export", "RUN", "--format", "onnx,pdf"], "unknown export format 'pdf'"),
    (["export", "RUN", "--format", ","], "no export format"),
    (["export", "MISSING"], "no run folder or checkpoint"),
    (["export", "RUN", "--calibration", "0"], "--calibration must be at least 1"),
])
def test_cli_bad_input_is_one_line_with_exit_code_2(argv, needle, run, capsys):
    argv = [str(run[0]) if part == "RUN" else str(run[0].parent / "missing") if part == "MISSING" else part
            for part in argv]
    assert main(argv + ["--cache-dir", str(run[2]), "--out", str(run[0].parent / "never")]) == 2
    error = capsys.readouterr().err.strip()
    assert needle in error and len(error.splitlines()) == 1, error
    assert not (run[0].parent / "never").exists()


def test_cli_bench_prints_latency_and_prediction_and_records_them_in_the_card(exported, capsys):
    assert main(["bench", str(exported.out_dir / "model.onnx"), "--runtime", "onnxruntime", "--runs", "5",
                 "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "median" in out and "measured/predicted" in out
    card = json.loads((exported.out_dir / "model_card.json").read_text())
    assert card["measured"][-1]["file"] == "model.onnx" and card["classes"] == exported.card["classes"]
    assert "| model.onnx | onnxruntime | 1 |" in (exported.out_dir / "model_card.md").read_text()


def test_the_exported_pipeline_gives_pytorchs_label_without_torch(exported, run):
    """pipeline.py from the export folder, run as a device would (no torch importable), on real clips."""
    import sys

    from edgegrow.data.audio import read_wav
    from edgegrow.data.mfcc import MfccConfig, mfcc

    model, _ = load_checkpoint(exported.out_dir / "checkpoint.pt")
    pre = exported.card["input"]["preprocessing"]
    config = MfccConfig(**{key: pre[key] for key in MfccConfig.__dataclass_fields__})
    mean, std = torch.tensor(pre["normalization"]["mean"]), torch.tensor(pre["normalization"]["std"])
    chosen: dict[str, object] = {}  # PyTorch's label -> a clip it gives clearly (margin over the runner-up)
    for clip in sorted((run[0].parent / "data").glob("*/spk*.wav")):
        samples, _ = read_wav(clip, 16000)
        with torch.no_grad():
            logits = model((mfcc(torch.from_numpy(samples)[None].float(), config) - mean) / std)[0]
        top = torch.topk(logits, 2).values
        label = exported.card["classes"][int(logits.argmax())]
        if float(top[0] - top[1]) > 1e-3 and label not in chosen:
            chosen[label] = clip
        if len(chosen) == 6:
            break
    assert len(chosen) >= 2, chosen  # a model that always says the same word would prove nothing
    script = ("import runpy, sys; sys.modules['torch'] = None; sys.modules['edgegrow'] = None; "
              "path, clip, model = sys.argv[1:4]; sys.argv = [path, clip, '--model', model]; "
              "runpy.run_path(path, run_name='__main__')")
    for label, clip in chosen.items():
        done = subprocess.run([sys.executable, "-c", script, str(exported.out_dir / "pipeline.py"), str(clip),
                               str(exported.out_dir / "model.tflite")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0].strip() == label


def test_an_op_litert_torch_cannot_convert_is_named_with_how_to_write_it():
    # litert-torch has no lowering for aten.adaptive_max_pool2d: 10 of 48 held-out pooled networks did not convert
    # (2026-12-07); x.amax((2, 3), keepdim=True) computes the same global max pool and converts (REDUCE_MAX)
    from edgegrow.export.tflite_format import export_tflite_float

    example = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"TFLite conversion failed: .*adaptive_max_pool2d.*x\.amax\(\(2, 3\)"):
        export_tflite_float(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveMaxPool2d(1)).eval(), example)

    class Amax(nn.Module):
        def forward(self, x):
            return x.amax((2, 3), keepdim=True)

    assert export_tflite_float(nn.Sequential(nn.Conv2d(3, 4, 3), Amax()).eval(), example)
