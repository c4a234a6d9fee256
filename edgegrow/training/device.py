"""Where a run computes: ``--device auto|cpu|cuda[:N]|mps``.

The model and each batch live on the run's device; the data set stays in host memory and batches are
copied over as they are drawn (after augmentation, which runs on the CPU with its own seeded
generator, so every device sees the same batches). Costs are traced on the model where it is (the
example input follows it), and checkpoints are written as CPU tensors, so a run started on a GPU
resumes on a CPU and the other way round, and exports never need a GPU.
"""
from __future__ import annotations

import re

import torch

from cost_models.kernels import model_device  # noqa: F401  (one definition: costs trace where the model is)

DEVICES = "auto, cpu, cuda, cuda:N or mps"
_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device_name(name: str) -> str:
    """``name`` if it is one of DEVICES (whether that device exists here is ``resolve_device``'s question)."""
    if not isinstance(name, str) or not _PATTERN.fullmatch(name):
        raise ValueError(f"device must be {DEVICES}, got {name!r}")
    return name


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device ``name`` means on this machine: ``auto`` is the first CUDA GPU if there is one,
    else the CPU (never Apple's MPS, which lacks the float64 that growth statistics compute in; ask for
    ``mps`` to train there). ValueError for a device this machine or this build of torch does not have."""
    check_device_name(name)
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if name == "auto":
        return torch.device("cuda" if cuda else "cpu")
    if name.startswith("cuda"):
        if not cuda:
            raise ValueError(f"--device {name}: this machine has no CUDA GPU that torch {torch.__version__} can use "
                             "(torch.cuda.is_available() is False); use --device cpu or auto")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        return torch.device("cuda", index)
    if name == "mps" and not mps:
        raise ValueError("--device mps: this machine has no Apple MPS device torch can use; use --device cpu or auto")
    return torch.device(name)


def to_cpu(value):
    """``value`` with every tensor in it (nested in dicts, lists and tuples) copied to the CPU: what a
    checkpoint holds, so that it loads on any machine."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(item) for item in value)
    return value
