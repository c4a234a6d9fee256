"""The command line: help, exit codes, one-line errors without tracebacks."""
import json
import shutil
import subprocess
import sys

import pytest

from edgegrow.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "edgegrow.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_commands_with_examples():
    result = run("--help")
    assert result.returncode == 0
    for command in ("workflow", "data", "models", "groups", "targets", "cost", "profile", "examples:"):
        assert command in result.stdout


@pytest.mark.skipif(shutil.which("edgegrow") is None, reason="the package is not installed (pip install -e .)")
def test_console_script_is_installed():
    assert subprocess.run(["edgegrow", "--help"], capture_output=True).returncode == 0


@pytest.mark.parametrize("args,message", [
    (["groups", "vgg"], "edgegrow groups: error: unknown model family 'vgg'"),
    (["data", "kws", "--out", "{tmp}/x", "--per-class", "0"],
     "edgegrow data: error: per_class must be a positive integer"),
    (["workflow", "--data", "{tmp}/missing", "--out", "{tmp}/w"], "edgegrow workflow: error: no dataset folder at"),
    (["workflow", "--mcu-target", "host", "--out", "{tmp}/w"],
     "edgegrow workflow: error: --mcu-target 'host' is a cpu profile, not a microcontroller"),
    (["workflow", "--host-budget", "latency_ms=-1", "--out", "{tmp}/w"], "edgegrow workflow: error: budget"),
    (["workflow", "--format", "png", "--out", "{tmp}/w"], "edgegrow workflow: error: unknown export format 'png'"),
    (["grow", "--task", "kws", "--family", "mobilenet-v2", "--target", "host", "--budget", "latency_ms=1",
      "--out", "{tmp}/r"], "edgegrow grow: error: family 'mobilenet-v2' does not grow on the kws task; choose one of"),
    (["cost", "ds-cnn", "--target", "pixel99"], "edgegrow cost: error: unknown target 'pixel99'; known targets:"),
    (["cost", "ds-cnn", "--target", "{tmp}/none.json"], "edgegrow cost: error: target profile"),
    (["profile", "--target", "x", "--threads", "0"], "edgegrow profile: error: --threads must be at least 1"),
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


def test_quiet_prints_nothing_and_with_json_only_the_document():
    plain = run("targets")
    assert plain.returncode == 0 and "cortex-m4f-120mhz" in plain.stdout
    quiet = run("targets", "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    both = run("targets", "--quiet", "--json")
    assert both.returncode == 0 and both.stderr == ""
    assert "cortex-m4f-120mhz" in {row["name"] for row in json.loads(both.stdout)}
    failing = run("cost", "ds-cnn", "--target", "pixel99", "--quiet")  # errors still say what went wrong
    assert failing.returncode == 2 and failing.stderr.startswith("edgegrow cost: error: unknown target")


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


def test_resume_alone_takes_every_setting_from_the_run_record(tmp_path):
    """``edgegrow grow --resume RUN_DIR``: task, data, family, target, budget, seed and the training
    settings come from RUN_DIR/run.json; flags that agree with it are allowed."""
    import json

    from edgegrow.cli import _parser, _resume_settings
    from edgegrow.grow import GrowConfig

    recorded = GrowConfig(method="tiny", epochs=7, learning_rate=0.02, seed=3, shrink=0.5)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({
        "format": "edgegrow-run/2", "seed": 3, "config": recorded.to_dict(), "family": "ds-cnn",
        "seed_options": {"num_classes": 12, "width_multiplier": 0.25}, "target": "cortex-m4f-120mhz",
        "target_profile": "/somewhere/cortex-m4f-120mhz.json", "budget": {"latency_ms": 40.0, "sram_kb": 64.0},
        "task": "kws", "task_source": {"task": "kws", "data": str(tmp_path / "speech"), "family": "ds-cnn"}}))
    args = _parser().parse_args(["grow", "--resume", str(run), "--epochs", "7", "--target", "cortex-m4f-120mhz"])
    config, seed_options = _resume_settings(args)
    assert config == recorded and seed_options["width_multiplier"] == 0.25
    assert (args.task, args.data, args.family, args.out) == ("kws", str(tmp_path / "speech"), "ds-cnn", str(run))
    assert args.target == "cortex-m4f-120mhz"  # the recorded profile file is gone: the target's name
    assert sorted(args.budget) == ["latency_ms=40.0", "sram_kb=64.0"]


@pytest.mark.parametrize("recorded, flags", [
    ({"method": "random-split"}, ["--method", "random"]),  # an alias of the recorded method
    ({"quick": True, "epochs": 3}, ["--quick", "--epochs", "3"]),  # --quick and a flag, as the run was started
])
def test_resume_accepts_flags_that_agree_with_the_run(tmp_path, recorded, flags):
    import json

    from edgegrow.cli import _parser, _resume_settings
    from edgegrow.grow import GrowConfig

    settings = {k: v for k, v in recorded.items() if k != "quick"}
    config = GrowConfig.quick(**settings) if recorded.get("quick") else GrowConfig(**settings)
    (tmp_path / "run.json").write_text(json.dumps({
        "config": config.to_dict(), "family": "ds-cnn", "seed_options": {}, "target": "host", "target_profile": None,
        "budget": {"latency_ms": 1.0}, "task": "kws", "task_source": {"task": "kws", "data": None, "family": "ds-cnn"}}))
    assert _resume_settings(_parser().parse_args(["grow", "--resume", str(tmp_path), *flags]))[0] == config


def test_resume_moves_a_run_to_another_device_without_calling_it_a_contradiction(tmp_path):
    """--device says where, not what: a run started on a GPU goes on on the CPU (and the other way round);
    the rest of its settings stay the recorded ones."""
    import json

    from edgegrow.cli import _parser, _resume_settings
    from edgegrow.grow import GrowConfig

    recorded = GrowConfig(epochs=7, device="cuda:1")
    (tmp_path / "run.json").write_text(json.dumps({
        "config": recorded.to_dict(), "family": "ds-cnn", "seed_options": {}, "target": "host", "target_profile": None,
        "budget": {"latency_ms": 1.0}, "task": "kws", "task_source": {"task": "kws", "data": None, "family": "ds-cnn"}}))
    config, _ = _resume_settings(_parser().parse_args(["grow", "--resume", str(tmp_path), "--device", "cpu"]))
    assert config.device == "cpu" and config.epochs == 7
    assert _resume_settings(_parser().parse_args(["grow", "--resume", str(tmp_path)]))[0].device == "cuda:1"
