"""The command line: help, exit codes, one-line errors without tracebacks."""
import shutil
import subprocess
import sys

import pytest
from fake_speech_commands import write_speech_commands

from edgegrow.cli import main
from edgegrow.demo import run_demo


def run(*args):
    return subprocess.run([sys.executable, "-m", "edgegrow.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_commands_with_examples():
    result = run("--help")
    assert result.returncode == 0
    for command in ("demo", "data", "models", "groups", "targets", "cost", "profile", "examples:"):
        assert command in result.stdout


@pytest.mark.skipif(shutil.which("edgegrow") is None, reason="the package is not installed (pip install -e .)")
def test_console_script_is_installed():
    assert subprocess.run(["edgegrow", "--help"], capture_output=True).returncode == 0


@pytest.mark.parametrize("args,message", [
    (["groups", "vgg"], "edgegrow groups: error: unknown model family 'vgg'"),
    (["data", "kws", "--out", "{tmp}/x", "--per-class", "0"],
     "edgegrow data: error: per_class must be a positive integer"),
    (["demo", "--data", "{tmp}/missing"], "edgegrow demo: error: no dataset folder at"),
    (["demo", "--steps", "0"], "edgegrow demo: error: steps must be a positive integer"),
    (["cost", "ds-cnn", "--target", "pixel99"], "edgegrow cost: error: unknown target 'pixel99'; known targets:"),
    (["cost", "ds-cnn", "--target", "{tmp}/none.json"], "edgegrow cost: error: target profile"),
    (["profile", "--target", "x", "--threads", "0"], "edgegrow profile: error: --threads must be at least 1"),
    (["profile", "--target", "x", "--runtime", "litert", "--out", "{tmp}/x.json"],
     "edgegrow profile: error: measuring TFLite kernels here needs"),
    (["profile", "--target", "x", "--from-measurements", "{tmp}/none.jsonl", "--out", "{tmp}/x.json"],
     "edgegrow profile: failed: [Errno 2]"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    result = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.returncode == (1 if "failed:" in message else 2)
    assert result.stderr.strip().startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_existing_non_dataset_folder_is_not_touched(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["data", "kws", "--out", str(tmp_path / "mine"), "--quiet"]) == 2
    assert "already exists and is not a synthetic set" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_demo_trains_and_grows_on_a_given_dataset(tmp_path):
    root = write_speech_commands(tmp_path / "sc", clips_per_word=5)
    result = run_demo(data=root, cache_dir=tmp_path / "cache", steps=1, seed_epochs=1, epochs_per_step=1,
                      final_epochs=1, out=tmp_path / "run", progress=False, log=lambda line: None)
    grown = result.grown.history[-1]
    assert grown["predicted"]["macs"] > result.seed["predicted"]["macs"]
    assert grown["predicted"]["latency_ms"] <= result.budget.limits["latency_ms"]
    assert (tmp_path / "run" / "checkpoint.pt").is_file() and 0 <= result.grown.test_accuracy <= 1


def test_a_folder_that_cannot_be_written_is_one_line_exit_1(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    result = run("data", "kws", "--out", str(blocker / "kws"), "--quiet")
    if shutil.which("espeak-ng") is None:
        assert result.returncode == 2 and "espeak-ng is not installed" in result.stderr
    else:
        assert result.returncode == 1 and result.stderr.startswith("edgegrow data: failed:")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cost_prints_the_per_kernel_table_and_totals():
    result = run("cost", "ds-cnn", "--target", "host")
    assert result.returncode == 0, result.stderr
    assert "features.1.0.0" in result.stdout and "total on host: 2,656,768 MACs" in result.stdout


def test_targets_lists_the_shipped_profiles():
    result = run("targets")
    assert result.returncode == 0 and "host" in result.stdout and "measured" in result.stdout


def test_profile_write_suite_makes_a_folder_for_the_device_runner(tmp_path):
    result = run("profile", "--target", "phone", "--quick", "--write-suite", str(tmp_path / "suite"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "suite" / "suite.json").is_file() and (tmp_path / "suite" / "overhead.onnx").is_file()
    assert len(list((tmp_path / "suite").glob("*.onnx"))) > 100


@pytest.mark.parametrize("args", [["targets"], ["models"], ["groups", "ds-cnn", "--seed"],
                                  ["cost", "ds-cnn", "--seed", "--target", "cortex-m4f-120mhz"]])
def test_json_mode_prints_one_document_on_stdout(args, capsys):
    import json

    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)  # nothing but the JSON document on stdout
    assert document
    if args[0] == "cost":
        from cost_models import estimate
        from edgegrow.models import build_seed, example_input

        model = build_seed("ds-cnn").eval()
        expected = estimate(model, example_input(model), "cortex-m4f-120mhz")
        assert document["latency_ms"] == pytest.approx(expected.latency_ms)
        assert "kernel" in captured.err  # the human-readable table went to stderr
    if args[0] == "targets":
        assert {"host", "cortex-m4f-120mhz"} <= {row["name"] for row in document}


def test_json_mode_errors_stay_one_line_on_stderr(capsys):
    assert main(["groups", "vgg", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
