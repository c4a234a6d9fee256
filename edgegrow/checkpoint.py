"""Checkpoints of grown models: the seed, the structural edits that grew it, and its weights.

A grown network is a plain ``nn.Module`` whose layer sizes differ from any zoo model, so a
checkpoint records how to rebuild it: the seed family and its options, then every structural edit
in order (``widen`` a channel group by n channels, ``deepen`` after a layer), then the state dict.
Loading replays the edits on a fresh seed and loads the weights strictly. A network of the user's
own (family ``custom``) cannot be rebuilt from a name, and no code is ever read from the file: its
seed is passed to ``load_checkpoint(path, seed=MyNet())``. The file is read with
``torch.load(weights_only=True)`` — tensors and plain containers only, no code from the file — and
written to a temporary name and renamed, so a crash never leaves a half-written checkpoint. A SHA-256
of the record and the weights is stored with them and checked on load, so a file damaged after it was
written (a bad disk, a partial copy) is refused rather than loaded with wrong weights.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .data.cache import save_tensors
from .growth import add_neurons, deepen, find_channel_groups, group_named
from .models import build_seed
from .models.registry import CUSTOM_FAMILY  # a user's own network: its seed is given when loading
from .training.device import to_cpu

FORMAT = "edgegrow-checkpoint/1"


@dataclass
class Checkpoint:
    """What a checkpoint holds besides the weights: ``meta`` is free-form JSON (run state, history)."""

    family: str
    seed_options: dict
    edits: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)  # more state of tensors and plain values (optimizer, RNG)


def build_seed_from_options(family: str, seed_options: dict) -> nn.Module:
    """``build_seed(family, **seed_options)`` with JSON lists turned back into tuples (input shapes)."""
    options = {key: tuple(value) if isinstance(value, list) else value for key, value in seed_options.items()}
    return build_seed(family, **options)


def rebuild(family: str, seed_options: dict, edits: list[dict], seed: nn.Module | None = None) -> nn.Module:
    """The architecture of a grown model (fresh weights): the seed with ``edits`` replayed.

    ``seed``: the seed network itself (a copy is edited), needed for family ``custom``; zoo families
    are built from ``seed_options``.
    """
    if seed is not None:
        model = copy.deepcopy(seed)
    elif family == CUSTOM_FAMILY:
        raise ValueError("this checkpoint was grown from a network of your own, which cannot be rebuilt from the "
                         "file: pass its seed, built as before growth, e.g. load_checkpoint(path, seed=MyNet())")
    else:
        model = build_seed_from_options(family, seed_options)
    shape = seed_options.get("input_shape") or getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError("cannot tell the seed's input shape: it has no input_shape and the checkpoint records none")
    generator = torch.Generator().manual_seed(0)  # loading must not draw from torch's global generator
    x = torch.randn(2, *shape, generator=generator)
    model.eval()
    for number, edit in enumerate(edits):
        op = edit.get("op")
        if op == "widen":
            group = group_named(find_channel_groups(model, x), edit["group"])
            add_neurons(model, group, int(edit["channels"]), generator=generator)
        elif op == "deepen":
            deepen(model, edit["after"], x, kind=edit["kind"])
        else:
            raise ValueError(f"edit {number} has unknown op {op!r}; expected 'widen' or 'deepen'")
    return model


def save_checkpoint(path: str | Path, model: nn.Module, checkpoint: Checkpoint) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    payload = {
        "format": FORMAT,
        "family": checkpoint.family,
        "seed_options_json": json.dumps(checkpoint.seed_options),
        "edits_json": json.dumps(checkpoint.edits),
        "meta_json": json.dumps(checkpoint.meta),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "tensors": to_cpu(checkpoint.tensors),  # a training state from a GPU run loads anywhere
    }
    payload["sha256"] = _digest(payload)
    save_tensors(Path(path), payload)


def _digest(payload: dict) -> str:
    """SHA-256 of a checkpoint's record (the JSON fields) and weights (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    for key in ("family", "seed_options_json", "edits_json", "meta_json"):
        digest.update(f"{key}={payload[key]}\n".encode())
    for name in sorted(payload["state_dict"]):
        tensor = payload["state_dict"][name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_checkpoint(path: str | Path, seed: nn.Module | None = None) -> tuple[nn.Module, Checkpoint]:
    """The grown model (in eval mode) and its record; ValueError with the reason for a bad file.

    ``seed``: for a network of your own (family ``custom``), the seed as it was before growth.
    """
    path = Path(path)
    payload, checkpoint = _read(path)
    try:
        model = rebuild(checkpoint.family, checkpoint.seed_options, checkpoint.edits, seed)
        model.load_state_dict(payload["state_dict"], strict=True)
    except ValueError as error:  # rebuild's own, already one line: say which file
        raise ValueError(f"{path}: {error}") from None
    except (KeyError, TypeError, RuntimeError) as error:
        raise ValueError(f"{path}: damaged checkpoint, or not grown from this seed ({type(error).__name__}: "
                         f"{_first_line(error)})") from None
    model.eval()
    return model, checkpoint


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The record of a checkpoint (family, seed options, edits, meta) without building the model."""
    return _read(Path(path))[1]


def _read(path: Path) -> tuple[dict, Checkpoint]:
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is not a readable edgegrow checkpoint: the file is empty (a copy or write that "
                         "never finished); use another copy or grow again")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types; all mean "not a checkpoint it can read"
        raise ValueError(f"{path} is not a readable edgegrow checkpoint: not a PyTorch file, or truncated or "
                         f"damaged ({type(error).__name__}); use another copy or grow again") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an edgegrow checkpoint (expected format {FORMAT})")
    try:
        checkpoint = Checkpoint(payload["family"], json.loads(payload["seed_options_json"]),
                                json.loads(payload["edits_json"]), json.loads(payload["meta_json"]),
                                payload.get("tensors") or {})
        expected = payload.get("sha256")  # absent in checkpoints written before checksums
        if expected is not None and _digest(payload) != expected:
            raise ValueError(f"{path}: damaged checkpoint: its contents do not match the SHA-256 stored when it "
                             "was written (a bad disk or a partial copy?); use another copy or grow again")
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: damaged checkpoint ({type(error).__name__}: {_first_line(error)})") from None
    return payload, checkpoint


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or ["no message"])[0][:200]
