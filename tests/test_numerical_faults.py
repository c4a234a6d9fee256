"""A growth event after which the loss turns NaN is rolled back and retried with a smaller ε and learning
rate, said in the log and kept in the run; after the retries run out growth stops and training goes on
with the network from before the event; a loss that diverges long after growth keeps the last finished
epoch; a seed that diverges stops with a clear error."""

import pytest
import torch
from toy import RESUME_CONFIG, TINY, grow_toy, kill_at, latency_budget, poison, poison_growth, seed_model, toy_task

import edgegrow.grow.loop as loop_module
from edgegrow.grow import NUMERICAL_RETRIES, GrowConfig, NumericalFault, grow
from edgegrow.training import learning_rate_factor

CONFIG = GrowConfig(**TINY)


def finite(model) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def test_a_diverging_event_is_rolled_back_and_retried_with_smaller_settings(monkeypatch, tmp_path):
    poison_growth(monkeypatch, 1)
    lines = []
    result = grow_toy(tmp_path / "run", CONFIG, latency_budget(3), log=lines.append)
    said = [line for line in lines if "rolled the event back" in line]
    assert len(said) == 1 and "trying again with ε 0.025 and the learning rate halved" in said[0]
    events = [row.event for row in result.log.growth]
    assert events[:2] == [0, 1] and len(events) == len(set(events))  # event 1 recorded once, after the retry
    assert finite(result.model)
    (fault,) = result.summary.numerical_faults
    assert fault["retry"] and fault["retry_epsilon"] == CONFIG.epsilon / 4 and fault["retry_learning_rate_scale"] == 0.5
    assert all(row.train_loss == row.train_loss for row in result.log.epochs)
    config = CONFIG.train_config()
    for row in result.log.epochs:  # from the retry on (event 1 is at step 1), the schedule at half height
        scheduled = config.learning_rate * learning_rate_factor(config, (row.step - 1) / 12, 0.5 * 3 / 12)
        assert row.learning_rate == pytest.approx(scheduled / 2)


def test_growth_stops_cleanly_when_every_retry_diverges(monkeypatch, tmp_path):
    poison_growth(monkeypatch, 99)
    lines = []
    result = grow_toy(tmp_path / "run", CONFIG, latency_budget(3), log=lines.append)
    assert result.stopped_by == "numerical fault: the loss diverged after growth"
    assert sum("rolled the event back" in line for line in lines) == NUMERICAL_RETRIES + 1
    assert result.summary.events == 0 and result.summary.widths == {name: 8 for name in result.summary.widths}
    assert len(result.log.epochs) == TINY["epochs"]  # the seed trained to the end of the schedule: a usable model
    assert finite(result.model)


def test_a_late_divergence_keeps_the_model_of_the_last_finished_epoch(monkeypatch, tmp_path):
    real_end = loop_module.Training._end_epoch

    def end_then_poison(self):
        real_end(self)
        if len(self.history) == 5:  # long after the last event (step 6): not growth's fault
            poison(self.model)

    monkeypatch.setattr(loop_module.Training, "_end_epoch", end_then_poison)
    lines = []
    config = GrowConfig(**{**TINY, "epochs": 7, "growth_end": 0.3})
    result = grow_toy(tmp_path / "run", config, latency_budget(3), log=lines.append)
    assert any("loss became NaN or infinite in grow epoch 6; kept the model from the end of the epoch before" in line
               for line in lines), lines
    assert finite(result.model) and len(result.log.epochs) == 5
    (fault,) = result.summary.numerical_faults
    assert fault["phase"] == "grow" and fault["epoch"] == 6


def test_a_seed_that_diverges_is_a_clear_error(tmp_path):
    task = toy_task()
    task.train.inputs[3, 0, 0, 0] = float("inf")
    with pytest.raises(NumericalFault, match=r"seed's training loss became NaN or infinite in epoch 1 .*"
                                             r"lower learning_rate .* check the data"):
        grow(seed_model(), task, "host", latency_budget(3), CONFIG, tmp_path / "run", family="ds-cnn",
             seed_options={"num_classes": 4}, log=lambda line: None)


def test_a_resumed_run_rolls_back_to_the_saved_state_from_before_the_event(tmp_path, monkeypatch):
    """Killed after the epoch in which growth event 2 happened, then resumed with that epoch's next step
    poisoned: the rollback comes from before_growth.pt on disk and the event is retried."""
    folder = tmp_path / "run"
    kill_at(folder, 2)
    assert (folder / "before_growth.pt").exists()
    real_run, poisoned = loop_module.Training.run, []

    def poison_once(self, until_step=None):
        if not poisoned and self.step == 6:  # the first step after resuming, one step after event 2 (step 5)
            poisoned.append(self.step)
            poison(self.model)
        return real_run(self, until_step)

    monkeypatch.setattr(loop_module.Training, "run", poison_once)
    lines = []
    result = grow_toy(folder, RESUME_CONFIG, latency_budget(3), resume=True, log=lines.append)
    assert poisoned == [6]
    assert any("rolled the event back" in line for line in lines), lines
    events = [row.event for row in result.log.growth]
    assert len(events) == len(set(events)) and 2 in events
    assert finite(result.model)
