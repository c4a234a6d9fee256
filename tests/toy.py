"""What many tests share: the toy task (four classes told apart by where a bump sits), the DS-CNN seed
that grows on it, a grow config small enough for a test, a latency budget relative to the seed, and
one grow run of them all (``grow_toy``). One module, imported by name (pytest puts tests/ on the
path), so no test imports another test file; tests/conftest.py serves the same as fixtures
(``toy_data``, ``toy_seed``, ``quick_grow``)."""
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from cost_models import estimate
from edgegrow.data.task_data import Split, TaskData
from edgegrow.grow import GrowConfig, GrowResult, grow
import edgegrow.grow.growth_step as growth_step_module
from edgegrow.growth.budget import Budget
from edgegrow.models import ds_cnn_seed

TESTS = Path(__file__).resolve().parent

EXAMPLE = torch.zeros(1, 1, 49, 10)
# 192 training examples at batch 64: 3 steps per epoch, 12 in the run; events at steps 1, 3, 5 and 7; growth in
# place (DS-CNN's default restart is tested on its own)
TINY = dict(epochs=4, warmup_epochs=0.5, growth_start=0.1, growth_end=0.6, growth_every=0.5, score_batches=1,
            fast_steps=5, firefly_steps=3, batch_size=64, restart=False)
# the runs killed and resumed: 6 epochs of 3 steps; growth events at steps 2, 5, 8 (epochs 1-3), then the
# architecture retrained for 6
RESUME_CONFIG = {**TINY, "epochs": 6, "growth_start": 0.1, "growth_end": 0.45, "growth_every": 1.0, "retrain": True}
# growth as search within the run: 3 epochs growing (the same events), then the found architecture for 3
RESTART_CONFIG = {**RESUME_CONFIG, "retrain": False, "restart": True}


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


def latency_budget(factor: float) -> Budget:
    return Budget({"latency_ms": factor * estimate(seed_model(), EXAMPLE, "host").latency_ms})


def grow_toy(out: str | Path | None, config: GrowConfig | dict | None = None, budget: Budget | None = None,
             target: str = "host", log=lambda line: None, **grow_options) -> GrowResult:
    """The toy seed grown on the toy task into ``out``, as the zoo's DS-CNN (so resume and reports know
    its family). ``config``: a GrowConfig, or settings that replace TINY's; ``budget``: 2.2× the seed's
    host latency unless given; ``grow_options``: grow's other keywords (resume, callbacks, ...)."""
    if not isinstance(config, GrowConfig):
        config = GrowConfig(**{**TINY, **(config or {})})
    return grow(seed_model(), toy_task(), target, budget or latency_budget(2.2), config, out, family="ds-cnn",
                seed_options={"num_classes": 4}, log=log, **grow_options)


_KILLED_CHILD = textwrap.dedent("""
    import os, signal, sys
    import torch
    sys.path.insert(0, {tests!r})
    import edgegrow.grow.loop as loop_module
    from toy import {config}, latency_budget, seed_model, toy_task
    torch.set_num_threads(1)
    saves = {{"states": 0}}
    real_save = loop_module.save_checkpoint

    def save_then_maybe_die(path, model, checkpoint):
        real_save(path, model, checkpoint)
        if path.name == "state.pt":
            saves["states"] += 1
            if saves["states"] == {kill_after}:
                os.kill(os.getpid(), signal.SIGKILL)

    loop_module.save_checkpoint = save_then_maybe_die
    loop_module.grow(seed_model(), toy_task(), "host", latency_budget(3), loop_module.GrowConfig(**{config}), {out!r},
                     family="ds-cnn", seed_options={{"num_classes": 4}}, log=lambda line: None)
""")


def kill_at(folder: Path, kill_after: int, config: str = "RESUME_CONFIG") -> None:
    """A grow run of ``config`` (a name in this module) to 3× the seed's latency, in a child process that
    kills itself with SIGKILL right after writing the run's state for the ``kill_after``-th time."""
    child = subprocess.run([sys.executable, "-c", _KILLED_CHILD.format(tests=str(TESTS), kill_after=kill_after,
                                                                       out=str(folder), config=config)],
                           capture_output=True, text=True, timeout=600, cwd=TESTS.parent)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]


def poison(model) -> None:
    """A NaN in the first convolution's weight, as an exploding step would leave."""
    with torch.no_grad():
        next(p for p in model.parameters() if p.dim() == 4).view(-1)[0] = float("nan")


def poison_growth(monkeypatch, events_to_poison: int) -> dict:
    """The first ``events_to_poison`` growth events leave a NaN weight behind (as an exploding step would)."""
    calls = {"count": 0}
    real_apply = growth_step_module.apply_candidates

    def apply_then_poison(model, chosen, batch, **kwargs):
        edits = real_apply(model, chosen, batch, **kwargs)
        calls["count"] += 1
        if calls["count"] <= events_to_poison:
            poison(model)
        return edits

    monkeypatch.setattr(growth_step_module, "apply_candidates", apply_then_poison)
    return calls


def grown_kws_run(root: Path, clips_per_word: int, settings: dict):
    """A DS-CNN grown with ``settings`` to 1.6× its seed's host latency on a small Speech Commands folder
    (tests/fake_speech_commands.py) written under ``root``: ``root/data``, ``root/cache``, ``root/run``.
    Returns the run folder and the task."""
    from fake_speech_commands import write_speech_commands

    from edgegrow.tasks import load_task

    write_speech_commands(root / "data", clips_per_word=clips_per_word)
    task = load_task("kws", root / "data", cache_dir=root / "cache", progress=False)
    torch.manual_seed(0)
    seed = task.seed()
    budget = Budget({"latency_ms": 1.6 * estimate(seed, torch.zeros(1, *task.data.input_shape), "host").latency_ms})
    grow(seed, task.data, "host", budget, GrowConfig(**settings), root / "run", family=task.family,
         seed_options=task.seed_options, log=lambda line: None, task_source=task.source)
    return root / "run", task
