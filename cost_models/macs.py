"""Analytic multiply-accumulate counts per layer.

One MAC is one multiply and one add. Only Conv2d and Linear are counted, as the published
figures are (BatchNorm folds into the conv on every deployment runtime; activations, pooling and
adds are not multiply-accumulates). The per-layer formula is the one marginal costs use.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


def conv2d_macs(conv: nn.Conv2d, output_height: int, output_width: int) -> int:
    """MACs of one example through ``conv``: output positions × out channels × fan-in."""
    kernel_h, kernel_w = conv.kernel_size
    fan_in = conv.in_channels // conv.groups * kernel_h * kernel_w
    return output_height * output_width * conv.out_channels * fan_in


def linear_macs(linear: nn.Linear, positions: int = 1) -> int:
    """MACs of one example through ``linear`` applied at ``positions`` places (1 for (N, F) input)."""
    return positions * linear.in_features * linear.out_features


@dataclass
class MacReport:
    """MACs of one example (batch size 1) by layer name, and the parameter count of the model."""

    by_layer: dict[str, int] = field(default_factory=dict)
    parameters: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_layer.values())


@torch.no_grad()
def count_macs(model: nn.Module, example_input: torch.Tensor) -> MacReport:
    """Run ``model`` once on ``example_input`` (any batch size) and count MACs per example.

    A layer called several times is counted each time it runs.
    """
    report = MacReport(parameters=sum(p.numel() for p in model.parameters()))
    names = {module: name for name, module in model.named_modules()}
    hooks = []

    def record(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            macs = conv2d_macs(module, output.shape[-2], output.shape[-1])
        else:
            macs = linear_macs(module, output[0].numel() // module.out_features)
        name = names[module]
        report.by_layer[name] = report.by_layer.get(name, 0) + macs

    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            hooks.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()
    try:
        model(example_input)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return report
