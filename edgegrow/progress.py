"""A progress bar for long work (tqdm), off when asked or when nothing is watching standard error."""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_bar(items: Iterable[T], *, total: int | None = None, description: str = "",
                 enabled: bool = True) -> Iterator[T]:
    """Iterate ``items`` with a progress bar on standard error when ``enabled`` and it is a terminal."""
    show = enabled and sys.stderr.isatty()
    return iter(tqdm(items, total=total, desc=description, disable=not show, leave=False, dynamic_ncols=True))
