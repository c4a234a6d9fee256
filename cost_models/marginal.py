"""Marginal cost: what adding ``n`` channels to a channel group costs, in every metric.

A channel group is named by the layers that produce its channels (convolutions or linear layers,
several when residual adds tie them together). Widening them by ``n`` widens every kernel the new
channels flow through (depthwise convs, pooling, pads, adds, concatenations) and the input of every
kernel that consumes them (a conv's fan-in, or a linear layer's flattened features). Each changed
kernel is read from the latency table at its new shape — not scaled from MACs — so the staircase
shows: going from 64 to 65 channels costs a step, 63 to 64 nearly nothing.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
from torch import nn

from .estimate import CostReport, estimate_kernels, kernel_inputs
from .kernel_shape import CHANNELWISE_KINDS, KernelShape
from .kernels import Kernel, graph_with_modules_after, kernels_of_graph, output_node_of, output_shape, trace_with_shapes
from .latency import LatencyModel
from .target import Target, load_target

METRICS = ("latency_ms", "energy_mj", "macs", "weight_bytes_fp32", "weight_bytes_int8", "sram_bytes", "flash_bytes")


@dataclass(frozen=True)
class MarginalCost:
    before: CostReport
    after: CostReport
    channels: int

    def delta(self, metric: str) -> float | None:
        """after − before for one of ``METRICS`` (None when the target cannot predict it, e.g. energy)."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        before, after = getattr(self.before, metric), getattr(self.after, metric)
        return None if before is None or after is None else after - before

    def deltas(self) -> dict[str, float | None]:
        return {metric: self.delta(metric) for metric in METRICS}


class KernelCostModel:
    """A traced model on a target: re-costs widened channel groups, and inserted blocks, without tracing
    again."""

    def __init__(self, model: nn.Module, example_input: torch.Tensor, target: Target | str,
                 latency_model: LatencyModel | None = None):
        self.target = load_target(target) if isinstance(target, str) else target
        self.latency_model = latency_model or LatencyModel(self.target)
        self.input_shape = tuple(example_input.shape)
        self.square_layers: frozenset[str] = frozenset()  # inserted C → C layers: they widen with their input
        self._use_graph(trace_with_shapes(model, example_input).graph, dict(model.named_modules()),
                        sum(p.numel() for p in model.parameters()))

    def _use_graph(self, graph: torch.fx.Graph, modules: dict[str, nn.Module], parameters: int) -> None:
        """Price ``graph`` (its ``call_module`` targets in ``modules``; ``parameters`` in all)."""
        self.graph, self.modules, self.parameters = graph, modules, parameters
        self.kernels = kernels_of_graph(graph, modules)
        self.shapes = [KernelShape.from_kernel(kernel) for kernel in self.kernels]
        self.inputs = kernel_inputs(self.kernels)
        self.report = self._report(self.kernels, self.shapes)

    def _report(self, kernels: list[Kernel], shapes: list[KernelShape]) -> CostReport:
        return estimate_kernels(kernels, shapes, self.target, self.input_shape, self._parameters_at(shapes),
                                self.latency_model)

    def _parameters_at(self, shapes: list[KernelShape]) -> int:
        """The model's parameter count with its kernels at ``shapes``: a kernel's weights follow its shape
        (its MACs per output position), and what it holds per output channel (bias, folded BatchNorm)
        follows its output channels."""
        total = self.parameters
        for kernel, before, after in zip(self.kernels, self.shapes, shapes):
            if after == before or not kernel.parameters:
                continue
            weights_before = before.macs // (before.output[1] * before.output[2])
            weights_after = after.macs // (after.output[1] * after.output[2])
            per_channel = (kernel.parameters - weights_before) // before.output[0]
            total += weights_after - weights_before + per_channel * (after.output[0] - before.output[0])
        return total

    def widened(self, producers: list[str] | set[str], channels: int) -> tuple[list[Kernel], list[KernelShape]]:
        """Kernels and shapes after adding ``channels`` output channels to the ``producers`` layers."""
        return self.widened_groups({tuple(producers): channels})

    def widened_groups(self, growth: Mapping[tuple[str, ...], int]) -> tuple[list[Kernel], list[KernelShape]]:
        """Kernels and shapes after widening several channel groups at once: ``growth`` maps each group's
        producer layers to the channels it gains (0 leaves it). A kernel between two grown groups (a
        pointwise conv whose input and output both grow) is priced at both new widths: the cross term a
        sum of one-group marginals misses."""
        by_layer = {kernel.layers[0]: index for index, kernel in enumerate(self.kernels)}
        shapes = list(self.shapes)
        for producers, channels in growth.items():
            missing = sorted(set(producers) - set(by_layer))
            if missing:
                raise ValueError(f"no kernel runs layer(s) {', '.join(missing)}; known layers: "
                                 f"{', '.join(sorted(by_layer))}")
            if channels:
                self._widen(shapes, sorted(by_layer[layer] for layer in producers), channels)
        kernels = [replace(kernel, output_shape=_output_shape(kernel, shape))
                   for kernel, shape in zip(self.kernels, shapes)]
        return kernels, shapes

    def _widen(self, shapes: list[KernelShape], producers: list[int], channels: int) -> None:
        """Add ``channels`` to the outputs of the kernels ``producers`` in ``shapes`` (in place), and to
        every kernel the new channels flow through or into."""
        grown = set()
        for index in producers:
            shapes[index] = shapes[index].with_channels(output_channels=shapes[index].output[0] + channels)
            grown.add(index)
        for index, shape in enumerate(shapes):
            sources = [source for source in self.inputs[index] if source in grown]
            if not sources or index in grown:
                continue
            if shape.kind == "concat":
                first = self.inputs[index][0] in grown
                shapes[index] = replace(shape, input=(shape.input[0] + (channels if first else 0), *shape.input[1:]),
                                        output=(shape.output[0] + channels, *shape.output[1:]))
                grown.add(index)
            elif shape.kind in CHANNELWISE_KINDS:
                shapes[index] = shape.with_channels(input_channels=shape.input[0] + channels)
                grown.add(index)
            else:  # a consumer: its fan-in grows (by H·W per channel after a flatten), its output does not
                per_channel = max(1, self.shapes[index].input[0] // self.shapes[sources[0]].output[0]) \
                    if shape.kind == "fully_connected" else 1
                added = channels * per_channel
                if self.kernels[index].layers[0] in self.square_layers:  # deepen builds it at the widened width
                    shapes[index] = shape.with_channels(input_channels=shape.input[0] + added,
                                                        output_channels=shape.output[0] + added)
                    grown.add(index)
                else:
                    shapes[index] = shape.with_channels(input_channels=shape.input[0] + added)

    def widened_report(self, growth: Mapping[tuple[str, ...], int]) -> CostReport:
        """The predicted cost after widening several groups at once (``widened_groups``), without tracing."""
        return self._report(*self.widened_groups(growth))

    def output_shape_of(self, module_name: str) -> tuple[int, ...]:
        """The traced output shape (batch 1) of module ``module_name``; ValueError as ``output_node_of``."""
        return output_shape(output_node_of(self.graph, module_name))

    def report_with_modules_after(self, module_name: str, inserted: list[tuple[str, nn.Module]]) -> CostReport:
        """The predicted cost with the shape-keeping modules ``inserted`` ((name, module), run in turn)
        on the output of module ``module_name`` — a block ``deepen`` inserts — without tracing again:
        the same report as tracing the model with the block in (``with_modules_after``)."""
        return self.with_modules_after([(module_name, inserted)]).report

    def with_modules_after(self, insertions: list[tuple[str, list[tuple[str, nn.Module]]]]) -> KernelCostModel:
        """This cost model with, for each (module name, [(name, module), …]) of ``insertions``, those
        shape-keeping modules run in turn on that module's output (the blocks ``deepen`` inserts), as if
        the deepened model were traced: its ``report`` prices it and its ``widened_report`` prices it
        with channel groups widened too. An inserted conv or linear layer widens with its input (its
        output too), as ``deepen`` builds a block after a widened layer at the new width.

        Raises:
            ValueError: a module the graph does not single out (``output_node_of``), or an inserted
                name that is taken or repeated.
        """
        names = [name for _, inserted in insertions for name, _ in inserted]
        taken, repeated = sorted(set(names) & set(self.modules)), sorted({n for n in names if names.count(n) > 1})
        if taken or repeated:
            raise ValueError(f"inserted module names must be new and distinct; "
                             f"{', '.join(taken or repeated)} {'is taken' if taken else 'comes twice'}")
        layers = {name: module for _, inserted in insertions for name, module in inserted}
        deepened = copy.copy(self)
        deepened.square_layers = self.square_layers | {name for name, module in layers.items()
                                                       if isinstance(module, (nn.Conv2d, nn.Linear))
                                                       and not (isinstance(module, nn.Conv2d) and module.groups > 1)}
        deepened._use_graph(graph_with_modules_after(self.graph, insertions), {**self.modules, **layers},
                            self.parameters + sum(p.numel() for module in layers.values() for p in module.parameters()))
        return deepened

    def marginal(self, producers: list[str] | set[str], channels: int) -> MarginalCost:
        """Cost before and after adding ``channels`` to the group produced by ``producers``."""
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        kernels, shapes = self.widened(producers, channels)
        return MarginalCost(self.report, self._report(kernels, shapes), channels)


def _output_shape(kernel: Kernel, shape: KernelShape) -> tuple[int, ...]:
    if len(kernel.output_shape) == 4:
        return (1, *shape.output)
    if len(kernel.output_shape) == 2:
        return (1, shape.output[0] * shape.output[1] * shape.output[2])
    return kernel.output_shape


def marginal_cost(model: nn.Module, example_input: torch.Tensor, target: Target | str,
                  producers: list[str] | set[str], channels: int) -> MarginalCost:
    """What adding ``channels`` to the channel group produced by ``producers`` costs on ``target``."""
    return KernelCostModel(model, example_input, target).marginal(producers, channels)
