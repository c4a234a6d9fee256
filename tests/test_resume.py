"""A grow run killed with SIGKILL in the middle of a phase resumes after its last finished epoch and
ends as the same run uninterrupted would: same architecture, same per-epoch metrics.

The run is a real child process. It kills itself (SIGKILL, which nothing can catch) right after
the epoch checkpoint of a chosen epoch is written, so the kill lands at a known place; the epoch
it was about to train is the work lost.
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
from test_grow import EXAMPLE, seed_model, toy_task

from cost_models import estimate, load_target
from edgegrow.checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from edgegrow.grow import EPOCH_CHECKPOINT, GrowConfig, grow
from edgegrow.growth.budget import Budget

CONFIG = dict(seed_epochs=2, epochs_per_step=2, final_epochs=2, max_steps=3, score_batches=1, fast_steps=5,
              batch_size=64)
TESTS = Path(__file__).resolve().parent

CHILD = textwrap.dedent("""
    import os, signal, sys
    import torch
    sys.path.insert(0, {tests!r})
    import edgegrow.grow as grow_module
    from test_grow import seed_model, toy_task
    from test_resume import CONFIG, budget
    torch.set_num_threads(1)
    saves = {{"epochs": 0}}
    real_save = grow_module.save_checkpoint

    def save_then_maybe_die(path, model, checkpoint):
        real_save(path, model, checkpoint)
        if path.name == grow_module.EPOCH_CHECKPOINT:
            saves["epochs"] += 1
            if saves["epochs"] == {kill_after}:
                os.kill(os.getpid(), signal.SIGKILL)

    grow_module.save_checkpoint = save_then_maybe_die
    grow_module.grow(seed_model(), toy_task(), "host", budget(), grow_module.GrowConfig(**CONFIG), {out!r},
                     family="ds-cnn", seed_options={{"num_classes": 4}}, log=lambda line: None)
""")


def budget() -> Budget:
    return Budget({"latency_ms": 3 * estimate(seed_model(), EXAMPLE, "host").latency_ms})


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folder = tmp_path_factory.mktemp("whole") / "run"
        grow(seed_model(), toy_task(), "host", budget(), GrowConfig(**CONFIG), folder, family="ds-cnn",
             seed_options={"num_classes": 4}, log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    return rows(folder)


# seed epochs are saves 1-2, step 1's are 3-4, step 2's 5-6: die after the 1st epoch of the seed
# (no checkpoint.pt yet), after step 1's last epoch but before its checkpoint.pt, and after the
# 1st epoch of growth step 2 (mid-phase, after a growth step)
@pytest.mark.parametrize("kill_after, phase_killed, epochs_done", [(1, ("seed", 0), 1), (4, ("grow", 1), 2),
                                                                   (5, ("grow", 2), 1)])
def test_sigkill_mid_phase_resumes_after_the_last_epoch_with_the_same_result(
        kill_after, phase_killed, epochs_done, uninterrupted, tmp_path):
    folder = tmp_path / "run"
    child = subprocess.run([sys.executable, "-c", CHILD.format(tests=str(TESTS), kill_after=kill_after,
                                                                out=str(folder))],
                           capture_output=True, text=True, timeout=600, cwd=TESTS.parent)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    partial = read_checkpoint(folder / EPOCH_CHECKPOINT)
    assert (partial.meta["phase"], partial.meta["step"]) == phase_killed and partial.meta["epochs_done"] == epochs_done
    assert not list(folder.glob(".*.tmp")), "a half-written file was left behind"

    lines = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        grow(seed_model(), toy_task(), "host", budget(), GrowConfig(**CONFIG), folder, family="ds-cnn",
             seed_options={"num_classes": 4}, resume=True, log=lines.append)
    finally:
        torch.set_num_threads(threads)
    assert f"in {phase_killed[0]} step {phase_killed[1]} after epoch {epochs_done} of 2" in lines[0]
    resumed = rows(folder)
    assert [(r["phase"], r["step"], r["widths"], r["depth"]) for r in resumed] == \
        [(r["phase"], r["step"], r["widths"], r["depth"]) for r in uninterrupted]
    for mine, theirs in zip(resumed, uninterrupted):
        assert len(mine["epochs"]) == len(theirs["epochs"])
        for a, b in zip(mine["epochs"], theirs["epochs"]):
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
            assert a["validation_loss"] == pytest.approx(b["validation_loss"], abs=1e-5)
            assert a["learning_rate"] == pytest.approx(b["learning_rate"])
    assert not (folder / EPOCH_CHECKPOINT).exists()  # the finished run keeps only checkpoint.pt


def test_a_stale_epoch_checkpoint_is_ignored(tmp_path, monkeypatch):
    """An epoch.pt that does not continue checkpoint.pt's last phase (a kill between writing
    checkpoint.pt and removing epoch.pt) is not replayed."""
    import edgegrow.grow as grow_module

    folder = tmp_path / "run"
    calls = {"count": 0}
    real_train = grow_module.train

    def interrupted_train(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 3:  # Ctrl-C as step 2 starts training
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(grow_module, "train", interrupted_train)
    with pytest.raises(KeyboardInterrupt):
        grow(seed_model(), toy_task(), "host", budget(), GrowConfig(**CONFIG), folder, family="ds-cnn",
             seed_options={"num_classes": 4}, log=lambda line: None)
    monkeypatch.setattr(grow_module, "train", real_train)
    assert not (folder / EPOCH_CHECKPOINT).exists()
    save_checkpoint(folder / EPOCH_CHECKPOINT, seed_model(),
                    Checkpoint("ds-cnn", {"num_classes": 4}, [], {"phase": "grow", "step": 1, "rows_before": 1}))
    lines = []
    grow(seed_model(), toy_task(), "host", budget(), GrowConfig(**{**CONFIG, "max_steps": 2}), folder,
         family="ds-cnn", seed_options={"num_classes": 4}, resume=True, log=lines.append)
    assert lines[0].endswith("after grow step 1"), lines[0]
    assert [(r["phase"], r["step"]) for r in rows(folder)] == [("seed", 0), ("grow", 1), ("grow", 2), ("final", 2)]


def without_times(rows: list[dict]) -> list[dict]:
    timeless = []
    for row in rows:
        row = {key: value for key, value in row.items() if "seconds" not in key}
        row["epochs"] = [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in row.get("epochs", [])]
        timeless.append(row)
    return timeless


def test_the_same_run_twice_gives_the_same_network_and_metrics_and_records_how(uninterrupted, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        grow(seed_model(), toy_task(), "host", budget(), GrowConfig(**CONFIG), tmp_path / "run", family="ds-cnn",
             seed_options={"num_classes": 4}, log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    assert without_times(rows(tmp_path / "run")) == without_times(uninterrupted)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["seed"] == 0 and record["config"]["epochs_per_step"] == CONFIG["epochs_per_step"]
    assert record["torch"] == torch.__version__ and record["torch_threads"] == 1
    profile = Path(record["target_profile"])
    assert record["target_profile_sha256"] == hashlib.sha256(profile.read_bytes()).hexdigest()


def test_a_resume_says_when_the_target_profile_changed(tmp_path):
    profile = tmp_path / "profiles" / "host.json"
    profile.parent.mkdir()
    profile.write_bytes(Path(load_target("host").path).read_bytes())
    config = GrowConfig(**{**CONFIG, "max_steps": 1, "seed_epochs": 1, "epochs_per_step": 1, "final_epochs": 0})
    folder = tmp_path / "run"
    grow(seed_model(), toy_task(), str(profile), budget(), config, folder, family="ds-cnn",
         seed_options={"num_classes": 4}, log=lambda line: None)
    lines = []
    grow(seed_model(), toy_task(), str(profile), budget(), config, folder, family="ds-cnn",
         seed_options={"num_classes": 4}, resume=True, log=lines.append)
    assert not any("profile changed" in line for line in lines)
    data = json.loads(profile.read_text())
    data["description"] += " (edited)"
    profile.write_text(json.dumps(data))
    lines = []
    grow(seed_model(), toy_task(), str(profile), budget(), config, folder, family="ds-cnn",
         seed_options={"num_classes": 4}, resume=True, log=lines.append)
    assert any("the host profile changed since this run started" in line for line in lines), lines


def test_a_resumed_step_that_diverges_rolls_back_to_the_checkpoint_and_grows_afresh(tmp_path, monkeypatch):
    import edgegrow.grow as grow_module

    folder = tmp_path / "run"
    child = subprocess.run([sys.executable, "-c", CHILD.format(tests=str(TESTS), kill_after=5, out=str(folder))],
                           capture_output=True, text=True, timeout=600, cwd=TESTS.parent)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    real_train_phase, poisoned = grow_module._Run.train_phase, []

    def poison_the_resumed_phase(self, phase, step, *args, **kwargs):
        resumed = args[3] if len(args) > 3 else kwargs.get("resumed")
        if resumed is not None and phase == "grow":
            poisoned.append(step)
            with torch.no_grad():
                next(p for p in self.model.parameters() if p.dim() == 4).view(-1)[0] = float("nan")
        return real_train_phase(self, phase, step, *args, **kwargs)

    monkeypatch.setattr(grow_module._Run, "train_phase", poison_the_resumed_phase)
    lines = []
    result = grow(seed_model(), toy_task(), "host", budget(), GrowConfig(**CONFIG), folder, family="ds-cnn",
                  seed_options={"num_classes": 4}, resume=True, log=lines.append)
    assert poisoned == [2]  # the retry of step 2 starts from checkpoint.pt, not from the stale epoch.pt
    assert any("step 2: the loss became NaN or infinite in epoch 2 after growth; rolled the step back" in line
               for line in lines), lines
    steps = [row["step"] for row in result.history if row["phase"] == "grow"]
    assert steps[:2] == [1, 2] and len(steps) == len(set(steps))
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
