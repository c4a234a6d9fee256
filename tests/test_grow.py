"""The grow loop: budgets are never exceeded and are used, logs and checkpoints are complete, runs resume,
and a seed over budget is refused before any training."""
import json

import pytest
import torch

from cost_models import estimate
from edgegrow.checkpoint import load_checkpoint
from edgegrow.cli import main
from edgegrow.data.task_data import Split, TaskData
from edgegrow.grow import GrowConfig, grow
from edgegrow.growth.budget import Budget
from edgegrow.models import ds_cnn_seed

EXAMPLE = torch.zeros(1, 1, 49, 10)
TINY = dict(seed_epochs=1, epochs_per_step=1, final_epochs=1, max_steps=4, score_batches=1, fast_steps=5,
            firefly_steps=3, batch_size=64)
ROW_FIELDS = {"phase", "step", "widths", "depth", "predicted", "usage", "train_loss", "train_accuracy",
              "validation_loss", "validation_accuracy", "growth_seconds", "training_seconds", "epochs"}


def toy_task(examples: int = 192) -> TaskData:
    """Four classes told apart by where a bump sits in a (1, 49, 10) map."""
    def split(n, seed):
        generator = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, 4, (n,), generator=generator)
        inputs = 0.3 * torch.randn(n, 1, 49, 10, generator=generator)
        inputs[torch.arange(n), 0, 10 * labels + 5, 2 + 2 * labels] += 2.0
        return Split(inputs, labels)
    return TaskData("toy", ["a", "b", "c", "d"], split(examples, 0), split(64, 1), split(64, 2))


def seed_model():
    torch.manual_seed(0)
    return ds_cnn_seed(num_classes=4)


@pytest.mark.parametrize("method", ["fast-split", "signed-split", "split", "firefly", "random-split", "random-new"])
def test_grown_model_fits_every_budget_and_uses_the_binding_one(method, tmp_path):
    seed_cost = estimate(seed_model(), EXAMPLE, "host")
    budget = Budget({"latency_ms": 2.2 * seed_cost.latency_ms, "sram_kb": 4 * seed_cost.sram_bytes / 1024})
    result = grow(seed_model(), toy_task(), "host", budget, GrowConfig(method=method, **TINY), tmp_path / "run",
                  family="ds-cnn", seed_options={"num_classes": 4}, log=lambda line: None)
    report = estimate(result.model, EXAMPLE, "host")
    assert budget.violations(report) == []
    assert max(budget.usage(report).values()) >= 0.85, (result.stopped_by, budget.usage(report))
    assert report.macs > seed_cost.macs


def test_steps_log_checkpoint_and_summary(tmp_path):
    seed_cost = estimate(seed_model(), EXAMPLE, "host")
    budget = Budget({"latency_ms": 2.2 * seed_cost.latency_ms})
    result = grow(seed_model(), toy_task(), "host", budget, GrowConfig(**TINY), tmp_path / "run",
                  family="ds-cnn", seed_options={"num_classes": 4}, log=lambda line: None)
    rows = [json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert [row["phase"] for row in rows][0] == "seed" and rows[-1]["phase"] == "final"
    for row in rows:
        assert ROW_FIELDS <= set(row), ROW_FIELDS - set(row)
    assert len(rows[0]["epochs"]) == TINY["seed_epochs"] and len(rows[-1]["epochs"]) == TINY["final_epochs"]
    assert rows[0]["epochs"][-1]["validation_accuracy"] == rows[0]["validation_accuracy"]
    grow_rows = [row for row in rows if row["phase"] == "grow"]
    assert grow_rows and all(row["growth_seconds"] > 0 and row["training_seconds"] > 0 for row in grow_rows)
    model, checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert checkpoint.meta["phase"] == "final"
    x = torch.randn(5, 1, 49, 10)
    result.model.eval()
    torch.testing.assert_close(model(x), result.model(x))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["widths"] == rows[-1]["widths"] and summary["usage"]["latency_ms"] <= 1.0


def test_resume_continues_after_the_last_finished_step(tmp_path):
    seed_cost = estimate(seed_model(), EXAMPLE, "host")
    budget = Budget({"latency_ms": 3 * seed_cost.latency_ms})
    task = toy_task()
    first = grow(seed_model(), task, "host", budget, GrowConfig(**{**TINY, "max_steps": 1, "final_epochs": 0}),
                 tmp_path / "run", family="ds-cnn", seed_options={"num_classes": 4}, log=lambda line: None)
    assert [row["phase"] for row in first.history] == ["seed", "grow", "final"]
    with pytest.raises(ValueError, match="already holds a grow run; pass --resume"):
        grow(seed_model(), task, "host", budget, GrowConfig(**TINY), tmp_path / "run", family="ds-cnn",
             seed_options={"num_classes": 4}, log=lambda line: None)
    with pytest.raises(ValueError, match="another method 'fast-split'"):
        grow(seed_model(), task, "host", budget, GrowConfig(method="split", **TINY), tmp_path / "run",
             family="ds-cnn", seed_options={"num_classes": 4}, resume=True, log=lambda line: None)
    # a finished run resumed is returned as it is
    again = grow(seed_model(), task, "host", budget, GrowConfig(**TINY), tmp_path / "run", family="ds-cnn",
                 seed_options={"num_classes": 4}, resume=True, log=lambda line: None)
    assert [row["phase"] for row in again.history] == ["seed", "grow", "final"]


def test_resume_after_an_interrupted_step(tmp_path, monkeypatch):
    seed_cost = estimate(seed_model(), EXAMPLE, "host")
    budget = Budget({"latency_ms": 3 * seed_cost.latency_ms})
    task = toy_task()
    import edgegrow.grow as grow_module

    calls = {"count": 0}
    real_train = grow_module.train

    def interrupted_train(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 3:  # seed, step 1, then Ctrl-C during step 2's fine-tuning
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(grow_module, "train", interrupted_train)
    with pytest.raises(KeyboardInterrupt):
        grow(seed_model(), task, "host", budget, GrowConfig(**TINY), tmp_path / "run", family="ds-cnn",
             seed_options={"num_classes": 4}, log=lambda line: None)
    monkeypatch.setattr(grow_module, "train", real_train)
    _, checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert (checkpoint.meta["phase"], checkpoint.meta["step"]) == ("grow", 1)
    result = grow(seed_model(), task, "host", budget, GrowConfig(**TINY), tmp_path / "run", family="ds-cnn",
                  seed_options={"num_classes": 4}, resume=True, log=lambda line: None)
    steps = [row["step"] for row in result.history if row["phase"] == "grow"]
    assert steps[:2] == [1, 2] and len(steps) == len(set(steps))
    assert budget.violations(estimate(result.model, EXAMPLE, "host")) == []


def test_seed_over_budget_is_refused_before_training(tmp_path, monkeypatch):
    import edgegrow.grow as grow_module

    monkeypatch.setattr(grow_module, "train", lambda *a, **k: pytest.fail("trained despite an impossible budget"))
    with pytest.raises(ValueError, match=r"the seed already exceeds the budget on host \(macs .* > 1000\)"):
        grow(seed_model(), toy_task(), "host", Budget({"macs": 1000}), GrowConfig(**TINY), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not a readable edgegrow checkpoint"):
        load_checkpoint(path)
    torch.save({"format": "something-else"}, path)
    with pytest.raises(ValueError, match="is not an edgegrow checkpoint"):
        load_checkpoint(path)


def test_checkpoint_refuses_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "edgegrow-checkpoint/1", "family": Payload()}, path)
    with pytest.raises(ValueError, match="is not a readable edgegrow checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("args,message", [
    (["--budget", "latency"], "edgegrow grow: error: budget 'latency' is not metric=value"),
    (["--budget", "latency_ms=0.1", "--method", "magic"], "edgegrow grow: error: unknown growth method 'magic'"),
    (["--budget", "latency_ms=0.1", "--target", "pixel99"], "edgegrow grow: error: unknown target 'pixel99'"),
    (["--budget", "macs=10", "--task", "image"], "edgegrow grow: error: the seed already exceeds the budget"),
])
def test_grow_cli_errors_are_one_line(args, message, tmp_path, capsys):
    base = {"--task": "kws", "--target": "host", "--out": str(tmp_path / "run")}
    for index in range(0, len(args), 2):
        base.pop(args[index], None)
    argv = ["grow", *[item for pair in base.items() for item in pair], *args, "--quiet"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(message), error
    assert error.count("\n") == 1


def test_run_files_get_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        seed_cost = estimate(seed_model(), EXAMPLE, "host")
        grow(seed_model(), toy_task(), "host", Budget({"latency_ms": 1.5 * seed_cost.latency_ms}),
             GrowConfig(**{**TINY, "max_steps": 1}), tmp_path / "run", family="ds-cnn",
             seed_options={"num_classes": 4}, log=lambda line: None)
    finally:
        os.umask(umask)
    for name in ("checkpoint.pt", "steps.jsonl", "summary.json", "report.html"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name
