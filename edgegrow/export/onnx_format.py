"""ONNX files: float (torch.export → ONNX, optimised, one self-contained file) and int8 (QDQ).

The float file comes from ``torch.onnx.export(dynamo=True)`` with its optimiser on: BatchNorm is
folded into the convolutions and constants are folded, so the graph holds only the ops a runtime
executes (Conv, Relu, Gemm, ...). Per-node debug metadata is dropped (it is most of the file for a
tiny network); the model's own metadata carries the class names and the input preprocessing, so
the file describes itself. The batch dimension is dynamic.

The int8 file is onnxruntime's static quantization in QDQ form: weights int8 per output channel,
activations int8 per tensor, calibrated with MinMax on the task inputs given.
"""
from __future__ import annotations

import json
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from .runtimes import first_line as _first_line

OPSET = 20


def export_onnx_float(model: nn.Module, example: torch.Tensor, metadata: dict[str, object] | None = None) -> bytes:
    """A checker-clean, self-contained ONNX file of ``model`` (eval mode) for inputs like ``example``.

    Raises:
        ValueError: the exporter cannot express an op of the model (the message names it).
    """
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(model, (example,), dynamo=True, external_data=False, optimize=True,
                                        opset_version=OPSET, input_names=["input"], output_names=["logits"],
                                        dynamic_shapes=({0: batch},), verbose=False, report=False)
        except Exception as error:  # the exporter raises many types; all mean "cannot express"
            raise ValueError(f"ONNX export failed: {_export_reason(error)}") from None
    proto = program.model_proto
    _strip_debug_metadata(proto)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    proto.producer_name = "edgegrow"
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def _strip_debug_metadata(proto: onnx.ModelProto) -> None:
    """Drop the exporter's per-node and per-value metadata (stack traces, original names)."""
    graph = proto.graph
    for node in graph.node:
        del node.metadata_props[:]
    for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        del value.metadata_props[:]
    del proto.metadata_props[:]


def op_counts(model_bytes: bytes) -> dict[str, int]:
    """How many nodes of each op type the graph has."""
    counts: dict[str, int] = {}
    for node in onnx.load_from_string(model_bytes).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over an array of inputs, one batch at a time."""

    def __init__(self, name: str, inputs: np.ndarray, batch_size: int = 16):
        self._batches = iter([{name: inputs[i:i + batch_size]} for i in range(0, len(inputs), batch_size)])

    def get_next(self):
        return next(self._batches, None)

    def rewind(self):  # onnxruntime calls this in some versions; one pass is all MinMax needs
        pass


def quantize_onnx_int8(float_model: bytes, calibration_inputs: np.ndarray) -> bytes:
    """Static int8 quantization (QDQ, per-channel weights, MinMax activations) of a float ONNX file.

    Raises:
        ValueError: quantization failed, or calibration saw only constant activations (for
            instance BatchNorm statistics that were never trained); the message says which.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration_inputs) == 0:
        raise ValueError("int8 quantization needs calibration inputs; the task's training split is empty")
    with tempfile.TemporaryDirectory(prefix="edgegrow-onnx-int8-") as folder:
        source, prepared, target = (Path(folder) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(float_model)
        name = onnx.load_from_string(float_model).graph.input[0].name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
                quantize_static(str(prepared), str(target), _Calibration(name, calibration_inputs.astype(np.float32)),
                                quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
            except Exception as error:  # onnxruntime's quantizer raises bare Exceptions and asserts
                raise ValueError(f"ONNX int8 quantization failed: {_first_line(error)}") from None
        return target.read_bytes()


def _export_reason(error: BaseException) -> str:
    """The operator the exporter had no ONNX function for, or the error's first line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    match = re.search(r"No ONNX function found for <OpOverload\(op='([\w.]+)'", text)
    if match:
        return f"no ONNX function for {match.group(1)}"
    return _first_line(RuntimeError(text))
