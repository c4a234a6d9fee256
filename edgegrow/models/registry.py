"""The model families edgegrow grows: one ``Family`` record each, the one place their facts live.

A family is a network topology at any width: the task whose data it grows on, a builder of the
family's reference network at a width multiplier, a builder of its seed, the width whose predicted
cost is a default budget, the widths of the uniform baselines the workflow trains, and the
``GrowConfig`` settings measured for it. Tasks (``edgegrow.tasks``), the workflow, the CLI's help, the
exporter and checkpoints (``build_seed`` by family name) all read this table.

Both builders take one signature, keywords only::

    build(num_classes=..., input_shape=(channels, height, width), width_multiplier=...)
    build_seed(num_classes=..., input_shape=..., width_multiplier=None)  # None: the few-channel seed

A network of your own becomes a family in a few lines, and then grows, exports and reports by name::

    register_family(Family("tiny-cnn", task="image", build=tiny_cnn, build_seed=tiny_cnn_seed))
    task = load_task("image", "data/fonts", family="tiny-cnn")

A family registered this way lives in the process that registered it: ``load_checkpoint`` of one of
its runs needs the same registration first (the command line knows only the built-in families).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from torch import nn

from .ds_cnn import ds_cnn, ds_cnn_seed
from .layers import load_shapes
from .mobilenet_v1 import mobilenet_v1, mobilenet_v1_seed
from .mobilenet_v2 import mobilenet_v2, mobilenet_v2_seed
from .resnet8 import resnet8, resnet8_seed

TASKS = ("kws", "image")
CUSTOM_FAMILY = "custom"  # a checkpoint grown from a network passed in as it is, no family


@dataclass(frozen=True)
class Family:
    """One model family (see the module docstring for the builders' signature).

    ``reference_width``: the width multiplier of the family's reference network, whose predicted cost
    is the workflow's default budget; ``baseline_widths``: the uniform networks the workflow trains
    beside the grown ones; ``growth``: ``GrowConfig`` settings measured for the family (a setting left
    ``None`` in a config takes its value from here); ``about``: one line for listings.
    """

    name: str
    task: str
    build: Callable[..., nn.Module]
    build_seed: Callable[..., nn.Module]
    reference_width: float = 0.5
    baseline_widths: tuple[float, ...] = (0.25, 0.5, 1.0)
    growth: dict = field(default_factory=dict)
    about: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip() \
                or self.name == CUSTOM_FAMILY:
            raise ValueError(f"a family needs a name without surrounding spaces, not {CUSTOM_FAMILY!r}; "
                             f"got {self.name!r}")
        if self.task not in TASKS:
            raise ValueError(f"family {self.name!r}: unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        for what in ("build", "build_seed"):
            if not callable(getattr(self, what)):
                raise ValueError(f"family {self.name!r}: {what} must be callable "
                                 "(num_classes=, input_shape=, width_multiplier=) -> nn.Module")
        for width in (self.reference_width, *self.baseline_widths):
            if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) \
                    or width <= 0:
                raise ValueError(f"family {self.name!r}: width multipliers must be finite numbers > 0, got {width!r}")
        object.__setattr__(self, "baseline_widths", tuple(self.baseline_widths))

    def network(self, num_classes: int, input_shape, width_multiplier: float | None = None) -> nn.Module:
        """The family's reference network at ``width_multiplier`` (default ``reference_width``)."""
        width = self.reference_width if width_multiplier is None else width_multiplier
        return self.build(num_classes=num_classes, input_shape=tuple(input_shape), width_multiplier=width)

    def seed(self, num_classes: int, input_shape, width_multiplier: float | None = None) -> nn.Module:
        """The family's seed (``width_multiplier`` None), or its reference network at that width."""
        return self.build_seed(num_classes=num_classes, input_shape=tuple(input_shape),
                               width_multiplier=width_multiplier)


FAMILIES: dict[str, Family] = {}
DEFAULT_FAMILY = {"kws": "ds-cnn", "image": "mobilenet-v2"}  # each task's family when none is named


def register_family(family: Family, *, replace: bool = False) -> Family:
    """Add ``family`` to the table (``replace=True`` to overwrite one of the same name). Returns it."""
    if not isinstance(family, Family):
        raise ValueError(f"register_family takes a Family record, got {type(family).__name__}")
    if family.name in FAMILIES and not replace:
        raise ValueError(f"a family named {family.name!r} is already registered; pass replace=True to overwrite it")
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The family ``name``; an unknown name is an error that lists the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(sorted(FAMILIES))} "
                         "(edgegrow.models.register_family adds your own)")
    return FAMILIES[name]


def families_of(task: str) -> list[str]:
    """The names of the families that grow on ``task``, its default first."""
    names = [name for name, family in FAMILIES.items() if family.task == task]
    return sorted(names, key=lambda name: name != DEFAULT_FAMILY.get(task))


def describe_families() -> str:
    """One line for help texts: each family with its task, the defaults marked."""
    return "; ".join(f"{name} ({family.task}{', default' if DEFAULT_FAMILY.get(family.task) == name else ''})"
                     for name, family in FAMILIES.items())


def _measured_growth(shapes: str) -> dict:
    settings = dict(load_shapes(shapes).get("growth", {}))
    settings.pop("about", None)
    return settings


def _zoo() -> None:
    image = dict(reference_width=0.35, baseline_widths=(0.35, 0.5, 0.75))  # MobileNet's published smallest
    for family in (
        Family("ds-cnn", "kws", partial(ds_cnn, "S"), ds_cnn_seed, 0.5, (0.25, 0.5, 1.0), _measured_growth("ds_cnn"),
               "DS-CNN-S (MLPerf Tiny keyword spotting), depthwise-separable"),
        Family("mobilenet-v1", "image", mobilenet_v1, mobilenet_v1_seed, growth=_measured_growth("mobilenet_v1"),
               about="MobileNetV1, depthwise-separable", **image),
        Family("mobilenet-v2", "image", mobilenet_v2, mobilenet_v2_seed, growth=_measured_growth("mobilenet_v2"),
               about="MobileNetV2, inverted residuals with linear bottlenecks", **image),
        Family("resnet8", "image", resnet8, resnet8_seed, growth=_measured_growth("resnet8"),
               about="ResNet-8 (MLPerf Tiny image classification)", **image),
    ):
        register_family(family)


_zoo()
