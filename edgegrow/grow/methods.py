"""Growth methods behind one interface: given the model and scoring batches, propose candidates.

A method answers *where and how* to grow at one event (``propose``); the grow loop decides *when*
(the schedule) and *how much* (selection under the event's share of the budget). Every method gets
the same ``GrowConfig`` (so a NaN retry's lowered ε reaches each of them) and the same context: the
example input, the scoring batches, the loss, a generator seeded per event, and the cost of an
inserted layer. ``register_method`` adds one of your own::

    class Widest:
        name = "widest"
        def propose(self, model, context):
            return [Candidate("new", group.name, 1.0) for group in ...]
    register_method(Widest())
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from ..growth.candidates import Candidate
from ..growth.random_growth import random_candidates
from ..growth.splitting_candidates import splitting_candidates
from ..growth.splitting_matrix import Batch, LossFn

if TYPE_CHECKING:
    from .config import GrowConfig


@dataclass
class ProposalContext:
    """What a method may read at one growth event."""

    config: GrowConfig
    example_input: torch.Tensor  # one example, for tracing channel groups
    batches: list[Batch]  # training batches to score on
    loss_fn: LossFn
    generator: torch.Generator  # seeded by the run's seed and the event number
    seed: int  # the same, as an integer, for methods that seed their own generators
    event: int  # this event's number (1-based) of ``events`` in the run's schedule
    events: int
    cost_of_block: Callable[[str, str], dict[str, float]]  # (layer, block kind) → what it adds per budget metric


class GrowthMethod(Protocol):
    name: str

    def propose(self, model: nn.Module, context: ProposalContext) -> list[Candidate]:
        """Candidates for ``model`` as it is now (left unchanged), with predicted loss decreases."""


@dataclass(frozen=True)
class Splitting:
    """S2D (``split``, exact), fast splitting (``fast-split``) and signed splitting (``signed-split``)."""

    name: str

    def propose(self, model: nn.Module, context: ProposalContext) -> list[Candidate]:
        config = context.config
        return splitting_candidates(model, context.example_input, context.batches, context.loss_fn, method=self.name,
                                    epsilon=config.epsilon, fast_steps=config.fast_steps,
                                    weight_bound=config.weight_bound, seed=context.seed)


def _new_neuron_count(config: GrowConfig) -> dict:
    """Firefly's and random-new's count of new-neuron candidates per group: ``new_per_group``, or
    ``new_fraction`` × the group's width where that is set."""
    if config.new_fraction is None:
        return {"new_per_group": config.new_per_group}
    return {"new_per_group": None, "new_fraction": config.new_fraction}


@dataclass(frozen=True)
class Firefly:
    """Firefly: new neurons, new layers and (``firefly_splits``) splits, scored after a short training of
    their directions."""

    name: str = "firefly"

    def propose(self, model: nn.Module, context: ProposalContext) -> list[Candidate]:
        from ..growth.firefly import firefly_candidates

        config = context.config
        return firefly_candidates(model, context.batches[0][0], context.batches, context.loss_fn,
                                  **_new_neuron_count(config), splits=config.firefly_splits,
                                  layers=config.firefly_layers,
                                  epsilon=config.firefly_epsilon, steps=config.firefly_steps,
                                  generator=context.generator, cost_of_block=context.cost_of_block)


@dataclass(frozen=True)
class Random:
    """The seeds' random baselines: ``random-split`` and ``random-new``, at equal budget."""

    name: str

    def propose(self, model: nn.Module, context: ProposalContext) -> list[Candidate]:
        config = context.config
        return random_candidates(model, context.example_input, method=self.name, epsilon=config.epsilon,
                                 **_new_neuron_count(config), generator=context.generator)


@dataclass(frozen=True)
class Tiny:
    """TINY: new neurons from the expressivity bottleneck of the groups with a pointwise path
    (``edgegrow.growth.tiny``), up to ``GrowConfig.new_per_group`` per group.

    The bottleneck's rank bounds how many neurons TINY finds (at most the consumer's outputs: 4 for a
    classifier of 4 classes, and the scoring samples), which left a DS-CNN of a small task at 61 % of
    its budget. The rest of ``new_per_group`` in each group with a site are fresh neurons (PyTorch's
    default fan-in, zero fan-out: function kept) with zero predicted decrease, so selection takes them
    only after TINY's own, to fill an event's share of the budget as the splitting methods do."""

    name: str = "tiny"

    def propose(self, model: nn.Module, context: ProposalContext) -> list[Candidate]:
        from ..growth.tiny import tiny_candidates

        return tiny_candidates(model, context.example_input, context.batches, context.loss_fn,
                               count=context.config.new_per_group, fill=True)


@dataclass(frozen=True)
class Auto:
    """``auto``: every growable group gets candidates — fast splitting where a curvature site exists, TINY
    where a TINY site does, new neurons scored by their fan-out's gradient everywhere else — on one scale
    (``edgegrow.growth.auto_candidates``). ``new_per_group`` new neurons are scored per group."""

    name: str = "auto"

    def propose(self, model: nn.Module, context: ProposalContext) -> list[Candidate]:
        from ..growth.auto_candidates import auto_candidates

        config = context.config
        return auto_candidates(model, context.example_input, context.batches, context.loss_fn,
                               epsilon=config.epsilon, fast_steps=config.fast_steps, count=config.new_per_group,
                               seed=context.seed).candidates


@dataclass(frozen=True)
class Gradient:
    """``gradient-new``: new neurons with PyTorch's default fan-in in every growable group, scored by the
    gradient of their fan-out (``edgegrow.growth.gradient_neurons``): GradMax's score without its fan-in."""

    name: str = "gradient-new"

    def propose(self, model: nn.Module, context: ProposalContext) -> list[Candidate]:
        from ..growth.gradient_neurons import gradient_candidates

        return gradient_candidates(model, context.example_input, context.batches, context.loss_fn,
                                   count=context.config.new_per_group, generator=context.generator)


_REGISTRY: dict[str, GrowthMethod] = {}


def register_method(method: GrowthMethod) -> GrowthMethod:
    """Make ``method`` available by its ``name`` to ``GrowConfig(method=...)`` and ``edgegrow grow --method``."""
    if not isinstance(getattr(method, "name", None), str) or not callable(getattr(method, "propose", None)):
        raise ValueError("a growth method needs a string `name` and a `propose(model, context)` method")
    _REGISTRY[method.name] = method
    METHODS[:] = list(_REGISTRY)
    return method


def growth_method(name: str) -> GrowthMethod:
    if name not in _REGISTRY:
        raise ValueError(f"unknown growth method {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


METHODS: list[str] = []
for _method in (Splitting("split"), Splitting("fast-split"), Splitting("signed-split"), Firefly(),
                Tiny(), Auto(), Gradient(), Random("random-split"), Random("random-new")):
    register_method(_method)
