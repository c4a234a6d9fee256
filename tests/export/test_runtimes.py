"""TFLite Micro's arena as ``runtimes.open_tflm`` measures it: the total TFLite Micro reports, plus the
temporary memory a kernel asks for while it is prepared, which that total leaves out."""
import os
import types

import numpy as np
import pytest

from edgegrow.export import runtimes

REPORTED, TEMPORARY = 100_496, 7_436  # what a grown MobileNetV2 for a Cortex-M7 needed (2026-12-05)


def fake_tflm(needed: int, loads: list[int]):
    """A stand-in for tflite_micro's runtime: a model that needs ``needed`` bytes, of which TFLite Micro
    reports ``REPORTED``; a smaller arena fails as TFLite Micro does, saying on stderr what is missing."""

    class Interpreter:
        @staticmethod
        def from_bytes(content, arena_size):
            loads.append(arena_size)
            if arena_size < needed:
                os.write(2, f"Failed to allocate temp memory. Requested: {TEMPORARY + 100}, available "
                            f"{arena_size - REPORTED}, missing: {needed - arena_size}\n".encode())
                raise RuntimeError("AllocateTensors failed")
            return Interpreter()

        def print_allocations(self):
            os.write(2, f"[RecordingMicroAllocator] Arena allocation total {REPORTED} bytes\n".encode())

        def get_input_details(self, index):
            return {"shape": np.array([1, 4]), "dtype": np.int8, "quantization_parameters": {}}

        get_output_details = get_input_details

    return types.SimpleNamespace(Interpreter=Interpreter)


@pytest.mark.parametrize("needed", [REPORTED, REPORTED + TEMPORARY])
def test_the_arena_is_the_reported_total_plus_what_a_kernel_asks_for_on_top(needed, monkeypatch):
    loads = []
    monkeypatch.setattr(runtimes, "require", lambda module: fake_tflm(needed, loads))
    loaded = runtimes.open_tflm(b"model")
    assert loaded.arena_bytes == -(-needed // 16) * 16  # rounded up to TFLite Micro's 16-byte alignment
    assert loads[0] == runtimes.TFLM_PROBE_ARENA_BYTES and loads[-1] == loaded.arena_bytes
    assert len(loads) == (3 if needed == REPORTED else 4)  # probe, try, (retry,) the final load


def test_an_arena_given_is_used_as_it_is_and_one_too_small_is_a_one_line_error(monkeypatch):
    loads = []
    monkeypatch.setattr(runtimes, "require", lambda module: fake_tflm(REPORTED + TEMPORARY, loads))
    with pytest.raises(ValueError, match=f"cannot load the model in a {REPORTED}-byte arena: AllocateTensors failed "
                                         r"\(Failed to allocate temp memory"):
        runtimes.open_tflm(b"model", arena_bytes=REPORTED)
    assert loads == [REPORTED]
