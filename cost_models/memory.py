"""Peak activation memory (SRAM) as TFLite Micro's arena would lay the tensors out.

Each tensor (the model input and every kernel's output; reshapes alias their input) lives from the
kernel that writes it to the last kernel that reads it; the model output lives to the end. Buffers
are placed like TFLite Micro's GreedyMemoryPlanner: largest first, each at the lowest 16-byte
aligned offset where it overlaps no placed buffer that is alive at the same time. The arena size is
the highest end offset. The plain sum of live sizes at the worst kernel is a lower bound on it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .kernels import Kernel

ALIGNMENT_BYTES = 16


@dataclass(frozen=True)
class Buffer:
    tensor: str  # "input" or the kernel whose output it is
    size_bytes: int
    first_kernel: int  # index of the kernel that writes it (-1: the model input, written before kernel 0)
    last_kernel: int  # index of the last kernel that reads it
    offset_bytes: int = 0


@dataclass(frozen=True)
class ArenaPlan:
    buffers: tuple[Buffer, ...]
    arena_bytes: int  # what an arena needs for the activations
    lower_bound_bytes: int  # the largest sum of simultaneously live tensors


def _align(size: int) -> int:
    return -(-size // ALIGNMENT_BYTES) * ALIGNMENT_BYTES


def activation_buffers(kernels: list[Kernel], input_shape: tuple[int, ...], bytes_per_element: int) -> list[Buffer]:
    """One buffer per tensor with its lifetime in kernel indices (batch 1)."""
    last_read = {"input": 0}
    for index, kernel in enumerate(kernels):
        for source in kernel.inputs:
            last_read[source] = index
    final = len(kernels) - 1
    buffers = [Buffer("input", math.prod(input_shape[1:]) * bytes_per_element, -1, last_read["input"])]
    for index, kernel in enumerate(kernels):
        buffers.append(Buffer(kernel.name, math.prod(kernel.output_shape) * bytes_per_element, index,
                              final if index == final else last_read.get(kernel.name, index)))
    return buffers


def plan_arena(buffers: list[Buffer]) -> ArenaPlan:
    """Greedy placement, largest buffer first (TFLite Micro's GreedyMemoryPlanner)."""
    placed: list[Buffer] = []
    for buffer in sorted(buffers, key=lambda b: (-b.size_bytes, b.first_kernel)):
        size = _align(buffer.size_bytes)
        alive = sorted((b for b in placed if b.first_kernel <= buffer.last_kernel
                        and buffer.first_kernel <= b.last_kernel), key=lambda b: b.offset_bytes)
        offset = 0
        for other in alive:
            if offset + size <= other.offset_bytes:
                break
            offset = max(offset, other.offset_bytes + _align(other.size_bytes))
        placed.append(Buffer(buffer.tensor, buffer.size_bytes, buffer.first_kernel, buffer.last_kernel, offset))
    arena = max((b.offset_bytes + _align(b.size_bytes) for b in placed), default=0)
    first = min((b.first_kernel for b in buffers), default=0)
    last = max((b.last_kernel for b in buffers), default=0)
    lower = max((sum(_align(b.size_bytes) for b in buffers if b.first_kernel <= t <= b.last_kernel)
                 for t in range(first, last + 1)), default=0)
    return ArenaPlan(tuple(sorted(placed, key=lambda b: b.first_kernel)), arena, lower)
