"""Export a model to ONNX and TFLite (float and int8) and a C array, verified in the real runtimes.

Every file is written into a staging folder beside the output folder and checked in its runtime
before anything becomes visible: the float files must match PyTorch to ``tolerance`` (1e-4
absolute on the logits of task inputs) in onnxruntime and in ai-edge-litert; the int8 TFLite model
must load in TFLite Micro, in an arena of exactly the size it needs (``runtimes.open_tflm``), and give
the same integers as ai-edge-litert. Accuracy on the task's test split is measured for PyTorch and
for every file. Only then is the staging folder renamed to the output folder (an existing one is replaced only with
``force``, and is kept until the new one is in place), so a failed or interrupted export never
leaves files that look good.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import fsync_file, fsync_folder, replace_durably
from ..data.task_data import TaskData
from . import c_array, library_output, model_card, onnx_format, runtimes, tflite_format

FORMATS = ("onnx", "onnx-int8", "tflite", "tflite-int8", "c")
FILE_NAMES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx", "tflite": "model.tflite",
              "tflite-int8": "model_int8.tflite", "c": "model_int8.cc"}
TFLITE_FORMATS = ("tflite", "tflite-int8", "c")
# An int8 file is refused (ExportError) below this top-1 agreement with the float model or above this
# test-accuracy drop. bench/export_int8_accuracy.py: on 717 KWS clips the TFLite int8 drop stayed within
# 1 point with min-max ranges and reached 4.9 points with moving-average ones.
MIN_INT8_AGREEMENT, MAX_INT8_DROP = 0.8, 0.05
PIPELINE_SOURCE = Path(__file__).with_name("pipeline.py")


class ExportError(RuntimeError):
    """A file was written but failed verification in its runtime (nothing is left behind)."""


@dataclass
class ExportResult:
    out_dir: Path
    card: dict
    files: dict[str, Path] = field(default_factory=dict)  # format -> file
    seconds: float = 0.0

    def describe(self) -> str:
        """What ``edgegrow export`` prints: accuracy per format, the TFLite Micro arena, host latency
        measured against predicted, and the files written."""
        card = self.card
        accuracy = ", ".join(f"{fmt} {value:.1%}" for fmt, value in card["accuracy"].items()
                             if isinstance(value, float))
        lines = [f"accuracy on {card['accuracy']['examples']} test examples: {accuracy}"]
        if card.get("tflm"):
            lines.append(f"TFLite Micro arena: {card['tflm']['arena_bytes']:,} bytes")
        measured = card["targets"].get("host", {}).get("measured", {})
        if measured.get("latency_ms_median"):
            lines.append(f"host latency: {measured['latency_ms_median']:.4f} ms measured, "
                         f"{card['targets']['host']['predicted']['latency_ms']:.4f} ms predicted")
        names = ", ".join(sorted(path.name for path in self.out_dir.iterdir()))
        lines.append(f"wrote {self.out_dir} in {self.seconds:.0f} s ({names})")
        return "\n".join(lines)


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """``"onnx,tflite-int8"`` or a list → known formats in canonical order; ``all`` means every one."""
    names = [part.strip() for part in (formats.split(",") if isinstance(formats, str) else formats) if part.strip()]
    if not names:
        raise ValueError(f"no export format given; choose from {', '.join(FORMATS)} (or all)")
    if "all" in names:
        return list(FORMATS)
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format {unknown[0]!r}; choose from {', '.join(FORMATS)} (or all)")
    return [name for name in FORMATS if name in names]


# -- the output folder ------------------------------------------------------------------------
def _remove_stale(out: Path) -> None:
    """Clear what a killed export left (its process is gone): staging folders are removed; a
    previous export moved aside in the instant between ``_Staging.commit``'s two renames is put back."""
    for folder in [*out.parent.glob(f".{out.name}.partial-*"), *out.parent.glob(f".{out.name}.old-*")]:
        try:
            os.kill(int(folder.name.rsplit("-", 1)[1]), 0)
            continue  # that export is still running
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue
        if ".old-" in folder.name and not out.exists():
            os.replace(folder, out)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _check_out(out: Path, force: bool) -> None:
    if out.parent.is_dir():
        _remove_stale(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder; choose another --out")
    if out.exists() and any(out.iterdir()) and not force:
        raise ValueError(f"{out} already exists; pass --force to replace it, or choose another --out")


class _Staging:
    """A hidden folder beside ``out`` that becomes ``out`` on :meth:`commit`, or vanishes."""

    def __init__(self, out: Path, force: bool):
        out.parent.mkdir(parents=True, exist_ok=True)
        _check_out(out, force)
        self.out = out
        self.folder = out.parent / f".{out.name}.partial-{os.getpid()}"
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir()

    def write(self, name: str, content: bytes | str) -> Path:
        path = self.folder / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def commit(self) -> None:
        for path in self.folder.iterdir():  # data on disk before the folder becomes visible
            fsync_file(path)
        fsync_folder(self.folder)
        old = None
        if self.out.exists():
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.replace(self.out, old)
        replace_durably(self.folder, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# -- checks ---------------------------------------------------------------------------------------
_PLAIN_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d, nn.ReLU, nn.ReLU6, nn.Dropout, nn.Identity,
                 nn.Flatten, nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d)


def _leaf_inputs(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """Each leaf layer of an unusual type with the input it sees for ``example``."""
    seen: dict[str, tuple[nn.Module, torch.Tensor]] = {}

    def keep(name: str, module: nn.Module, args: tuple) -> None:  # returns None: the output is left alone
        seen.setdefault(name, (module, args[0].detach()))

    hooks = []
    for name, module in model.named_modules():
        if next(module.children(), None) is None and not isinstance(module, _PLAIN_LAYERS):
            hooks.append(module.register_forward_hook(lambda m, args, out, name=name: keep(name, m, args)))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


class _Alone(nn.Module):
    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)


def _culprit(model: nn.Module, example: torch.Tensor, convert: Callable[[nn.Module, torch.Tensor], object]) -> str:
    """The first layer that cannot be converted on its own, as "layer 'name' (Type)", or a note."""
    for name, (layer, layer_input) in _leaf_inputs(model, example).items():
        try:
            convert(_Alone(layer).eval(), layer_input)
        except ValueError:
            return f"layer '{name}' ({type(layer).__name__})"
    return "an operation in the model's forward (no single layer fails on its own)"


def _convert_or_name_layer(fmt: str, model: nn.Module, example: torch.Tensor,
                           convert: Callable[[nn.Module, torch.Tensor], bytes],
                           probe: Callable[[nn.Module, torch.Tensor], object]) -> bytes:
    try:
        return convert(model, example)
    except ValueError as error:
        if "not installed" in str(error):
            raise
        raise ValueError(f"{_culprit(model, example, probe)} cannot be expressed in {fmt} ({error}); "
                         f"export the other formats") from None


def _tflm_ops_or_name_layer(model_int8: bytes) -> runtimes.Loaded:
    """Load in TFLite Micro; an op it lacks is reported with the layer that produced it."""
    try:
        return runtimes.open_tflm(model_int8)
    except ValueError as error:
        text = str(error)
        for op, layer in tflite_format.operator_layers(model_int8):
            if f"'{op}'" in text or f" {op} " in text or text.rstrip(")").endswith(op):
                raise ValueError(f"layer '{layer}' becomes the op {op}, which TFLite Micro cannot run ({text}); "
                                 "leave c out of --format") from None
        raise


INT8_FORMATS = ("onnx-int8", "tflite-int8", "c")


def check_trained_batchnorm(model: nn.Module) -> None:
    """Refuse int8 export of a network with a BatchNorm layer that never saw a training batch: its
    running statistics are still 0 and 1, so calibrated ranges and folded weights are meaningless."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats \
                and module.num_batches_tracked is not None and int(module.num_batches_tracked) == 0:
            raise ValueError(f"BatchNorm layer '{name}' was never trained (its running statistics are at their "
                             "initial values), so int8 quantization cannot work; train the model (or run a few "
                             "task batches through it in train mode) before exporting int8, or export only onnx "
                             "and tflite")


def _max_difference(loaded: runtimes.Loaded, inputs: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(loaded.run(inputs).astype(np.float64) - reference).max())




def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _predictions(model: nn.Module, example: torch.Tensor) -> dict[str, dict]:
    """The cost model's figures for the model on every known target."""
    from cost_models import estimate_targets, load_known_targets

    targets, _ = load_known_targets()  # an unreadable user profile is reported by 'edgegrow targets', not here
    return {name: {"runtime": targets[name].runtime, "dtype": targets[name].dtype,
                   "predicted": {"latency_ms": report.latency_ms, "energy_mj": report.energy_mj,
                                 "sram_kb": report.sram_bytes / 1024, "flash_kb": report.flash_bytes / 1024},
                   "measured": {}}
            for name, report in estimate_targets(model, example, targets).items()}


# -- export ---------------------------------------------------------------------------------------
def export_model(model: nn.Module, task: TaskData, out: str | Path, *, formats: str | Iterable[str] = FORMATS,
                 name: str | None = None, family: str = "custom", task_kind: str | None = None,
                 source: dict | None = None, checkpoint: Path | None = None, force: bool = False,
                 calibration_examples: int = 300, tolerance: float = 1e-4, max_test_examples: int | None = None,
                 measure_host: bool = True, int8_ranges: str = "min-max", seed: int = 0,
                 min_int8_agreement: float = MIN_INT8_AGREEMENT, max_int8_drop: float = MAX_INT8_DROP,
                 log: Callable[[str], None] = print) -> ExportResult:
    """Write ``model`` (a trained network for ``task``) in ``formats`` to the folder ``out``.

    Args:
        calibration_examples: training examples used to calibrate the int8 files.
        tolerance: largest absolute difference of a float file's logits from PyTorch's.
        max_test_examples: evaluate accuracy on at most this many test examples (default all).
        measure_host: time model.onnx with onnxruntime here and record it for the ``host`` target.
        int8_ranges: how the TFLite int8 activation ranges are calibrated (see ``quantize_tflite_int8``).
        min_int8_agreement: an int8 file must give the float model's top-1 class on at least this share
            of the test inputs (the calibration inputs when there is no test split).
        max_int8_drop: an int8 file's test accuracy may be at most this far (a share: 0.05 is 5 points)
            below the float model's.

    Raises:
        ValueError: a user mistake (unknown format, existing folder without ``force``, an op a
            format cannot express, quantization that cannot work); nothing is written.
        ExportError: a file failed verification; nothing is written.
    """
    started = time.perf_counter()
    formats = parse_formats(formats)
    out = Path(out)
    name = name or out.name
    model = model.eval()
    example = torch.zeros(1, *task.input_shape)
    with library_output.captured(replay_unless=(ValueError, ExportError, KeyboardInterrupt)):
        if any(fmt in TFLITE_FORMATS for fmt in formats):
            runtimes.require("litert_torch")
        if any(fmt in INT8_FORMATS for fmt in formats):
            check_trained_batchnorm(model)
        staging = _Staging(out, force)
        try:
            job = _Job(model, task, staging, example, calibration_examples, tolerance, max_test_examples,
                       int8_ranges, seed, log)
            card, files = _export(job, formats, name, family, task_kind, source or {})
            _check_int8(card, min_int8_agreement, max_int8_drop)
            if checkpoint is not None:
                shutil.copyfile(checkpoint, staging.folder / "checkpoint.pt")
                copied = staging.folder / "checkpoint.pt"
                card["files"]["checkpoint"] = {"path": copied.name, "bytes": copied.stat().st_size}
            if measure_host and "onnx" in files and "host" in card["targets"]:
                _measure_host(staging.folder / FILE_NAMES["onnx"], card)
            model_card.write_card(staging.folder, card)
            staging.commit()
        except BaseException:
            staging.discard()
            raise
    return ExportResult(out, card, {fmt: out / Path(path).name for fmt, path in files.items()},
                        time.perf_counter() - started)


def _check_int8(card: dict, min_agreement: float, max_drop: float) -> None:
    """Refuse int8 files that do not answer as the float model does (nothing is written)."""
    float_accuracy = card["accuracy"]["pytorch"]
    for fmt in INT8_FORMATS:
        entry = card["files"].get(fmt)
        if entry is None:
            continue
        agreement, accuracy = entry["top1_agreement"], entry.get("accuracy")
        fix = ("more calibration examples (--calibration N), export_model's other int8_ranges, or the float "
               "files alone (--format onnx,tflite)")
        if agreement < min_agreement:
            raise ExportError(f"{entry['path']} gives the float model's top-1 class on only {agreement:.1%} of "
                              f"{entry['agreement_examples']} inputs (at least {min_agreement:.0%} required); "
                              f"try {fix}")
        if accuracy is not None and float_accuracy is not None and float_accuracy - accuracy > max_drop:
            raise ExportError(f"{entry['path']} loses {float_accuracy - accuracy:.1%} test accuracy against the "
                              f"float model (at most {max_drop:.0%} allowed); try {fix}")


def _measure_host(path: Path, card: dict) -> None:
    from .benchmark import benchmark

    result = benchmark(path, "onnxruntime", threads=1, target=None, warmup=50, runs=300, record=False)
    predicted = card["targets"]["host"]["predicted"]["latency_ms"]
    card["targets"]["host"]["measured"] = {
        "latency_ms_median": result.latency_ms_median, "latency_ms_p90": result.latency_ms_p90,
        "measured_over_predicted": result.latency_ms_median / predicted if predicted else None,
        "how": "model.onnx in onnxruntime, 1 thread, batch 1, median of 300 runs at export"}


class _Job:
    """One export: its task inputs and PyTorch's answers on them, the files every format shares (each
    converted once, on first need), and the card entries of the files written so far."""

    def __init__(self, model: nn.Module, task: TaskData, staging: _Staging, example: torch.Tensor,
                 calibration_examples: int, tolerance: float, max_test_examples: int | None, int8_ranges: str,
                 seed: int, log: Callable[[str], None]):
        self.model, self.task, self.staging, self.example = model, task, staging, example
        self.tolerance, self.int8_ranges, self.log = tolerance, int8_ranges, log
        generator = torch.Generator().manual_seed(seed)
        train, test = task.train, task.test
        self.calibration = train.take(torch.randperm(len(train), generator=generator)[:calibration_examples]).numpy()
        self.test_count = len(test) if max_test_examples is None else min(len(test), max_test_examples)
        self.test_inputs = test.take(torch.arange(self.test_count)).numpy()
        self.test_labels = test.labels[:self.test_count].numpy()
        self.verify_inputs = self.test_inputs[:64] if len(self.test_inputs) else self.calibration[:64]
        self.agreement_inputs = self.test_inputs if self.test_count else self.calibration  # any task inputs
        with torch.no_grad():
            self.reference = model(torch.from_numpy(self.verify_inputs)).double().numpy()
            # PyTorch's answers on the agreement inputs, which are the test inputs when there are any
            self.torch_top1 = model(torch.from_numpy(self.agreement_inputs)).argmax(1).numpy()
        self.torch_accuracy = float((self.torch_top1 == self.test_labels).mean()) if self.test_count else None
        self.files: dict[str, Path] = {}
        self.card_files: dict[str, dict] = {}
        self._onnx_float: bytes | None = None
        self._tflite_float: bytes | None = None
        self._int8: _Int8Tflite | None = None

    @staticmethod
    def nhwc(batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(batch.transpose(0, 2, 3, 1))

    def answers(self, loaded: runtimes.Loaded, layout: Callable[[np.ndarray], np.ndarray], int8: bool) -> dict:
        """One run of a file on the task inputs (``layout``: the file's input layout): its test accuracy
        and, for an int8 file, the share of inputs on which its top-1 class is PyTorch's. The agreement
        inputs are the test inputs when there are any, so one run gives both."""
        if not self.test_count and not int8:
            return {"accuracy": None}
        top1 = loaded.run(loaded.input.quantize(layout(self.agreement_inputs))).argmax(axis=1)
        answers = {"accuracy": float((top1 == self.test_labels).mean()) if self.test_count else None}
        if int8:
            answers.update(top1_agreement=float((top1 == self.torch_top1).mean()), agreement_examples=len(top1))
        return answers

    def record(self, fmt: str, content: bytes, loaded: runtimes.Loaded | None,
               layout: Callable[[np.ndarray], np.ndarray] | None = None, **extra) -> None:
        """Write ``fmt``'s file into the staging folder and its card entry (``answers`` of ``loaded``,
        whose inputs take ``layout``)."""
        path = self.staging.write(FILE_NAMES[fmt], content)
        self.files[fmt] = path
        entry = {"path": path.name, "bytes": len(content), "sha256": _sha256(content)}
        if loaded is not None:
            entry["runtime"] = loaded.runtime
            entry.update(self.answers(loaded, layout, fmt in INT8_FORMATS))
        entry.update(extra)
        self.card_files[fmt] = entry
        accuracy = entry.get("accuracy")
        self.log(f"  {path.name}: {len(content):,} bytes"
                 + (f", accuracy {accuracy:.1%}" if accuracy is not None else ""))

    # -- the files formats share, each made once -----------------------------------------------------
    def onnx_float(self) -> bytes:
        if self._onnx_float is None:
            metadata = {"classes": self.task.class_names, "preprocessing": self.task.preprocessing,
                        "producer": "edgegrow"}
            self._onnx_float = _convert_or_name_layer(
                "ONNX", self.model, self.example, lambda m, x: onnx_format.export_onnx_float(m, x, metadata),
                lambda m, x: onnx_format.export_onnx_float(m, x))
        return self._onnx_float

    def tflite_float(self) -> bytes:
        if self._tflite_float is None:
            self._tflite_float = _convert_or_name_layer("TFLite", self.model, self.example,
                                                        tflite_format.export_tflite_float, tflite_format.convert)
        return self._tflite_float

    def tflite_int8(self) -> _Int8Tflite:
        """The int8 TFLite file, opened in ai-edge-litert and TFLite Micro, which must agree to 1 step."""
        if self._int8 is None:
            content = tflite_format.quantize_tflite_int8(self.tflite_float(), self.nhwc(self.calibration),
                                                         self.int8_ranges)
            litert = runtimes.open_litert(content)
            micro = _tflm_ops_or_name_layer(content)
            quantized = litert.input.quantize(self.nhwc(self.verify_inputs))
            micro_outputs = micro.run(quantized).astype(int)
            # TFLite Micro's kernels are ports of TFLite's reference kernels: the same arithmetic, so the
            # same int8 outputs up to a rounding step. The optimized builtin kernels round differently in
            # places, which adds up over a deep network (3 steps on a 53-layer MobileNetV2): recorded only.
            reference_outputs = runtimes.open_litert(content, kernels="reference").run(quantized).astype(int)
            mismatch = int(np.abs(reference_outputs - micro_outputs).max())
            if mismatch > 1:
                raise ExportError(f"TFLite Micro and ai-edge-litert's reference kernels disagree on model_int8.tflite "
                                  f"by {mismatch} int8 steps (at most 1 expected): a TFLite Micro kernel bug, or an "
                                  "op it implements differently")
            self._int8 = _Int8Tflite(
                content, litert, micro, mismatch, int(np.abs(litert.run(quantized).astype(int) - micro_outputs).max()),
                runtimes.litert_ops(content), self.answers(micro, self.nhwc, int8=True))
        return self._int8


@dataclass
class _Int8Tflite:
    content: bytes
    litert: runtimes.Loaded
    micro: runtimes.Loaded
    max_step_difference: int  # TFLite Micro against ai-edge-litert's reference kernels
    max_step_difference_optimized: int  # against its optimized builtin kernels
    ops: list[str]
    micro_answers: dict  # _Job.answers of TFLite Micro: accuracy, top1_agreement, agreement_examples

    @property
    def input_int8(self) -> dict:
        return {"scale": self.litert.input.scale, "zero_point": self.litert.input.zero_point}

    @property
    def output_int8(self) -> dict:
        return {"scale": self.litert.output.scale, "zero_point": self.litert.output.zero_point}

    @property
    def tflm(self) -> dict:
        return {"arena_bytes": self.micro.arena_bytes, "ops": sorted(set(self.ops)), "op_list": self.ops,
                "arena_note": "measured by TFLite Micro's Python interpreter on a 64-bit host; a 32-bit "
                              "microcontroller needs about the same or less"}


# -- the formats: each converts (through the job's shared files), verifies and writes its card entry -----
def _same_layout(batch: np.ndarray) -> np.ndarray:  # ONNX files take PyTorch's NCHW
    return batch


def _write_onnx(job: _Job) -> None:
    content = job.onnx_float()
    loaded = runtimes.open_onnx(content)
    difference = _max_difference(loaded, job.verify_inputs, job.reference)
    if difference > job.tolerance:
        raise ExportError(f"model.onnx differs from PyTorch by {difference:.2g} > {job.tolerance:g} on task inputs")
    job.record("onnx", content, loaded, _same_layout, max_abs_difference=difference,
               ops=onnx_format.op_counts(content))


def _write_onnx_int8(job: _Job) -> None:
    content = onnx_format.quantize_onnx_int8(job.onnx_float(), job.calibration)
    job.record("onnx-int8", content, runtimes.open_onnx(content), _same_layout)


def _write_tflite(job: _Job) -> None:
    content, inputs = job.tflite_float(), job.nhwc(job.verify_inputs)
    builtin = runtimes.open_litert(content)
    difference = _max_difference(builtin, inputs, job.reference)
    xnnpack = _max_difference(runtimes.open_litert(content, kernels="xnnpack"), inputs, job.reference)
    worst = max(difference, xnnpack)
    if worst > job.tolerance:
        raise ExportError(f"model.tflite differs from PyTorch by {worst:.2g} > {job.tolerance:g} on task inputs "
                          f"(builtin kernels {difference:.2g}, XNNPACK {xnnpack:.2g})")
    job.record("tflite", content, builtin, job.nhwc, max_abs_difference=difference,
               max_abs_difference_xnnpack=xnnpack, ops=dict(Counter(runtimes.litert_ops(content))))


def _write_tflite_int8(job: _Job) -> None:
    int8 = job.tflite_int8()
    job.record("tflite-int8", int8.content, int8.litert, job.nhwc,
               accuracy_tflm=int8.micro_answers["accuracy"], max_step_difference_tflm=int8.max_step_difference,
               max_step_difference_tflm_optimized=int8.max_step_difference_optimized, ops=dict(Counter(int8.ops)))


def _write_c(job: _Job) -> None:
    int8 = job.tflite_int8()
    facts = {"arena_bytes": int8.micro.arena_bytes, "input_scale": int8.input_int8["scale"],
             "input_zero_point": int8.input_int8["zero_point"], "output_scale": int8.output_int8["scale"],
             "output_zero_point": int8.output_int8["zero_point"]}
    header, source_text = c_array.c_files(int8.content, "model_int8.h", facts=facts)
    job.staging.write("model_int8.h", header)
    answers = int8.micro_answers
    job.record("c", source_text.encode(), None, header="model_int8.h", model_bytes=len(int8.content),
               accuracy_tflm=answers["accuracy"], runtime="tflm", top1_agreement=answers["top1_agreement"],
               agreement_examples=answers["agreement_examples"])
    job.card_files["c"]["accuracy"] = answers["accuracy"]


WRITERS: dict[str, Callable[[_Job], None]] = {"onnx": _write_onnx, "onnx-int8": _write_onnx_int8,
                                               "tflite": _write_tflite, "tflite-int8": _write_tflite_int8,
                                               "c": _write_c}


def _export(job: _Job, formats: list[str], name: str, family: str, task_kind: str | None,
            source: dict) -> tuple[dict, dict[str, Path]]:
    """Write every format in ``formats`` (canonical order) and the card describing them."""
    for fmt in formats:
        WRITERS[fmt](job)
    model, task, example, card_files = job.model, job.task, job.example, job.card_files
    int8 = job._int8
    with torch.no_grad():
        from cost_models import count_macs

        counted = count_macs(model, example)
    notes: list[str] = []
    float_accuracy = card_files.get("onnx", card_files.get("tflite", {})).get("accuracy", job.torch_accuracy)
    for fmt in INT8_FORMATS:
        drop = None if fmt not in card_files or float_accuracy is None or card_files[fmt].get("accuracy") is None \
            else float_accuracy - card_files[fmt]["accuracy"]
        if drop is not None and drop > 0.01:
            notes.append(f"{card_files[fmt]['path']} loses {drop:.1%} accuracy against float (more than 1 point)")
    for note in notes:
        job.log(f"  note: {note}")
    shape = list(example.shape)
    card = {
        "format": model_card.FORMAT, "name": name, "task": task_kind or task.name, "family": family,
        "edgegrow_version": _version(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "classes": list(task.class_names),
        "input": {"shape_nchw": shape, "shape_nhwc": [shape[0], *shape[2:], shape[1]], "dtype": "float32",
                  "layout": {"onnx": "NCHW", "tflite": "NHWC"}, "preprocessing": task.preprocessing,
                  "int8": int8.input_int8 if int8 else None},
        "output": {"shape": [1, len(task.class_names)], "kind": "logits",
                   "int8": int8.output_int8 if int8 else None},
        "macs": int(counted.total), "params": int(counted.parameters),
        "accuracy": {"split": "test", "examples": job.test_count, "pytorch": job.torch_accuracy,
                     **{fmt: entry.get("accuracy") for fmt, entry in card_files.items()}},
        "verification": {"tolerance": job.tolerance, "examples": len(job.verify_inputs),
                         "what": "float files: max |logit − PyTorch logit| on test inputs; int8 TFLite: TFLite "
                                 "Micro against ai-edge-litert, in int8 steps; int8 files: top-1 agreement "
                                 "with PyTorch (top1_agreement), refused below the export's minimum"},
        "files": card_files, "tflm": int8.tflm if int8 else None, "targets": _predictions(model, example),
        "source": source, "notes": notes, "measured": [],
    }
    job.staging.write("labels.txt", "\n".join(task.class_names) + "\n")
    if PIPELINE_SOURCE.is_file() and any(fmt in TFLITE_FORMATS for fmt in formats):
        shutil.copyfile(PIPELINE_SOURCE, job.staging.folder / "pipeline.py")
    if int8 is not None:
        for target in card["targets"].values():
            if target["runtime"] == "tflite-micro":
                target["measured"] = {"arena_kb": int8.micro.arena_bytes / 1024,
                                      "model_file_kb": len(int8.content) / 1024}
    return card, job.files


def _version() -> str:
    from .. import __version__

    return __version__


# -- checkpoints ---------------------------------------------------------------------------------------
def find_checkpoint(source: str | Path) -> Path:
    """The checkpoint of a run folder (``RUN_DIR/checkpoint.pt``) or a checkpoint file itself."""
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoint.pt"
        if not path.is_file():
            raise ValueError(f"{source} has no checkpoint.pt; pass a run folder made by 'edgegrow grow' "
                             "or a checkpoint file")
    elif not path.is_file():
        raise ValueError(f"no run folder or checkpoint at {source}")
    return path


def export_checkpoint(source: str | Path, out: str | Path | None = None, *, formats: str | Iterable[str] = FORMATS,
                      data: str | Path | None = None, cache_dir: str | Path | None = None, force: bool = False,
                      progress: bool = True, log: Callable[[str], None] = print, **options) -> ExportResult:
    """Export a grown model from its run folder or checkpoint (see :func:`export_model`).

    The task data (for calibration and accuracy) is the data the run recorded, or ``data``. The
    output folder defaults to ``exported/NAME`` with NAME the run folder's name.
    """
    from ..checkpoint import CUSTOM_FAMILY, load_checkpoint, read_checkpoint
    from ..grow.run_folder import RunMeta
    from ..tasks import load_task_of_checkpoint, task_of_family

    formats = parse_formats(formats)
    path = find_checkpoint(source)
    name = path.parent.name if path.name == "checkpoint.pt" else path.stem
    out = Path(out) if out is not None else Path("exported") / name
    _check_out(out, force)  # before the slow part: loading the task data
    if read_checkpoint(path).family == CUSTOM_FAMILY:
        raise ValueError(f"{path} grew a network of your own, which cannot be rebuilt from the file: export it from "
                         "Python, export_model(load_checkpoint(path, seed=your_seed)[0], data, out)")
    model, checkpoint = load_checkpoint(path)
    meta = RunMeta.from_dict(checkpoint.meta, str(path))
    task = load_task_of_checkpoint(checkpoint.family, meta, data, cache_dir=cache_dir, progress=progress)
    source_info = {"checkpoint": str(path.resolve()), "target": meta.target, "budget": meta.budget,
                   "method": meta.method, "model": meta.model, "stopped_by": meta.stopped_by,
                   "growth_events": meta.events, "edits": len(checkpoint.edits)}
    task_kind = meta.task_source.get("task") or task_of_family(checkpoint.family)
    log(f"exporting {path} ({checkpoint.family}, {task_kind}) to {out}: {', '.join(formats)}")
    return export_model(model, task, out, formats=formats, name=out.name, family=checkpoint.family,
                        task_kind=task_kind, source=source_info, checkpoint=path, force=force, log=log, **options)
