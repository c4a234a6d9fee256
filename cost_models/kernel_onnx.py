"""Single-kernel ONNX models: what the profiler times to fill a latency table.

Each model is one ``KernelShape`` written the way an exporter writes it (Conv with bias, then the
activation node; BatchNorm is already folded, and one no conv precedes is a BatchNormalization of its own,
``batch_norm``), so the runtime fuses it as it fuses the kernel in a whole model. Needs only ``onnx`` and numpy.
"""
from __future__ import annotations

import numpy as np

from .kernel_shape import KernelShape, same_padding
from .runner import HELPER_NODE

# the operator set edgegrow's ONNX export writes (``edgegrow.export.onnx_format.OPSET``; a test keeps them equal), so
# a table times the operators a user's export runs: onnxruntime runs an AveragePool of opset 19 on (dilations) in its
# plain layout 1.2-3.5x slower than one of opset 17, and every other kind the same within 3 % (x86 host, 2026-12-07)
OPSET = 20
PROFILABLE_KINDS = ("conv", "depthwise", "pointwise", "fully_connected", "pool", "avg_pool", "global_pool", "mean",
                    "add", "mul", "batch_norm", "concat", "pad", "activation")


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


def _kernel_nodes(shape: KernelShape, sources: list[str], target: str, prefix: str, rng, flat_input: bool):
    """Nodes and initializers computing ``shape`` from ``sources`` into ``target``; names start with
    ``prefix``. ``flat_input``: the (first) source is already (1, features)."""
    from onnx import helper, numpy_helper

    c_in, h_in, w_in = shape.input
    c_out, h_out, w_out = shape.output
    (k_h, k_w), (s_h, s_w) = shape.kernel, shape.stride
    nodes, initializers = [], []
    z = prefix + "z"
    if shape.kind in ("conv", "depthwise", "pointwise"):
        groups = c_in if shape.kind == "depthwise" else 1
        fan_in = c_in // groups * k_h * k_w
        weight = (rng.standard_normal((c_out, c_in // groups, k_h, k_w)) / np.sqrt(fan_in)).astype(np.float32)
        initializers += [numpy_helper.from_array(weight, prefix + "W"),
                         numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32) * 0.1, prefix + "B")]
        top, bottom = same_padding(h_in, h_out, k_h, s_h)
        left, right = same_padding(w_in, w_out, k_w, s_w)
        nodes.append(helper.make_node("Conv", [sources[0], prefix + "W", prefix + "B"], [z], kernel_shape=[k_h, k_w],
                                      strides=[s_h, s_w], pads=[top, left, bottom, right], group=groups))
        nodes += _activation_nodes(helper, shape.activation, z, target)
    elif shape.kind == "fully_connected":
        features_in = c_in * h_in * w_in
        source = sources[0]
        if not flat_input:
            nodes.append(helper.make_node("Flatten", [source], [prefix + "flat"]))
            source = prefix + "flat"
        weight = (rng.standard_normal((c_out * h_out * w_out, features_in)) / np.sqrt(features_in)).astype(np.float32)
        initializers += [numpy_helper.from_array(weight, prefix + "W"),
                         numpy_helper.from_array(np.zeros(weight.shape[0], np.float32), prefix + "B")]
        nodes.append(helper.make_node("Gemm", [source, prefix + "W", prefix + "B"], [z], transB=1))
        nodes += _activation_nodes(helper, shape.activation, z, target)
    elif shape.kind in ("pool", "avg_pool"):
        top, bottom = same_padding(h_in, h_out, k_h, s_h)
        left, right = same_padding(w_in, w_out, k_w, s_w)
        # an average pool counts the zero padding in, as torch.onnx writes PyTorch's (count_include_pad)
        extra = {"count_include_pad": 1} if shape.kind == "avg_pool" else {}
        nodes.append(helper.make_node("MaxPool" if shape.kind == "pool" else "AveragePool", sources[:1], [target],
                                      kernel_shape=[k_h, k_w], strides=[s_h, s_w], pads=[top, left, bottom, right],
                                      **extra))
    elif shape.kind == "global_pool":
        nodes.append(helper.make_node("GlobalAveragePool", sources[:1], [target]))
    elif shape.kind == "mean":  # what torch.onnx writes for x.mean((2, 3), keepdim=True): the axes an input
        initializers.append(numpy_helper.from_array(np.array([2, 3], np.int64), prefix + "axes"))
        nodes.append(helper.make_node("ReduceMean", [sources[0], prefix + "axes"], [target], keepdims=1))
    elif shape.kind in ("add", "mul"):
        nodes.append(helper.make_node("Add" if shape.kind == "add" else "Mul", sources[:2], [z]))
        nodes += _activation_nodes(helper, shape.activation, z, target)
    elif shape.kind == "batch_norm":  # what torch.onnx writes for an eval-mode BatchNorm of its own, trained statistics
        statistics = {"scale": 1.0 + 0.1 * rng.standard_normal(c_in), "bias": 0.1 * rng.standard_normal(c_in),
                      "mean": 0.1 * rng.standard_normal(c_in), "var": 0.5 + rng.random(c_in)}
        initializers += [numpy_helper.from_array(value.astype(np.float32), prefix + name)
                         for name, value in statistics.items()]
        nodes.append(helper.make_node("BatchNormalization", [sources[0]] + [prefix + name for name in statistics],
                                      [z], epsilon=1e-5))
        nodes += _activation_nodes(helper, shape.activation, z, target)
    elif shape.kind == "concat":
        nodes.append(helper.make_node("Concat", sources[:2], [target], axis=1))
    elif shape.kind == "pad":
        pads = np.array([0, 0, 0, 0, 0, 0, h_out - h_in, w_out - w_in], np.int64)
        initializers.append(numpy_helper.from_array(np.maximum(pads, 0), prefix + "pads"))
        nodes.append(helper.make_node("Pad", [sources[0], prefix + "pads"], [target], mode="constant"))
    else:  # activation
        nodes += _activation_nodes(helper, shape.activation or "relu", sources[0], target)
    return nodes, initializers


def _finish(nodes, initializers, inputs, output, name: str, domains: tuple[str, ...] = ()):
    """The checked model of ``nodes``; ``domains``: operator sets beside the default one (version 1)."""
    import onnx
    from onnx import helper, numpy_helper

    initializers = initializers + [numpy_helper.from_array(np.array(0.0, np.float32), "clip_min"),
                                   numpy_helper.from_array(np.array(6.0, np.float32), "clip_max")]
    used = {name for node in nodes for name in node.input}
    initializers = [tensor for tensor in initializers if tensor.name in used]
    graph = helper.make_graph(nodes, name, inputs, [output], initializers)
    opsets = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(domain, 1) for domain in domains]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgegrow-profiler")
    model.ir_version = min(model.ir_version, 8)  # readable by onnxruntime releases from 1.14 on
    onnx.checker.check_model(model)
    return model


def _tensor(name: str, shape: KernelShape, which: str, flat: bool = False):
    from onnx import TensorProto, helper

    c, h, w = getattr(shape, which)
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, c * h * w] if flat else [1, c, h, w])


def kernel_model(shape: KernelShape, seed: int = 0, read_inside: bool = False):
    """An ``onnx.ModelProto`` running ``shape`` once; inputs are named x (and y for two-input kernels).

    ``read_inside``: a kernel with a HardSwish has its output read by one more node (a ReLU named
    ``HELPER_NODE``), as inside a network. onnxruntime fuses a HardSwish into a blocked (NCHWc) conv only
    when another node reads it; as a model's output it runs unfused, as HardSigmoid and Mul: on an x86 host
    a blocked depthwise conv of 12 channels at 48×48 took 21.8 µs alone and 14.9 µs in a chain of them
    (10.2 µs without the activation; 2026-12-06). The profiler times kernels this way and leaves the helper
    node's own time out.

    Raises:
        ValueError: the kind cannot be written as a single-kernel model (``unknown``).
    """
    from onnx import TensorProto, helper

    if shape.kind not in PROFILABLE_KINDS:
        raise ValueError(f"cannot write a single-kernel model for kind {shape.kind!r}")
    fully_connected = shape.kind == "fully_connected"
    inputs = [_tensor("x", shape, "input", flat=fully_connected)]
    if shape.kind == "add":
        inputs.append(_tensor("y", shape, "input"))
    elif shape.kind == "mul":  # one value per channel, broadcast: a squeeze-and-excitation gate
        inputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, shape.input[0], 1, 1]))
    elif shape.kind == "concat":
        c_in, h_in, w_in = shape.input
        inputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, max(1, shape.output[0] - c_in),
                                                                              h_in, w_in]))
    read = read_inside and shape.activation == "hardswish"
    nodes, initializers = _kernel_nodes(shape, [item.name for item in inputs], "kernel_out" if read else "out", "",
                                        np.random.default_rng(seed), flat_input=fully_connected)
    if read:
        nodes.append(helper.make_node("Relu", ["kernel_out"], ["out"], name=HELPER_NODE))
    return _finish(nodes, initializers, inputs, _tensor("out", shape, "output", flat=fully_connected),
                   f"edgegrow_{shape.kind}")


def chain_model(shapes: list[KernelShape], inputs: list[list[int]], seed: int = 0):
    """One ONNX model running ``shapes`` in order; ``inputs[i]`` are the kernels kernel i reads (-1: the
    model input, which has the first kernel's input shape). The last kernel's output is the output."""
    if any(shape.kind not in PROFILABLE_KINDS for shape in shapes):
        raise ValueError("a chain can only hold kinds with single-kernel models")
    rng = np.random.default_rng(seed)
    nodes, initializers = [], []
    for index, (shape, sources) in enumerate(zip(shapes, inputs)):
        names = ["x" if source < 0 else f"k{source}" for source in sources]
        flat = sources[0] >= 0 and shapes[sources[0]].kind == "fully_connected"
        kernel_nodes, kernel_initializers = _kernel_nodes(shape, names, f"k{index}", f"k{index}_", rng, flat)
        nodes += kernel_nodes
        initializers += kernel_initializers
    last = shapes[-1]
    output = _tensor(f"k{len(shapes) - 1}", last, "output", flat=last.kind == "fully_connected")
    return _finish(nodes, initializers, [_tensor("x", shapes[0], "input")], output, "edgegrow_chain")


def overhead_model():
    """The smallest model a runtime will run (one Identity on one float): its latency is the per-model
    overhead outside any kernel (session call, input and output binding)."""
    from onnx import TensorProto, helper

    return _finish([helper.make_node("Identity", ["x"], ["out"])], [],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                   helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1]), "edgegrow_overhead")


NODE_CHAIN_LENGTHS = (1, 2, 5, 10, 20, 40)

# tensors (channels, height, width) whose layout changes the profiler times in chains of 1, 2, 4 and 8
# pairs: 1 K to 200 K elements, the range of the feature maps growth and the zoo make
REORDER_CHAIN_TENSORS = ((16, 8, 8), (32, 25, 5), (64, 16, 16), (48, 28, 28), (32, 56, 56), (64, 56, 56))
REORDER_CHAIN_PAIRS = (1, 2, 4, 8)
# and, timed both in pairs and in fan-outs (``reorder_fanout_model``), tensors whose channels end in a partial
# block (a multiple of 4, not of 16: 4-12 channels) or whose channel planes are multiples of 4 KB (32×32,
# 64×64), where onnxruntime's layout changes cost 2-6x more per element (``latency.layout_change_terms``)
LAYOUT_CHANGE_TENSORS = REORDER_CHAIN_TENSORS + ((16, 32, 32), (32, 64, 64), (12, 16, 16), (20, 28, 28), (8, 25, 5),
                                                 (12, 63, 63), (8, 32, 32), (20, 64, 64), (12, 32, 32), (44, 32, 32),
                                                 (12, 64, 64))


def reorder_chain_model(tensor: tuple[int, int, int], pairs: int):
    """``pairs`` layout changes there and back in a row (onnxruntime's NCHWc ``ReorderInput`` then
    ``ReorderOutput``) on a ``(channels, height, width)`` tensor: next to each other, such models' latencies
    rise by what two layout changes of that tensor cost inside a network (onnxruntime's optimiser keeps
    the pairs; a test checks that).

    A layout change exists only between kernels, so a single-kernel model cannot time it: the profiler's
    node times for the reorders around a blocked kernel are whole microseconds with the profiler's own
    cost added, and sharing the model's wall-clock time out equally put about twice what these chains
    measure on each (2026-12-06, x86 host: 4 K elements 0.34 µs against 0.83 predicted)."""
    from onnx import TensorProto, helper

    channels, height, width = tensor
    nodes = []
    for index in range(pairs):
        source = "x" if index == 0 else f"plain{index - 1}"
        nodes.append(helper.make_node("ReorderInput", [source], [f"blocked{index}"], domain="com.microsoft.nchwc"))
        nodes.append(helper.make_node("ReorderOutput", [f"blocked{index}"],
                                      ["out" if index == pairs - 1 else f"plain{index}"],
                                      domain="com.microsoft.nchwc", channels=channels))
    shape = [1, channels, height, width]
    return _finish(nodes, [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                   helper.make_tensor_value_info("out", TensorProto.FLOAT, shape), "edgegrow_reorder_chain",
                   domains=("com.microsoft.nchwc",))


def reorder_fanout_model(tensor: tuple[int, int, int], copies: int):
    """One layout change into onnxruntime's NCHWc layout (``ReorderInput``) and ``copies`` changes back
    (``ReorderOutput``) of the same blocked tensor, of which one is the output: onnxruntime runs every one
    of them (a test checks the optimised graph keeps them), so next to each other such models' latencies
    rise by what one change back of that tensor costs. A pair chain (``reorder_chain_model``) times a change
    there and back together; with this, each direction: on an x86 host a change back of 12 channels on
    64×64 planes took 30 µs and the change there 16 µs (2026-12-06)."""
    from onnx import TensorProto, helper

    channels, height, width = tensor
    nodes = [helper.make_node("ReorderInput", ["x"], ["blocked"], domain="com.microsoft.nchwc")]
    nodes += [helper.make_node("ReorderOutput", ["blocked"], ["out" if index == 0 else f"plain{index}"],
                               domain="com.microsoft.nchwc", channels=channels) for index in range(copies)]
    shape = [1, channels, height, width]
    return _finish(nodes, [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                   helper.make_tensor_value_info("out", TensorProto.FLOAT, shape), "edgegrow_reorder_fanout",
                   domains=("com.microsoft.nchwc",))


def node_chain_model(nodes: int):
    """``nodes`` ReLUs in a row on eight floats: next to each other, such models' latencies rise by
    what the runtime spends on each node besides its work (the per-node overhead)."""
    from onnx import TensorProto, helper

    graph_nodes = [helper.make_node("Relu", ["x" if i == 0 else f"t{i - 1}"], ["out" if i == nodes - 1 else f"t{i}"])
                   for i in range(nodes)]
    return _finish(graph_nodes, [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                   helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8]), "edgegrow_node_chain")
