"""A grow run killed with SIGKILL at any epoch resumes after its last finished epoch and ends as the same
run uninterrupted would: the same growth events, architecture and per-epoch metrics.

The run is a real child process. It kills itself (SIGKILL, which nothing can catch) right after the
run's state is written at the end of a chosen epoch, so the kill lands at a known place; the epoch it
was about to train is the work lost.
"""
import hashlib
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from toy import EXAMPLE, TINY, seed_model, toy_task

from cost_models import estimate, load_target
from edgegrow.checkpoint import read_checkpoint
from edgegrow.grow import GrowConfig, grow
from edgegrow.growth.budget import Budget

# 6 epochs of 3 steps; growth events at steps 2, 5, 8 (epochs 1-3), then the architecture retrained for 6
CONFIG = {**TINY, "epochs": 6, "growth_start": 0.1, "growth_end": 0.45, "growth_every": 1.0, "retrain": True}
# growth as search within the run: 3 epochs growing (the same events), then the found architecture for 3
RESTART = {**CONFIG, "retrain": False, "restart": True}
TESTS = Path(__file__).resolve().parent

CHILD = textwrap.dedent("""
    import os, signal, sys
    import torch
    sys.path.insert(0, {tests!r})
    import edgegrow.grow.loop as loop_module
    from toy import seed_model, toy_task
    from test_resume import CONFIG, RESTART, budget
    torch.set_num_threads(1)
    saves = {{"states": 0}}
    real_save = loop_module.save_checkpoint

    def save_then_maybe_die(path, model, checkpoint):
        real_save(path, model, checkpoint)
        if path.name == "state.pt":
            saves["states"] += 1
            if saves["states"] == {kill_after}:
                os.kill(os.getpid(), signal.SIGKILL)

    loop_module.save_checkpoint = save_then_maybe_die
    loop_module.grow(seed_model(), toy_task(), "host", budget(), loop_module.GrowConfig(**{config}), {out!r},
                     family="ds-cnn", seed_options={{"num_classes": 4}}, log=lambda line: None)
""")


def budget() -> Budget:
    return Budget({"latency_ms": 3 * estimate(seed_model(), EXAMPLE, "host").latency_ms})


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


def without_times(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if "seconds" not in key} for row in rows]


def kill_at(folder: Path, kill_after: int, config: str = "CONFIG") -> None:
    child = subprocess.run([sys.executable, "-c", CHILD.format(tests=str(TESTS), kill_after=kill_after,
                                                                out=str(folder), config=config)],
                           capture_output=True, text=True, timeout=600, cwd=TESTS.parent)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]


def single_threaded(function, *args, **kwargs):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return function(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whole") / "run"
    single_threaded(grow, seed_model(), toy_task(), "host", budget(), GrowConfig(**CONFIG), folder, family="ds-cnn",
                    seed_options={"num_classes": 4}, log=lambda line: None)
    return rows(folder)


# state.pt is written after every epoch and as retraining starts: kill after epoch 1 of the growth phase
# (one event done, two to come), after epoch 3 (growth ending) and after retraining epoch 2 (the 9th save)
@pytest.mark.parametrize("kill_after, phase, epochs_done", [(1, "grow", 1), (3, "grow", 3), (9, "retrain", 2)])
def test_sigkill_resumes_after_the_last_epoch_with_the_same_result(kill_after, phase, epochs_done, uninterrupted,
                                                                    tmp_path):
    folder = tmp_path / "run"
    kill_at(folder, kill_after)
    state = read_checkpoint(folder / "state.pt")
    assert state.meta["phase"] == phase and state.tensors["training"]["step"] == 3 * epochs_done
    assert not list(folder.glob(".*.tmp")), "a half-written file was left behind"
    lines = []
    single_threaded(grow, seed_model(), toy_task(), "host", budget(), GrowConfig(**CONFIG), folder, family="ds-cnn",
                    seed_options={"num_classes": 4}, resume=True, log=lines.append)
    assert f"in its {phase} phase after epoch {epochs_done} of 6" in lines[0], lines[0]
    resumed = rows(folder)
    assert [(r["row"], r.get("event"), r.get("widths"), r["step"]) for r in resumed] == \
        [(r["row"], r.get("event"), r.get("widths"), r["step"]) for r in uninterrupted]
    for mine, theirs in zip(resumed, uninterrupted):
        if mine["row"] == "epoch":
            assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-5)
            assert mine["validation_loss"] == pytest.approx(theirs["validation_loss"], abs=1e-5)
            assert mine["learning_rate"] == pytest.approx(theirs["learning_rate"])
            assert mine["mac_epochs"] == pytest.approx(theirs["mac_epochs"])
    assert not (folder / "state.pt").exists() and not (folder / "before_growth.pt").exists()


def test_a_restart_run_killed_while_training_the_found_architecture_resumes_with_the_same_result(tmp_path):
    """The 5th state save is after the found architecture's first epoch (3 growing epochs, the phase switch)."""
    whole = tmp_path / "whole"
    single_threaded(grow, seed_model(), toy_task(), "host", budget(), GrowConfig(**RESTART), whole, family="ds-cnn",
                    seed_options={"num_classes": 4}, log=lambda line: None)
    folder = tmp_path / "run"
    kill_at(folder, 5, "RESTART")
    state = read_checkpoint(folder / "state.pt")
    assert state.meta["phase"] == "retrain" and state.tensors["training"]["step"] == 3
    lines = []
    single_threaded(grow, seed_model(), toy_task(), "host", budget(), GrowConfig(**RESTART), folder, family="ds-cnn",
                    seed_options={"num_classes": 4}, resume=True, log=lines.append)
    assert "in its retrain phase after epoch 1 of 3" in lines[0], lines[0]
    resumed, uninterrupted = rows(folder), rows(whole)
    assert [(r["row"], r.get("phase"), r["step"]) for r in resumed] == \
        [(r["row"], r.get("phase"), r["step"]) for r in uninterrupted]
    assert [r["step"] for r in uninterrupted if r.get("phase") == "retrain"] == [3, 6, 9]
    for mine, theirs in zip(resumed, uninterrupted):
        if mine["row"] == "epoch":
            assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-5)
            assert mine["learning_rate"] == pytest.approx(theirs["learning_rate"])


def test_the_same_run_twice_gives_the_same_network_and_metrics_and_records_how(uninterrupted, tmp_path):
    single_threaded(grow, seed_model(), toy_task(), "host", budget(), GrowConfig(**CONFIG), tmp_path / "run",
                    family="ds-cnn", seed_options={"num_classes": 4}, log=lambda line: None)
    assert without_times(rows(tmp_path / "run")) == without_times(uninterrupted)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["seed"] == 0 and record["config"]["growth_every"] == CONFIG["growth_every"]
    assert record["torch"] == torch.__version__ and record["torch_threads"] == 1
    profile = Path(record["target_profile"])
    assert record["target_profile_sha256"] == hashlib.sha256(profile.read_bytes()).hexdigest()


def test_resume_without_a_state_to_resume_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="nothing to resume"):
        grow(seed_model(), toy_task(), "host", budget(), GrowConfig(**CONFIG), tmp_path / "run", family="ds-cnn",
             seed_options={"num_classes": 4}, resume=True, log=lambda line: None)


def test_a_resume_says_when_the_target_profile_changed(tmp_path):
    profile = tmp_path / "profiles" / "host.json"
    profile.parent.mkdir()
    profile.write_bytes(Path(load_target("host").path).read_bytes())
    folder = tmp_path / "run"
    kill_config = {**CONFIG, "retrain": False}

    def run(lines):
        grow(seed_model(), toy_task(), str(profile), budget(), GrowConfig(**kill_config), folder, family="ds-cnn",
             seed_options={"num_classes": 4}, resume=(folder / "state.pt").exists(), log=lines.append)

    class Stop(Exception):
        pass

    import edgegrow.grow.loop as loop_module

    real_save = loop_module.save_checkpoint
    calls = {"count": 0}

    def save_then_stop(path, model, checkpoint):
        real_save(path, model, checkpoint)
        calls["count"] += 1
        if path.name == "state.pt" and calls["count"] >= 2:
            raise Stop

    loop_module.save_checkpoint = save_then_stop
    try:
        with pytest.raises(Stop):
            run([])
    finally:
        loop_module.save_checkpoint = real_save
    data = json.loads(profile.read_text())
    data["description"] += " (edited)"
    profile.write_text(json.dumps(data))
    lines = []
    run(lines)
    assert any("the host profile changed since this run started" in line for line in lines), lines
