"""A grow run killed with SIGKILL at any epoch resumes after its last finished epoch and ends as the same
run uninterrupted would: the same growth events, architecture and per-epoch metrics.

The run is a real child process. It kills itself (SIGKILL, which nothing can catch) right after the
run's state is written at the end of a chosen epoch, so the kill lands at a known place; the epoch it
was about to train is the work lost.
"""
import hashlib
import json
from pathlib import Path

import pytest
import torch
from toy import RESTART_CONFIG, RESUME_CONFIG, grow_toy, kill_at, latency_budget

from cost_models import load_target
from edgegrow.checkpoint import read_checkpoint


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


def without_times(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if "seconds" not in key} for row in rows]


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
    single_threaded(grow_toy, folder, RESUME_CONFIG, latency_budget(3))
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
    single_threaded(grow_toy, folder, RESUME_CONFIG, latency_budget(3), resume=True, log=lines.append)
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
    single_threaded(grow_toy, whole, RESTART_CONFIG, latency_budget(3))
    folder = tmp_path / "run"
    kill_at(folder, 5, "RESTART_CONFIG")
    state = read_checkpoint(folder / "state.pt")
    assert state.meta["phase"] == "retrain" and state.tensors["training"]["step"] == 3
    lines = []
    single_threaded(grow_toy, folder, RESTART_CONFIG, latency_budget(3), resume=True, log=lines.append)
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
    single_threaded(grow_toy, tmp_path / "run", RESUME_CONFIG, latency_budget(3))
    assert without_times(rows(tmp_path / "run")) == without_times(uninterrupted)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["seed"] == 0 and record["config"]["growth_every"] == RESUME_CONFIG["growth_every"]
    assert record["torch"] == torch.__version__ and record["torch_threads"] == 1
    profile = Path(record["target_profile"])
    assert record["target_profile_sha256"] == hashlib.sha256(profile.read_bytes()).hexdigest()


def test_resume_without_a_state_to_resume_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="nothing to resume"):
        grow_toy(tmp_path / "run", RESUME_CONFIG, latency_budget(3), resume=True)


def test_a_resume_says_when_the_target_profile_changed(tmp_path):
    profile = tmp_path / "profiles" / "host.json"
    profile.parent.mkdir()
    profile.write_bytes(Path(load_target("host").path).read_bytes())
    folder = tmp_path / "run"
    kill_config = {**RESUME_CONFIG, "retrain": False}

    def run(lines):
        grow_toy(folder, kill_config, latency_budget(3), target=str(profile), resume=(folder / "state.pt").exists(), log=lines.append)

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
