"""When a grow run grows, and by how much: growth events at fixed optimizer steps of the one training
schedule, each allowed a share of the budget so that the budget is reached by ``growth_end``."""
from __future__ import annotations

from dataclasses import dataclass

from .config import GrowConfig


@dataclass(frozen=True)
class GrowthEvent:
    """Growth event ``number`` (1-based) of ``count``, applied before optimizer step ``step``."""

    number: int
    count: int
    step: int

    def usage_cap(self, seed_usage: float) -> float:
        """The binding budget's usage this event may grow to: u₀ + (1 − u₀)·k/n, at most 1."""
        return min(1.0, seed_usage + (1.0 - seed_usage) * self.number / self.count)


def growth_events(config: GrowConfig, steps_per_epoch: int) -> list[GrowthEvent]:
    """The events of a run of ``config``: every ``growth_every`` epochs from ``growth_start`` to
    ``growth_end`` of the run's optimizer steps, at least one, never at step 0 (the seed trains a step
    first) nor at the run's last step."""
    total = config.epochs * steps_per_epoch
    every = max(1, round(config.growth_every * steps_per_epoch))
    first = max(1, round(config.growth_start * total))
    last = min(total - 1, max(first, round(config.growth_end * total)))
    steps = list(range(first, last + 1, every)) if total > 1 else []
    return [GrowthEvent(number, len(steps), step) for number, step in enumerate(steps, start=1)]
