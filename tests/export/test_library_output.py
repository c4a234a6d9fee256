"""The converters' console output is captured, edgegrow's own stays visible, and a crash replays it."""
import logging
import os
import sys

import pytest

from edgegrow.export import library_output


def noisy_library():
    os.write(2, b"W0000 converter.cc:1] C++ noise\n")  # what C++ code writes straight to descriptor 2
    logger = logging.getLogger("some.unconfigured.library")
    logger.propagate = False  # no handler anywhere (pytest configures the root's): Python's last resort prints it
    logger.warning("Failed to load an optional kernel")


def test_library_output_is_captured_and_our_own_stays_visible(capfd):
    with library_output.captured() as captured:
        noisy_library()
        print("progress of edgegrow's own", file=sys.stderr)
    seen = capfd.readouterr().err
    assert "C++ noise" in captured.text and "Failed to load an optional kernel" in captured.text
    assert "C++ noise" not in seen and "Failed to load" not in seen
    assert "progress of edgegrow's own" in seen
    os.write(2, b"after\n")  # descriptor 2 is restored
    assert "after" in capfd.readouterr().err


def test_a_crash_replays_the_captured_output_and_a_user_mistake_does_not(capfd):
    with pytest.raises(RuntimeError):
        with library_output.captured():
            noisy_library()
            raise RuntimeError("converter crashed")
    assert "C++ noise" in capfd.readouterr().err
    with pytest.raises(ValueError):
        with library_output.captured():
            noisy_library()
            raise ValueError("layer 'x' cannot be expressed")
    assert "C++ noise" not in capfd.readouterr().err
