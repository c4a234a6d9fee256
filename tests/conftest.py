"""Tests see the device profiles shipped in targets/ and those a test writes, never the user's own:
``edgegrow profile`` and ``edgegrow workflow`` write ~/.edgegrow/targets/host.json, which would
change what 'host' means. Set before any test module imports edgegrow."""
import os
import tempfile

os.environ["EDGEGROW_TARGETS"] = tempfile.mkdtemp(prefix="edgegrow-test-targets-")

import pytest  # noqa: E402
import torch  # noqa: E402


def on_meta_default_device(function):
    """``function`` run with 'meta' as torch's default device: a tensor it makes without naming a device
    lands on 'meta' and breaks on first use beside the model's CPU tensors, as it would beside a GPU
    model's. How the tests check, without a GPU, that code follows the model's device."""
    def call(*args, **kwargs):
        with torch.device("meta"):
            return function(*args, **kwargs)
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
