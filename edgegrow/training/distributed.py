"""Data-parallel training over ``torch.distributed``: ``torchrun --nproc_per_node N -m edgegrow grow …``.

Every process (rank) holds the whole network and trains it on its share of each batch; the run is the
run of one process with the same (global) ``batch_size``:

- **batches**: the run's seeded order of examples is cut into global batches as in one process, and
  rank ``r`` of ``N`` takes examples ``r, r + N, …`` of each (a distributed sampler that keeps the
  batch order of one process, so resume stays exact); ``batch_size`` must be a multiple of ``N``;
- **gradients**: averaged by ``DistributedDataParallel`` over the global batch (each rank's loss is
  weighted by its share of the batch, so an uneven last batch averages as one process would);
- **BatchNorm**: by default each rank normalises with its own share of the batch (plain DDP) and rank
  0's running statistics are broadcast, so every rank evaluates the same network; with
  ``sync_batch_norm`` the mean and variance of a training batch are all-reduced across ranks
  (``synced_batch_norm``), as one process would compute them over the global batch, with gradients
  through the reduction, and the run is the one a single process makes. PyTorch's ``SyncBatchNorm``
  runs on GPUs only; this one runs wherever ``torch.distributed`` does (gloo on CPUs) and is only
  switched on for the training forward pass, so the network stays a plain module;
- **consensus**: whether a batch's loss is finite, the epoch's loss and accuracy sums and a time limit
  are all-reduced, so every rank stops, rolls back or goes on at the same step.

The wrapper is rebuilt whenever the network's parameters change (a growth edit replaces them), which
broadcasts rank 0's weights again. Growth decisions are made once, by rank 0, and handed to the other
ranks whole (``edgegrow.grow.loop``), so every rank applies the same edit by construction.
"""
from __future__ import annotations

import inspect
import os
import signal
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn


class PeerLost(RuntimeError):
    """Another process of the torchrun job stopped (killed, out of memory, an error of its own), so this one
    cannot go on; the run folder holds the run up to its last finished epoch."""


T = TypeVar("T")
_PEER_ERRORS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")  # gloo's words for it


def peer_lost(error: BaseException) -> bool:
    """Whether ``error`` says another process of the job is gone (a collective found its connection closed)."""
    return isinstance(error, PeerLost) or isinstance(error, getattr(dist, "DistError", ())) or any(
        words in str(error) for words in _PEER_ERRORS)


def stop_on_sigterm() -> None:
    """Turn the SIGTERM with which ``torchrun`` stops a job's other processes, when one fails, into
    ``PeerLost`` (files are written atomically, so stopping at any point leaves the run folder whole)."""
    def stop(signum, frame):
        raise PeerLost("stopped by torchrun (SIGTERM): another process of the job ended")

    signal.signal(signal.SIGTERM, stop)


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` processes (``local_rank`` on its machine)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files, logs and calls callbacks."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


def current_world() -> World:
    """The job this process belongs to: one process unless a process group is initialised."""
    if dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        return World(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank)))
    return World()


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun`` (its environment says so)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment(device: str = "auto") -> World:
    """Join the job ``torchrun`` started (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``…): gloo on CPUs, NCCL
    when the run trains on CUDA, where each process takes the GPU of its ``LOCAL_RANK``. One process
    (no ``torchrun``, or ``--nproc_per_node 1``) needs no process group and gets none."""
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        return current_world()
    if not dist.is_available():
        raise ValueError("this PyTorch build has no torch.distributed: run one process (without torchrun)")
    from .device import resolve_device

    cuda = resolve_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return current_world()


def leave() -> None:
    """Leave the process group (the end of a ``torchrun`` job)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_batch_divisible(batch_size: int, world: World) -> None:
    if batch_size % world.size:
        raise ValueError(f"batch_size {batch_size} is not a multiple of the {world.size} processes: each takes an "
                         f"equal share of a batch; choose a batch size divisible by {world.size}")


def broadcast_object(value, world: World):
    """Rank 0's ``value``, on every rank (others pass anything)."""
    if not world.parallel:
        return value
    holder = [value if world.main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier(world: World) -> None:
    if world.parallel:
        dist.barrier()


def rank_zero_first(world: World, function: Callable[[], T]) -> T:
    """``function()`` on every rank, rank 0's call finished before the others start: rank 0 fills a cache
    (the data's features, a device profile) that the others then read instead of making again."""
    result = None
    for turn in ("rank 0", "the others") if world.parallel else ("rank 0",):
        if (turn == "rank 0") == world.main:
            result = function()
        barrier(world)
    return result


def all_reduce_sum(values: list[float], world: World) -> list[float]:
    """Element-wise sums over ranks of a few numbers (float64)."""
    if not world.parallel:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_buffers(model: nn.Module, world: World) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) on every rank: with each process's own BatchNorm
    statistics they drift apart in training, and every rank must evaluate the same network."""
    if world.parallel:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def parameter_signature(model: nn.Module) -> tuple:
    """What a DDP wrapper depends on: which parameter objects, and their shapes."""
    return tuple((id(p), tuple(p.shape)) for p in model.parameters())


def data_parallel(model: nn.Module, synced_batch_norm: bool) -> nn.Module:
    """``model`` wrapped for data-parallel training (rank 0's weights broadcast to all). With BatchNorm
    statistics of each process's own share (``synced_batch_norm`` False) rank 0's running statistics
    are broadcast before every forward pass, so every process evaluates the same network."""
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    device_ids = [device] if device.type == "cuda" else None
    # synced BatchNorm keeps the buffers equal, so they are not re-broadcast before every forward
    # (the keyword's name since torch 2.13; broadcast_buffers before)
    keyword = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else "broadcast_buffers")
    return DistributedDataParallel(model, device_ids=device_ids, **{keyword: not synced_batch_norm})


class _AllReduceSum(torch.autograd.Function):
    """Σ over ranks, with the gradient of a sum: each rank's input gets the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        total = gradient.clone()
        dist.all_reduce(total)
        return total


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(tensor)


def _synced_forward(module: nn.modules.batchnorm._BatchNorm):
    """A training-mode BatchNorm forward whose batch statistics are those of the global batch."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        dims = [d for d in range(x.dim()) if d != 1]
        wide = x.double()  # E[x²] − E[x]² in float64: no cancellation worth speaking of at these sizes
        count = x.new_tensor([x.numel() / channels], dtype=torch.float64)
        totals = all_reduce(torch.cat([wide.sum(dims), (wide * wide).sum(dims), count]))
        n = totals[-1]
        mean = totals[:channels] / n
        variance = (totals[channels:2 * channels] / n - mean * mean).clamp_min(0)
        shape = [1, channels] + [1] * (x.dim() - 2)
        scale = torch.rsqrt(variance + module.eps).to(x.dtype)
        y = (x - mean.to(x.dtype).view(shape)) * scale.view(shape)
        if module.affine:
            y = y * module.weight.view(shape) + module.bias.view(shape)
        if module.track_running_stats:
            with torch.no_grad():
                module.num_batches_tracked.add_(1)
                momentum = (1.0 / float(module.num_batches_tracked) if module.momentum is None
                            else module.momentum)
                unbiased = variance * n / (n - 1).clamp_min(1)
                module.running_mean.lerp_(mean.to(module.running_mean.dtype), momentum)
                module.running_var.lerp_(unbiased.to(module.running_var.dtype), momentum)
        return y

    return forward


@contextmanager
def synced_batch_norm(model: nn.Module, world: World, enabled: bool = True):
    """Within the block, every BatchNorm of ``model`` in training mode normalises with the statistics of
    the global batch (see the module docstring); afterwards the layers are as they were. Each one is a
    point where every process waits for the others, twice per step (forward and backward)."""
    if not world.parallel or not enabled:
        yield
        return
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for layer in layers:
        layer.forward = _synced_forward(layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward
