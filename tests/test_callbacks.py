"""Hooks into a grow run (issue 18 item 4): callbacks see every epoch and growth event as the run folder
records them, in order; every run folder has the same rows as CSV; TensorBoard gets the scalars (read
back from the event file); a loss of one's own trains the network and scores growth."""
import csv
import json
import math

import pytest
import torch
from toy import TINY, grow_toy, latency_budget, toy_task

from edgegrow.grow import GrowCallback, RunFolder, TensorBoardLog, read_run
from edgegrow.grow.run_folder import EPOCHS_CSV, GROWTH_CSV

CONFIG = {**TINY, "retrain": True}


class Recorder(GrowCallback):
    def __init__(self):
        self.calls = []

    def on_run_start(self, info):
        self.calls.append(("start", info))

    def on_epoch_end(self, row):
        self.calls.append(("epoch", row))

    def on_growth(self, row):
        self.calls.append(("growth", row))

    def on_rollback(self, rollback):
        self.calls.append(("rollback", rollback))

    def on_run_end(self, summary):
        self.calls.append(("end", summary))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("callbacks") / "run"
    recorder = Recorder()
    tensorboard = TensorBoardLog(out / "tensorboard")
    result = grow_toy(out, CONFIG, callbacks=[recorder, tensorboard])
    return out, recorder.calls, result


def test_callbacks_see_every_row_of_the_log_in_order_between_start_and_end(recorded):
    out, calls, result = recorded
    log, summary = read_run(out)
    assert calls[0][0] == "start" and calls[-1][0] == "end"
    start = calls[0][1]
    assert (start.out_dir, start.method, start.phase, start.step, start.resumed) == (out, "tiny", "grow", 0,  # DS-CNN's
                                                                                     False)
    assert start.total_steps == CONFIG["epochs"] * start.steps_per_epoch
    middle = [row for kind, row in calls[1:-1]]
    assert [kind for kind, _ in calls[1:-1]] == ["epoch" if row.row == "epoch" else "growth" for row in log.rows]
    assert middle == log.rows  # the same typed rows, in the order log.jsonl has them
    assert len(log.phase("retrain")) == CONFIG["epochs"] and len(log.growth) >= 2
    assert calls[-1][1] == summary == result.summary


def test_every_run_folder_has_its_epochs_and_growth_events_as_csv(recorded):
    out, _, _ = recorded
    log, _ = read_run(out)
    with open(out / EPOCHS_CSV, newline="") as file:
        epochs = list(csv.DictReader(file))
    with open(out / GROWTH_CSV, newline="") as file:
        growth = list(csv.DictReader(file))
    assert len(epochs) == len(log.epochs) and len(growth) == len(log.growth)
    for row, expected in zip(epochs, log.epochs):
        assert (row["phase"], int(row["epoch"]), int(row["step"]), int(row["macs"])) == (
            expected.phase, expected.epoch, expected.step, expected.macs)
        assert float(row["train_loss"]) == pytest.approx(expected.train_loss, rel=1e-12)
        assert float(row["validation_accuracy"]) == pytest.approx(expected.validation_accuracy, rel=1e-12)
        assert float(row["predicted_latency_ms"]) == pytest.approx(expected.predicted["latency_ms"], rel=1e-12)
    for row, expected in zip(growth, log.growth):
        assert int(row["event"]) == expected.event and int(row["depth"]) == expected.depth
        assert dict(pair.split("=") for pair in row["widths"].split()) == {
            name: str(width) for name, width in expected.widths.items()}
        assert float(row["usage_latency_ms"]) == pytest.approx(expected.usage["latency_ms"], rel=1e-12)


def test_tensorboard_gets_every_epoch_and_growth_event_as_scalars(recorded):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, _ = recorded
    log, _ = read_run(out)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    total_steps = log.phase("grow")[-1].step
    for phase, first in (("grow", 0), ("retrain", total_steps)):  # one step axis over the whole run
        rows = log.phase(phase)
        losses = events.Scalars(f"{phase}/train_loss")
        assert [scalar.step for scalar in losses] == [first + row.step for row in rows]
        assert [scalar.value for scalar in losses] == pytest.approx([row.train_loss for row in rows], rel=1e-6)
        accuracy = events.Scalars(f"{phase}/validation_accuracy")
        assert [scalar.value for scalar in accuracy] == pytest.approx([row.validation_accuracy for row in rows],
                                                                      rel=1e-6)
    group = next(iter(log.growth[-1].widths))
    widths = events.Scalars(f"growth/width/{group}")
    assert [(s.step, s.value) for s in widths] == [(row.step, row.widths[group]) for row in log.growth]
    assert widths[-1].value > widths[0].value  # the group grew, and TensorBoard shows it


def test_a_loss_of_ones_own_trains_the_network_and_scores_growth(tmp_path):
    calls = {"training": 0, "other": 0}

    def always_class_zero(logits, labels):  # ignores the labels: a network trained with it answers "a"
        calls["training" if torch.is_grad_enabled() and logits.requires_grad else "other"] += 1
        return torch.nn.functional.cross_entropy(logits, torch.zeros_like(labels))

    result = grow_toy(tmp_path / "run", CONFIG, loss_function=always_class_zero)
    model = result.model.train()  # batch statistics, as trained: 12 steps leave BatchNorm's running ones unsettled
    data = toy_task()
    with torch.no_grad():
        answers = model(data.validation.inputs).argmax(dim=1)
    assert (answers == 0).all()
    steps = result.log.phase("grow")[-1].step + result.log.phase("retrain")[-1].step
    assert calls["training"] > steps  # every optimizer step, and the growth methods' scoring passes besides
    default = grow_toy(tmp_path / "default", CONFIG).model.train()  # the same run with cross-entropy answers otherwise
    with torch.no_grad():
        assert (default(data.validation.inputs).argmax(dim=1) != 0).any()


def test_a_callback_without_any_hook_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="none of the hooks"):
        grow_toy(tmp_path / "run", CONFIG, callbacks=[lambda row: None])
    assert not RunFolder(tmp_path / "run").holds_run()


def test_a_resumed_run_calls_back_from_where_it_goes_on(tmp_path):
    """Interrupted by a callback after epoch 2 was saved but before TensorBoard heard of it, then resumed:
    the callbacks hear a resumed start at the saved step with the rows recorded so far, then only the
    rows after it; TensorBoard's curves are the log's, no stretch doubled or lost."""
    out = tmp_path / "run"
    stop = {"epochs": 0}

    class StopAfterTwoEpochs(GrowCallback):
        def on_epoch_end(self, row):
            stop["epochs"] += 1
            if stop["epochs"] == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        grow_toy(out, CONFIG, callbacks=[StopAfterTwoEpochs(), TensorBoardLog(out / "tensorboard")])
    recorder = Recorder()
    grow_toy(out, CONFIG, callbacks=[recorder, TensorBoardLog(out / "tensorboard")], resume=True)
    start = recorder.calls[0][1]
    assert start.resumed and start.step == 2 * start.steps_per_epoch
    log, _ = read_run(out)
    resumed_rows = [row for kind, row in recorder.calls[1:-1]]
    assert start.log.rows + resumed_rows == log.rows
    assert all(row.step > start.step or row.phase == "retrain" for row in resumed_rows if row.row == "epoch")

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    losses = events.Scalars("grow/train_loss")
    assert [s.step for s in losses] == [row.step for row in log.phase("grow")]
    assert [s.value for s in losses] == pytest.approx([row.train_loss for row in log.phase("grow")], rel=1e-6)
    assert [s.step for s in events.Scalars("growth/depth")] == [row.step for row in log.growth]
    assert not math.isnan(json.loads((out / "summary.json").read_text())["validation_accuracy"])


def test_tensorboard_without_its_package_is_a_one_line_error_naming_the_install(monkeypatch, tmp_path, capsys):
    import sys

    from edgegrow.cli import main

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if it were not installed
    with pytest.raises(ValueError, match=r'pip install "edgegrow\[tensorboard\]"'):
        TensorBoardLog(tmp_path / "tb")
    monkeypatch.setattr("edgegrow.tasks.load_task", lambda *a, **k: pytest.fail("loaded data before the check"))
    argv = ["grow", "--task", "kws", "--target", "host", "--budget", "latency_ms=1", "--out", str(tmp_path / "r"),
            "--tensorboard", "--quiet"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "edgegrow[tensorboard]" in error and "Traceback" not in error and error.count("\n") == 1


def test_a_rolled_back_growth_event_is_undone_for_the_callbacks_and_in_tensorboard(monkeypatch, tmp_path):
    """The first event leaves a NaN weight, the run rolls it back and retries: callbacks hear on_rollback
    at the event's step, and what they heard, less what was undone, is the log; TensorBoard's curves
    hold the retried event once."""
    from toy import poison_growth

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    poison_growth(monkeypatch, 1)
    recorder, out = Recorder(), tmp_path / "run"
    grow_toy(out, {}, latency_budget(3), callbacks=[recorder, TensorBoardLog(out / "tensorboard")])
    log, _ = read_run(out)
    heard = []
    rollbacks = []
    for kind, value in recorder.calls[1:-1]:
        if kind == "rollback":
            rollbacks.append(value)
            heard = list(value.log.rows)  # what stands after the rollback
        else:
            heard.append(value)
    assert len(rollbacks) == 1 and rollbacks[0].step == log.growth[1].step
    assert heard == log.rows
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [s.step for s in events.Scalars("growth/depth")] == [row.step for row in log.growth]
    assert [s.step for s in events.Scalars("grow/train_loss")] == [row.step for row in log.phase("grow")]
