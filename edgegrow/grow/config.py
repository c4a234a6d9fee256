"""How to grow: the training run (one optimizer, one schedule), when growth happens, how new units
start, and the growth method's own settings. One frozen record, the same keys as ``edgegrow grow``'s
flags and its ``--config`` TOML file."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from ..argument_checks import check_finite, check_positive_integer, check_share
from ..training import TrainConfig
from ..training.device import check_device_name
from ..training.train import OPTIMIZERS, SCHEDULES

METHOD_ALIASES = {"random": "random-split"}
NEWBORN_STATES = ("zero", "mean")
NEW_UNITS = ("fresh", "method")
# The value of a setting left None when its family has measured none (GrowConfig.for_family).
FALLBACKS = {"method": "auto", "shrink": 1.0, "restart": False}
# the family default restart needs this many optimizer steps after growth: on a data set of a few batches a
# fresh network has no time to train (a guard, not a measured boundary: 36 steps failed on a 96-clip KWS
# folder, 17 % test against 100 % grown in place; 2,100 won in bench/grow_vs_uniform.py)
MIN_RESTART_STEPS = 300


@dataclass(frozen=True)
class GrowConfig:
    """A grow run: ``epochs`` of training in one schedule, with growth events inside it.

    ``method``: the growth method (``methods.METHODS``); ``None`` (the default) takes the family's
    measured one, the ``growth`` entry of edgegrow/models/shapes/FAMILY.json (``tiny`` for DS-CNN),
    and ``auto`` (``edgegrow.growth.auto_candidates``: every growable group scored by splitting, TINY or
    the gradient of a new neuron's fan-out) for families without one and for networks of your own.

    Training (the whole run, never restarted at a growth event): ``epochs``, ``batch_size``,
    ``optimizer``, ``learning_rate``, ``weight_decay``, ``schedule``, ``warmup_epochs``,
    ``label_smoothing``.

    When: growth events every ``growth_every`` epochs (a fraction of an epoch is allowed), the first
    after ``growth_start`` of the run and the last by ``growth_end`` (shares of all optimizer steps).
    Event k of n may bring the binding budget's usage to u₀ + (1 − u₀)·k/n (u₀: the seed's), so the
    budget is reached by ``growth_end`` in equal steps; growth stops once usage reaches ``stop_usage``.

    How new units start: ``new_units`` is ``method`` (what the method proposes: split twins of a
    neuron, Firefly's trained new neurons) or ``fresh`` (each split the method chooses becomes a new
    neuron of the same channel group with PyTorch's default fan-in and a zero fan-out, so the function
    is kept: the method's scores decide where the network grows, the unit starts as in a network
    trained from scratch; split twins start as near-copies that train like one neuron).
    ``newborn_state`` is the optimizer state of entries a growth event creates —
    ``zero`` (Adam's moments at zero, so its normalised step is several times the learning rate for
    hundreds of steps) or ``mean`` (the second moment of the tensor's existing entries, first moment
    zero, so a newborn entry steps like its neighbours); ``shrink`` multiplies every existing
    convolution's weights at each event (θ ← shrink·θ; 1 keeps them): behind a BatchNorm (whose
    running statistics are scaled with it) a convolution computes nearly the same function at any
    scale, but its effective learning rate grows as its norm shrinks, so old units re-learn
    alongside the new ones (shrink-and-perturb without the perturbation). ``None`` (the default) takes the family's measured value, the
    ``growth`` entry of edgegrow/models/shapes/FAMILY.json (0.5 for DS-CNN), and 1 for families
    without one and for networks of your own: four halvings raise the effective learning rate
    about 16×, which helped DS-CNN and made MobileNetV2's training unstable.

    Method settings: ``score_batches`` training batches score the candidates; ``epsilon`` is the
    split perturbation relative to a neuron's fan-in norm; ``firefly_epsilon`` Firefly's ε-ball radius
    (weight units); ``fast_steps`` the fast eigen-solver's steps; ``weight_bound`` Σ|ω| of signed
    splitting; ``firefly_*`` Firefly's direction training, its block candidates (``firefly_layers``) and
    its split candidates (``firefly_splits``: off is about 0.7× the proposal time, but was lower on
    MobileNetV2's validation split). ``new_per_group``: the new-neuron candidates
    every method that adds new neurons (TINY, ``auto``, ``gradient-new``, ``random-new``, Firefly)
    proposes per group and event (TINY: at most the rank of its bottleneck, the rest fresh neurons).
    One count for all, so methods differ in which neurons they propose, not in how many; Firefly and
    ``random-new`` proposed ``new_fraction`` × the group's width before 2026-12-06 (0.5 and 1), which
    gave MobileNetV2's 1,280-channel head half of every event's candidates and most of their growth
    (docs/methods_benchmark.md); set ``new_fraction`` for that count again. A NaN retry quarters
    both ε.

    ``retrain``: after growing, train the found architecture from freshly initialised weights with the
    same schedule and ``shrink`` at every scheduled event's step (the grow run's recipe without growth:
    bench/grow_vs_uniform.py measured it 0.3 to 1.2 points above retraining without the shrink steps,
    median of 8 seeds on four DS-CNN budgets), and keep whichever of the two is better on the
    validation split. That costs a second run's training compute.

    ``restart``: growth as search within one run's epochs (``None``, the default: the family's measured
    value, on for DS-CNN when the run is long enough for it, off otherwise; off with ``retrain``). The grown network trains only until growth
    ends (``growth_end`` of the run, rounded up to a whole epoch: ``search_epochs``); then the found
    architecture trains for the remaining ``epochs − search_epochs``, from its grown weights blended
    with freshly initialised ones (``restart_keep``), with its own warm-up and schedule and ``shrink`` at the scheduled events' steps, as ``retrain``
    does, and the better of the two on the validation split is kept (the retrained one, unless the
    short growth phase's network is better). The run's epochs and training compute (MAC-epochs) are
    those of one run: bench/grow_vs_uniform.py compares it with the largest fitting uniform network at
    equal compute: 8 of 8 seeds ahead of the uniform network on three DS-CNN budgets, and above growing
    in place on the validation split on all four. On MobileNetV2 (image-m4f, 3 seeds) it was 5.8 points
    below uniform at equal epochs, so other families grow in place by default. It excludes ``retrain``.

    ``restart_keep``: how much of the grown network a restart keeps (``growth_step.blend_with_fresh``):
    for 0 < ``restart_keep`` < 1 each weight tensor of two or more dimensions becomes the fresh
    tensor's norm times the direction of ``restart_keep``·(grown direction) + (1 −
    ``restart_keep``)·(fresh direction), every other floating-point tensor the same mix of values,
    and BatchNorm's statistics start again; 0 is fresh weights, and 1 the grown network exactly as it
    is, statistics and norms included (the optimizer and schedule start again either way).
    Shrink-and-perturb (Ash & Adams 2020) at the restart: the grown network's features, made
    trainable again. 0.5 was chosen on the validation split over 0 and 1 (bench/grow_vs_uniform.py's
    ``restarted`` runs, see the README).

    ``device``: where the run computes (``edgegrow.training.device``: ``auto``, ``cpu``, ``cuda``,
    ``cuda:N``, ``mps``; ``auto`` is a CUDA GPU where there is one). It says where, not what: a run
    resumes on another device.
    """

    method: str | None = None  # None: the family's (see for_family)
    # the training run
    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    # when growth happens
    # (chosen on the validation split of bench/growth_ablation.py: done by a quarter of the run, in steps of
    # 1.25 epochs, was the best of the schedules tried there)
    growth_start: float = 0.025
    growth_end: float = 0.25
    growth_every: float = 1.25
    min_usage: float = 0.85  # below this share of the binding budget growth goes on even if nothing helps
    stop_usage: float = 0.97  # at or above this share growth stops
    # how new units start
    new_units: str = "fresh"
    newborn_state: str = "mean"
    shrink: float | None = None  # None: the family's (see for_family)
    # the method's own settings
    score_batches: int = 4
    epsilon: float = 0.1
    firefly_epsilon: float = 1e-2
    fast_steps: int = 30
    weight_bound: float = 2.0
    # 10, not 30: after 10 steps 28 of the 30-step ranking's top 32 candidates are still the top 32, against
    # 12 of 32 for 30 steps from another random start of the directions; 0.42× the time
    # (bench/firefly_steps.py, median of 3 grown DS-CNNs)
    firefly_steps: int = 10
    firefly_layers: bool = True
    # on, as published: off, Firefly proposes in about 0.7× the time (the split twins double every group
    # of its over-grown copy, and in 15 benchmark runs it never chose a split), but on MobileNetV2
    # (image-m4f, 40 epochs, 3 seeds) its grown networks were 0.9-1.8 points lower on the validation
    # split in all three seeds (docs/methods_benchmark.md)
    firefly_splits: bool = True
    new_per_group: int = 16
    new_fraction: float | None = None  # Firefly and random-new only: ceil(new_fraction × width) per group instead
    retrain: bool = False
    restart: bool | None = None  # None: the family's (see for_family)
    restart_keep: float = 0.5
    seed: int = 0
    device: str = "auto"
    sync_batch_norm: bool = False  # in a torchrun job (TrainConfig.sync_batch_norm)

    def __post_init__(self):
        from .methods import METHODS

        if self.method is not None:
            method = METHOD_ALIASES.get(self.method, self.method)
            if method not in METHODS:
                raise ValueError(f"unknown growth method {self.method!r}; choose one of {', '.join(METHODS)}")
            object.__setattr__(self, "method", method)
        for name in ("epochs", "batch_size", "score_batches", "fast_steps", "new_per_group"):
            check_positive_integer(name, getattr(self, name))
        check_positive_integer("firefly_steps", self.firefly_steps, allow_zero=True)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose {', '.join(SCHEDULES)}")
        if self.new_units not in NEW_UNITS:
            raise ValueError(f"unknown new_units {self.new_units!r}; choose {', '.join(NEW_UNITS)}")
        check_device_name(self.device)
        if self.newborn_state not in NEWBORN_STATES:
            raise ValueError(f"unknown newborn_state {self.newborn_state!r}; choose {', '.join(NEWBORN_STATES)}")
        for name in ("learning_rate", "epsilon", "firefly_epsilon", "weight_bound", "growth_every"):
            check_finite(name, getattr(self, name), above=0)
        check_finite("weight_decay", self.weight_decay, at_least=0)
        for name in ("firefly_layers", "firefly_splits"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.new_fraction is not None:
            check_finite("new_fraction", self.new_fraction, at_least=0)
        if self.shrink is not None:
            check_share("shrink", self.shrink)
        check_share("restart_keep", self.restart_keep, allow_zero=True)
        check_share("growth_start", self.growth_start, allow_zero=True)
        check_share("growth_end", self.growth_end, allow_zero=True)
        if self.growth_start > self.growth_end:
            raise ValueError(f"growth_start ({self.growth_start:g}) must not be after growth_end ({self.growth_end:g})")
        if not 0 < self.min_usage <= self.stop_usage <= 1:
            raise ValueError("need 0 < min_usage <= stop_usage <= 1")
        if self.retrain and self.restart:
            raise ValueError("retrain and restart exclude each other: retrain trains the found architecture for "
                             "another full run, restart for the rest of this one; choose one")
        if self.restart:
            problem = self._restart_problem()
            if problem:
                raise ValueError(problem + " (or turn restart off: --no-restart, restart = false)")
        self.train_config()  # warm-up, label smoothing and the rest checked where they are used

    @classmethod
    def quick(cls, **overrides) -> GrowConfig:
        """A short run (a minute or two on a laptop core): few epochs, events and scoring batches."""
        settings = dict(epochs=6, warmup_epochs=0.5, growth_every=1.0, score_batches=2, fast_steps=10,
                        firefly_steps=10)
        settings.update(overrides)
        return cls(**settings)

    def for_family(self, family: str, train_examples: int | None = None) -> GrowConfig:
        """These settings with every ``None`` filled in for ``family`` (``family_growth_settings``;
        ``FALLBACKS`` where the family has no measured value): what a run of that family uses. A
        default that does not fit these settings is off, not an error: ``restart`` with ``retrain``, with
        no epochs left after growth, or, given ``train_examples``, with fewer than ``MIN_RESTART_STEPS``
        optimizer steps after growth (``restart_steps``)."""
        from ..models import family_growth_settings

        measured = family_growth_settings(family)
        unset = {name: measured.get(name, FALLBACKS[name]) for name in FALLBACKS if getattr(self, name) is None}
        if unset.get("restart") and (self.retrain or self._short_restart(train_examples)):
            unset["restart"] = False
        return replace(self, **unset) if unset else self

    def no_restart_reason(self, family: str, train_examples: int | None = None) -> str | None:
        """Why a run of ``family`` with these settings grows without a restart, in words for a user who set
        ``restart_keep`` (which only a restart reads); None when it restarts."""
        from ..models import family_growth_settings

        if self.for_family(family, train_examples).restart:
            return None
        if self.restart is False:
            return "restart is off (--no-restart, restart = false)"
        if self.retrain:
            return "--retrain trains the found architecture from fresh weights instead of restarting; drop --retrain"
        if not family_growth_settings(family).get("restart", FALLBACKS["restart"]):
            return f"{family} grows in place by default; add --restart"
        return self._short_restart(train_examples)

    def _short_restart(self, train_examples: int | None) -> str | None:
        """Why a default restart leaves the found architecture too little training (no epoch after
        growth, or, given ``train_examples``, fewer than ``MIN_RESTART_STEPS`` steps); None if it does not."""
        problem = self._restart_problem()
        if problem or train_examples is None or self.restart_steps(train_examples) >= MIN_RESTART_STEPS:
            return problem
        return (f"the found architecture would get only {self.restart_steps(train_examples)} optimizer steps after "
                f"growth, fewer than the {MIN_RESTART_STEPS} a default restart needs; --restart forces it")

    def steps_per_epoch(self, train_examples: int) -> int:
        """Optimizer steps of one epoch on ``train_examples``."""
        return math.ceil(train_examples / self.batch_size)

    def search_steps(self, train_examples: int) -> int:
        """With ``restart``, the optimizer step at which growth's search ends and the restart happens."""
        return self.search_epochs * self.steps_per_epoch(train_examples)

    def restart_steps(self, train_examples: int) -> int:
        """Optimizer steps a restart's found architecture gets after growth on ``train_examples``."""
        return (self.epochs - self.search_epochs) * self.steps_per_epoch(train_examples)

    def _restart_problem(self) -> str | None:
        """Why these settings leave ``restart`` no room to train the found architecture; None if they do."""
        left = self.epochs - self.search_epochs
        if left < 1:
            return (f"restart needs growth to end before the last epoch: growth_end {self.growth_end:g} of "
                    f"{self.epochs} epochs leaves none to train the found architecture; lower growth_end or raise epochs")
        if self.warmup_epochs >= left:
            return (f"restart leaves {left} epoch(s) after growth, not more than the warm-up "
                    f"({self.warmup_epochs:g}); lower warmup_epochs or growth_end, or raise epochs")
        return None

    def train_config(self, seed_offset: int = 0) -> TrainConfig:
        """The one schedule of the run (``seed_offset`` separates a retraining's random draws)."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer,
                           learning_rate=self.learning_rate, weight_decay=self.weight_decay, schedule=self.schedule,
                           warmup_epochs=self.warmup_epochs, label_smoothing=self.label_smoothing,
                           seed=self.seed * 1009 + seed_offset, device=self.device,
                           sync_batch_norm=self.sync_batch_norm)

    @property
    def search_epochs(self) -> int:
        """With ``restart``, the epochs the growing network trains: ``growth_end`` of the run rounded up
        to a whole epoch, at least one."""
        return max(1, math.ceil(self.growth_end * self.epochs - 1e-9))

    @property
    def restart_start(self) -> str:
        """How a restart's found architecture starts (``restart_keep``), in words for the log."""
        return {0.0: "fresh weights", 1.0: "its grown weights"}.get(
            self.restart_keep, f"its grown weights blended with fresh ones (keep {self.restart_keep:g})")

    def lowered(self) -> GrowConfig:
        """The settings a growth event is retried with after the loss diverged: both ε quartered."""
        return replace(self, epsilon=self.epsilon / 4, firefly_epsilon=self.firefly_epsilon / 4)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GrowConfig:
        """From ``to_dict()`` output; keys this version does not know are an error naming them. A record
        from before ``restart_keep`` existed restarted from fresh weights, and is read so (0). A record
        from before ``new_per_group`` (``tiny_neurons``, ``firefly_new_fraction``) is read with the
        counts it ran with: ``tiny_neurons`` per group, and Firefly's ``firefly_new_fraction`` or
        ``random-new``'s whole width as ``new_fraction``. One from before ``firefly_splits`` proposed
        splits (True)."""
        if "tiny_neurons" in values or "firefly_new_fraction" in values:
            values = dict(values)
            old_fraction = values.pop("firefly_new_fraction", 0.5)
            values["new_per_group"] = values.pop("tiny_neurons", 16)
            values.setdefault("new_fraction", {"firefly": old_fraction, "random-new": 1.0}.get(values.get("method")))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown grow setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "restart_keep" not in values:
            values = {**values, "restart_keep": 0.0}
        if "firefly_splits" not in values:
            values = {**values, "firefly_splits": True}
        return cls(**values)
