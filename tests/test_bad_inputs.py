"""Wrong inputs, in one table: budgets, target profiles, datasets, models, checkpoints, export requests and
command lines that edgegrow must refuse with one line naming the problem, without touching any file.

A ``cli`` case runs ``edgegrow.cli.main(argv)``: exit code 2, exactly one line on standard error, no
traceback. An ``api`` case calls the library: a ValueError whose message is one line, nothing printed that
looks like a traceback. Every case then checks that its folder (where its input files are written, and
where ``$EDGEGROW_TARGETS``, ``$EDGEGROW_CACHE`` and the working directory point) and the shared inputs
(a checkpoint) hold exactly the same files and folders, byte for byte, as before the call.

Each row: kind, ``make(tmp, shared)`` (writes the case's input files; returns the argv, or the call as a
``partial``), and the needle the one-line error must contain (``{tmp}`` stands for the case's folder).
"""
from __future__ import annotations

import hashlib
import json
import os
import wave
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cost_models import estimate, load_target
from cost_models.target import shipped_targets_folder
from edgegrow.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgegrow.cli import main
from edgegrow.data.audio import read_wav
from edgegrow.data.speech_commands import KEYWORDS, load_speech_commands
from edgegrow.data.task_data import Split, TaskData
from edgegrow.export import export_model
from edgegrow.grow import GrowConfig, grow
from edgegrow.growth import add_neurons, find_channel_groups, group_named, split_neurons
from edgegrow.growth.budget import Budget
from edgegrow.models import ds_cnn_seed
from edgegrow.tasks import load_task

# two epochs: these tests check refusals and messages, not what growth finds
QUICK = GrowConfig(epochs=2, warmup_epochs=0.5, growth_every=1.0, score_batches=1, fast_steps=2, batch_size=16)
GROW = ["grow", "--task", "kws", "--target", "host", "--out", "{tmp}/run"]  # + --budget (and --data)
GROW_KWS = [*GROW, "--budget", "latency_ms=1"]
GROW_IMAGE = ["grow", "--task", "image", "--target", "host", "--out", "{tmp}/run", "--budget", "latency_ms=1"]
NOISE = np.random.default_rng(0).bytes(4096)  # not a checkpoint, a WAV, a model or JSON
DROP = object()  # profile(): remove the field


# -- writing the inputs ------------------------------------------------------------------------------------
def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def wav(path: Path, rate: int = 16000, channels: int = 1, width: int = 2, frames: int = 1600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(b"\x01" * frames * channels * width)
    return path


def speech_folder(root: Path, rate: int = 16000, content: bytes | None = None) -> Path:
    """One clip per keyword: of sample rate ``rate``, or the bytes ``content`` under a .wav name."""
    for word in KEYWORDS:
        clip = root / word / "speaker_nohash_0.wav"
        if content is None:
            wav(clip, rate)
        else:
            write(clip, content)
    return root


def profile(tmp: Path, name: str, changes: dict | None = None, base: str = "cortex-m4f-120mhz",
            file: str | None = None) -> str:
    """A copy of a shipped profile named NAME as ``$EDGEGROW_TARGETS/FILE.json`` (FILE: NAME unless given),
    with ``changes`` ({"a.b.0.c": value or DROP}) applied; returns FILE. Base ``host`` keeps two table entries."""
    data = json.loads((shipped_targets_folder() / f"{base}.json").read_text())
    data["name"] = name
    if base == "host":
        data["latency"]["entries"] = data["latency"]["entries"][:2]
    for dotted, value in (changes or {}).items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = int(last) if isinstance(node, list) else last
        if value is DROP:
            del node[last]
        else:
            node[last] = value
    file = file or name
    write(tmp / "targets" / f"{file}.json", json.dumps(data))
    return file


def raw_profile(tmp: Path, name: str, content: bytes | str) -> str:
    write(tmp / "targets" / f"{name}.json", content)
    return name


def torch_file(path: Path, payload) -> Path:
    torch.save(payload, path)
    return path


def run_record(folder: Path, source: dict | None = {"task": "kws", "data": None, "family": "ds-cnn"}) -> Path:
    """A grow run folder's run.json (edgegrow-run/2), as a run on the default KWS set to host writes it."""
    write(folder / "run.json", json.dumps({
        "format": "edgegrow-run/2", "seed": 0, "config": QUICK.to_dict(), "family": "ds-cnn",
        "seed_options": {"num_classes": 12}, "target": "host", "target_profile": None,
        "budget": {"latency_ms": 1.0}, "task": "kws", "task_source": source}))
    return folder


def checkpoint_file(path: Path, family: str = "ds-cnn", edits: list | None = None) -> Path:
    """A checkpoint of a 4-class seed DS-CNN's weights, recorded as grown from ``family`` by ``edits``."""
    save_checkpoint(path, ds_cnn_seed(num_classes=4), Checkpoint(family, {"num_classes": 4}, edits or [], {}))
    return path


def noise_task(shape=(1, 49, 10), examples: int = 32) -> TaskData:
    """Random inputs of any shape with four labels: what the bad-input checks need, nothing to learn."""
    generator = torch.Generator().manual_seed(0)

    def split(n):
        return Split(torch.randn(n, *shape, generator=generator), torch.randint(0, 4, (n,), generator=generator))
    return TaskData("toy", ["a", "b", "c", "d"], split(examples), split(16), split(16))


# -- models -----------------------------------------------------------------------------------------------
class GroupNormNet(nn.Module):
    """A GroupNorm (which growth cannot widen) between two convolutions."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.norm(self.conv(x)))))
        return self.head(x.mean((2, 3)))


class DataDependentNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 1)

    def forward(self, x):
        return self.conv(x) if x.sum() > 0 else -self.conv(x)


class ErfInv(nn.Module):
    """An op ONNX cannot express."""

    def forward(self, x):
        return torch.special.erfinv(torch.tanh(x) * 0.5)


def erfinv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), ErfInv(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 4))


def group(model: nn.Module, name: str, shape=(2, 1, 49, 10)):
    return group_named(find_channel_groups(model, torch.randn(*shape)), name)


def linear_only() -> nn.Module:
    """A model with no growable channel group: its only layer feeds the output."""
    return nn.Sequential(nn.Flatten(), nn.Linear(490, 4))


# -- the shared inputs -------------------------------------------------------------------------------------
@dataclass
class Shared:
    folder: Path
    run: Path  # a run folder holding only checkpoint.pt
    checkpoint: Path
    task: TaskData


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Shared:
    folder = tmp_path_factory.mktemp("shared")
    checkpoint = checkpoint_file(folder / "run" / "checkpoint.pt")
    return Shared(folder, folder / "run", checkpoint, noise_task())


def tree(*folders: Path) -> dict[str, str]:
    """Every file (by sha256) and folder under ``folders``, hidden ones included."""
    found = {}
    for folder in folders:
        for parent, directories, names in os.walk(folder):
            for name in directories:
                found[os.path.join(parent, name)] = "folder"
            for name in names:
                path = os.path.join(parent, name)
                found[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return found


# -- the table ---------------------------------------------------------------------------------------------
CASES = [
    # budgets
    pytest.param("cli", lambda t, s: [*GROW, "--budget", "latency_ms=-1"],
                 "budget latency_ms must be a positive number, got -1.0", id="budget: negative"),
    pytest.param("cli", lambda t, s: [*GROW, "--budget", "sram_kb=0"],
                 "budget sram_kb must be a positive number, got 0.0", id="budget: zero"),
    pytest.param("cli", lambda t, s: [*GROW, "--budget", "latency_s=1"],
                 "unknown budget metric 'latency_s'", id="budget: unknown unit"),
    pytest.param("cli", lambda t, s: [*GROW, "--budget", "watts=1"],
                 "unknown budget metric 'watts'", id="budget: unknown metric"),
    pytest.param("cli", lambda t, s: [*GROW, "--budget", "latency_ms=fast"],
                 "'fast' is not a number", id="budget: not a number"),
    pytest.param("cli", lambda t, s: [*GROW, "--budget", "latency_ms=nan"],
                 "budget latency_ms must be a positive number, got nan", id="budget: NaN"),
    pytest.param("cli", lambda t, s: [*GROW, "--budget", "latency_ms=1e400"],
                 "budget latency_ms must be a positive number, got inf", id="budget: overflows to infinity"),
    pytest.param("cli", lambda t, s: [*GROW, "--budget", "latency"],
                 "budget 'latency' is not metric=value", id="budget: no value"),
    pytest.param("cli", lambda t, s: [*GROW, "--budget", "macs=1e6", "--budget", "macs=2e6"],
                 "budget macs is given twice", id="budget: metric twice"),
    pytest.param("cli", lambda t, s: ["workflow", "--mcu-budget", "flash_kb=-64", "--out", "{tmp}/results"],
                 "budget flash_kb must be a positive number, got -64.0", id="budget: negative, workflow"),
    pytest.param("cli", lambda t, s: ["grow", "--task", "image", "--target", "host", "--budget", "latency_ms=1e-9",
                                      "--out", "{tmp}/run"],
                 "the seed already exceeds the budget on host (latency_ms", id="budget: below the seed's cost"),
    pytest.param("api", lambda t, s: partial(grow, ds_cnn_seed(num_classes=4), s.task, "host",
                                             Budget({"macs": 1000}), QUICK, t / "run", log=print),
                 "the seed already exceeds the budget on host (macs", id="budget: below the seed's cost, api"),
    pytest.param("cli", lambda t, s: ["grow", "--task", "image", "--target", "host", "--budget", "latency_ms=1e300",
                                      "--out", "{tmp}/run"],
                 "budget latency_ms=1e+300 is", id="budget: far above any reachable cost"),
    pytest.param("api", lambda t, s: partial(grow, ds_cnn_seed(num_classes=4), s.task, "host",
                                             Budget({"macs": 1e15}), QUICK, t / "run", log=print),
                 "growth event(s) can reach: lower the budget, start from a wider seed (--seed-width)",
                 id="budget: far above any reachable cost, api"),
    pytest.param("api", lambda t, s: partial(grow, ds_cnn_seed(num_classes=4), s.task, "host",
                                             Budget({"energy_mj": 1.0}), QUICK, t / "run", log=print),
                 "target host has no power figure, so an energy_mj budget cannot be checked",
                 id="budget: energy on a target without power"),
    pytest.param("api", lambda t, s: partial(Budget, {}), "no budget given", id="budget: empty, api"),

    # target profiles ($EDGEGROW_TARGETS is the case's targets/ folder)
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--seed", "--target", profile(t, "m4", {"kind": DROP})],
                 "m4.json: field 'kind' is missing", id="target: missing field"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target", profile(t, "m4", {"sram_bytes.source": " "})],
                 "field 'sram_bytes.source' must say where the number comes from", id="target: empty source"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target", profile(t, "m4", {"threads": "4"})],
                 "field 'threads' must be int, got '4'", id="target: wrong type"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target",
                                      profile(t, "phone", {"latency.entries": []}, base="host")],
                 "field 'latency' needs 'entries' (a measured table) or 'analytic' (rates), and has neither",
                 id="target: empty latency table"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target",
                                      profile(t, "phone", {"latency.entries.0.latency_ms": -0.1}, base="host")],
                 "field 'latency.entries[0].latency_ms' must be a positive finite number, got -0.1",
                 id="target: negative latency"),
    pytest.param("cli", lambda t, s: ["grow", "--task", "kws", "--budget", "latency_ms=1", "--out", "{tmp}/run",
                                      "--target", profile(t, "phone", {"latency.entries.1.latency_ms": float("nan")},
                                                          base="host")],
                 "field 'latency.entries[1].latency_ms' must be a positive finite number, got nan",
                 id="target: NaN latency, grow"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target",
                                      profile(t, "phone", {"latency.entries.0.kind": "lstm"}, base="host")],
                 "field 'latency.entries[0].kind' must be one of conv,", id="target: unknown kernel kind"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target",
                                      profile(t, "phone", {"latency.entries.0.input": [16, 10]}, base="host")],
                 "input must be three positive integers [channels, height, width], got [16, 10]",
                 id="target: malformed kernel shape"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target",
                                      profile(t, "m4", {"latency.analytic.macs_per_s.conv": -5})],
                 "field 'latency.analytic.macs_per_s.conv' must be a positive finite number, got -5",
                 id="target: negative MAC rate"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target", profile(t, "m4", {"schema": "edgegrow-target/9"})],
                 "field 'schema' must be 'edgegrow-target/1', got 'edgegrow-target/9'", id="target: other schema"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target", raw_profile(t, "phone", "latency_ms: 1\n")],
                 "phone.json: not valid JSON (Expecting value at line 1)", id="target: not JSON"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target", raw_profile(t, "phone", NOISE)],
                 "phone.json: not valid JSON (not UTF-8 text)", id="target: binary file"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target", raw_profile(t, "phone", "[1, 2]")],
                 "phone.json: a target profile must be a JSON object", id="target: JSON list"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target", "pixel99"],
                 "unknown target 'pixel99'; known targets: cortex-a76,", id="target: unknown name"),
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target", str(t / "pixel99.json")],
                 "target profile {tmp}/pixel99.json not found", id="target: missing file"),
    pytest.param("api", lambda t, s: partial(load_target, profile(t, "pixel", file="phone")),
                 "field 'name' is 'pixel' but the file is named 'phone'", id="target: name differs from file"),

    # datasets
    pytest.param("cli", lambda t, s: [*GROW_KWS, "--data", "{tmp}/speech"],
                 "no dataset folder at {tmp}/speech; point --data at Speech Commands v2", id="data: missing folder"),
    pytest.param("cli", lambda t, s: [*GROW_KWS, "--data", str(write(t / "speech" / "notes.txt", "").parent)],
                 "speech has none of the keyword folders (yes, no,", id="data: folder without keywords"),
    pytest.param("cli", lambda t, s: [*GROW_IMAGE, "--data", str(write(t / "images" / "notes.txt", "").parent)],
                 "images has no class folders", id="data: image folder without classes"),
    pytest.param("cli", lambda t, s: [*GROW_KWS, "--data", str(speech_folder(t / "speech", rate=8000))],
                 "have no usable training clips in {tmp}/speech (skipped: {'sample rate is not 16000 Hz",
                 id="data: every clip of another sample rate"),
    pytest.param("api", lambda t, s: partial(load_speech_commands, speech_folder(t / "speech", content=NOISE),
                                             cache_dir=t / "cache", progress=False),
                 "(skipped: {'unreadable or corrupt WAV", id="data: every clip corrupt"),
    pytest.param("api", lambda t, s: partial(load_speech_commands, write(t / "speech", "a file"), progress=False),
                 "no dataset folder at {tmp}/speech", id="data: a file, not a folder"),
    pytest.param("api", lambda t, s: partial(read_wav, wav(t / "clip.wav", rate=8000), expected_rate=16000),
                 "clip.wav: sample rate 8000 Hz; expected 16000 Hz", id="wav: wrong sample rate"),
    pytest.param("api", lambda t, s: partial(read_wav, write(t / "clip.wav", b"RIFF" + NOISE)),
                 "{tmp}/clip.wav: not a readable WAV file", id="wav: corrupt"),
    pytest.param("api", lambda t, s: partial(read_wav, write(t / "clip.wav", wav(t / "full.wav").read_bytes()[:1000])),
                 "{tmp}/clip.wav: truncated", id="wav: truncated"),
    pytest.param("api", lambda t, s: partial(read_wav, write(t / "clip.wav", b"")),
                 "{tmp}/clip.wav: not a readable WAV file", id="wav: empty file"),
    pytest.param("api", lambda t, s: partial(read_wav, wav(t / "clip.wav", channels=2)),
                 "clip.wav: 2 channels; expected mono", id="wav: stereo"),
    pytest.param("api", lambda t, s: partial(read_wav, wav(t / "clip.wav", width=1)),
                 "clip.wav: 8-bit samples; expected 16-bit PCM", id="wav: 8-bit"),
    pytest.param("api", lambda t, s: partial(load_task, "image",
                                             write(t / "images" / "cat" / "a.png", NOISE).parent.parent),
                 "class 'cat' has no readable images in {tmp}/images/cat", id="data: corrupt images"),
    pytest.param("api", lambda t, s: partial(load_task, "image", (write(t / "cifar" / "data_batch_1", NOISE),
                                                                  write(t / "cifar" / "test_batch", NOISE))[0].parent),
                 "{tmp}/cifar/data_batch_1: not a CIFAR-10 python batch", id="data: corrupt CIFAR-10 batch"),

    # models and the growth API
    pytest.param("api", lambda t, s: partial(split_neurons, model := GroupNormNet(), group(model, "conv"), [0]),
                 "channel group `conv` is not growable: passes through layer `norm`, which edgegrow cannot widen",
                 id="model: group behind an unsupported layer"),
    pytest.param("api", lambda t, s: partial(add_neurons, model := linear_only(), group(model, "1"), 2),
                 "channel group `1` is not growable: feeds the model output", id="model: no growable group"),
    pytest.param("api", lambda t, s: partial(grow, linear_only(), s.task, "host", Budget({"latency_ms": 1.0}), QUICK,
                                             log=print),
                 "no growable channel group", id="model: no growable group, grow"),
    pytest.param("api", lambda t, s: partial(find_channel_groups, DataDependentNet(), torch.randn(2, 1, 4, 4)),
                 "cannot trace DataDependentNet with torch.fx", id="model: data-dependent forward"),
    pytest.param("api", lambda t, s: partial(estimate, ds_cnn_seed(), torch.zeros(1, 3, 32, 32), "host"),
                 "the example input of shape (1, 3, 32, 32) does not run through DSCNN",
                 id="model: wrong example input, estimate"),
    pytest.param("api", lambda t, s: partial(grow, ds_cnn_seed(num_classes=4), noise_task(shape=(3, 8, 8)), "host",
                                             Budget({"latency_ms": 1.0}), QUICK, t / "run", log=print),
                 "the example input of shape (1, 3, 8, 8) does not run through DSCNN",
                 id="model: seed input does not match the data, grow"),
    pytest.param("api", lambda t, s: partial(grow, ds_cnn_seed(num_classes=12), s.task, "host",
                                             Budget({"latency_ms": 1.0}), QUICK, t / "run", log=print),
                 "4 classes", id="model: seed outputs do not match the classes, grow"),

    # checkpoints
    pytest.param("api", lambda t, s: partial(load_checkpoint, write(t / "checkpoint.pt", NOISE)),
                 "{tmp}/checkpoint.pt is not a readable edgegrow checkpoint", id="checkpoint: random bytes"),
    pytest.param("api", lambda t, s: partial(load_checkpoint,
                                             write(t / "checkpoint.pt", s.checkpoint.read_bytes()[:8000])),
                 "{tmp}/checkpoint.pt is not a readable edgegrow checkpoint", id="checkpoint: truncated"),
    pytest.param("api", lambda t, s: partial(load_checkpoint, write(t / "checkpoint.pt", b"")),
                 "{tmp}/checkpoint.pt", id="checkpoint: empty file"),
    pytest.param("api", lambda t, s: partial(load_checkpoint, torch_file(t / "checkpoint.pt", {"format": "x"})),
                 "{tmp}/checkpoint.pt is not an edgegrow checkpoint", id="checkpoint: another format"),
    pytest.param("api", lambda t, s: partial(load_checkpoint, checkpoint_file(t / "checkpoint.pt", "mobilenet-v1")),
                 "{tmp}/checkpoint.pt: damaged checkpoint, or not grown from this seed",
                 id="checkpoint: weights of another seed"),
    pytest.param("api", lambda t, s: partial(load_checkpoint,
                                             checkpoint_file(t / "checkpoint.pt", edits=[{"op": "x"}])),
                 "{tmp}/checkpoint.pt", id="checkpoint: unknown edit"),
    pytest.param("api", lambda t, s: partial(load_checkpoint, t / "checkpoint.pt"),
                 "no checkpoint at {tmp}/checkpoint.pt", id="checkpoint: missing"),

    # export
    pytest.param("cli", lambda t, s: ["export", str(s.run), "--format", "onnx,png", "--out", "{tmp}/exported"],
                 "unknown export format 'png'", id="export: unknown format"),
    pytest.param("cli", lambda t, s: ["export", str(s.run), "--format", "onnx",
                                      "--out", str(write(t / "exported" / "model.onnx", "previous").parent)],
                 "{tmp}/exported already exists; pass --force", id="export: existing folder without --force"),
    pytest.param("cli", lambda t, s: ["export", str(s.checkpoint), "--out", str(write(t / "exported", "a file"))],
                 "{tmp}/exported exists and is not a folder", id="export: output is a file"),
    pytest.param("cli", lambda t, s: ["export", "{tmp}/run", "--out", "{tmp}/exported"],
                 "no run folder or checkpoint at {tmp}/run", id="export: missing run"),
    pytest.param("cli", lambda t, s: ["export", str(write(t / "run" / "log.jsonl", "").parent), "--out",
                                      "{tmp}/exported"],
                 "{tmp}/run has no checkpoint.pt", id="export: run folder without a checkpoint"),
    pytest.param("cli", lambda t, s: ["export", str(write(t / "run" / "checkpoint.pt", NOISE)),
                                      "--out", "{tmp}/exported"],
                 "{tmp}/run/checkpoint.pt is not a readable edgegrow checkpoint",
                 id="export: checkpoint of random bytes"),
    pytest.param("cli", lambda t, s: ["export", str(write(t / "run" / "checkpoint.pt", b"")),
                                      "--out", "{tmp}/exported"],
                 "{tmp}/run/checkpoint.pt", id="export: empty checkpoint"),
    pytest.param("api", lambda t, s: partial(export_model, erfinv_net(), s.task, t / "exported", formats="onnx",
                                             measure_host=False, log=print),
                 "layer '2' (ErfInv) cannot be expressed in ONNX", id="export: op not expressible"),
    pytest.param("api", lambda t, s: partial(export_model, ds_cnn_seed(num_classes=4), s.task, t / "exported",
                                             formats="onnx-int8", measure_host=False, log=print),
                 "BatchNorm layer 'features.0.2' was never trained", id="export: int8 of untrained BatchNorm"),

    # the command line
    pytest.param("cli", lambda t, s: ["cost", "ds-cnn", "--target", "host", "--colour"],
                 "unrecognized arguments: --colour", id="cli: unknown option"),
    pytest.param("cli", lambda t, s: ["shrink", "ds-cnn"], "invalid choice: 'shrink'", id="cli: unknown command"),
    pytest.param("cli", lambda t, s: ["grow", "--task", "kws"],
                 "edgegrow grow: error: grow needs --target, --budget, --out (or --resume RUN_DIR to continue a run)",
                 id="cli: missing arguments"),
    pytest.param("cli", lambda t, s: ["grow", "--resume", str(t / "none")],
                 "{tmp}/none has no readable run.json: not a grow run folder", id="cli: resume a folder that is no run"),
    pytest.param("cli", lambda t, s: ["grow", "--resume", str(run_record(t / "run")), "--budget", "latency_ms=2"],
                 "--budget {'latency_ms': 2.0} contradicts the run in {tmp}/run ({'latency_ms': 1.0})",
                 id="cli: resume with another budget"),
    pytest.param("cli", lambda t, s: ["grow", "--resume", str(run_record(t / "run")), "--epochs", "3"],
                 "--epochs asks for epochs 3 but the run in {tmp}/run has 2", id="cli: resume with other epochs"),
    pytest.param("cli", lambda t, s: ["grow", "--resume", str(run_record(t / "run")), "--out", str(t / "other")],
                 "--resume {tmp}/run and --out {tmp}/other name two runs", id="cli: resume and another out"),
    pytest.param("cli", lambda t, s: ["grow", "--resume", str(run_record(t / "run", source=None))],
                 "was started from the Python API on data of its own", id="cli: resume an API run"),
    pytest.param("cli", lambda t, s: ["profile", "--target", "x", "--threads", "many"],
                 "argument --threads: invalid int value: 'many'", id="cli: not an integer"),
    pytest.param("cli", lambda t, s: [*GROW_KWS, "--method", "magic"],
                 "unknown growth method 'magic'", id="cli: unknown method"),
    pytest.param("cli", lambda t, s: [*GROW_IMAGE, "--growth-end", "1.5"],
                 "growth_end must be a share in [0, 1], got 1.5", id="cli: growth end past the run"),
    pytest.param("cli", lambda t, s: [*GROW_IMAGE, "--warmup", "40", "--epochs", "30"],
                 "warmup_epochs (40) must be fewer than epochs (30)", id="cli: warm-up longer than the run"),
    pytest.param("cli", lambda t, s: [*GROW_IMAGE, "--lr", "nan"],
                 "learning_rate must be a finite number > 0, got nan", id="cli: learning rate NaN"),
    pytest.param("cli", lambda t, s: [*GROW_IMAGE, "--seed-width", "0"],
                 "seed width must be a width multiplier in (0, 8], got 0.0", id="cli: zero seed width"),
    pytest.param("cli", lambda t, s: [*GROW_IMAGE, "--growth-every", "-1"],
                 "growth_every must be a finite number > 0, got -1.0", id="cli: negative growth interval"),
    pytest.param("cli", lambda t, s: [*GROW_IMAGE, "--resume"],
                 "nothing to resume in {tmp}/run: it has no state.pt", id="cli: resume with nothing to resume"),
    pytest.param("cli", lambda t, s: ["workflow", "--mcu-target", "host", "--out", "{tmp}/results"],
                 "--mcu-target 'host' is a cpu profile, not a microcontroller", id="cli: workflow on a cpu target"),
    pytest.param("cli", lambda t, s: ["workflow", "--out", str(write(t / "results" / "mine.txt", "keep").parent)],
                 "{tmp}/results already holds results", id="cli: workflow into a used folder"),
    pytest.param("cli", lambda t, s: ["grow", "--config", str(write(t / "run.toml", 'task = "kws\n'))],
                 "run.toml is not valid TOML", id="config: TOML syntax error"),
    pytest.param("cli", lambda t, s: ["grow", "--config", str(write(t / "run.toml", 'task = "kws"\ntargets = "x"\n'))],
                 "run.toml: unknown key 'targets' for 'edgegrow grow'", id="config: unknown key"),
    pytest.param("cli", lambda t, s: ["grow", "--config", str(write(t / "run.toml", 'target = ["host", "m4"]\n'))],
                 "run.toml: 'target' takes one value, not a list", id="config: list for a single value"),
    pytest.param("cli", lambda t, s: ["grow", "--config", str(write(t / "run.toml", 'task = "speech"\ntarget = "host"\n'
                                                                    'budget = "latency_ms=1"\nout = "run"\n'))],
                 "argument --task: invalid choice: 'speech'", id="config: invalid choice"),
    pytest.param("cli", lambda t, s: ["grow", "--config", str(write(t / "run.toml", 'task = "kws"\ntarget = "host"\n'
                                                                    'budget = { latency_ms = -1 }\nout = "run"\n'))],
                 "budget latency_ms must be a positive number, got -1.0", id="config: negative budget"),
    pytest.param("cli", lambda t, s: ["grow", "--config", "{tmp}/run.toml"],
                 "no config file at {tmp}/run.toml", id="config: missing file"),
    pytest.param("cli", lambda t, s: ["report", "{tmp}/run"], "run folder {tmp}/run does not exist",
                 id="report: missing folder"),
    pytest.param("cli", lambda t, s: ["report", str(write(t / "run" / "notes.txt", "").parent)],
                 "{tmp}/run has no log.jsonl or summary.json or checkpoint.pt", id="report: not a run folder"),
    pytest.param("cli", lambda t, s: ["report", str(s.run), "--baselines", str(write(t / "b.json", '{"name": 1}'))],
                 "b.json is not a JSON list of {name, latency_ms, accuracy} objects",
                 id="report: baselines not a list"),
    pytest.param("cli", lambda t, s: ["bench", "{tmp}/model.onnx", "--runtime", "onnxruntime"],
                 "no model file at {tmp}/model.onnx", id="bench: missing file"),
    pytest.param("cli", lambda t, s: ["bench", str(write(t / "model.onnx", NOISE)), "--runtime", "litert"],
                 "--runtime litert runs .tflite files, not model.onnx", id="bench: runtime for another file type"),
    pytest.param("cli", lambda t, s: ["bench", str(write(t / "model.onnx", NOISE)), "--runtime", "tensorrt"],
                 "argument --runtime: invalid choice: 'tensorrt'", id="bench: unknown runtime"),
    pytest.param("cli", lambda t, s: ["bench", str(write(t / "model.onnx", NOISE)), "--runtime", "onnxruntime"],
                 "onnxruntime cannot load the model", id="bench: corrupt model"),
    pytest.param("cli", lambda t, s: ["bench", str(write(t / "model.onnx", NOISE)), "--runtime", "onnxruntime",
                                      "--threads", "0"],
                 "--threads must be 1 or more, not 0", id="bench: zero threads"),
    pytest.param("cli", lambda t, s: ["bench", str(write(t / "model.onnx", NOISE)), "--runtime", "onnxruntime",
                                      "--runs", "4", "--rounds", "5"],
                 "need 1 <= rounds <= runs (got rounds 5, runs 4)", id="bench: more rounds than runs"),
    pytest.param("cli", lambda t, s: ["profile", "--target", "phone", "--from-measurements",
                                      str(write(t / "phone.jsonl", "garbage\n")), "--out", "{tmp}/phone.json"],
                 "phone.jsonl: line 1 is not a runner.py measurement", id="profile: malformed measurements"),
]


@pytest.mark.parametrize("kind, make, needle", CASES)
def test_wrong_input_is_one_line_and_leaves_every_file_alone(kind, make, needle, shared, tmp_path, monkeypatch,
                                                              capfd):
    (tmp_path / "targets").mkdir()
    monkeypatch.setenv("EDGEGROW_TARGETS", str(tmp_path / "targets"))
    monkeypatch.setenv("EDGEGROW_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    prepared = make(tmp_path, shared)
    needle = needle.replace("{tmp}", str(tmp_path))
    before = tree(tmp_path, shared.folder)
    capfd.readouterr()
    if kind == "cli":
        assert isinstance(prepared, list)
        code = main([arg.replace("{tmp}", str(tmp_path)) for arg in prepared])
        error = capfd.readouterr().err
        assert code == 2, error
        assert len(error.splitlines()) == 1 and error.startswith("edgegrow"), error
        assert needle in error, error
    else:
        assert callable(prepared) and not isinstance(prepared, list)
        with pytest.raises(ValueError) as caught:
            prepared()
        message = str(caught.value)
        assert len(message.splitlines()) == 1, message
        assert needle in message, message
        assert "Traceback" not in capfd.readouterr().err
    assert tree(tmp_path, shared.folder) == before
