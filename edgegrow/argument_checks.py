"""Checks of configuration values, each a ValueError naming the setting and the value it got."""
from __future__ import annotations

import math


def check_positive_integer(name: str, value, *, allow_zero: bool = False) -> int:
    """``value`` if it is an int ≥ 1 (≥ 0 with ``allow_zero``); bools are not integers here."""
    least = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        kind = "a non-negative integer" if allow_zero else "a positive integer"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return value


def check_finite(name: str, value, *, above: float | None = None, at_least: float | None = None) -> float:
    """``value`` if it is a finite real number, > ``above`` and ≥ ``at_least`` where given."""
    kind = "a finite number" + (f" > {above:g}" if above is not None else "") + (
        f" >= {at_least:g}" if at_least is not None else "")
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or (above is not None and not value > above) or (at_least is not None and not value >= at_least)):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return float(value)


def check_share(name: str, value, *, allow_zero: bool = False, allow_one: bool = True) -> float:
    """``value`` if it is a share of a whole: in (0, 1] by default; ``allow_zero`` admits 0 and
    ``allow_one=False`` excludes 1."""
    check_finite(name, value)
    low_ok = value >= 0 if allow_zero else value > 0
    high_ok = value <= 1 if allow_one else value < 1
    if not (low_ok and high_ok):
        interval = ("[0" if allow_zero else "(0") + ", " + ("1]" if allow_one else "1)")
        raise ValueError(f"{name} must be a share in {interval}, got {value!r}")
    return float(value)
