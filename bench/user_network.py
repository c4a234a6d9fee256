"""Issue 17's user-style network as a family of its own, so the growth benchmark can grow it and scale it
uniformly: a CNN a user writes by hand from standard layers, with a residual block, a
squeeze-and-excitation gate, a concatenation of two Hardswish branches and a ReLU block
(``held_out_models.UserStyle``), every one of its widths ``round(32 × width_multiplier)``.

Importing this module registers the family ``user-cnn`` (``edgegrow.models.register_family``) in the
process, as a user registers theirs (README, "A family of your own"); ``grow_vs_uniform.py`` imports it,
so its worker processes and its report know the family by name.
"""
from __future__ import annotations

from torch import nn

from held_out_models import UserStyle

from edgegrow.models import FAMILIES, Family, register_family

FAMILY = "user-cnn"
REFERENCE_CHANNELS = 32  # the width of every layer at width multiplier 1


def user_cnn(*, num_classes: int, input_shape, width_multiplier: float = 1.0) -> nn.Module:
    """The user-style network with ``round(32 × width_multiplier)`` channels in every layer (at least 2,
    so the squeeze-and-excitation gate keeps one)."""
    channels = max(2, round(REFERENCE_CHANNELS * width_multiplier))
    model = UserStyle(input_shape[0], channels, num_classes)
    model.input_shape = tuple(input_shape)
    return model


def user_cnn_seed(*, num_classes: int, input_shape, width_multiplier: float | None = None) -> nn.Module:
    """The seed: the network at ``width_multiplier`` (None: 8 channels, a quarter of the reference)."""
    return user_cnn(num_classes=num_classes, input_shape=input_shape,
                    width_multiplier=0.25 if width_multiplier is None else width_multiplier)


if FAMILY not in FAMILIES:
    register_family(Family(FAMILY, task="image", build=user_cnn, build_seed=user_cnn_seed, reference_width=1.0,
                           about="issue 17's hand-written CNN: residual, squeeze-and-excitation, concat "
                                 "(bench/user_network.py)"))
