"""The grow loop: one training run with growth events inside it. Budgets are never exceeded and are used
by growth_end, one optimizer and one schedule run from the first step to the last, the run folder's log,
checkpoints and summary are complete, a retrained architecture is compared on validation, and a seed
over budget is refused before any training."""
import json
import math

import pytest
import torch

import edgegrow.grow.loop as loop_module
from cost_models import estimate
from edgegrow.checkpoint import load_checkpoint
from edgegrow.cli import main
from edgegrow.grow import (
    GrowConfig,
    GrowthEvent,
    RunFolder,
    grow,
    growth_events,
    growth_method,
    read_run,
    register_method,
)
from edgegrow.grow.config import MIN_RESTART_STEPS
from edgegrow.grow.growth_step import model_widths
from edgegrow.growth.budget import Budget
from edgegrow.growth.candidates import Candidate
from edgegrow.training import learning_rate_factor
from toy import EXAMPLE, TINY, latency_budget, seed_model, toy_task

@pytest.mark.parametrize("method", ["fast-split", "signed-split", "split", "firefly", "tiny", "auto", "gradient-new",
                                    "random-split", "random-new"])
def test_grown_model_fits_every_budget_and_uses_the_binding_one(method, growth_on_meta_default_device, quick_grow):
    """(Growth events run with 'meta' as the default device: every tensor a method makes follows the model.)"""
    seed_cost = estimate(seed_model(), EXAMPLE, "host")
    budget = Budget({"latency_ms": 2.2 * seed_cost.latency_ms, "sram_kb": 4 * seed_cost.sram_bytes / 1024})
    result = quick_grow(config={"method": method}, budget=budget)
    report = estimate(result.model, EXAMPLE, "host")
    assert budget.violations(report) == []
    assert max(budget.usage(report).values()) >= 0.85, (result.stopped_by, budget.usage(report))
    assert report.macs > seed_cost.macs


def test_the_default_method_widens_a_residual_stream_an_se_gate_and_a_concat(growth_on_meta_default_device):
    """Issue 17's network of one's own: a residual block, a squeeze-and-excitation gate and two concatenated
    Hardswish branches. Splitting alone sees no curvature in the residual stream (it carries the SE gate's
    channels too) and leaves it at its seed width; the default (``auto``) widens it and both branches."""
    from growth.user_models import UserStyleNet

    def widths(method):
        torch.manual_seed(0)
        model = UserStyleNet()
        budget = Budget({"latency_ms": 3 * estimate(model, EXAMPLE, "host").latency_ms})
        result = grow(model, toy_task(), "host", budget, GrowConfig(**{**TINY, "method": method}), None,
                      log=lambda line: None)
        assert budget.violations(estimate(result.model, EXAMPLE, "host")) == []
        return model_widths(result.model, EXAMPLE)

    assert widths("fast-split")["stem"] == 8
    grown = widths(None)
    assert set(grown) == {"stem", "res1", "se_reduce", "left", "right", "block"}
    # the residual stream with the gated channels (producers stem, res2, se_expand) and both concat branches
    assert grown["stem"] > 8 and grown["left"] > 8 and grown["right"] > 8, grown


def test_events_follow_the_schedule_and_reach_the_budget_by_growth_end(quick_grow):
    result = quick_grow()
    events = growth_events(GrowConfig(**TINY), steps_per_epoch=3)
    assert [e.step for e in events] == [1, 3, 5, 7] and all(e.count == 4 for e in events)
    rows = result.log.growth
    assert rows[0].event == 0 and rows[0].step == 0  # the seed
    assert [row.step for row in rows[1:]] == [e.step for e in events][:len(rows) - 1]
    assert all(row.step <= 0.6 * 12 for row in rows)
    for row in rows[1:]:  # each event stays within its share of the budget
        assert max(row.usage.values()) <= row.usage_cap + 1e-9
    usage = max(result.usage.values())
    assert usage >= 0.85 and result.summary.events >= 2


def test_usage_caps_rise_in_equal_steps_to_the_whole_budget():
    caps = [GrowthEvent(k, 4, 10 * k).usage_cap(0.2) for k in range(1, 5)]
    assert caps == pytest.approx([0.4, 0.6, 0.8, 1.0])
    config = GrowConfig(**{**TINY, "growth_every": 10.0})  # longer than the run: one event
    assert len(growth_events(config, 3)) == 1


def test_one_optimizer_and_one_learning_rate_schedule_span_the_whole_run(monkeypatch, quick_grow):
    made = []
    real = loop_module.make_optimizer

    def counting(model, config):
        made.append(config)
        return real(model, config)

    monkeypatch.setattr(loop_module, "make_optimizer", counting)
    result = quick_grow()
    assert len(made) == 1, "a growth event built a new optimizer"
    config = GrowConfig(**TINY).train_config()
    for row in result.log.epochs:  # the learning rate of each epoch's last step, on the one schedule
        expected = config.learning_rate * learning_rate_factor(config, (row.step - 1) / 12, 0.5 * 3 / 12)
        assert row.learning_rate == pytest.approx(expected)
    assert [row.epoch for row in result.log.epochs] == [1, 2, 3, 4] and result.log.epochs[-1].step == 12


def test_log_checkpoint_and_summary(tmp_path, quick_grow):
    result = quick_grow()
    folder = RunFolder(tmp_path / "run")
    log, summary = read_run(folder.path)
    assert [row.row for row in log.rows][0] == "growth" and len(log.epochs) == TINY["epochs"]
    assert log.to_dicts() == result.log.to_dicts()
    mac_epochs = [row.mac_epochs for row in log.epochs]
    assert mac_epochs == sorted(mac_epochs) and summary.mac_epochs == pytest.approx(mac_epochs[-1])
    # compute is Σ MACs × examples / N: between the seed's and the final network's MACs per epoch
    assert log.growth[0].predicted["macs"] * 4 < summary.mac_epochs < log.epochs[-1].macs * 4
    assert all(row.growth_seconds > 0 for row in log.growth[1:])
    model, checkpoint = load_checkpoint(folder.file("checkpoint.pt"))
    assert checkpoint.meta["model"] == "grown" and checkpoint.meta["method"] == "tiny"  # DS-CNN's measured method
    x = torch.randn(5, 1, 49, 10)
    result.model.eval()
    torch.testing.assert_close(model(x), result.model(x))
    assert summary.widths == log.growth[-1].widths and summary.usage["latency_ms"] <= 1.0
    assert summary.kept == "grown" and summary.retrained is None
    assert summary.describe() == (f"growth: {summary.stopped_by}; budget used: latency_ms "
                                  f"{summary.usage['latency_ms']:.0%}; test accuracy {summary.test_accuracy:.1%}")
    assert summary.validation_accuracy == pytest.approx(log.epochs[-1].validation_accuracy)
    assert not folder.file("state.pt").exists() and not folder.file("before_growth.pt").exists()


def test_retrain_trains_the_found_architecture_afresh_and_keeps_the_better_on_validation(tmp_path, quick_grow):
    result = quick_grow(config={"retrain": True})
    summary = result.summary
    grown, retrained = summary.grown, summary.retrained
    assert grown is not None and retrained is not None
    assert summary.kept == ("retrained" if retrained.validation_accuracy > grown.validation_accuracy else "grown")
    assert summary.validation_accuracy == getattr(summary, summary.kept).validation_accuracy
    assert len(result.log.phase("retrain")) == TINY["epochs"] and len(result.log.phase("grow")) == TINY["epochs"]
    folder = tmp_path / "run"
    grown_model, _ = load_checkpoint(folder / "grown.pt")
    retrained_model, meta = load_checkpoint(folder / "retrained.pt")
    assert meta.meta["model"] == "retrained"
    shapes = [p.shape for p in grown_model.parameters()]
    assert [p.shape for p in retrained_model.parameters()] == shapes  # the same architecture
    assert any(not torch.equal(a, b) for a, b in zip(grown_model.parameters(), retrained_model.parameters()))
    # retraining starts from fresh weights: its first epoch's loss is the untrained network's, not the grown one's
    first_retrain = result.log.phase("retrain")[0]
    assert first_retrain.train_loss > result.log.phase("grow")[-1].train_loss
    assert retrained.mac_epochs == pytest.approx(result.log.phase("retrain")[-1].macs * TINY["epochs"], rel=1e-6)
    kept, _ = load_checkpoint(folder / "checkpoint.pt")
    x = torch.randn(3, 1, 49, 10)
    torch.testing.assert_close(kept(x), (retrained_model if summary.kept == "retrained" else grown_model)(x))


def test_retraining_shrinks_its_convolutions_at_every_scheduled_event_step(monkeypatch, quick_grow):
    """The retraining gets the grow run's recipe without growth: the convolutions scaled by ``shrink`` at
    each scheduled event's step (as the uniform+shrink baseline is), whether or not growth took it."""
    calls = []
    real = loop_module.shrink_convolutions

    def record(model, factor):
        calls.append((factor, training_step[0]()))
        real(model, factor)

    training_step = [lambda: None]
    real_train_phase = loop_module._train_phase

    def phase(run):
        training_step[0] = lambda: (run.state.phase, run.training.step)
        real_train_phase(run)

    monkeypatch.setattr(loop_module, "shrink_convolutions", record)
    monkeypatch.setattr(loop_module, "_train_phase", phase)
    quick_grow(config={"retrain": True, "shrink": 0.5})
    events = growth_events(GrowConfig(**TINY), 3)  # 192 examples at batch 64: 3 steps an epoch
    assert calls == [(0.5, ("retrain", event.step)) for event in events]
    calls.clear()
    quick_grow("plain", config={"retrain": True, "shrink": 1.0})
    assert calls == []  # shrink 1: no stop, no scaling


def test_restart_grows_until_growth_ends_then_trains_the_found_architecture_for_the_rest_of_the_run(tmp_path, quick_grow):
    """Growth as search within one run: TINY's 4 epochs of 3 steps with growth_end 0.6 grow for 3 epochs
    (events at steps 1, 3, 5 and 7), then the found architecture trains from fresh weights for 1 epoch with
    its own schedule; the run's compute is the two phases' and the better of the two on validation is kept."""
    result = quick_grow(config={"restart": True, "shrink": 0.5, "restart_keep": 0.0})
    summary, log = result.summary, result.log
    grow_rows, retrain_rows = log.phase("grow"), log.phase("retrain")
    assert [row.step for row in grow_rows] == [3, 6, 9] and [row.step for row in retrain_rows] == [3]
    assert [row.step for row in log.growth[1:]] == [event.step for event in growth_events(GrowConfig(**TINY), 3)]
    assert summary.grown.epochs == 3 and summary.retrained.epochs == 1
    # the retraining's one epoch is its own run: warm-up, then the schedule down to its end
    config = GrowConfig(**{**TINY, "restart": True}).train_config()
    assert retrain_rows[0].learning_rate == pytest.approx(config.learning_rate * learning_rate_factor(config, 2 / 3, 0.5))
    assert retrain_rows[0].train_loss > grow_rows[-1].train_loss  # fresh weights
    folder = tmp_path / "run"
    grown_model, _ = load_checkpoint(folder / "grown.pt")
    retrained_model, _ = load_checkpoint(folder / "retrained.pt")
    assert [p.shape for p in retrained_model.parameters()] == [p.shape for p in grown_model.parameters()]
    assert summary.mac_epochs == pytest.approx(summary.grown.mac_epochs + summary.retrained.mac_epochs)
    assert summary.retrained.mac_epochs == pytest.approx(retrain_rows[-1].macs * 1, rel=1e-6)
    assert summary.kept == ("retrained" if summary.retrained.validation_accuracy > summary.grown.validation_accuracy
                            else "grown")
    assert summary.describe().endswith(f"test accuracy {summary.test_accuracy:.1%}; kept the {summary.kept} network "
                                       "(validation)")


@pytest.mark.parametrize("keep", [0.0, 0.5, 1.0])
def test_a_restart_starts_from_the_grown_weights_blended_with_fresh_ones(tmp_path, quick_grow, monkeypatch, keep):
    """The found architecture's start is blend_with_fresh(fresh draw, the grown network, restart_keep):
    called once, at the end of the search, with the network grown.pt holds; the log says how it starts."""
    calls, lines = [], []
    original = loop_module.blend_with_fresh

    def spy(fresh, grown, share):
        calls.append(({name: t.detach().clone() for name, t in grown.state_dict().items()}, share))
        return original(fresh, grown, share)

    monkeypatch.setattr(loop_module, "blend_with_fresh", spy)
    quick_grow(config={"restart": True, "shrink": 0.5, "restart_keep": keep}, log=lines.append)
    assert [share for _, share in calls] == [keep]
    grown_model, _ = load_checkpoint(tmp_path / "run" / "grown.pt")
    for name, tensor in grown_model.state_dict().items():
        torch.testing.assert_close(calls[0][0][name], tensor)
    start = GrowConfig(**{**TINY, "restart_keep": keep}).restart_start
    assert any(f"training the found architecture from {start} for the run's last" in line for line in lines)


def test_the_family_default_restart_gives_way_to_growing_in_place_on_a_few_batches_of_data(quick_grow):
    """DS-CNN restarts by default, but not where the found architecture would get fewer than
    MIN_RESTART_STEPS optimizer steps after growth (the toy task: 3 steps an epoch); it says so."""
    lines = []
    settings = {**TINY, "restart": None}
    result = quick_grow(config=settings, log=lines.append)
    assert result.summary.retrained is None and len(result.log.phase("grow")) == TINY["epochs"]
    assert any(f"only 3 optimizer steps after growth, fewer than the {MIN_RESTART_STEPS}" in line for line in lines)
    big = toy_task(examples=64 * MIN_RESTART_STEPS)  # 300 steps an epoch: the default holds
    assert GrowConfig(**settings).for_family("ds-cnn", len(big.train)).restart


def test_resume_of_a_finished_run_returns_it_and_other_settings_are_refused(quick_grow):
    first = quick_grow()
    with pytest.raises(ValueError, match="already holds a grow run; pass --resume"):
        quick_grow()
    with pytest.raises(ValueError, match="another method 'tiny'"):  # DS-CNN's measured method
        quick_grow(config={"method": "split"}, resume=True)
    again = quick_grow(resume=True)
    assert again.log.to_dicts() == first.log.to_dicts() and again.summary == first.summary


def test_seed_over_budget_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(loop_module.Training, "run",
                        lambda *a, **k: pytest.fail("trained despite an impossible budget"))
    with pytest.raises(ValueError, match=r"the seed already exceeds the budget on host \(macs .* > 1000\)"):
        grow(seed_model(), toy_task(), "host", Budget({"macs": 1000}), GrowConfig(**TINY), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_seed_of_a_given_width_grows_and_its_checkpoint_rebuilds(tmp_path):
    from edgegrow.models import build_seed
    from edgegrow.tasks import Task

    task = Task(toy_task(), "ds-cnn", {"num_classes": 4}).with_seed_width(0.25)
    seed = task.seed()
    assert seed.features[0][1].out_channels == 16  # DS-CNN-S (64 channels) × 0.25
    budget = Budget({"latency_ms": 1.8 * estimate(seed, EXAMPLE, "host").latency_ms})
    result = grow(seed, task.data, "host", budget, GrowConfig(**TINY), tmp_path / "run", family=task.family,
                  seed_options=task.seed_options, log=lambda line: None)
    model, checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert checkpoint.seed_options["width_multiplier"] == 0.25
    assert [p.shape for p in model.parameters()] == [p.shape for p in result.model.parameters()]
    assert build_seed("ds-cnn", num_classes=4, width_multiplier=0.5).features[0][1].out_channels == 32
    with pytest.raises(ValueError, match="seed width must be a width multiplier"):
        task.with_seed_width(-1)


def test_shrink_and_method_left_unset_are_the_familys_measured_values():
    assert GrowConfig().shrink is None and GrowConfig().method is None
    assert GrowConfig().for_family("ds-cnn").shrink == 0.5  # models/shapes/ds_cnn.json "growth"
    assert GrowConfig().for_family("mobilenet-v2").shrink == 1.0  # no measured value: off
    assert GrowConfig().for_family("custom").shrink == 1.0
    assert GrowConfig(shrink=0.7).for_family("ds-cnn").shrink == 0.7  # a given value is kept
    assert GrowConfig().for_family("ds-cnn").method == "tiny"
    assert GrowConfig().for_family("mobilenet-v2").method == "auto"  # models/shapes/mobilenet_v2.json "growth"
    assert GrowConfig().for_family("resnet8").method == "auto"  # no measured method: the fallback
    assert GrowConfig().for_family("custom").method == "auto"
    assert GrowConfig(method="firefly").for_family("ds-cnn").method == "firefly"
    # restart: DS-CNN's measured default, off for the others, with --retrain, and where the run is too short
    assert GrowConfig().for_family("ds-cnn").restart is True
    assert GrowConfig().for_family("mobilenet-v2").restart is False
    assert GrowConfig().for_family("custom").restart is False
    assert GrowConfig(retrain=True).for_family("ds-cnn").restart is False
    assert GrowConfig(restart=False).for_family("ds-cnn").restart is False
    assert GrowConfig(epochs=2).for_family("ds-cnn").restart is False  # 1 epoch left, a 1-epoch warm-up
    with pytest.raises(ValueError, match=r"restart leaves 1 epoch\(s\).*--no-restart"):
        GrowConfig(epochs=2, restart=True)
    assert GrowConfig(method="random").method == "random-split"  # aliases resolve when given


def test_a_run_shrinks_by_its_familys_value_and_records_it(tmp_path, monkeypatch, quick_grow):
    import edgegrow.grow.growth_step as growth_step

    factors = []
    original = growth_step.shrink_convolutions
    monkeypatch.setattr(growth_step, "shrink_convolutions", lambda model, f: (factors.append(f), original(model, f)))
    quick_grow("zoo")
    zoo = json.loads((tmp_path / "zoo" / "run.json").read_text())["config"]["shrink"]
    zoo_factors, factors[:] = list(factors), []
    grow(seed_model(), toy_task(), "host", latency_budget(2.2), GrowConfig(**TINY), tmp_path / "own",
         log=lambda line: None)  # a network of your own
    own = json.loads((tmp_path / "own" / "run.json").read_text())["config"]["shrink"]
    assert zoo == 0.5 and zoo_factors and set(zoo_factors) == {0.5}
    assert own == 1.0 and factors and set(factors) == {1.0}


def test_a_registered_method_is_used_by_name(quick_grow):
    class FirstGroupOnly:
        name = "first-group-only"

        def propose(self, model, context):
            from edgegrow.growth import find_channel_groups, growable_groups

            group = growable_groups(find_channel_groups(model, context.example_input))[0]
            return [Candidate("new", group.name, 1.0) for _ in range(8)]

    register_method(FirstGroupOnly())
    try:
        result = quick_grow(config={"method": "first-group-only"})
        widths = result.summary.widths
        first, *others = widths.values()
        assert first > 8 and all(width == 8 for width in others)
    finally:
        from edgegrow.grow import methods

        methods._REGISTRY.pop("first-group-only")
        methods.METHODS.remove("first-group-only")
    with pytest.raises(ValueError, match="unknown growth method 'first-group-only'"):
        growth_method("first-group-only")


@pytest.mark.parametrize("settings,message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"growth_end": 1.5}, r"growth_end must be a share in \[0, 1\]"),
    ({"growth_start": 0.5, "growth_end": 0.4}, r"growth_start \(0.5\) must not be after growth_end \(0.4\)"),
    ({"growth_every": 0}, "growth_every must be a finite number > 0"),
    ({"shrink": 0}, r"shrink must be a share in \(0, 1\]"),
    ({"newborn_state": "fresh"}, "unknown newborn_state 'fresh'"),
    ({"optimizer": "lion"}, "unknown optimizer 'lion'"),
    ({"warmup_epochs": 4}, r"warmup_epochs \(4\) must be fewer than epochs \(4\)"),
    ({"learning_rate": math.inf}, "learning_rate must be a finite number > 0"),
    ({"label_smoothing": 1.0}, r"label_smoothing must be a share in \[0, 1\)"),
    ({"restart": True, "retrain": True}, "retrain and restart exclude each other"),
    ({"restart": True, "growth_end": 0.8}, "restart needs growth to end before the last epoch: growth_end 0.8 of 4"),
    ({"restart": True, "warmup_epochs": 1.0}, r"restart leaves 1 epoch\(s\) after growth, not more than the warm-up"),
])
def test_bad_grow_settings_are_clear_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        GrowConfig(**{**TINY, **settings})


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
    (["--budget", "latency_ms=0.1", "--growth-end", "2"], "edgegrow grow: error: growth_end must be a share"),
    (["--budget", "latency_ms=0.1", "--epochs", "0"], "edgegrow grow: error: epochs must be a positive integer"),
    (["--budget", "latency_ms=0.1", "--optimizer", "lion"], "edgegrow grow: error: argument --optimizer: invalid"),
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


def test_training_flags_reach_the_config(monkeypatch, tmp_path):
    seen = {}

    def fake_grow(model, data, target, budget, config, out, **kwargs):
        seen["config"], seen["callbacks"] = config, kwargs["callbacks"]
        raise ValueError("stop here")

    monkeypatch.setattr("edgegrow.grow.grow", fake_grow)
    monkeypatch.setattr("edgegrow.tasks.load_task", lambda *a, **k: _fake_task())
    argv = ["grow", "--task", "kws", "--target", "host", "--budget", "latency_ms=1", "--out", str(tmp_path / "r"),
            "--epochs", "7", "--lr", "0.003", "--batch-size", "32", "--optimizer", "adamw", "--weight-decay", "0.01",
            "--warmup", "2", "--label-smoothing", "0.1", "--growth-end", "0.3", "--growth-every", "0.5",
            "--shrink", "0.7", "--retrain", "--tensorboard", "--quiet"]
    assert main(argv) == 2
    config = seen["config"]
    assert (config.epochs, config.learning_rate, config.batch_size, config.optimizer, config.weight_decay,
            config.warmup_epochs, config.label_smoothing, config.growth_end, config.growth_every, config.shrink,
            config.retrain) == (7, 0.003, 32, "adamw", 0.01, 2.0, 0.1, 0.3, 0.5, 0.7, True)
    from edgegrow.grow import TensorBoardLog

    [tensorboard] = seen["callbacks"]
    assert isinstance(tensorboard, TensorBoardLog) and tensorboard.log_dir == tmp_path / "r" / "tensorboard"


@pytest.mark.parametrize("flags,note", [
    (["--no-restart"], "restart is off (--no-restart"),
    (["--retrain"], "--retrain trains the found architecture from fresh weights instead"),
    ([], "the found architecture would get only 18 optimizer steps after growth"),  # toy: 3 steps an epoch, 6 epochs after the search
    (["--family", "mobilenet-v2"], "mobilenet-v2 grows in place by default; add --restart"),
    (["--restart"], None),
])
def test_restart_keep_without_a_restart_says_it_has_no_effect(flags, note, monkeypatch, tmp_path, capsys):
    """--restart-keep only changes a restart: a run that grows in place says why the flag does nothing."""
    from edgegrow.tasks import Task

    family = flags[1] if flags[:1] == ["--family"] else "ds-cnn"
    monkeypatch.setattr("edgegrow.grow.grow", lambda *a, **k: (_ for _ in ()).throw(ValueError("stop here")))
    monkeypatch.setattr("edgegrow.tasks.load_task", lambda *a, **k: Task(toy_task(), family, {"num_classes": 4}))
    monkeypatch.setattr("edgegrow.baseline.seed_width_for", lambda *a, **k: None)
    argv = ["grow", "--task", "kws", "--target", "host", "--budget", "latency_ms=1", "--out", str(tmp_path / "r"),
            "--epochs", "8", "--restart-keep", "0.25", *flags]
    assert main(argv) == 2
    out = capsys.readouterr().out
    if note is None:
        assert "--restart-keep" not in out and "blended with fresh ones (keep 0.25)" in out
    else:
        assert f"note: --restart-keep 0.25 has no effect: {note}" in out


def _fake_task():
    from edgegrow.tasks import Task

    return Task(toy_task(), "ds-cnn", {"num_classes": 4})


def test_run_files_get_the_usual_permissions(tmp_path, quick_grow):
    import os

    umask = os.umask(0o022)
    try:
        quick_grow(budget=latency_budget(1.5))
    finally:
        os.umask(umask)
    for name in ("checkpoint.pt", "grown.pt", "log.jsonl", "summary.json", "run.json", "report.html"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name
    assert json.loads((tmp_path / "run" / "run.json").read_text())["format"] == "edgegrow-run/2"


@pytest.mark.parametrize("method", ["random-new", "firefly"])
def test_new_neuron_methods_propose_new_per_group_neurons_in_every_group(method):
    """Every method that adds new neurons proposes the same count per group, whatever the group's
    width: proposing one per channel (or half) gave a wide group most of every event's candidates.
    ``new_fraction`` brings back the count proportional to the width."""
    from edgegrow.grow.methods import ProposalContext
    from edgegrow.growth.candidates import apply_candidates
    from edgegrow.growth.channel_groups import find_channel_groups, growable_groups
    from edgegrow.growth.staged_edit import group_width

    model = seed_model()
    first = growable_groups(find_channel_groups(model, EXAMPLE))[0].name
    apply_candidates(model, [Candidate("new", first, 0.0)] * 24, EXAMPLE)  # 8 → 32 channels
    task = toy_task()
    batches = [(task.train.inputs[:32], task.train.labels[:32])]
    widths = {g.name: group_width(model, g) for g in growable_groups(find_channel_groups(model, EXAMPLE))}
    assert len(set(widths.values())) > 1  # groups of different widths
    for settings, expected in (({"new_per_group": 3}, dict.fromkeys(widths, 3)),
                               ({"new_fraction": 0.25}, {n: math.ceil(0.25 * w) for n, w in widths.items()})):
        config = GrowConfig(**TINY, **settings)
        context = ProposalContext(config, EXAMPLE, batches, torch.nn.functional.cross_entropy,
                                  torch.Generator().manual_seed(0), 0, 1, 1, lambda after, kind: {})
        counts = dict.fromkeys(widths, 0)
        for candidate in growth_method(method).propose(model, context):
            if candidate.kind == "new":
                counts[candidate.group] += 1
        assert counts == expected, settings


def test_a_record_from_before_new_per_group_reads_with_the_counts_it_ran_with():
    old = {**GrowConfig().to_dict(), "method": "firefly"}
    del old["new_per_group"], old["new_fraction"]
    old.update(tiny_neurons=12, firefly_new_fraction=0.25)
    config = GrowConfig.from_dict(old)
    assert (config.new_per_group, config.new_fraction) == (12, 0.25)
    old.update(method="random-new")
    assert GrowConfig.from_dict(old).new_fraction == 1.0
    old.update(method="tiny")
    assert GrowConfig.from_dict(old).new_fraction is None


def test_firefly_proposes_splits_only_when_asked_and_old_records_keep_them():
    from edgegrow.grow.methods import ProposalContext
    from edgegrow.growth.channel_groups import find_channel_groups, growable_groups
    from edgegrow.growth.staged_edit import group_width

    model = seed_model()
    task = toy_task()
    batches = [(task.train.inputs[:32], task.train.labels[:32])]
    channels = sum(group_width(model, g) for g in growable_groups(find_channel_groups(model, EXAMPLE)))
    kinds = {}
    for splits in (False, True):
        context = ProposalContext(GrowConfig(**TINY, firefly_splits=splits), EXAMPLE, batches,
                                  torch.nn.functional.cross_entropy, torch.Generator().manual_seed(0), 0, 1, 1,
                                  lambda after, kind: {})
        found = [c.kind for c in growth_method("firefly").propose(model, context)]
        kinds[splits] = (found.count("split"), found.count("new") > 0)
    assert kinds == {False: (0, True), True: (channels, True)}
    old = GrowConfig(firefly_splits=False).to_dict()
    del old["firefly_splits"]
    assert GrowConfig.from_dict(old).firefly_splits is True
    with pytest.raises(ValueError, match="firefly_splits must be true or false, got 'yes'"):
        GrowConfig(firefly_splits="yes")


def test_tiny_fills_each_group_with_fresh_neurons_after_its_own():
    """TINY finds at most as many neurons as the bottleneck's rank (4 for the classifier's group of a
    4-class task); the method completes each group to new_per_group with fresh, zero-scored neurons."""
    from edgegrow.grow.methods import ProposalContext

    model = seed_model()
    task = toy_task()
    config = GrowConfig(**TINY, new_per_group=12)
    batches = [(task.train.inputs[:64], task.train.labels[:64])]
    context = ProposalContext(config, EXAMPLE, batches, torch.nn.functional.cross_entropy,
                              torch.Generator().manual_seed(0), 0, 1, 1, lambda after, kind: {})
    candidates = growth_method("tiny").propose(model, context)
    by_group = {}
    for candidate in candidates:
        by_group.setdefault(candidate.group, []).append(candidate)
    assert len(by_group) == 5 and all(len(group) == 12 for group in by_group.values())
    last = list(by_group.values())[-1]  # read by the 4-output classifier: TINY's rank is at most 4
    assert 1 <= sum(bool(c.fan_in) for c in last) <= 4
    for group in by_group.values():
        own = [bool(c.fan_in) for c in group]
        assert own == sorted(own, reverse=True)  # TINY's neurons first, then the fresh ones
        assert all(c.predicted_decrease == 0.0 and not c.fan_out for c in group if not c.fan_in)
