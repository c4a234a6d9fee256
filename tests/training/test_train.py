import math

import pytest
import torch
from torch import nn

from edgegrow.data.task_data import Split, TaskData
from edgegrow.training import TrainConfig, evaluate, learning_rate_factor, make_optimizer, train


def blobs(n=240, seed=0):
    """Three Gaussian blobs in 4-D, as (N, 4, 1, 1) 'images': an easy task a tiny net must learn."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    centres = torch.tensor([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0]])
    inputs = (centres[labels] + torch.randn(n, 4, generator=generator)).view(n, 4, 1, 1)
    split = lambda a, b: Split(inputs[a:b], labels[a:b])  # noqa: E731
    return TaskData("blobs", ["a", "b", "c"], split(0, 160), split(160, 200), split(200, 240))


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def test_training_learns_an_easy_task_and_records_history():
    task = blobs()
    model = tiny_model()
    result = train(model, task, TrainConfig(epochs=8, batch_size=16, learning_rate=1e-2), progress=False)
    assert [r.epoch for r in result.history] == list(range(1, 9))
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.history[-1].validation_accuracy > 0.9
    assert evaluate(model, task.test, task.class_names).accuracy > 0.9
    assert result.stopped_by == "epochs" and result.samples_seen == 8 * 160


def test_same_seed_gives_identical_results():
    histories = []
    for _ in range(2):
        result = train(tiny_model(), blobs(), TrainConfig(epochs=3, batch_size=16, seed=5), progress=False)
        histories.append([(r.train_loss, r.validation_loss) for r in result.history])
    assert histories[0] == histories[1]


@pytest.mark.parametrize("limit,stopped_by", [
    ({"max_samples": 50}, "max_samples"), ({"max_seconds": 1e-9}, "max_seconds"),
])
def test_budget_stops_training_early(limit, stopped_by):
    result = train(tiny_model(), blobs(), TrainConfig(epochs=50, batch_size=16, **limit), progress=False)
    assert result.stopped_by == stopped_by and len(result.history) == 1
    assert result.samples_seen < 160


def test_evaluation_confusion_matrix_and_per_class_accuracy():
    task = blobs()
    model = tiny_model()
    evaluation = evaluate(model, task.test, task.class_names)
    assert evaluation.confusion.sum().item() == len(task.test)
    for i, accuracy in enumerate(evaluation.per_class_accuracy):
        row = evaluation.confusion[i]
        assert accuracy == pytest.approx((row[i] / row.sum()).item())
    assert evaluation.accuracy == pytest.approx(evaluation.confusion.diag().sum().item() / len(task.test))
    assert "a" in evaluation.format_confusion().splitlines()[1]


def test_schedules():
    cosine = TrainConfig(epochs=10)
    assert learning_rate_factor(cosine, 0.0) == 1.0 and learning_rate_factor(cosine, 1.0) < 1e-9
    assert learning_rate_factor(cosine, 0.5) == pytest.approx(0.5)
    step = TrainConfig(epochs=10, schedule="step")
    assert [learning_rate_factor(step, p) for p in (0.1, 0.6, 0.8)] == pytest.approx([1, 0.1, 0.01])
    warm = TrainConfig(epochs=10, warmup_epochs=2, schedule="constant")
    assert learning_rate_factor(warm, 0.05) < 0.3 and learning_rate_factor(warm, 0.5) == 1.0
    assert math.isclose(learning_rate_factor(TrainConfig(schedule="constant"), 0.7), 1.0)


def test_continuing_with_a_given_optimizer_keeps_its_state():
    task, model = blobs(), tiny_model()
    config = TrainConfig(epochs=1, batch_size=16, optimizer="sgd", learning_rate=0.05)
    optimizer = make_optimizer(model, config)
    train(model, task, config, optimizer=optimizer, progress=False)
    momentum = optimizer.state[model[1].weight]["momentum_buffer"].clone()
    train(model, task, config, optimizer=optimizer, progress=False)
    assert not torch.equal(momentum, optimizer.state[model[1].weight]["momentum_buffer"])


@pytest.mark.parametrize("options,message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"batch_size": -1}, "batch_size must be a positive integer"),
    ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
    ({"schedule": "linear"}, "unknown schedule 'linear'"),
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number > 0"),
    ({"max_seconds": 0}, "max_seconds must be > 0"),
])
def test_bad_training_config_is_a_clear_error(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**options)


def test_a_run_stopped_at_any_step_and_continued_equals_one_that_never_stopped():
    from edgegrow.training import Training

    config = TrainConfig(epochs=3, batch_size=16, warmup_epochs=0.5, seed=2)
    whole = Training(tiny_model(), blobs(), config)
    whole.run()
    first = Training(tiny_model(), blobs(), config)
    assert first.run(7) == "until" and first.step == 7
    state = {key: value for key, value in first.state_dict().items()}
    model = first.model
    second = Training(model, blobs(), config)
    second.load_state_dict(state)
    assert second.run() == "epochs" and second.finished
    assert [(r.train_loss, r.validation_loss, r.learning_rate) for r in second.history] == \
        [(r.train_loss, r.validation_loss, r.learning_rate) for r in whole.history]
    for a, b in zip(whole.model.parameters(), second.model.parameters()):
        torch.testing.assert_close(a, b)


def test_a_run_of_a_given_length_in_steps_spans_its_schedule_over_them():
    from edgegrow.training import Training

    training = Training(tiny_model(), blobs(), TrainConfig(epochs=2, batch_size=16, steps=15))
    assert training.total_steps == 15 and training.run() == "epochs"
    assert [r.epoch for r in training.history] == [1, 2] and training.samples_seen == 15 * 16
    peak = training.config.learning_rate
    assert training.learning_rate(14) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 14 / 15)))
    assert training.learning_rate(14) < 0.02 * peak


def test_one_cycle_ends_at_a_25th_of_the_peak():
    config = TrainConfig(epochs=10, schedule="one-cycle", warmup_epochs=3)
    assert learning_rate_factor(config, 0.1) < 1 and learning_rate_factor(config, 0.3) == pytest.approx(1.0)
    assert learning_rate_factor(config, 1.0) == pytest.approx(1 / 25)
