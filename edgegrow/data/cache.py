"""An on-disk cache of computed tensors (features), safe to load and written atomically.

Files are ``torch.save`` dicts of tensors and strings, loaded with ``weights_only=True`` (no code
from the file runs). A missing, truncated or corrupt file is a cache miss, never an error.
The folder is ``cache_dir``, else ``$EDGEGROW_CACHE``, else ``~/.cache/edgegrow``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ..atomic import fsync_file, new_file_mode, replace_durably


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("EDGEGROW_CACHE") or Path.home() / ".cache" / "edgegrow")


def cache_path(cache_dir: str | Path | None, kind: str, key: str) -> Path:
    return cache_root(cache_dir) / f"{kind}-{key}.pt"


def load_tensors(path: Path, mmap: bool = False) -> dict | None:
    """The tensors in ``path``; with ``mmap``, memory-mapped from the file (read from disk as they are
    indexed, and the pages can be dropped again, so a cache larger than memory can be trained on)."""
    try:
        return torch.load(path, weights_only=True, mmap=mmap)
    except Exception:  # missing, truncated or corrupt: a miss; the caller recomputes and overwrites
        return None


def save_tensors(path: Path, tensors: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(tensors, temporary)
        fsync_file(temporary)
        os.chmod(temporary, new_file_mode())
        replace_durably(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
