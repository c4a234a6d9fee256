"""TFLite files: float through litert-torch (NHWC input), and fully integer int8 through
ai-edge-quantizer (int8 input and output, int8 weights per channel and activations per tensor),
which TFLite Micro loads.

litert-torch names every tensor after the full module path of the PyTorch wrapper that made it
(``litert_torch._convert.to_channel_last_io.ChannelLastIOWrapper/edgegrow.models...``): for a tiny
KWS network those names are over half of the file, which on a microcontroller is flash. The files
written here keep the last two path parts of each name (``Sequential_1/Conv2d_0``), which is what a
profile or an error message needs.
"""
from __future__ import annotations

import contextlib
import io
import re
import warnings

import numpy as np
import torch
from torch import nn

from .runtimes import first_line as _first_line
from .runtimes import require


def convert(module: nn.Module, example: torch.Tensor, *, channel_last: bool = False) -> bytes:
    """litert-torch's float32 .tflite of ``module`` (eval mode) for inputs like ``example``; with
    ``channel_last`` the 4-D input is taken NHWC (``example`` stays NCHW). Tensor names as litert-torch
    writes them.

    Raises:
        ValueError: litert-torch cannot convert an op of the module, or it is not installed.
    """
    litert_torch = require("litert_torch")
    module = module.eval()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            if channel_last:
                module = litert_torch.to_channel_last_io(module, args=[0]).eval()
                example = example.permute(0, 2, 3, 1).contiguous()
            return bytes(litert_torch.convert(module, (example,)).model_content())
        except Exception as error:  # the converter raises many types; all mean "cannot express"
            message = _first_line(error)
            fixes = [fix for op, fix in CONVERSION_FIXES.items() if op in message]
            raise ValueError(f"TFLite conversion failed: {message}" + "".join(f"; {fix}" for fix in fixes)) from None


# ops litert-torch has no lowering for, and how to write what they compute with ops it converts
CONVERSION_FIXES = {
    "aten.adaptive_max_pool2d": "litert-torch cannot convert an adaptive max pool: write a global one as "
                                "x.amax((2, 3), keepdim=True), another as nn.MaxPool2d with the window it pools",
}


def export_tflite_float(model: nn.Module, example: torch.Tensor) -> bytes:
    """A float32 .tflite of ``model`` taking NHWC input (``example`` is NCHW, batch 1), with short
    tensor names.

    Raises:
        ValueError: litert-torch cannot convert an op of the model (the message names it), or it
            is not installed.
    """
    return shorten_tensor_names(convert(model, example, channel_last=True))


RANGE_STATISTICS = ("min-max", "moving-average")


def quantize_tflite_int8(float_model: bytes, calibration_inputs: np.ndarray, ranges: str = "min-max") -> bytes:
    """Full-integer int8 .tflite (int8 input and output) calibrated on NHWC ``calibration_inputs``.

    ``ranges``: each tensor's int8 range is its min and max over all calibration examples
    (``min-max``, the default), or ai-edge-quantizer's own moving average of per-example ranges
    (``moving-average``; kept for comparison, see bench/export_int8_accuracy.py).

    Raises:
        ValueError: calibration or quantization failed; an input or activation whose calibrated
            range is empty (a network whose BatchNorm statistics were never trained) is named.
    """
    quantizer_module = require("ai_edge_quantizer.quantizer")
    calibrator_module = require("ai_edge_quantizer.calibrator")
    qsv_utils = require("ai_edge_quantizer.utils.qsv_utils")
    recipe = require("ai_edge_quantizer.recipe")
    interpreter_module = require("ai_edge_litert.interpreter")
    if len(calibration_inputs) == 0:
        raise ValueError("int8 quantization needs calibration inputs; the task's training split is empty")
    if ranges not in RANGE_STATISTICS:
        raise ValueError(f"unknown int8 range statistic {ranges!r}; choose one of {', '.join(RANGE_STATISTICS)}")
    signatures = interpreter_module.Interpreter(model_content=float_model).get_signature_list()
    key = next(iter(signatures))
    name = signatures[key]["inputs"][0]
    samples = [{name: calibration_inputs[i:i + 1].astype(np.float32)} for i in range(len(calibration_inputs))]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            quantizer = quantizer_module.Quantizer(bytearray(float_model))
            quantizer.load_quantization_recipe(recipe.static_wi8_ai8())
            # Quantizer.calibrate keeps an exponential moving average (0.95) of per-example ranges,
            # which for batch-1 examples is about the mean of the last ~20 maxima: activations past it
            # clip. Ranges over the whole calibration set are what TFLite's converter and
            # onnxruntime's MinMax use (bench/export_int8_accuracy.py compares the two).
            update = {"min-max": qsv_utils.min_max_update, "moving-average": qsv_utils.moving_average_update}[ranges]
            calibrator = calibrator_module.Calibrator(bytes(float_model), num_threads=1, qsv_update_func=update)
            calibrator.calibrate({key: samples}, quantizer._recipe_manager)
            calibration = calibrator.get_model_qsvs()
            _check_ranges(calibration)
            content = bytes(quantizer.quantize(calibration, enable_progress_bar=False,
                                               enable_progress_report=False).quantized_model)
        except ValueError:
            raise
        except Exception as error:
            raise ValueError(f"TFLite int8 quantization failed: {_first_line(error)}; if the model is untrained or "
                             "barely trained, train it before exporting int8") from None
    integer = interpreter_module.Interpreter(model_content=content)
    for detail in (*integer.get_input_details(), *integer.get_output_details()):
        if detail["dtype"] != np.int8:
            raise ValueError(f"TFLite int8 quantization left tensor {detail['name']!r} as {detail['dtype'].__name__}; "
                             "TFLite Micro needs int8 input and output")
    return shorten_tensor_names(content)


def _check_ranges(calibration: dict) -> None:
    """Refuse a calibration in which some activation never varied: its int8 scale would be zero."""
    flat = []
    for tensor, stats in calibration.items():
        low, high = stats.get("min"), stats.get("max")
        if low is None or high is None:
            continue
        if np.all(np.asarray(high) - np.asarray(low) == 0):
            flat.append(tensor)
    if flat:
        raise ValueError(f"int8 calibration saw a constant value in {len(flat)} tensor(s) (first: "
                         f"{short_name(flat[0])}); the model's BatchNorm statistics were probably never trained "
                         "— train the model (or run it in train mode on task data) before exporting int8")


def short_name(name: str | bytes) -> str:
    """The last two module-path parts of a litert-torch tensor name, without the class module prefix."""
    text = name.decode(errors="replace") if isinstance(name, bytes) else name
    first = text.split(";")[0]
    parts = [re.sub(r"^(?:[A-Za-z_][\w]*\.)+", "", part) for part in first.split("/") if part]
    return "/".join(parts[-2:]) or text[:40]


def shorten_tensor_names(model: bytes) -> bytes:
    """The same model with each tensor named by :func:`short_name` (made unique with a suffix)."""
    flatbuffer_utils = require("ai_edge_litert.tools.flatbuffer_utils")
    parsed = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    for subgraph in parsed.subgraphs:
        seen: dict[str, int] = {}
        for tensor in subgraph.tensors:
            name = short_name(tensor.name or b"")
            count = seen.get(name, 0)
            seen[name] = count + 1
            tensor.name = (name if count == 0 else f"{name}_{count}").encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(parsed))


def operator_layers(model: bytes) -> list[tuple[str, str]]:
    """(op name, the layer that made it) for each operator: the short name of its output tensor."""
    flatbuffer_utils = require("ai_edge_litert.tools.flatbuffer_utils")
    schema = require("ai_edge_litert.schema_py_generated")
    parsed = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    result = []
    for subgraph in parsed.subgraphs:
        for op in subgraph.operators:
            code = parsed.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            layer = subgraph.tensors[op.outputs[0]].name.decode(errors="replace") if len(op.outputs) else ""
            result.append((names.get(builtin, str(builtin)), layer))
    return result
