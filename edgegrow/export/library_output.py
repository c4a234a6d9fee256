"""Keep the converters' and runtimes' own console output out of edgegrow's.

torch.onnx, litert-torch, the TFLite converter, ai-edge-litert and absl write warnings and C++ log
lines (``W1123 … torchvision is not installed``, ``INFO: Created TensorFlow Lite XNNPACK
delegate``, ``Estimated count of arithmetic ops``) straight to file descriptor 2, a dozen lines per
export that say nothing to the user. ``captured()`` points descriptor 2 at a temporary file for the
duration, while ``sys.stderr`` (edgegrow's progress bars, Python warnings raised afterwards) keeps
writing to the real standard error. What was captured is kept on the yielded object, and replayed
when the block fails with something other than a user mistake, so a crash still shows its context.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

REPLAY_CHARACTERS = 4000  # the tail of the captured output shown after an unexpected failure


@dataclass
class Captured:
    text: str = ""


@contextlib.contextmanager
def captured(*, replay_unless: tuple[type[BaseException], ...] = (ValueError,)) -> Iterator[Captured]:
    """Capture file descriptor 2 (see the module docstring); ``replay_unless``: exceptions that are
    explained by their own message, after which the captured text is not replayed."""
    result = Captured()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 (an embedded interpreter): nothing to hide
        yield result
        return
    capture = tempfile.TemporaryFile()
    visible = os.fdopen(os.dup(saved), "w", buffering=1, errors="replace")
    hidden = os.fdopen(os.dup(capture.fileno()), "w", buffering=1, errors="replace")
    previous, last_resort = sys.stderr, logging.lastResort
    os.dup2(capture.fileno(), 2)
    sys.stderr = visible
    # libraries that log without configuring logging (torchao's "Failed to load ...") reach the
    # last-resort handler, which writes to sys.stderr: send those to the capture too
    logging.lastResort = logging.StreamHandler(hidden)
    logging.lastResort.setLevel(logging.WARNING)
    failed: BaseException | None = None
    try:
        yield result
    except BaseException as error:
        failed = error
        raise
    finally:
        visible.flush()
        hidden.flush()
        sys.stderr, logging.lastResort = previous, last_resort
        os.dup2(saved, 2)
        os.close(saved)
        visible.close()
        hidden.close()
        capture.seek(0)
        result.text = capture.read().decode(errors="replace")
        capture.close()
        if failed is not None and not isinstance(failed, replay_unless) and result.text.strip():
            previous.write(f"--- output of the converters and runtimes before the failure ---\n"
                           f"{result.text[-REPLAY_CHARACTERS:]}\n")
            previous.flush()
