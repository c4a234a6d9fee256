"""The model zoo: plain ``nn.Module`` networks and the seeds growth starts from.

``build_model(name, **options)`` and ``build_seed(name, **options)`` look a family up by name;
the builder functions are importable directly as well. Every model carries ``input_shape``
(channels, height, width) of one example, so tools can make an example input.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .ds_cnn import DSCNN, ds_cnn, ds_cnn_seed
from .layers import load_shapes
from .mobilenet_v1 import MobileNetV1, mobilenet_v1, mobilenet_v1_seed
from .mobilenet_v2 import InvertedResidual, MobileNetV2, mobilenet_v2, mobilenet_v2_seed
from .resnet8 import ResidualBlock, ResNet8, resnet8, resnet8_seed

MODELS: dict[str, Callable[..., nn.Module]] = {
    "ds-cnn": ds_cnn,
    "mobilenet-v1": mobilenet_v1,
    "mobilenet-v2": mobilenet_v2,
    "resnet8": resnet8,
}
SEEDS: dict[str, Callable[..., nn.Module]] = {
    "ds-cnn": ds_cnn_seed,
    "mobilenet-v1": mobilenet_v1_seed,
    "mobilenet-v2": mobilenet_v2_seed,
    "resnet8": resnet8_seed,
}


def _lookup(table: dict[str, Callable[..., nn.Module]], name: str) -> Callable[..., nn.Module]:
    if name not in table:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def build_model(name: str, **options) -> nn.Module:
    """A zoo model by family name, e.g. ``build_model('mobilenet-v1', width_multiplier=0.25)``."""
    return _lookup(MODELS, name)(**options)


def build_seed(name: str, **options) -> nn.Module:
    """The seed of a family: its topology with a few channels per layer."""
    return _lookup(SEEDS, name)(**options)


def family_growth_settings(name: str) -> dict:
    """The ``GrowConfig`` settings measured for a family (the ``growth`` entry of its shape table,
    edgegrow/models/shapes/NAME.json, without its ``about``); empty for a family without one and for
    a name outside the zoo (a network of your own)."""
    if name not in MODELS:
        return {}
    settings = dict(load_shapes(name.replace("-", "_")).get("growth", {}))
    settings.pop("about", None)
    return settings


def example_input(model: nn.Module, batch_size: int = 1) -> torch.Tensor:
    """A random input of the shape the model was built for (needs ``model.input_shape``)."""
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(
            f"{type(model).__name__} has no input_shape attribute; pass an example input explicitly"
        )
    return torch.randn(batch_size, *shape)


__all__ = [
    "DSCNN", "InvertedResidual", "MODELS", "MobileNetV1", "MobileNetV2", "ResNet8", "ResidualBlock",
    "SEEDS", "build_model", "build_seed", "ds_cnn", "ds_cnn_seed", "example_input", "family_growth_settings",
    "mobilenet_v1", "mobilenet_v1_seed", "mobilenet_v2", "mobilenet_v2_seed", "resnet8", "resnet8_seed",
]
