"""Growth on several processes with torch.distributed (gloo, 2 CPU processes under torchrun): the same
network and, within float tolerance, the same metrics as one process with the same global batch; only
rank 0 writes; a NaN on one rank rolls every rank back; a killed rank ends the job with one clear line
and a run folder that resumes.

The jobs are real ``torchrun`` launches (one per test module for the API checks, one for the CLI).
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from toy import TINY, grow_toy

from edgegrow.training.distributed import World, check_batch_divisible, current_world

TESTS = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
# Two processes sum gradients and BatchNorm statistics in another order than one process: the runs differ
# by float rounding (1e-8 relative here), which the comparison must not amplify. So SGD: Adam divides by
# √v, which turns rounding noise in a near-zero gradient into a full step. And random-new: a method that
# ranks neurons or line-searches a grid (splitting, TINY) can break a near-tie the other way on 1e-8 (on
# this toy, fast-split chooses the same widths but other neurons at its last event: 1e-3 apart after it).
# Which method decides does not matter here: rank 0 decides and the other ranks take its network whole.
# new_fraction 1: one random neuron per channel, the candidates the tolerances below were measured with
# (with new_per_group's 16 the neurons drawn amplify the rounding to 1e-5 by epoch 2).
CONFIG = {**TINY, "device": "cpu", "optimizer": "sgd", "method": "random-new", "new_fraction": 1.0,
          "sync_batch_norm": True}

JOB = textwrap.dedent("""
    import json, os, sys
    import torch
    import torch.nn.functional as F
    sys.path.extend([{tests!r}, {tests!r} + "/training"])
    from toy import latency_budget, seed_model, toy_task
    from test_distributed import CONFIG
    from edgegrow.grow import GrowConfig, grow
    from edgegrow.training.distributed import current_world, init_from_environment, synced_batch_norm
    torch.set_num_threads(1)
    world = init_from_environment("cpu")
    out = {out!r}

    # 1. BatchNorm over the global batch: this rank's half through the synced layer, the whole batch
    #    through a plain copy of it
    torch.manual_seed(0)
    layer = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5), layer.bias.uniform_(-1, 1)
    whole = torch.randn(10, 3, 4, 5) * 3 + 1
    weights = torch.arange(whole.numel()).view_as(whole).float().sin()  # a loss that is not symmetric
    mine = whole[world.rank::2].clone().requires_grad_(True)
    with synced_batch_norm(layer, world):
        y = layer(mine)
    (y * weights[world.rank::2]).sum().backward()
    torch.manual_seed(0)
    plain = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 1.5), plain.bias.uniform_(-1, 1)
    inputs = whole.clone().requires_grad_(True)
    z = plain(inputs)
    (z * weights).sum().backward()
    picked = list(range(world.rank, 10, 2))
    # each rank's weight gradient is its share; the sum over ranks is the whole batch's
    weight_grad = layer.weight.grad.clone()
    torch.distributed.all_reduce(weight_grad)
    checks = {{
        "output": (y - z[picked]).abs().max().item(),
        "input_grad": (mine.grad - inputs.grad[picked]).abs().max().item(),
        "weight_grad": (weight_grad - plain.weight.grad).abs().max().item(),
        "running_mean": (layer.running_mean - plain.running_mean).abs().max().item(),
        "running_var": (layer.running_var - plain.running_var).abs().max().item(),
        "forward_restored": "forward" not in vars(layer),
    }}
    # each process's own BatchNorm statistics (the default): every rank still ends with rank 0's network
    from edgegrow.training import TrainConfig
    from edgegrow.training.train import Training
    model = seed_model()
    Training(model, toy_task(), TrainConfig(epochs=1, batch_size=64, device="cpu")).run()
    sums = torch.tensor([sum(p.double().sum() for p in model.parameters()),
                         sum(b.double().sum() for b in model.buffers())], dtype=torch.float64)
    gathered = [torch.zeros(2, dtype=torch.float64) for _ in range(2)]
    torch.distributed.all_gather(gathered, sums)
    checks["local_statistics_same_network"] = torch.equal(gathered[0], gathered[1])
    if world.main:
        with open(os.path.join(out, "batch_norm.json"), "w") as f:
            json.dump(checks, f)

    # 2. a grow run, as one process would make it with the same global batch
    grow(seed_model(), toy_task(), "host", latency_budget(2.2), GrowConfig(**CONFIG), os.path.join(out, "whole"),
         family="ds-cnn", seed_options={{"num_classes": 4}}, log=lambda line: None)

    # 3. rank 1 alone sees a NaN loss at the first training step after the first growth event
    steps = {{"n": 0}}
    def loss(logits, labels):
        value = F.cross_entropy(logits, labels)
        if world.rank == 1 and torch.is_grad_enabled():
            steps["n"] += 1
            if steps["n"] == 2:  # step 1 trains, the event at step 1 grows, step 2 is poisoned
                return value * float("nan")
        return value
    lines = []
    grow(seed_model(), toy_task(), "host", latency_budget(2.2), GrowConfig(**CONFIG), os.path.join(out, "nan"),
         family="ds-cnn", seed_options={{"num_classes": 4}}, log=lines.append, loss_function=loss)
    with open(os.path.join(out, f"nan-lines-{{world.rank}}.json"), "w") as f:
        json.dump(lines, f)
""")


def torchrun(args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS.parent),
                                                                     os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("job")
    script = out / "job.py"
    script.write_text(JOB.format(tests=str(TESTS), out=str(out)))
    done = torchrun([str(script)], cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_batch_norm_over_two_processes_equals_one_over_the_whole_batch(job):
    checks = json.loads((job / "batch_norm.json").read_text())
    assert checks.pop("forward_restored") and checks.pop("local_statistics_same_network")
    for name, difference in checks.items():
        assert difference < 1e-5, (name, difference)


def test_two_processes_grow_the_same_network_as_one_with_the_same_global_batch(job, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        grow_toy(tmp_path / "one", CONFIG)
    finally:
        torch.set_num_threads(threads)
    two, one = rows(job / "whole"), rows(tmp_path / "one")
    assert [(r["row"], r["step"], r.get("widths"), r.get("chosen")) for r in two] == \
        [(r["row"], r["step"], r.get("widths"), r.get("chosen")) for r in one]
    assert any(r.get("chosen") for r in two)  # it grew
    # rounding apart (1e-8) through epoch 2; the new neurons of the later events amplify it, by how much
    # depends on the neurons drawn (1e-8 … 1e-3 by epoch 4 over budgets of 1.6–2.2× the seed's latency;
    # training alone stays 1e-7 apart over the same 12 steps)
    epochs = [(mine, theirs) for mine, theirs in zip(two, one) if mine["row"] == "epoch"]
    for number, (mine, theirs) in enumerate(epochs, 1):
        tolerance = 1e-6 if number <= 2 else 1e-2
        assert mine["samples_seen"] == theirs["samples_seen"]  # the global batch, counted once
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=tolerance)
        assert mine["validation_loss"] == pytest.approx(theirs["validation_loss"], rel=tolerance)
        assert mine["mac_epochs"] == pytest.approx(theirs["mac_epochs"])
    summary = json.loads((job / "whole" / "summary.json").read_text())
    assert summary["test_accuracy"] == pytest.approx(json.loads((tmp_path / "one" / "summary.json").read_text())
                                                     ["test_accuracy"])
    # rank 0 alone wrote: one log line per row, no leftovers of a second writer
    assert sorted(p.name for p in (job / "whole").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_a_nan_on_one_rank_rolls_every_rank_back(job):
    summary = json.loads((job / "nan" / "summary.json").read_text())
    (fault,) = summary["numerical_faults"]
    assert fault["retry"] and fault["step"] == 1
    said = json.loads((job / "nan-lines-0.json").read_text())
    assert any("rolled the event back" in line for line in said)
    assert json.loads((job / "nan-lines-1.json").read_text()) == []  # only rank 0 logs


def test_batch_size_must_split_evenly_over_the_processes():
    check_batch_divisible(64, World(0, 2))
    with pytest.raises(ValueError, match="not a multiple of the 3 processes.*divisible by 3"):
        check_batch_divisible(64, World(0, 3))
    assert current_world() == World()  # no process group in the test process


KILLED = textwrap.dedent("""
    import os, signal, sys
    import edgegrow.grow.loop as loop
    from edgegrow.training.distributed import current_world
    real = loop._Run._epoch_done
    def epoch_done(self, record):
        real(self, record)
        if current_world().rank == 1 and record.epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    loop._Run._epoch_done = epoch_done
    from edgegrow.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_killed_rank_ends_the_job_with_one_line_and_the_run_resumes(tmp_path):
    from fake_speech_commands import write_speech_commands

    data = write_speech_commands(tmp_path / "speech", clips_per_word=6, background=False)
    (tmp_path / "killed.py").write_text(KILLED)
    run = tmp_path / "run"
    flags = ["grow", "--task", "kws", "--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--target", "host",
             "--budget", "latency_ms=0.2", "--quick", "--epochs", "4", "--batch-size", "16", "--device", "cpu",
             "--out", str(run)]
    killed = torchrun([str(tmp_path / "killed.py"), *flags], cwd=tmp_path)
    assert killed.returncode != 0
    said = [line for line in killed.stderr.splitlines() if line.startswith("edgegrow grow:")]
    assert len(said) == 1 and "failed on rank 0" in said[0] and f"--resume {run}" in said[0], killed.stderr[-3000:]
    assert "Traceback" not in killed.stderr.split("edgegrow grow:")[0]  # no traceback of ours before the line
    assert (run / "state.pt").exists() and not (run / "checkpoint.pt").exists()
    assert [r["epoch"] for r in rows(run) if r["row"] == "epoch"] == [1, 2]
    resumed = torchrun(["-m", "edgegrow", "grow", "--resume", str(run)], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout and resumed.stdout.count("\ngrowth: ") == 1  # rank 0 alone prints
    assert [r["epoch"] for r in rows(run) if r["row"] == "epoch"] == [1, 2, 3, 4]
    assert (run / "checkpoint.pt").exists() and not (run / "state.pt").exists()
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def test_the_workflow_under_torchrun_profiles_once_and_writes_once(tmp_path):
    from fake_speech_commands import write_speech_commands

    data = write_speech_commands(tmp_path / "speech", clips_per_word=6, background=False)
    out = tmp_path / "out"
    env_targets = tmp_path / "targets"  # no host profile yet: rank 0 measures it, rank 1 reads it
    done = torchrun(["-m", "edgegrow", "workflow", "--quick", "--data", str(data), "--cache-dir", str(tmp_path / "cache"),
                     "--out", str(out), "--format", "onnx", "--device", "cpu"], cwd=tmp_path,
                    env={"EDGEGROW_TARGETS": str(env_targets)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("measuring this machine's latency table") == 1
    assert done.stdout.count("\nresults: ") == 1  # rank 0 alone reports
    assert (env_targets / "host.json").is_file()
    summary = json.loads((out / "workflow.json").read_text())
    assert [d["name"] for d in summary["deployments"]] == ["host", "cortex-m4f-120mhz"]
    assert (out / "exported" / "host" / "model.onnx").is_file() and (out / "index.html").is_file()
