"""Whole-file writes that never leave a half-written file: a temporary file in the same folder,
flushed to disk, then renamed over the target (a rename within one file system is atomic), then the
folder flushed too, so that a power cut after the write returns cannot undo the rename."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def new_file_mode() -> int:
    """The permission bits a plain ``open(path, "w")`` would give a new file (0o666 less the umask);
    ``tempfile.mkstemp`` makes 0o600 files, which would leave outputs unreadable to others."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_folder(folder: str | Path) -> None:
    """Flush ``folder``'s entries (a rename into it) to disk. Where a folder cannot be opened for that
    (Windows), the rename is already durable and this does nothing."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:  # some file systems refuse fsync on a folder; nothing more can be done there
        pass
    finally:
        os.close(handle)


def fsync_file(path: str | Path) -> None:
    with open(path, "r+b") as file:  # write access: Windows' FlushFileBuffers needs it
        os.fsync(file.fileno())


def replace_durably(temporary: str | Path, path: str | Path) -> None:
    """Rename a finished ``temporary`` (file or folder, already on disk) over ``path``, and flush the
    folder that holds them."""
    os.replace(temporary, path)
    fsync_folder(Path(path).parent)


def publish_folder(building: str | Path, out: str | Path) -> bool:
    """Move the finished folder ``building`` to ``out`` in one durable rename. False, with ``building``
    removed, when ``out`` appeared meanwhile: another process building the same thing finished first,
    and the caller reuses its folder (or says it was made otherwise)."""
    import shutil

    try:
        replace_durably(building, out)
    except OSError:
        if not Path(out).exists():
            raise
        shutil.rmtree(building, ignore_errors=True)
        return False
    return True


def write_atomically(path: str | Path, content: str | bytes) -> None:
    """Replace ``path`` with ``content``; an existing file keeps its permission bits, a new one gets
    the usual ones (:func:`new_file_mode`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content.encode() if isinstance(content, str) else content)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else new_file_mode())
        replace_durably(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
