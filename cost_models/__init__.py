"""Cost estimation for edgegrow, importable on its own (needs torch and numpy; the profiler also
needs onnx and onnxruntime).

- ``estimate(model, example_input, target)``: totals and per-kernel MACs, parameters, weight bytes,
  peak SRAM, flash, latency (ms) and energy (mJ) on a target device.
- ``load_target`` / ``known_targets``: device profiles (``targets/*.json``).
- ``KernelCostModel(...).marginal(producers, n)`` / ``marginal_cost``: what n more channels in a
  channel group cost, in every metric.
- ``LatencyModel``: kernel and model latency from a profile's table (lookup, staircase-aware
  interpolation, fitted fallback, roofline floor).
- ``count_macs``, ``fused_kernels``, ``plan_arena``: the analytic pieces underneath.
"""
from .estimate import CostReport, KernelCost, estimate, estimate_kernels, estimate_targets
from .kernel_shape import KernelShape
from .kernels import Kernel, fused_kernels, trace_with_shapes
from .latency import KernelLatency, LatencyModel
from .macs import MacReport, conv2d_macs, count_macs, linear_macs
from .marginal import KernelCostModel, MarginalCost, marginal_cost
from .memory import ArenaPlan, Buffer, activation_buffers, plan_arena
from .target import Target, known_targets, load_known_targets, load_target, parse_target

__all__ = [
    "ArenaPlan", "Buffer", "CostReport", "Kernel", "KernelCost", "KernelCostModel", "KernelLatency", "KernelShape",
    "LatencyModel", "MacReport", "MarginalCost", "Target", "activation_buffers", "conv2d_macs", "count_macs",
    "estimate", "estimate_kernels", "estimate_targets", "fused_kernels", "known_targets", "linear_macs", "load_known_targets",
    "load_target",
    "marginal_cost",
    "parse_target", "plan_arena", "trace_with_shapes",
]
