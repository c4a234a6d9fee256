"""Peak activation memory (SRAM) as TFLite Micro's arena would lay the tensors out.

Each tensor (the model input and every kernel's output; reshapes alias their input) lives from the
step that writes it to the last step that reads it; the model output lives to the end. Kernel ``i``
runs at step ``3i + 1``. With ``converter_pads`` (the model as TFLite's converter leaves it), a
convolution whose padding TFLite's SAME or VALID cannot express (PyTorch's symmetric padding 1 on a
stride-2 3×3 convolution over an even size: SAME pads 0 before and 1 after) gets the PAD op the
converter puts before it, at step ``3i``, and its zero-padded copy of the input; and an activation
TFLite cannot fuse into the kernel before it (only ReLU, ReLU6 and ReLU-1..1 fuse: Hardswish, the
sigmoid of a squeeze-and-excitation gate, GELU, SiLU… are operators of their own) runs at step
``3i + 2``, reading the kernel's output and writing a tensor of the same size. Buffers are placed like TFLite Micro's GreedyMemoryPlanner:
largest first, each at the lowest 16-byte aligned offset where it overlaps no placed buffer that is
alive at the same time. The arena size is the highest end offset. The plain sum of live sizes at
the worst step is a lower bound on it.

TFLite Micro's arena holds more than activations: per-tensor and per-operator structs and each
convolution's per-channel requantisation (an int32 multiplier and shift per output channel).
``RuntimeMemory`` (``runtime_memory.json``, measured on the TFLite Micro interpreter) adds them. While
kernels are prepared, before the activations are placed, TFLite Micro also holds the quantisation
arrays of each per-channel tensor in temporary memory: the arena is at least the runtime's own bytes
plus those of the widest layer (``RuntimeMemory.prepare_bytes``), which is more than the activations
need behind a wide layer on a small map (a 1×1 convolution after a global pool).
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .kernel_shape import WEIGHTED_KINDS, same_padding
from .kernels import TFLITE_FUSED_ACTIVATIONS, Kernel

CONVOLUTION_KINDS = ("conv", "depthwise", "pointwise")
STEPS_PER_KERNEL = 3  # a PAD before, the kernel, an unfused activation after

ALIGNMENT_BYTES = 16


@dataclass(frozen=True)
class Buffer:
    tensor: str  # "input", the kernel whose output it is, or "KERNEL/pad" (a converter's PAD before it)
    size_bytes: int
    first_step: int  # the step that writes it (-1: the model input, written before step 0)
    last_step: int  # the last step that reads it
    offset_bytes: int = 0


@dataclass(frozen=True)
class ArenaPlan:
    buffers: tuple[Buffer, ...]
    arena_bytes: int  # what an arena needs for the activations
    lower_bound_bytes: int  # the largest sum of simultaneously live tensors


def _align(size: int) -> int:
    return -(-size // ALIGNMENT_BYTES) * ALIGNMENT_BYTES


def _same_padding_total(size: int, kernel_size: int, stride: int) -> int:
    """Zero padding TFLite's SAME adds along one axis (it puts the odd one after)."""
    return sum(same_padding(size, -(-size // stride), kernel_size, stride))


def converter_padding(kernel: Kernel) -> tuple[int, int] | None:
    """The padding (height, width) of the PAD op TFLite's converter puts before ``kernel``, or None
    when the convolution's or max pool's own SAME or VALID padding expresses it. An average pool's padding
    is always a PAD op: PyTorch counts the zeros in the average, TFLite's SAME leaves them out (a max
    pool's is a PADV2 of the same size). Without these an int8 network with ``F.max_pool2d(x, 3, 2, 1)`` or
    ``F.avg_pool2d(x, 3, 2, 1)`` on a 32×32 or 48×48 map needed a TFLite Micro arena 1.5x the predicted one
    (2026-12-07)."""
    if kernel.padding == (0, 0) or not kernel.input_shapes:
        return None
    if kernel.kind == "avg_pool" and len(kernel.input_shapes[0]) == 4:
        return tuple(kernel.padding)
    if kernel.kind not in CONVOLUTION_KINDS + ("pool",):
        return None
    sizes = kernel.input_shapes[0][2:4]
    if len(sizes) != 2:
        return None
    for size, pad, k, stride in zip(sizes, kernel.padding, kernel.kernel_size, kernel.stride):
        if _same_padding_total(size, k, stride) != 2 * pad or (size + 2 * pad - k) // stride + 1 != -(-size // stride):
            return tuple(kernel.padding)
    return None


def folded_pads(kernels: list[Kernel]) -> set[int]:
    """Indices of pad kernels TFLite's converter folds into the convolution that reads them: zero
    padding exactly SAME's before and after, in front of a convolution without padding of its own."""
    readers: dict[str, list[Kernel]] = {}
    for kernel in kernels:
        for source in kernel.inputs:
            readers.setdefault(source, []).append(kernel)
    folded = set()
    for index, pad in enumerate(kernels):
        following = readers.get(pad.name, [])
        if pad.kind != "pad" or len(following) != 1 or not pad.input_shapes:
            continue
        conv = following[0]
        if conv.kind not in CONVOLUTION_KINDS or conv.padding != (0, 0):
            continue
        fits = True
        for size, padded, before, k, stride in zip(pad.input_shapes[0][2:4], pad.output_shape[2:4], pad.padding,
                                                   conv.kernel_size, conv.stride):
            same_total = _same_padding_total(size, k, stride)
            fits &= padded - size == same_total and before == same_total // 2
        if fits:
            folded.add(index)
    return folded


def unfused_activation(kernel: Kernel) -> bool:
    """Whether TFLite runs ``kernel``'s fused activation as an operator of its own. An ``activation`` kernel is that
    operator; a ``batch_norm`` with its ReLU is counted as a BatchNorm and an activation operator, as before it took
    the ReLU in (TFLite writes two to four operators for it)."""
    if kernel.kind == "activation" or kernel.activation is None:
        return False
    return kernel.kind == "batch_norm" or kernel.activation.lower() not in TFLITE_FUSED_ACTIVATIONS


def activation_buffers(kernels: list[Kernel], input_shape: tuple[int, ...], bytes_per_element: int, *,
                       converter_pads: bool = False) -> list[Buffer]:
    """One buffer per tensor with its lifetime in steps (batch 1; kernel ``i`` runs at step ``3i + 1``).

    ``converter_pads``: the model as TFLite's converter leaves it: the PAD ops it inserts (see
    ``converter_padding``) are added, the pad kernels it folds into SAME padding (``folded_pads``)
    are gone, their reader reading their input, and the activations it cannot fuse are operators of
    their own (``unfused_activation``): the kernel's output before the activation is a buffer
    (``KERNEL/pre``) read by it.
    """
    steps = STEPS_PER_KERNEL
    pads = {index: converter_padding(kernel) for index, kernel in enumerate(kernels)} if converter_pads else {}
    pads = {index: padding for index, padding in pads.items() if padding is not None}
    folded = folded_pads(kernels) if converter_pads else set()
    alias = {kernels[index].name: (kernels[index].inputs or ["input"])[0] for index in folded}
    last_read = {"input": 0}
    for index, kernel in enumerate(kernels):
        if index in folded:
            continue
        for position, source in enumerate(kernel.inputs):
            read_by_pad = index in pads and position == 0
            last_read[alias.get(source, source)] = steps * index + (0 if read_by_pad else 1)
    unfused = {index for index, kernel in enumerate(kernels) if converter_pads and unfused_activation(kernel)}
    final = steps * (len(kernels) - 1) + (2 if len(kernels) - 1 in unfused else 1)
    sizes = {"input": math.prod(input_shape[1:]) * bytes_per_element}
    buffers = [Buffer("input", sizes["input"], -1, last_read["input"])]
    for index, kernel in enumerate(kernels):
        step = steps * index + 1
        if index in folded:
            continue
        if index in pads:  # the zero-padded copy of the input, written by the PAD op just before
            height, width = kernel.input_shapes[0][2:4]
            (pad_h, pad_w), source = pads[index], (kernel.inputs or ["input"])[0]
            source = alias.get(source, source)
            padded = sizes.get(source, 0) * (height + 2 * pad_h) * (width + 2 * pad_w) // (height * width)
            buffers.append(Buffer(f"{kernel.name}/pad", padded, step - 1, step))
        sizes[kernel.name] = math.prod(kernel.output_shape) * bytes_per_element
        if index in unfused:  # the kernel writes its output, the activation operator reads it next
            buffers.append(Buffer(f"{kernel.name}/pre", sizes[kernel.name], step, step + 1))
            step += 1
        buffers.append(Buffer(kernel.name, sizes[kernel.name], step,
                              final if step == final else max(step, last_read.get(kernel.name, step))))
    return buffers


@dataclass(frozen=True)
class RuntimeMemory:
    """What a runtime keeps besides the activations and the weights (``runtime_memory.json``): in its
    arena (TFLite Micro's structs and requantisation), in its model file (the flatbuffer's operators
    and tensors), and whether its converter adds PAD ops."""

    runtime: str
    converter_pads: bool
    fixed_bytes: int = 0
    bytes_per_operator: int = 0
    bytes_per_output_channel: int = 0  # of each convolution and fully connected layer
    file_bytes_per_operator: int = 0
    file_bytes_per_tensor: int = 0
    prepare_fixed_bytes: int = 0
    prepare_bytes_per_channel: int = 0  # of the widest convolution or fully connected layer
    source: str = ""

    def prepare_bytes(self, widest_channels: int) -> int:
        """Arena bytes a kernel asks for on top of the runtime's own while it is prepared, before the
        activations are placed: the quantisation arrays of the widest per-channel tensor. The arena
        must hold the runtime's own bytes plus these, even where the activations need less."""
        return self.prepare_fixed_bytes + self.prepare_bytes_per_channel * widest_channels if widest_channels else 0

    def overhead_bytes(self, operators: int, output_channels: int) -> int:
        """Arena bytes besides the activations."""
        return self.fixed_bytes + self.bytes_per_operator * operators + self.bytes_per_output_channel * output_channels

    def file_overhead_bytes(self, operators: int, tensors: int) -> int:
        """Model-file bytes for the operators and tensors themselves (the weights counted apart)."""
        return self.file_bytes_per_operator * operators + self.file_bytes_per_tensor * tensors


def runtime_memory(runtime: str) -> RuntimeMemory | None:
    """The memory facts of ``runtime`` from ``runtime_memory.json``; None for a runtime it does not list."""
    return _RUNTIME_MEMORY.get(runtime)


def tflite_tensors(kernels: list[Kernel], buffers: list[Buffer]) -> int:
    """Tensors of the converted TFLite model: the input, each operator's output, each weighted
    kernel's weights and bias, and one shared constant for all PAD paddings and one for MEAN's axes."""
    names = {buffer.tensor for buffer in buffers}
    operators = len(names) - 1  # every buffer but the input is an operator's output
    weighted = sum(kernel.kind in WEIGHTED_KINDS for kernel in kernels)
    pads = any(name.endswith("/pad") for name in names) or any(
        kernel.kind == "pad" and kernel.name in names for kernel in kernels)
    means = any(kernel.kind in ("global_pool", "mean") for kernel in kernels)
    return 1 + operators + 2 * weighted + int(pads) + int(means)


def _read_runtime_memory() -> dict[str, RuntimeMemory]:
    data = json.loads((Path(__file__).with_name("runtime_memory.json")).read_text())
    fields = ("fixed_bytes", "bytes_per_operator", "bytes_per_output_channel", "file_bytes_per_operator",
              "file_bytes_per_tensor", "prepare_fixed_bytes", "prepare_bytes_per_channel")
    return {name: RuntimeMemory(name, bool(entry["converter_pads"]), *(int(entry.get(key, 0)) for key in fields),
                                source=entry.get("source", ""))
            for name, entry in data["runtimes"].items()}


_RUNTIME_MEMORY = _read_runtime_memory()


def plan_arena(buffers: list[Buffer]) -> ArenaPlan:
    """Greedy placement, largest buffer first (TFLite Micro's GreedyMemoryPlanner). Equal sizes go
    in TFLite Micro's order: it lists tensors from the last to the first and sorts stably, so of
    two equal buffers the later-written one is placed first."""
    placed: list[Buffer] = []
    for buffer in sorted(buffers, key=lambda b: (-_align(b.size_bytes), -b.first_step)):
        size = _align(buffer.size_bytes)
        alive = sorted((b for b in placed if b.first_step <= buffer.last_step
                        and buffer.first_step <= b.last_step), key=lambda b: b.offset_bytes)
        offset = 0
        for other in alive:
            if offset + size <= other.offset_bytes:
                break
            offset = max(offset, other.offset_bytes + _align(other.size_bytes))
        placed.append(Buffer(buffer.tensor, buffer.size_bytes, buffer.first_step, buffer.last_step, offset))
    arena = max((b.offset_bytes + _align(b.size_bytes) for b in placed), default=0)
    return ArenaPlan(tuple(sorted(placed, key=lambda b: b.first_step)), arena, _peak_live_bytes(buffers))


def _peak_live_bytes(buffers: list[Buffer]) -> int:
    """The most bytes alive at one step (a buffer is alive from its first step to its last, both
    included): no placement fits in less. A sweep over the steps where buffers start and end."""
    changes: dict[int, int] = defaultdict(int)
    for b in buffers:
        changes[b.first_step] += _align(b.size_bytes)
        changes[b.last_step + 1] -= _align(b.size_bytes)
    alive = peak = 0
    for step in sorted(changes):
        alive += changes[step]
        peak = max(peak, alive)
    return peak
