"""The latency biases bench/cost_model_accuracy.py found on held-out networks, each pinned by a case
the earlier model got wrong: pooling strides, the profiler's per-node time, matrix-product padding,
plain depthwise layers between distant table entries, blocked convs on few input channels, and the
per-node offset of layout changes."""
import numpy as np
import pytest
import torch
from profiles import table_profile, target
from torch import nn

from cost_models.calibration import fit_calibration
from cost_models.kernel_onnx import NODE_CHAIN_LENGTHS, kernel_model, node_chain_model
from cost_models.kernel_shape import KernelShape
from cost_models.kernels import fused_kernels
from cost_models.latency import LatencyModel
from cost_models.profiler import without_profiler
from cost_models.runner import onnxruntime_node_times


@pytest.mark.parametrize(("pool", "stride"), [(nn.MaxPool2d(2), (2, 2)), (nn.MaxPool2d(3, stride=1, padding=1), (1, 1)),
                                              (nn.AvgPool2d((2, 2), stride=(2, 1)), (2, 1))])
def test_a_pooling_layer_is_traced_with_its_stride(pool, stride):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), pool).eval()
    (kernel,) = [k for k in fused_kernels(model, torch.randn(1, 3, 16, 16)) if k.kind == "pool"]
    assert KernelShape.from_kernel(kernel).stride == stride  # was (1, 1) for every pool: priced 4× the work


def test_node_times_become_wall_clock_time_shared_over_the_nodes():
    record = {"kernel_ms": 0.004, "reorders": [[100, 0.002]], "nodes": 2, "nodes_ms": 0.006, "wall_ms": 0.0075}
    corrected = without_profiler(record, overhead_ms=0.005)
    per_node = (0.0075 - 0.005 - 0.006) / 2  # the profiler's own time, about -2 µs a node here
    assert corrected["kernel_ms"] == pytest.approx(0.004 + per_node)
    assert corrected["reorders"] == [[100, pytest.approx(0.002 + per_node)]]
    assert corrected["kernel_ms"] + corrected["reorders"][0][1] == pytest.approx(0.0075 - 0.005)
    assert without_profiler({k: v for k, v in record.items() if k != "wall_ms"}, 0.005)["kernel_ms"] == 0.004
    assert record["kernel_ms"] == 0.004  # the measurement itself is kept as it was


def test_node_times_report_every_node_of_a_single_kernel_model():
    depthwise = KernelShape("depthwise", (23, 25, 5), (23, 25, 5), (3, 3))
    plain = onnxruntime_node_times(kernel_model(depthwise).SerializeToString(), budget_ms=5.0)
    assert plain["layout"] == "plain" and plain["nodes"] == 1 and plain["nodes_ms"] == pytest.approx(plain["kernel_ms"])
    conv = KernelShape("conv", (64, 14, 14), (64, 14, 14), (3, 3))
    blocked = onnxruntime_node_times(kernel_model(conv).SerializeToString(), budget_ms=5.0)
    assert blocked["layout"] == "blocked" and blocked["nodes"] == 1 + len(blocked["reorders"])
    assert blocked["nodes_ms"] >= blocked["kernel_ms"]


def _pointwise(c_in: int, c_out: int, size: int) -> KernelShape:
    return KernelShape("pointwise", (c_in, size, size), (c_out, size, size), (1, 1), (1, 1), "relu")


def _padded_product_ms(shape: KernelShape) -> float:
    """A plain matrix product sweeping panels of 16 output positions at 50 GMAC/s, plus 2 µs."""
    positions = shape.output[1] * shape.output[2]
    return shape.input[0] * shape.output[0] * -(-positions // 16) * 16 / 5e10 * 1e3 + 0.002


def test_a_plain_pointwise_layer_with_few_positions_costs_a_whole_panel():
    rng = np.random.default_rng(0)
    entries = []
    for size in (3, 5, 7, 8, 10, 12, 14, 16):
        for _ in range(6):
            c_in, c_out = (int(c) * 2 + 1 for c in rng.integers(8, 200, 2))  # odd: the plain layout
            shape = _pointwise(c_in, c_out, size)
            entries.append({**shape.to_dict(), "latency_ms": _padded_product_ms(shape), "layout": "plain"})
    model = LatencyModel(target(table_profile(entries)))
    for shape in (_pointwise(411, 409, 2), _pointwise(255, 665, 2), _pointwise(301, 367, 6)):
        assert model.layout(shape) == "plain"
        # 2×2 = 4 positions run as 16: MACs alone said a quarter of the time (measured −50 % on such layers)
        assert model.kernel(shape).latency_ms == pytest.approx(_padded_product_ms(shape), rel=0.10)


def test_a_plain_depthwise_layer_interpolates_linearly_between_distant_channel_counts():
    def depthwise(c):
        return KernelShape("depthwise", (c, 25, 5), (c, 25, 5), (3, 3), (1, 1), "relu")

    entries = [{**depthwise(c).to_dict(), "latency_ms": 0.0007 + 0.00095 * c, "layout": "plain"}
               for c in (7, 10, 155, 201)]
    model = LatencyModel(target(table_profile(entries)))
    for c in (19, 26, 34, 99):
        assert model.layout(depthwise(c)) == "plain"
        result = model.kernel(depthwise(c))  # channel by channel: a straight line however far apart
        assert result.method == "interpolated" and result.latency_ms == pytest.approx(0.0007 + 0.00095 * c)


def test_a_blocked_conv_on_few_input_channels_is_not_priced_as_a_whole_block():
    def stem(c_in):
        return KernelShape("conv", (c_in, 16, 16), (16, 16, 16), (3, 3), (1, 1), "relu")

    entries = [{**stem(c).to_dict(), "latency_ms": 0.0005 + 0.0003 * c, "layout": "blocked"} for c in (3, 6, 12, 24)]
    model = LatencyModel(target(table_profile(entries)))
    one = model.kernel(stem(1))
    assert model.layout(stem(1)) == "blocked"
    # such a conv reads its input unpadded: 1 channel is not 6 (the earlier model took 6's time, +3.5×)
    assert one.latency_ms < 0.75 * (0.0005 + 0.0003 * 3)


def test_layout_changes_take_the_per_node_offset_only_in_profiles_that_count_nodes():
    def conv(c_out):
        return KernelShape("conv", (64, 28, 28), (c_out, 28, 28), (3, 3), (1, 1), "relu")

    shapes = [conv(64), KernelShape("depthwise", (63, 28, 28), (63, 28, 28), (3, 3))]
    shapes[0] = conv(63)
    profile = table_profile()
    profile["latency"]["calibration"] = {"scale": 1.0, "per_kernel_ms": 0.0004, "source": "test"}
    per_kernel = LatencyModel(target(profile))
    profile["latency"]["calibration"]["counted_over"] = "nodes"
    per_node = LatencyModel(target(profile))
    _, reorders_before, _ = per_kernel.model(shapes, [[-1], [0]])
    _, reorders_after, _ = per_node.model(shapes, [[-1], [0]])
    assert per_node.nodes(shapes, [[-1], [0]]) == 4  # two kernels, two layout changes
    assert reorders_after == pytest.approx(reorders_before + 2 * 0.0004)
    profile["latency"]["calibration"]["counted_over"] = "layers"
    with pytest.raises(ValueError, match="counted_over"):
        target(profile)


def test_a_measured_per_node_offset_leaves_only_the_scale_to_fit():
    table_ms, nodes = [0.5, 1.0, 2.0, 0.05, 0.02], [10, 14, 30, 6, 4]
    measured = [0.97 * t + 0.0002 * n + 0.005 for t, n in zip(table_ms, nodes)]
    scale, offset = fit_calibration(table_ms, nodes, measured, 0.005, per_node_ms=0.0002)
    assert scale == pytest.approx(0.97) and offset == 0.0002


def test_node_chains_run_one_node_per_relu():
    import onnxruntime

    for count in NODE_CHAIN_LENGTHS[:3]:
        model = node_chain_model(count)
        assert [node.op_type for node in model.graph.node] == ["Relu"] * count
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        (output,) = session.run(None, {"x": -np.ones((1, 8), np.float32)})
        assert (output == 0).all()


def test_a_plain_pointwise_layer_at_one_position_is_not_priced_as_a_panel_of_sixteen():
    """One position is a matrix-vector product (a quarter of the time per weight in the host table),
    not the 16-column panel the layers with 2–16 positions pay for."""
    rng = np.random.default_rng(1)
    entries = []

    def vector_ms(shape):  # one position: another kernel, bound by reading the weights once
        return shape.input[0] * shape.output[0] / 1.4e10 * 1e3 + 0.001

    for size in (1, 3, 5, 8, 12, 16):
        for _ in range(8):
            c_in, c_out = (int(c) * 2 + 1 for c in rng.integers(8, 300, 2))
            shape = _pointwise(c_in, c_out, size)
            latency = vector_ms(shape) if size == 1 else _padded_product_ms(shape)
            entries.append({**shape.to_dict(), "latency_ms": latency, "layout": "plain"})
    # a memory system that fast (the test profile's 20 GB/s would make the roofline the answer)
    fast_memory = {"value": 2e11, "source": "test"}
    model = LatencyModel(target(table_profile(entries, memory_bandwidth_bytes_per_s=fast_memory)))
    for shape in (_pointwise(389, 473, 1), _pointwise(613, 581, 1), _pointwise(145, 239, 1)):
        assert model.kernel(shape).latency_ms == pytest.approx(vector_ms(shape), rel=0.10)
    assert model.kernel(_pointwise(411, 409, 2)).latency_ms == pytest.approx(_padded_product_ms(_pointwise(411, 409, 2)),
                                                                            rel=0.10)
