"""Cost estimation for edgegrow, importable on its own (needs only torch).

- ``count_macs``: analytic MACs per layer and parameters (one multiply-add = one MAC).
- ``fused_kernels``: the model as the kernels a runtime executes (BatchNorm and activations fused).
- ``activation_buffers`` / ``plan_arena``: peak activation memory as TFLite Micro's arena lays it out.

Latency, energy and flash from device profiles in ``targets/`` come next.
"""
from .kernels import Kernel, fused_kernels, trace_with_shapes
from .macs import MacReport, conv2d_macs, count_macs, linear_macs
from .memory import ArenaPlan, Buffer, activation_buffers, plan_arena

__all__ = [
    "ArenaPlan", "Buffer", "Kernel", "MacReport", "activation_buffers", "conv2d_macs", "count_macs",
    "fused_kernels", "linear_macs", "plan_arena", "trace_with_shapes",
]
