"""Durable writes: a file reaches the disk before it is renamed into place, and the folder holding it
is flushed after the rename, so a power cut cannot undo a finished checkpoint or export."""
import os
from pathlib import Path

import pytest
import torch

from edgegrow.atomic import write_atomically
from edgegrow.checkpoint import Checkpoint, save_checkpoint
from edgegrow.export.exporter import _Staging


@pytest.fixture
def events(monkeypatch):
    """("fsync", path) and ("replace", source, destination), in the order they happen."""
    seen = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(handle):
        seen.append(("fsync", os.path.realpath(f"/proc/self/fd/{handle}")))
        return fsync(handle)

    def recording_replace(source, destination):
        seen.append(("replace", os.path.realpath(source), os.path.realpath(destination)))
        return replace(source, destination)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    return seen


def _assert_durable(events, final: Path):
    final = os.path.realpath(final)
    (moved,) = [i for i, e in enumerate(events) if e[0] == "replace" and e[2] == final]
    source = events[moved][1]
    assert any(e == ("fsync", source) for e in events[:moved]), f"{source} was not flushed before the rename"
    assert ("fsync", os.path.dirname(final)) in events[moved + 1:], "the folder was not flushed after the rename"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads file names from /proc (Linux)")
def test_write_atomically_flushes_the_file_then_the_folder(tmp_path, events):
    write_atomically(tmp_path / "run.json", "{}\n")
    _assert_durable(events, tmp_path / "run.json")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads file names from /proc (Linux)")
def test_a_checkpoint_is_on_disk_before_and_after_its_rename(tmp_path, events):
    save_checkpoint(tmp_path / "model.pt", torch.nn.Linear(2, 2), Checkpoint("custom", {}, [], {}))
    _assert_durable(events, tmp_path / "model.pt")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads file names from /proc (Linux)")
def test_an_export_folder_is_on_disk_before_and_after_its_rename(tmp_path, events):
    staging = _Staging(tmp_path / "export", force=False)
    staging.write("model.onnx", b"bytes")
    staging.commit()
    assert (tmp_path / "export" / "model.onnx").read_bytes() == b"bytes"
    folder = os.path.realpath(tmp_path / "export")
    (moved,) = [i for i, e in enumerate(events) if e[0] == "replace" and e[2] == folder]
    staged = events[moved][1]
    assert ("fsync", os.path.join(staged, "model.onnx")) in events[:moved] and ("fsync", staged) in events[:moved]
    assert ("fsync", os.path.realpath(tmp_path)) in events[moved + 1:]
