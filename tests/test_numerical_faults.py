"""A growth step after which the loss turns NaN is rolled back and retried with a smaller ε and
learning rate, said in the log and kept in the run; a seed that diverges stops with a clear error."""
import json

import pytest
import torch
from test_grow import EXAMPLE, TINY, seed_model, toy_task

import edgegrow.grow as grow_module
from cost_models import estimate
from edgegrow.grow import GrowConfig, NumericalFault, grow
from edgegrow.growth.budget import Budget

CONFIG = GrowConfig(**{**TINY, "max_steps": 3})


def budget() -> Budget:
    return Budget({"latency_ms": 3 * estimate(seed_model(), EXAMPLE, "host").latency_ms})


def poison_growth(monkeypatch, steps_to_poison: int) -> dict:
    """The first ``steps_to_poison`` growth steps leave a NaN weight behind (as an exploding step would)."""
    calls = {"count": 0}
    real_apply = grow_module.apply_candidates

    def apply_then_poison(model, chosen, batch):
        edits = real_apply(model, chosen, batch)
        calls["count"] += 1
        if calls["count"] <= steps_to_poison:
            with torch.no_grad():
                next(p for p in model.parameters() if p.dim() == 4).view(-1)[0] = float("nan")
        return edits

    monkeypatch.setattr(grow_module, "apply_candidates", apply_then_poison)
    return calls


def test_a_diverging_step_is_rolled_back_and_retried_with_smaller_settings(monkeypatch, tmp_path):
    poison_growth(monkeypatch, 1)
    lines = []
    result = grow(seed_model(), toy_task(), "host", budget(), CONFIG, tmp_path / "run", family="ds-cnn",
                  seed_options={"num_classes": 4}, log=lines.append)
    said = [line for line in lines if "rolled the step back" in line]
    assert len(said) == 1 and "step 1" in said[0]
    assert f"ε {CONFIG.epsilon / 4:g} and learning rate {CONFIG.learning_rate / 2:g}" in said[0]
    steps = [row["step"] for row in result.history if row["phase"] == "grow"]
    assert steps and steps[0] == 1 and len(steps) == len(set(steps))  # step 1 recorded once, after the retry
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    (fault,) = summary["numerical_faults"]
    assert fault["step"] == 1 and fault["retry_learning_rate"] == CONFIG.learning_rate / 2
    assert all(row["train_loss"] == row["train_loss"] for row in result.history if row["train_loss"] is not None)


def test_growth_stops_cleanly_when_every_retry_diverges(monkeypatch, tmp_path):
    poison_growth(monkeypatch, 99)
    lines = []
    result = grow(seed_model(), toy_task(), "host", budget(), CONFIG, tmp_path / "run", family="ds-cnn",
                  seed_options={"num_classes": 4}, log=lines.append)
    assert result.stopped_by == "numerical fault: the loss diverged after growth"
    assert sum("rolled the step back" in line for line in lines) == grow_module.NUMERICAL_RETRIES + 1
    assert [row["phase"] for row in result.history] == ["seed", "final"]  # the seed, fine-tuned: a usable model
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["stopped_by"] == result.stopped_by


def test_a_seed_that_diverges_is_a_clear_error(tmp_path):
    task = toy_task()
    task.train.inputs[3, 0, 0, 0] = float("inf")
    with pytest.raises(NumericalFault, match=r"seed's training loss became NaN or infinite in epoch 1 .*"
                                             r"lower learning_rate .* check the data"):
        grow(seed_model(), task, "host", budget(), CONFIG, tmp_path / "run", family="ds-cnn",
             seed_options={"num_classes": 4}, log=lambda line: None)


def test_a_diverging_final_fine_tune_keeps_the_model_from_before_it(monkeypatch, tmp_path):
    real_train_phase = grow_module._Run.train_phase

    def poison_final(self, phase, *args, **kwargs):
        if phase == "final":
            with torch.no_grad():
                next(p for p in self.model.parameters() if p.dim() == 4).view(-1)[0] = float("inf")
        return real_train_phase(self, phase, *args, **kwargs)

    monkeypatch.setattr(grow_module._Run, "train_phase", poison_final)
    lines = []
    result = grow(seed_model(), toy_task(), "host", budget(), CONFIG, tmp_path / "run", family="ds-cnn",
                  seed_options={"num_classes": 4}, log=lines.append)
    assert any("final fine-tune's loss became NaN or infinite in epoch 1; kept the model" in line for line in lines)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    final = result.history[-1]
    assert final["phase"] == "final" and final["epochs"] == [] and final["validation_loss"] is None
    (fault,) = json.loads((tmp_path / "run" / "summary.json").read_text())["numerical_faults"]
    assert fault["phase"] == "final"
