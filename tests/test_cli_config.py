"""Config files: ``edgegrow COMMAND --config FILE.toml`` means the same as the flags it lists."""
import pytest

from edgegrow.cli import _parser, main
from edgegrow.cli_config import expand_config


@pytest.fixture
def commands():
    return _parser().commands


def _write(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


def test_file_settings_become_flags_and_the_command_line_wins(tmp_path, commands):
    path = _write(tmp_path, 'task = "kws"\ntarget = "host"\nbudget = { latency_ms = 0.05, sram_kb = 64 }\n'
                            'quick = true\nquiet = false\ncache_dir = "c"\nseed = 3\nout = "r"\n')
    args = _parser().parse_args(expand_config(["grow", "--config", path, "--target", "cortex-m4f-120mhz"], commands))
    assert (args.task, args.target, args.quick, args.quiet, args.cache_dir, args.seed, args.out) == \
        ("kws", "cortex-m4f-120mhz", True, False, "c", 3, "r")
    assert args.budget == ["latency_ms=0.05", "sram_kb=64"]


def test_a_repeatable_flag_takes_a_list_and_the_command_lines_values_replace_it(tmp_path, commands):
    path = _write(tmp_path, 'task = "kws"\ntarget = "host"\nout = "r"\nbudget = ["latency_ms=1", "flash_kb=9"]\n')
    assert _parser().parse_args(expand_config(["grow", f"--config={path}"], commands)).budget == \
        ["latency_ms=1", "flash_kb=9"]
    args = _parser().parse_args(expand_config(["grow", "--config", path, "--budget", "macs=5"], commands))
    assert args.budget == ["macs=5"]


def test_positional_arguments_and_nested_commands(tmp_path, commands):
    path = _write(tmp_path, 'format = "onnx,tflite"\nforce = true\n')
    args = _parser().parse_args(expand_config(["export", "runs/x", "--config", path], commands))
    assert (args.source, args.format, args.force) == ("runs/x", "onnx,tflite", True)
    path = _write(tmp_path, 'out = "data/kws"\nper-class = 40\n')
    args = _parser().parse_args(expand_config(["data", "kws", "--config", path], commands))
    assert (args.kind, args.out, args.per_class) == ("kws", "data/kws", 40)


def test_a_comma_separated_flag_takes_a_list(tmp_path, commands):
    path = _write(tmp_path, 'classes = ["bed", "cat"]\nreplay-whole = ["_unknown_"]\nout = "r"\nreplay = "all"\n')
    args = _parser().parse_args(expand_config(["extend", "runs/x", "--config", path], commands))
    assert (args.classes, args.replay_whole, args.replay) == ("bed,cat", ("_unknown_",), None)
    path = _write(tmp_path, 'targets = ["host", "cortex-m7-480mhz"]\nladder = [0.5, 1]\nout = "c"\n')
    args = _parser().parse_args(expand_config(["compare", "--config", path], commands))
    assert (args.targets, args.ladder) == ("host,cortex-m7-480mhz", (0.5, 1.0))


def test_no_config_leaves_argv_alone(commands):
    assert expand_config(["cost", "ds-cnn", "--target", "host"], commands) == ["cost", "ds-cnn", "--target", "host"]


@pytest.mark.parametrize("text, needle", [
    ('tsk = "kws"\n', "unknown key 'tsk' for 'edgegrow grow'; keys are the command's flags: batch-size, budget,"),
    ('quick = "yes"\n', "'quick' is a switch; write quick = true or false"),
    ('seed = [1, 2]\n', "'seed' takes one value, not a list"),
    ('task = "kws\n', "is not valid TOML"),
])
def test_bad_files_are_one_line_errors_with_exit_code_2(text, needle, tmp_path, capsys):
    assert main(["grow", "--config", _write(tmp_path, text)]) == 2
    error = capsys.readouterr().err.strip()
    assert needle in error and len(error.splitlines()) == 1, error


def test_missing_file_and_misplaced_flag(tmp_path, capsys):
    assert main(["grow", "--config", str(tmp_path / "none.toml")]) == 2
    assert "no config file at" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "none.toml")]) == 2
    assert "--config goes after a command" in capsys.readouterr().err


def test_a_config_runs_a_command(tmp_path, capsys):
    assert main(["cost", "ds-cnn", "--config", _write(tmp_path, 'target = "cortex-m4f-120mhz"\nseed = true\n')]) == 0
    assert "cortex-m4f-120mhz" in capsys.readouterr().out


def test_training_settings_in_a_file_reach_the_grow_config(tmp_path, commands):
    from edgegrow.cli import _training_settings
    from edgegrow.grow import GrowConfig

    path = _write(tmp_path, 'task = "kws"\ntarget = "host"\nout = "r"\nbudget = "latency_ms=1"\nepochs = 12\n'
                            'lr = 0.005\ngrowth-end = 0.3\ngrowth-every = 0.5\nseed-width = 0.25\nretrain = true\n'
                            'optimizer = "sgd"\nwarmup = 2\n')
    args = _parser().parse_args(expand_config(["grow", "--config", path, "--epochs", "20"], commands))
    config = GrowConfig(**_training_settings(args))
    assert (config.epochs, config.learning_rate, config.growth_end, config.growth_every, config.retrain,
            config.optimizer, config.warmup_epochs) == (20, 0.005, 0.3, 0.5, True, "sgd", 2.0)
    assert args.seed_width == 0.25 and config.restart is None  # not given: the family's
    for line, expected in (("restart = false", False), ("restart = true", True), ("no-restart = true", False)):
        path = _write(tmp_path, f'task = "kws"\ntarget = "host"\nout = "r"\nbudget = "latency_ms=1"\n{line}\n')
        args = _parser().parse_args(expand_config(["grow", "--config", path], commands))
        assert GrowConfig(**_training_settings(args)).restart is expected, line
    assert _parser().parse_args(["grow", "--task", "kws", "--no-restart"]).restart is False
    path = _write(tmp_path, 'task = "kws"\ntarget = "host"\nout = "r"\nbudget = "latency_ms=1"\nrestart-keep = 0.25\n')
    args = _parser().parse_args(expand_config(["grow", "--config", path], commands))
    assert GrowConfig(**_training_settings(args)).restart_keep == 0.25
    assert GrowConfig(**_training_settings(_parser().parse_args(["grow", "--task", "kws"]))).restart_keep == 0.5


def test_without_tomllib_the_cli_runs_and_a_config_file_names_what_to_install(tmp_path):
    """Python 3.10 has no tomllib: the package imports and every command runs; only --config needs a
    TOML reader, and says which (here tomllib and tomli are both made unimportable)."""
    import subprocess
    import sys

    blocked = "import sys; sys.modules['tomllib'] = None; sys.modules['tomli'] = None; from edgegrow.cli import main; "
    help_run = subprocess.run([sys.executable, "-c", blocked + "raise SystemExit(main(['--help']))"],
                              capture_output=True, text=True)
    assert help_run.returncode == 0 and "usage" in help_run.stdout, help_run.stderr
    path = _write(tmp_path, 'task = "kws"\n')
    config_run = subprocess.run([sys.executable, "-c", blocked + f"raise SystemExit(main(['grow', '--config', {path!r}]))"],
                                capture_output=True, text=True)
    assert config_run.returncode == 2 and config_run.stderr.count("\n") == 1 and "pip install tomli" in config_run.stderr


def test_tomli_reads_the_config_where_tomllib_is_missing(tmp_path, commands, monkeypatch):
    import sys

    tomllib = pytest.importorskip("tomllib")  # stands in for tomli, whose API it is (Python 3.11+)
    monkeypatch.setitem(sys.modules, "tomllib", None)
    with pytest.raises(ImportError):
        import tomllib as blocked  # noqa: F401  (the block works)
    monkeypatch.setitem(sys.modules, "tomli", tomllib)  # tomli has tomllib's API (tomllib is tomli, vendored)
    path = _write(tmp_path, 'task = "kws"\ntarget = "host"\nbudget = ["latency_ms=1"]\nout = "r"\nseed = 4\n')
    assert _parser().parse_args(expand_config(["grow", "--config", path], commands)).seed == 4


def test_resume_in_a_file_is_a_switch(tmp_path, commands):
    """``--resume`` takes an optional RUN_DIR; ``resume = true`` in a file means the bare switch."""
    path = _write(tmp_path, 'task = "kws"\ntarget = "host"\nbudget = ["latency_ms=1"]\nout = "r"\nresume = true\n')
    assert _parser().parse_args(expand_config(["grow", "--config", path], commands)).resume is True
    path = _write(tmp_path, 'task = "kws"\ntarget = "host"\nbudget = ["latency_ms=1"]\nout = "r"\nresume = false\n')
    assert _parser().parse_args(expand_config(["grow", "--config", path], commands)).resume is None
    path = _write(tmp_path, 'resume = "runs/a"\n')
    assert _parser().parse_args(expand_config(["grow", "--config", path], commands)).resume == "runs/a"
