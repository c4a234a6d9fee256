"""Where a run computes (issue 18 item 1): ``--device`` names resolve to this machine's devices or fail
in one line; every tensor that growth and training make either follows the model or names its device,
checked without a GPU by making 'meta' the default device while they run (a tensor made without a
device lands there and breaks on first use beside the model's CPU tensors, as it would beside a GPU's);
checkpoints hold CPU tensors; and on a machine with CUDA a run grows there and resumes on the CPU."""
import pytest
import torch
from toy import EXAMPLE, TINY, grow_toy, latency_budget, seed_model, toy_task

from cost_models import estimate
from edgegrow.checkpoint import load_checkpoint
from edgegrow.grow import GrowConfig, read_run
from edgegrow.training import Training, resolve_device
from edgegrow.training.device import to_cpu

CUDA = torch.cuda.is_available()


def test_device_names_resolve_to_this_machines_devices(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cpu")  # not MPS: growth statistics need float64
    assert resolve_device("mps") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU.*use --device cpu or auto"):
        resolve_device("cuda:0")
    with pytest.raises(ValueError, match="no Apple MPS"):
        resolve_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="has 2 CUDA GPU"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "", "cuda0"])
def test_a_malformed_device_name_is_refused_by_the_config(name):
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda, cuda:N or mps"):
        GrowConfig(device=name)


def test_training_and_evaluation_leave_no_tensor_on_the_default_device(monkeypatch, run_on_meta_default_device):
    """(Growth events are checked the same way in tests/test_grow.py, fixture growth_on_meta_default_device.)"""
    from edgegrow.training import TrainConfig, evaluate

    on_meta_default_device = run_on_meta_default_device
    monkeypatch.setattr(Training, "run", on_meta_default_device(Training.run))
    data, model = toy_task(), seed_model()
    training = Training(model, data, TrainConfig(epochs=1, batch_size=64, device="cpu"))
    assert training.run() == "epochs" and training.history[0].validation_accuracy is not None
    assert on_meta_default_device(evaluate)(model, data.test, data.class_names).confusion.sum() == len(data.test)


def test_checkpoint_tensors_are_written_as_cpu_tensors():
    class Odd:  # stands for a GPU tensor: whatever to_cpu is given, the result must be plain CPU tensors
        pass

    state = {"optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 0.1}]},
             "rng": torch.get_rng_state(), "history": [{"epoch": 1}], "pair": (torch.zeros(1), 3), "odd": Odd}
    cpu = to_cpu(state)
    assert cpu["optimizer"]["state"][0]["exp_avg"].device.type == "cpu" and cpu["pair"][1] == 3
    assert cpu["history"] == [{"epoch": 1}] and cpu["odd"] is Odd and isinstance(cpu["pair"], tuple)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False here)")
def test_a_run_grows_on_the_gpu_and_resumes_on_the_cpu(tmp_path):
    import edgegrow.grow.loop as loop_module

    budget = latency_budget(2.2)
    config = GrowConfig(**{**TINY, "device": "cuda"})
    stop = {"saves": 0}
    real_save = loop_module.save_checkpoint

    def save_then_stop(path, model, checkpoint):
        real_save(path, model, checkpoint)
        if path.name == "state.pt":
            stop["saves"] += 1
            if stop["saves"] == 2:
                raise KeyboardInterrupt

    loop_module.save_checkpoint = save_then_stop
    try:
        with pytest.raises(KeyboardInterrupt):
            grow_toy(tmp_path / "run", config, budget)
    finally:
        loop_module.save_checkpoint = real_save
    result = grow_toy(tmp_path / "run", {"device": "cpu"}, budget, resume=True)
    log, summary = read_run(tmp_path / "run")
    assert len(log.phase("grow")) == TINY["epochs"] and summary.events >= 1
    model, _ = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert budget.violations(estimate(model, EXAMPLE, "host")) == [] and result.model is not None
