"""The real runtimes an exported file runs in: onnxruntime, ai-edge-litert (TFLite), TFLite Micro.

Each ``open_*`` returns a :class:`Loaded` model with one ``run(batch)`` call that takes and returns
numpy arrays in the file's own layout and dtype (NCHW float for ONNX, NHWC for TFLite, int8 for
the integer models), so verification and benchmarks see exactly what an app would.

The TFLite runtimes are optional dependencies (``pip install 'edgegrow[tflite]'``); a missing one
is a ValueError that says how to install it.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RUNTIMES = ("onnxruntime", "litert", "tflm")
TFLITE_EXTRA = "pip install 'edgegrow[tflite]' (litert-torch, ai-edge-litert, tflite-micro)"


@dataclass
class TensorSpec:
    """One input or output: shape (batch first), numpy dtype, and int8 ``scale``/``zero_point``."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float | None = None
    zero_point: int | None = None

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """Float values in this tensor's integer type (identity for a float tensor)."""
        if self.scale is None or not np.issubdtype(self.dtype, np.integer):
            return values.astype(self.dtype)
        info = np.iinfo(self.dtype)
        return np.clip(np.round(values / self.scale) + self.zero_point, info.min, info.max).astype(self.dtype)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        if self.scale is None or not np.issubdtype(self.dtype, np.integer):
            return values.astype(np.float32)
        return ((values.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)


@dataclass
class Loaded:
    """A model loaded in a runtime. ``run`` maps one input batch to the output, one example at a
    time where the runtime has a fixed batch of 1 (TFLite, TFLite Micro)."""

    runtime: str
    input: TensorSpec
    output: TensorSpec
    invoke: Callable[[np.ndarray], np.ndarray]
    arena_bytes: int | None = None  # TFLite Micro: the arena the model needs (measured, 64-bit host)

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self.input.shape[0] == 1 and len(batch) != 1:
            return np.concatenate([self.invoke(batch[i:i + 1]) for i in range(len(batch))])
        return self.invoke(batch)


def require(module: str):
    """Import ``module``, or a ValueError saying which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"{module} is not installed; {TFLITE_EXTRA}") from None


def open_onnx(model: bytes | str | Path, threads: int = 1) -> Loaded:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    try:
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise ValueError(f"onnxruntime cannot load the model: {first_line(error)}") from None
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    types = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}
    spec_in = TensorSpec(inp.name, tuple(d if isinstance(d, int) else -1 for d in inp.shape),
                         np.dtype(types.get(inp.type, np.float32)))
    spec_out = TensorSpec(out.name, tuple(d if isinstance(d, int) else -1 for d in out.shape),
                          np.dtype(types.get(out.type, np.float32)))
    return Loaded("onnxruntime", spec_in, spec_out,
                  lambda batch: session.run([out.name], {inp.name: batch.astype(spec_in.dtype)})[0])


def _litert_spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quantized = np.issubdtype(detail["dtype"], np.integer) and scale
    return TensorSpec(detail["name"], tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]),
                      float(scale) if quantized else None, int(zero_point) if quantized else None)


def open_litert(model: bytes | str | Path, threads: int = 1, *, kernels: str = "builtin") -> Loaded:
    """ai-edge-litert's Interpreter with one of its kernel sets:

    - ``builtin``: the optimized builtin kernels only (the real op list, as a phone's plain CPU path
      runs it);
    - ``reference``: the reference kernels, the arithmetic TFLite Micro's kernels are ported from (an
      int8 model gives the same outputs, step for step; the optimized kernels may round differently);
    - ``xnnpack``: the default delegate applied, as an app gets by default.
    """
    interpreter_module = require("ai_edge_litert.interpreter")
    content = model if isinstance(model, bytes) else Path(model).read_bytes()
    resolvers = {"builtin": interpreter_module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                 "reference": interpreter_module.OpResolverType.BUILTIN_REF,
                 "xnnpack": interpreter_module.OpResolverType.AUTO}
    if kernels not in resolvers:
        raise ValueError(f"unknown litert kernel set {kernels!r}; choose from {', '.join(resolvers)}")
    resolver = resolvers[kernels]
    try:
        interpreter = interpreter_module.Interpreter(model_content=content, num_threads=threads,
                                                     experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"ai-edge-litert cannot load the model: {first_line(error)}") from None
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def invoke(batch: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(inp["index"], batch.astype(inp["dtype"]))
        interpreter.invoke()
        return interpreter.get_tensor(out["index"]).copy()

    return Loaded("litert", _litert_spec(inp), _litert_spec(out), invoke)


def litert_ops(model: bytes) -> list[str]:
    """The builtin op names of a .tflite model, in execution order."""
    interpreter_module = require("ai_edge_litert.interpreter")
    builtin = interpreter_module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = interpreter_module.Interpreter(model_content=model, experimental_op_resolver_type=builtin)
    return [op["op_name"] for op in interpreter._get_ops_details()]


class _CapturedStderr:
    """Capture what C++ code writes to file descriptor 2 (TFLite Micro reports there)."""

    def __enter__(self):
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode(errors="replace")
        self._file.close()
        return False


TFLM_PROBE_ARENA_BYTES = 1 << 20  # where a model is first loaded to read what it needs
TFLM_ARENA_STEP_BYTES = 16  # TFLite Micro aligns its arena to 16 bytes
_TFLM_LOAD = """
import sys
from tflite_micro.python.tflite_micro import runtime
try:
    runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=int(sys.argv[2]))
except Exception:
    sys.exit(1)
"""


def tflm_loads_in(path: Path, arena_bytes: int) -> tuple[bool, str]:
    """Whether TFLite Micro loads the model file ``path`` in an arena of ``arena_bytes``, and what it said,
    tried in a child process: in too small an arena its interpreter can crash (signal 11) rather than
    fail."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _TFLM_LOAD, str(path), str(arena_bytes)], capture_output=True,
                            text=True, errors="replace")
    return result.returncode == 0, " ".join(result.stderr.split())


def tflm_arena_bytes(content: bytes, reported_bytes: int) -> int:
    """The smallest arena (to 16 bytes) TFLite Micro loads the model in, at least ``reported_bytes``,
    the total it reports after loading it in a large arena. That total leaves out the temporary memory
    some kernels ask for while they are prepared (the quantisation arrays of a wide per-channel tensor);
    when the model does not load in it, what TFLite Micro says is missing is added, and the smallest
    arena is bisected. Every try runs in a child process (``tflm_loads_in``)."""
    step = TFLM_ARENA_STEP_BYTES
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.tflite"
        path.write_bytes(content)
        loaded, said = tflm_loads_in(path, reported_bytes)
        if loaded:
            return reported_bytes
        low, high = reported_bytes, TFLM_PROBE_ARENA_BYTES  # fails at low; loaded at high (the probe)
        missing = re.search(r"missing: (\d+)", said)
        guess = low + -(-int(missing.group(1)) // step) * step if missing else high
        if guess < high:
            if not tflm_loads_in(path, guess)[0]:
                low = guess
            else:
                high = guess  # usually exactly what it needs: then one step less fails
                if guess - step > low and not tflm_loads_in(path, guess - step)[0]:
                    low = guess - step
        while high - low > step:
            middle = max(low + step, (low + high) // 2 // step * step)
            low, high = (low, middle) if tflm_loads_in(path, middle)[0] else (middle, high)
        return high


def open_tflm(model: bytes | str | Path, arena_bytes: int | None = None) -> Loaded:
    """TFLite Micro's reference interpreter. With no ``arena_bytes`` the model is first loaded in a
    1 MiB arena to read the total TFLite Micro reports, then loaded again in the smallest arena it
    loads in (``tflm_arena_bytes``: that total, or more when a kernel asks for temporary memory on top),
    so a model that runs here is known to fit the size reported. A given ``arena_bytes`` is used as it
    is: too small a one can crash TFLite Micro's interpreter."""
    runtime = require("tflite_micro.python.tflite_micro.runtime")
    content = model if isinstance(model, bytes) else Path(model).read_bytes()

    def load(size: int):
        with _CapturedStderr() as log:
            try:
                return runtime.Interpreter.from_bytes(content, arena_size=size), ""
            except Exception as error:  # TFLM raises RuntimeError, or struct errors for a damaged file
                failure = error
        reason = " ".join(line.strip() for line in log.text.splitlines() if line.strip())[:300]
        return None, f"{first_line(failure)}" + (f" ({reason})" if reason else "")

    if arena_bytes is None:
        interpreter, reason = load(TFLM_PROBE_ARENA_BYTES)
        if interpreter is None:
            raise ValueError(f"TFLite Micro cannot load the model: {reason}")
        with _CapturedStderr() as log:
            interpreter.print_allocations()
        match = re.search(r"Arena allocation total (\d+) bytes", log.text)
        if match is None:
            raise RuntimeError("TFLite Micro did not report its arena size")
        arena_bytes = tflm_arena_bytes(content, int(match.group(1)))
    interpreter, reason = load(arena_bytes)
    if interpreter is None:
        raise ValueError(f"TFLite Micro cannot load the model in a {arena_bytes}-byte arena: {reason}")
    details_in, details_out = interpreter.get_input_details(0), interpreter.get_output_details(0)

    def spec(details: dict, name: str) -> TensorSpec:
        quant = details.get("quantization_parameters") or {}
        scales, zeros = quant.get("scales", []), quant.get("zero_points", [])
        return TensorSpec(name, tuple(int(d) for d in details["shape"]), np.dtype(details["dtype"]),
                          float(scales[0]) if len(scales) else None, int(zeros[0]) if len(zeros) else None)

    def invoke(batch: np.ndarray) -> np.ndarray:
        interpreter.set_input(batch.astype(details_in["dtype"]), 0)
        interpreter.invoke()
        return interpreter.get_output(0).copy()

    return Loaded("tflm", spec(details_in, "input"), spec(details_out, "output"), invoke, arena_bytes)


def open_model(path: str | Path, runtime: str, threads: int = 1) -> Loaded:
    """Load ``path`` in ``runtime`` (one of RUNTIMES); the runtime must suit the file type."""
    path = Path(path)
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if not path.is_file():
        raise ValueError(f"no model file at {path}")
    expected = ".onnx" if runtime == "onnxruntime" else ".tflite"
    if path.suffix != expected:
        raise ValueError(f"--runtime {runtime} runs {expected} files, not {path.name}")
    if runtime == "onnxruntime":
        return open_onnx(path, threads)
    if runtime == "litert":
        return open_litert(path, threads, kernels="xnnpack")
    return open_tflm(path)


def first_line(error: BaseException) -> str:
    """The first line of an error's message (at most 300 characters), or its type's name."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]
