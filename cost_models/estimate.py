"""What a model costs on a target: ``estimate(model, example_input, target)``.

The report has totals and one row per fused kernel: MACs, parameters, weight bytes (float32 and
int8), latency (ms) and energy (mJ), plus the model's SRAM (the TFLite Micro arena: peak activations
in the target's dtype, with the converter's PAD ops and, on TFLite Micro, the interpreter's own
allocations) and flash (weights in the target's dtype plus the model overhead).
Anything the profile could not cost from measurements is listed in ``uncosted`` with how it was
covered; nothing is silently zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .kernel_shape import WEIGHTED_KINDS, KernelShape
from .kernels import Kernel, fused_kernels
from .latency import LatencyModel
from .memory import activation_buffers, converter_padding, plan_arena, runtime_memory, tflite_tensors
from .target import Target, load_target

# int32 bias, and a float32 scale and an int64 zero point per channel for the weights and again for the bias (TFLite)
INT8_BYTES_PER_OUTPUT_CHANNEL = 4 + 2 * (4 + 8)


@dataclass(frozen=True)
class KernelCost:
    name: str
    kind: str
    layers: tuple[str, ...]
    shape: KernelShape
    macs: int
    parameters: int
    weight_bytes_fp32: int
    weight_bytes_int8: int
    latency_ms: float
    latency_method: str  # table, interpolated, fitted, analytic, fused, roofline
    energy_mj: float | None


@dataclass
class CostReport:
    target: str
    kernels: list[KernelCost]
    macs: int
    parameters: int
    weight_bytes_fp32: int
    weight_bytes_int8: int
    sram_bytes: int  # the arena: peak activations in the target's dtype, plus the runtime's own (sram_runtime_bytes)
    flash_bytes: int  # the model file: weights in the target's dtype, operators and tensors, and the model overhead
    latency_ms: float
    layout_change_ms: float
    overhead_ms: float
    energy_mj: float | None  # None: the profile gives no power or per-operation energy
    uncosted: list[str] = field(default_factory=list)
    limits: dict[str, int | None] = field(default_factory=dict)
    sram_runtime_bytes: int = 0  # of sram_bytes, what the runtime keeps besides activations (TFLite Micro's structs)

    @property
    def over_limits(self) -> list[str]:
        """Which of the target's memory limits the model exceeds, as readable lines."""
        lines = []
        for metric, used in (("sram_bytes", self.sram_bytes), ("flash_bytes", self.flash_bytes)):
            limit = self.limits.get(metric)
            if limit is not None and used > limit:
                lines.append(f"{metric[:-6]} {used:,} B > {limit:,} B")
        return lines

    def table(self) -> str:
        """The per-kernel breakdown and totals as fixed-width text."""
        lines = [f"{'kernel':<34} {'kind':<15} {'MACs':>11} {'params':>9} {'ms':>9}  method"]
        for row in self.kernels:
            lines.append(f"{row.name[:34]:<34} {row.kind:<15} {row.macs:>11,} {row.parameters:>9,} "
                         f"{row.latency_ms:>9.4f}  {row.latency_method}")
        energy = "n/a (no power figure)" if self.energy_mj is None else f"{self.energy_mj:.4f} mJ"
        lines += [
            f"total on {self.target}: {self.macs:,} MACs, {self.parameters:,} parameters, "
            f"latency {self.latency_ms:.4f} ms (kernels + {self.layout_change_ms:.4f} ms layout changes + "
            f"{self.overhead_ms:.4f} ms overhead), energy {energy}",
            f"weights {self.weight_bytes_fp32:,} B float32 / {self.weight_bytes_int8:,} B int8; "
            f"SRAM (arena) {self.sram_bytes:,} B, of it {self.sram_runtime_bytes:,} B the runtime's own; "
            f"flash {self.flash_bytes:,} B",
        ]
        lines += [f"uncosted: {item}" for item in self.uncosted]
        lines += [f"over the limit: {item}" for item in self.over_limits]
        return "\n".join(lines)


def weight_bytes(shape: KernelShape, dtype: str) -> int:
    """Stored bytes of a kernel's folded weights: float32/16 throughout, or int8 weights with
    per-output-channel int32 bias and quantisation parameters."""
    if shape.kind not in WEIGHTED_KINDS:
        return 0
    out_channels = shape.output[0]
    if dtype == "int8":
        return shape.weight_count - out_channels + out_channels * INT8_BYTES_PER_OUTPUT_CHANNEL
    return shape.weight_count * (2 if dtype == "float16" else 4)


def kernel_inputs(kernels: list[Kernel]) -> list[list[int]]:
    """For each kernel, the indices of the kernels it reads (-1: the model input)."""
    index = {kernel.name: i for i, kernel in enumerate(kernels)}
    return [[index.get(source, -1) for source in kernel.inputs] for kernel in kernels]


def estimate(model: nn.Module, example_input: torch.Tensor, target: Target | str) -> CostReport:
    """Cost of ``model`` (batch 1) on ``target`` (a ``Target`` or a name for ``load_target``)."""
    target = load_target(target) if isinstance(target, str) else target
    kernels = fused_kernels(model, example_input)
    shapes = [KernelShape.from_kernel(kernel) for kernel in kernels]
    return estimate_kernels(kernels, shapes, target, tuple(example_input.shape),
                            sum(p.numel() for p in model.parameters()))


def estimate_targets(model: nn.Module, example_input: torch.Tensor,
                     targets: dict[str, Target]) -> dict[str, CostReport]:
    """``estimate`` on each of ``targets`` (name → Target), tracing the model once."""
    kernels = fused_kernels(model, example_input)
    shapes = [KernelShape.from_kernel(kernel) for kernel in kernels]
    parameters = sum(p.numel() for p in model.parameters())
    return {name: estimate_kernels(kernels, shapes, target, tuple(example_input.shape), parameters)
            for name, target in targets.items()}


def estimate_kernels(kernels: list[Kernel], shapes: list[KernelShape], target: Target,
                     input_shape: tuple[int, ...], parameters: int,
                     latency_model: LatencyModel | None = None) -> CostReport:
    """``estimate`` for kernels already traced (growth re-costs edited shapes without re-tracing)."""
    latency_model = latency_model or LatencyModel(target)
    paddings = [converter_padding(kernel) if kernel.kind == "pool" else None for kernel in kernels]
    per_kernel, layout_ms, total_ms = latency_model.model(shapes, kernel_inputs(kernels), paddings)
    energy_per_op = target.energy_pj_per_mac is not None and target.energy_pj_per_byte is not None
    power_mw = target.active_power_mw.value
    rows, uncosted = [], []
    for kernel, shape, timing in zip(kernels, shapes, per_kernel):
        if energy_per_op:
            picojoules = (shape.macs * target.energy_pj_per_mac.value
                          + shape.traffic_bytes(target.bytes_per_element) * target.energy_pj_per_byte.value)
            energy = picojoules * 1e-9
        else:
            energy = None if power_mw is None else power_mw * timing.latency_ms * 1e-3
        if timing.method == "roofline":
            uncosted.append(f"{kernel.name} ({shape.kind}): no table entry or rate for this kind; "
                            f"costed at its roofline bound {timing.latency_ms:.4f} ms")
        rows.append(KernelCost(kernel.name, kernel.kind, tuple(kernel.layers), shape, shape.macs, kernel.parameters,
                               weight_bytes(shape, "float32"), weight_bytes(shape, "int8"),
                               timing.latency_ms, timing.method, energy))
    runtime = runtime_memory(target.runtime)
    buffers = activation_buffers(kernels, input_shape, target.bytes_per_element,
                                 converter_pads=runtime is not None and runtime.converter_pads)
    runtime_bytes = file_bytes = 0
    if runtime is not None:
        operators = sum(buffer.tensor != "input" for buffer in buffers)  # kernels, less folded pads, plus PADs
        channels = sum(shape.output[0] for shape in shapes if shape.kind in WEIGHTED_KINDS)
        runtime_bytes = runtime.overhead_bytes(operators, channels)
        file_bytes = runtime.file_overhead_bytes(operators, tflite_tensors(kernels, buffers))
    arena = plan_arena(buffers).arena_bytes + runtime_bytes
    if runtime is not None:  # the widest layer's quantisation arrays while kernels are prepared
        widest = max((shape.output[0] for shape in shapes if shape.kind in WEIGHTED_KINDS), default=0)
        arena = max(arena, runtime_bytes + runtime.prepare_bytes(widest))
    weights_on_target = sum(weight_bytes(shape, target.dtype) for shape in shapes) + file_bytes
    if energy_per_op:
        energy_total = sum(row.energy_mj for row in rows)
    else:
        energy_total = None if power_mw is None else power_mw * total_ms * 1e-3
    return CostReport(
        target=target.name, kernels=rows, macs=sum(row.macs for row in rows), parameters=parameters,
        weight_bytes_fp32=sum(row.weight_bytes_fp32 for row in rows),
        weight_bytes_int8=sum(row.weight_bytes_int8 for row in rows),
        sram_bytes=arena, flash_bytes=weights_on_target + int(target.model_overhead_flash_bytes.value),
        latency_ms=total_ms, layout_change_ms=layout_ms, overhead_ms=target.model_overhead_ms.value,
        energy_mj=energy_total, uncosted=uncosted,
        limits={"sram_bytes": _limit(target.sram_bytes.value), "flash_bytes": _limit(target.flash_bytes.value)},
        sram_runtime_bytes=runtime_bytes,
    )


def _limit(value: float | None) -> int | None:
    return None if value is None else int(value)
