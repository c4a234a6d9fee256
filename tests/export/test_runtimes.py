"""TFLite Micro's arena as ``runtimes.open_tflm`` measures it: the smallest arena the model loads in, which
is more than the total TFLite Micro reports when a kernel holds temporary memory while it is prepared
(the quantisation arrays of a wide per-channel layer), found without ever loading the model in a
too-small arena in this process (TFLite Micro's interpreter can crash there); and the cost model's
prediction of it."""
import os
import types

import numpy as np
import pytest
import torch
from torch import nn

from cost_models import estimate, load_target
from cost_models.memory import runtime_memory
from edgegrow.data.task_data import Split, TaskData
from edgegrow.export import export_model, runtimes

REPORTED, TEMPORARY = 100_496, 7_436  # what a grown MobileNetV2 for a Cortex-M7 needed (2026-12-05)


def fake_tflm(needed: int, loads: list[int]):
    """A stand-in for tflite_micro's runtime: a model that needs ``needed`` bytes, of which TFLite Micro
    reports ``REPORTED``. Loading it in less here is a test failure: the real interpreter can crash."""

    class Interpreter:
        @staticmethod
        def from_bytes(content, arena_size):
            loads.append(arena_size)
            assert arena_size >= needed, f"loaded in process in a {arena_size}-byte arena, below {needed}"
            return Interpreter()

        def print_allocations(self):
            os.write(2, f"[RecordingMicroAllocator] Arena allocation total {REPORTED} bytes\n".encode())

        def get_input_details(self, index):
            return {"shape": np.array([1, 4]), "dtype": np.int8, "quantization_parameters": {}}

        get_output_details = get_input_details

    return types.SimpleNamespace(Interpreter=Interpreter)


def fake_child(needed: int, tries: list[int]):
    def loads_in(path, arena_bytes):
        tries.append(arena_bytes)
        assert path.read_bytes() == b"model"
        return arena_bytes >= needed, "" if arena_bytes >= needed else (
            f"Failed to allocate temp memory. Requested: 11620, available 4184, missing: {needed - arena_bytes}")
    return loads_in


@pytest.mark.parametrize("needed, tries_at_most", [(REPORTED, 1), (REPORTED + TEMPORARY, 3), (REPORTED + 9_000, 20)])
def test_the_arena_is_the_smallest_one_the_model_loads_in_tried_in_a_child(needed, tries_at_most, monkeypatch):
    loads, tries = [], []
    monkeypatch.setattr(runtimes, "require", lambda module: fake_tflm(needed, loads))
    monkeypatch.setattr(runtimes, "tflm_loads_in", fake_child(needed, tries))
    loaded = runtimes.open_tflm(b"model")
    assert loaded.arena_bytes == -(-needed // 16) * 16  # TFLite Micro aligns its arena to 16 bytes
    assert loads == [runtimes.TFLM_PROBE_ARENA_BYTES, loaded.arena_bytes]  # in this process: never too small
    assert tries[0] == REPORTED and len(tries) <= tries_at_most  # what is missing is tried first, then bisected


def test_an_arena_given_is_used_as_it_is(monkeypatch):
    loads = []
    monkeypatch.setattr(runtimes, "require", lambda module: fake_tflm(REPORTED, loads))
    assert runtimes.open_tflm(b"model", arena_bytes=REPORTED + 64).arena_bytes == REPORTED + 64
    assert loads == [REPORTED + 64]


def test_a_wide_layer_after_a_global_pool_needs_more_than_tflite_micro_reports_and_the_cost_model_says_so(tmp_path):
    """A 1×1 convolution of 1,000 channels on a 1×1 map: TFLite Micro's interpreter crashed (signal 11) when
    the export loaded it in the 12,128 bytes TFLite Micro reports; it needs 22,400."""
    torch.manual_seed(0)
    x, y = torch.randn(120, 1, 16, 16), torch.randint(0, 10, (120,))
    data = TaskData("wide", [str(c) for c in range(10)], train=Split(x[:80], y[:80]),
                    validation=Split(x[80:100], y[80:100]), test=Split(x[100:], y[100:]))
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Conv2d(8, 1000, 1), nn.BatchNorm2d(1000), nn.ReLU(), nn.Flatten(), nn.Linear(1000, 10))
    with torch.no_grad():
        model.train()(x[:80])  # BatchNorm statistics for the int8 calibration
    result = export_model(model.eval(), data, tmp_path / "wide", formats=["tflite-int8"], log=lambda line: None,
                          calibration_examples=20)
    arena = result.card["tflm"]["arena_bytes"]
    content = (tmp_path / "wide" / "model_int8.tflite").read_bytes()
    assert not runtimes.tflm_loads_in(tmp_path / "wide" / "model_int8.tflite", arena - 16)[0]
    assert runtimes.tflm_loads_in(tmp_path / "wide" / "model_int8.tflite", arena)[0]
    assert runtimes.open_tflm(content).arena_bytes == arena
    report = estimate(model, torch.zeros(1, 1, 16, 16), load_target("cortex-m4f-120mhz"))
    prepare = runtime_memory("tflite-micro").prepare_bytes(1000)  # the widest layer's quantisation arrays
    assert report.sram_bytes == report.sram_runtime_bytes + prepare  # more than the activations need here
    assert abs(report.sram_bytes - arena) <= 0.01 * arena
