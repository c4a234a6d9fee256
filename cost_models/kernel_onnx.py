"""Single-kernel ONNX models: what the profiler times to fill a latency table.

Each model is one ``KernelShape`` written the way an exporter writes it (Conv with bias, then the
activation node; BatchNorm is already folded), so the runtime fuses it as it fuses the kernel in a
whole model. Needs only ``onnx`` and numpy.
"""
from __future__ import annotations

import numpy as np

from .kernel_shape import KernelShape

OPSET = 17
PROFILABLE_KINDS = ("conv", "depthwise", "pointwise", "fully_connected", "pool", "global_pool", "add", "mul",
                    "concat", "pad", "activation")


def _same_pads(size_in: int, size_out: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max(0, (size_out - 1) * stride + kernel - size_in)
    return total // 2, total - total // 2


def _activation_nodes(helper, activation: str | None, source: str, target: str) -> list:
    if activation is None:
        return [helper.make_node("Identity", [source], [target])]
    if activation == "relu":
        return [helper.make_node("Relu", [source], [target])]
    if activation == "relu6":
        return [helper.make_node("Clip", [source, "clip_min", "clip_max"], [target])]
    if activation == "hardswish":
        return [helper.make_node("HardSwish", [source], [target])]
    if activation == "sigmoid":
        return [helper.make_node("Sigmoid", [source], [target])]
    if activation == "tanh":
        return [helper.make_node("Tanh", [source], [target])]
    if activation == "leaky_relu":
        return [helper.make_node("LeakyRelu", [source], [target], alpha=0.01)]
    if activation == "silu":
        return [helper.make_node("Sigmoid", [source], [target + "_gate"]),
                helper.make_node("Mul", [source, target + "_gate"], [target])]
    raise ValueError(f"no ONNX form for activation {activation!r}")


def kernel_model(shape: KernelShape, seed: int = 0):
    """An ``onnx.ModelProto`` running ``shape`` once; inputs are named x (and y for two-input kernels).

    Raises:
        ValueError: the kind cannot be written as a single-kernel model (``unknown``).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if shape.kind not in PROFILABLE_KINDS:
        raise ValueError(f"cannot write a single-kernel model for kind {shape.kind!r}")
    rng = np.random.default_rng(seed)
    c_in, h_in, w_in = shape.input
    c_out, h_out, w_out = shape.output
    (k_h, k_w), (s_h, s_w) = shape.kernel, shape.stride
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, h_in, w_in])]
    initializers = [numpy_helper.from_array(np.array(0.0, np.float32), "clip_min"),
                    numpy_helper.from_array(np.array(6.0, np.float32), "clip_max")]
    nodes = []
    if shape.kind in ("conv", "depthwise", "pointwise"):
        groups = c_in if shape.kind == "depthwise" else 1
        fan_in = c_in // groups * k_h * k_w
        weight = (rng.standard_normal((c_out, c_in // groups, k_h, k_w)) / np.sqrt(fan_in)).astype(np.float32)
        initializers += [numpy_helper.from_array(weight, "W"),
                         numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32) * 0.1, "B")]
        top, bottom = _same_pads(h_in, h_out, k_h, s_h)
        left, right = _same_pads(w_in, w_out, k_w, s_w)
        nodes.append(helper.make_node("Conv", ["x", "W", "B"], ["z"], kernel_shape=[k_h, k_w], strides=[s_h, s_w],
                                      pads=[top, left, bottom, right], group=groups))
        nodes += _activation_nodes(helper, shape.activation, "z", "out")
    elif shape.kind == "fully_connected":
        features_in = c_in * h_in * w_in
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, features_in])]
        weight = (rng.standard_normal((c_out * h_out * w_out, features_in)) / np.sqrt(features_in)).astype(np.float32)
        initializers += [numpy_helper.from_array(weight, "W"),
                         numpy_helper.from_array(np.zeros(weight.shape[0], np.float32), "B")]
        nodes.append(helper.make_node("Gemm", ["x", "W", "B"], ["z"], transB=1))
        nodes += _activation_nodes(helper, shape.activation, "z", "out")
    elif shape.kind == "pool":
        top, bottom = _same_pads(h_in, h_out, k_h, s_h)
        left, right = _same_pads(w_in, w_out, k_w, s_w)
        nodes.append(helper.make_node("MaxPool", ["x"], ["out"], kernel_shape=[k_h, k_w], strides=[s_h, s_w],
                                      pads=[top, left, bottom, right]))
    elif shape.kind == "global_pool":
        nodes.append(helper.make_node("GlobalAveragePool", ["x"], ["out"]))
    elif shape.kind in ("add", "mul"):
        inputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_in, h_in, w_in]))
        nodes.append(helper.make_node("Add" if shape.kind == "add" else "Mul", ["x", "y"], ["z"]))
        nodes += _activation_nodes(helper, shape.activation, "z", "out")
    elif shape.kind == "concat":
        second = max(1, c_out - c_in)
        inputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, second, h_in, w_in]))
        nodes.append(helper.make_node("Concat", ["x", "y"], ["out"], axis=1))
    elif shape.kind == "pad":
        pads = np.array([0, 0, 0, 0, 0, 0, h_out - h_in, w_out - w_in], np.int64)
        initializers.append(numpy_helper.from_array(np.maximum(pads, 0), "pads"))
        nodes.append(helper.make_node("Pad", ["x", "pads"], ["out"], mode="constant"))
    else:  # activation
        nodes += _activation_nodes(helper, shape.activation or "relu", "x", "out")
    used = {name for node in nodes for name in node.input}
    initializers = [tensor for tensor in initializers if tensor.name in used]
    out_dims = [1, c_out * h_out * w_out] if shape.kind == "fully_connected" else [1, c_out, h_out, w_out]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, out_dims)
    graph = helper.make_graph(nodes, f"edgegrow_{shape.kind}", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgegrow-profiler")
    model.ir_version = min(model.ir_version, 8)  # readable by onnxruntime releases from 1.14 on
    onnx.checker.check_model(model)
    return model


def overhead_model():
    """The smallest model a runtime will run (one Identity on one float): its latency is the per-model
    overhead outside any kernel (session call, input and output binding)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["out"])], "edgegrow_overhead",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgegrow-profiler")
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    return model
