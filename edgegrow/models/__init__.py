"""The model zoo: plain ``nn.Module`` networks and the seeds growth starts from.

``build_model(name, **options)`` and ``build_seed(name, **options)`` look a family up by name (the
built-in builders take their own keywords as well, e.g. DS-CNN's ``size``); the builder functions are
importable directly as well. ``registry`` holds each family's facts (``Family``: task, builders of
one signature, reference and baseline widths, measured growth settings), and ``register_family``
adds a family of your own. Every model carries ``input_shape`` (channels, height, width) of one
example, so tools can make an example input.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .ds_cnn import DSCNN, ds_cnn, ds_cnn_seed
from .mobilenet_v1 import MobileNetV1, mobilenet_v1, mobilenet_v1_seed
from .mobilenet_v2 import InvertedResidual, MobileNetV2, mobilenet_v2, mobilenet_v2_seed
from .registry import DEFAULT_FAMILY, FAMILIES, Family, families_of, get_family, register_family
from .resnet8 import ResidualBlock, ResNet8, resnet8, resnet8_seed

# the built-in families' full builders with their own keywords (DS-CNN's ``size``; MobileNet's
# ``resolution``); their seeds and everything else about them are in ``registry.FAMILIES``
MODELS: dict[str, Callable[..., nn.Module]] = {
    "ds-cnn": ds_cnn,
    "mobilenet-v1": mobilenet_v1,
    "mobilenet-v2": mobilenet_v2,
    "resnet8": resnet8,
}


def build_model(name: str, **options) -> nn.Module:
    """A model by family name, e.g. ``build_model('mobilenet-v1', width_multiplier=0.25)`` (a built-in
    family's own keywords, or a registered family's ``build``)."""
    return MODELS[name](**options) if name in MODELS else get_family(name).build(**options)


def build_seed(name: str, **options) -> nn.Module:
    """The seed of a family: its topology with a few channels per layer."""
    return get_family(name).build_seed(**options)


def family_growth_settings(name: str) -> dict:
    """The ``GrowConfig`` settings measured for a family (``Family.growth``: for a built-in family the
    ``growth`` entry of edgegrow/models/shapes/NAME.json, without its ``about``); empty for a family
    without any and for a name that is no family (a network of your own)."""
    return dict(FAMILIES[name].growth) if name in FAMILIES else {}


def example_input(model: nn.Module, batch_size: int = 1) -> torch.Tensor:
    """A random input of the shape the model was built for (needs ``model.input_shape``)."""
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(
            f"{type(model).__name__} has no input_shape attribute; pass an example input explicitly"
        )
    return torch.randn(batch_size, *shape)


__all__ = [
    "DEFAULT_FAMILY", "DSCNN", "FAMILIES", "Family", "InvertedResidual", "MODELS", "MobileNetV1", "MobileNetV2",
    "ResNet8", "ResidualBlock", "build_model", "build_seed", "ds_cnn", "ds_cnn_seed", "example_input",
    "families_of", "family_growth_settings", "get_family", "register_family",
    "mobilenet_v1", "mobilenet_v1_seed", "mobilenet_v2", "mobilenet_v2_seed", "resnet8", "resnet8_seed",
]
