"""What a grow run refuses before any training: a seed that does not suit the task, a seed already over
the budget, and a budget so far above the seed that no run could come near it."""
from __future__ import annotations

import torch
from torch import nn

from cost_models import CostReport

from ..data.task_data import TaskData
from ..growth import find_channel_groups, growable_groups
from ..growth.budget import Budget, metric_value

UNREACHABLE_USAGE = 0.01  # a budget the run cannot fill to this share is refused as a mistake
EVENT_REACH = 4.0  # one event at most doubles a group's width, so a cost grows at most ~4x


def check_seed_suits_task(model: nn.Module, task: TaskData, example: torch.Tensor) -> None:
    """ValueError, before any training, for a seed growth cannot use on ``task``: its input shape
    does not run, its outputs are not one per class, or no channel group can grow."""
    groups = find_channel_groups(model, example)  # ValueError naming the shape if the input does not run
    modes = {module: module.training for module in model.modules()}
    model.eval()
    with torch.no_grad():
        outputs = model(example)
    for module, training in modes.items():
        module.train(training)
    classes = len(task.class_names)
    if outputs.dim() != 2 or outputs.shape[1] != classes:
        raise ValueError(f"the seed outputs shape {tuple(outputs.shape[1:])} per example but task {task.name!r} has "
                         f"{classes} classes: build the seed with {classes} outputs (num_classes={classes})")
    if not growable_groups(groups):
        reasons = sorted({reason for group in groups for reason in group.reasons})
        raise ValueError("the seed has no growable channel group, so growth has nothing to widen ("
                         + ("; ".join(reasons[:3]) or "no channel groups") + "): see `edgegrow groups` or "
                         "find_channel_groups(model, x) and each group's reasons")


def check_seed_fits(report: CostReport, budget: Budget) -> None:
    """ValueError naming every limit the seed's ``report`` exceeds."""
    over = budget.violations(report)
    if over:
        raise ValueError(f"the seed already exceeds the budget on {report.target} ({'; '.join(over)}): "
                         "raise the budget or start from a smaller seed (--seed-width)")


def check_budget_reachable(report: CostReport, budget: Budget, events: int) -> None:
    """ValueError for a budget so far above the seed's cost that ``events`` growth events cannot come
    near it (1 %): each event at most doubles a group's width, so the cost grows at most
    ``EVENT_REACH``-fold per event. A budget merely out of reach is allowed: growth stops after the
    last event and the log says how much was used."""
    reach = EVENT_REACH ** events
    usage = budget.usage(report)
    if usage and max(usage.values()) * reach < UNREACHABLE_USAGE:
        metric = max(usage, key=usage.get)
        raise ValueError(f"budget {metric}={budget.limits[metric]:g} is {1 / usage[metric]:.3g}x the seed's cost "
                         f"({metric_value(report, metric):.4g}), beyond the {reach:,.0f}x that {events} growth "
                         "event(s) can reach: lower the budget, start from a wider seed (--seed-width), or grow "
                         "more often (growth_every) or longer (--growth-end)")
