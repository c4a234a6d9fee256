"""Tests see the device profiles shipped in targets/ and those a test writes, never the user's own:
``edgegrow profile`` and ``edgegrow workflow`` write ~/.edgegrow/targets/host.json, which would
change what 'host' means. Set before any test module imports edgegrow."""
import os
import tempfile

os.environ["EDGEGROW_TARGETS"] = tempfile.mkdtemp(prefix="edgegrow-test-targets-")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook  # noqa: E402


def on_meta_default_device(function):
    """``function`` run with 'meta' as torch's default device: a tensor it makes without naming a device
    lands on 'meta' and breaks on first use beside the model's CPU tensors, as it would beside a GPU
    model's. How the tests check, without a GPU, that code follows the model's device.

    An optimizer's ``step`` runs with the CPU as default device: that is torch's code, not edgegrow's,
    and some torch versions (2.11, seen on a GPU machine) make Adam's step counter with
    ``torch.tensor(0.0)`` and no device, a CPU scalar that torch itself expects there."""
    def call(*args, **kwargs):
        inside_step = []

        def enter_cpu(optimizer, args, kwargs):
            inside_step.append(torch.device("cpu"))
            inside_step[-1].__enter__()

        def leave_cpu(optimizer, args, kwargs):
            inside_step.pop().__exit__(None, None, None)

        with torch.device("meta"):
            before = register_optimizer_step_pre_hook(enter_cpu)
            after = register_optimizer_step_post_hook(leave_cpu)
            try:
                return function(*args, **kwargs)
            finally:
                before.remove()
                after.remove()
                while inside_step:  # a step that raised left its CPU device entered
                    inside_step.pop().__exit__(None, None, None)
    return call


@pytest.fixture
def growth_on_meta_default_device(monkeypatch):
    """Every growth event of a grow run runs under ``on_meta_default_device``."""
    import edgegrow.grow.growth_step as growth_step

    monkeypatch.setattr("edgegrow.grow.loop.grow_step", on_meta_default_device(growth_step.grow_step))


@pytest.fixture
def run_on_meta_default_device():
    """``on_meta_default_device`` for a test's own calls (a fixture: tests cannot import one conftest
    by name when several folders have one)."""
    return on_meta_default_device


@pytest.fixture
def toy_data():
    """The toy task (tests/toy.py): four classes told apart by where a bump sits."""
    from toy import toy_task

    return toy_task()


@pytest.fixture
def toy_seed():
    """The DS-CNN seed for the toy task, made under torch.manual_seed(0)."""
    from toy import seed_model

    return seed_model()


@pytest.fixture
def quick_grow(tmp_path):
    """``quick_grow(name="run", **options)``: ``toy.grow_toy`` into ``tmp_path / name``."""
    from toy import grow_toy

    def run(name: str = "run", **options):
        return grow_toy(tmp_path / name, **options)
    return run
