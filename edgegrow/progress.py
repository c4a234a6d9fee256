"""Progress bars for long work (tqdm), off when asked or when nothing is watching standard error."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def showing(enabled: bool = True) -> bool:
    """Whether a bar would be drawn: asked for, and standard error is a terminal."""
    return enabled and sys.stderr.isatty()


def progress_bar(items: Iterable[T], *, total: int | None = None, description: str = "",
                 enabled: bool = True) -> Iterator[T]:
    """Iterate ``items`` with a progress bar on standard error when ``enabled`` and it is a terminal."""
    return iter(tqdm(items, total=total, desc=description, disable=not showing(enabled), leave=False,
                     dynamic_ncols=True))


@contextlib.contextmanager
def counter_bar(description: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A bar driven by a ``progress(done, total)`` callback (the form the profiler reports in)."""
    bar = tqdm(desc=description, disable=not showing(enabled), leave=False, dynamic_ncols=True)

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield advance
    finally:
        bar.close()
