"""Fused kernels, their MACs (checked against fvcore and the hook-based count), and the arena plan."""
import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import FlopCountAnalysis
from torch import nn

from cost_models import count_macs
from cost_models.kernel_shape import KernelShape
from cost_models.kernels import fused_kernels
from cost_models.memory import Buffer, activation_buffers, converter_padding, folded_pads, plan_arena, runtime_memory
from edgegrow.models import ds_cnn, example_input, mobilenet_v1, mobilenet_v2, resnet8

ZOO = {
    "ds-cnn-s": lambda: ds_cnn("S"),
    "resnet8": lambda: resnet8(),
    "mobilenet-v1-0.25-96": lambda: mobilenet_v1(0.25, 96, 2),
    "mobilenet-v2-0.35-96": lambda: mobilenet_v2(0.35, 96, 2),
}


@pytest.mark.parametrize("name", ZOO)
def test_kernel_macs_agree_with_fvcore_and_the_analytic_count(name):
    model = ZOO[name]().eval()
    x = example_input(model)
    kernels = fused_kernels(model, x)
    analytic = count_macs(model, x).by_layer
    flops = FlopCountAnalysis(model, x)
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    by_module = flops.by_module()
    weighted = [k for k in kernels if k.kind in ("conv", "depthwise", "pointwise", "fully_connected")]
    assert len(weighted) == len(analytic)
    for kernel in weighted:
        layer = kernel.layers[0]
        assert kernel.macs == analytic[layer] == by_module[layer], layer


def test_ds_cnn_fuses_batchnorm_and_relu_into_each_conv():
    kernels = fused_kernels(ds_cnn("S"), torch.zeros(1, 1, 49, 10))
    kinds = [k.kind for k in kernels]
    assert kinds == ["pad", "conv"] + ["depthwise", "pointwise"] * 4 + ["mean", "fully_connected"]
    stem = kernels[1]
    assert stem.layers == ["features.0.1", "features.0.2", "features.0.3"] and stem.activation == "ReLU"
    assert stem.output_shape == (1, 64, 25, 5)


def test_a_global_average_pool_is_the_kernel_edgegrows_onnx_export_writes_for_it():
    # torch.onnx's dynamo exporter (edgegrow export) writes nn.AdaptiveAvgPool2d(1) as a ReduceMean, the
    # kernel x.mean((2, 3)) is and onnxruntime runs 1.3-3x faster than a GlobalAveragePool on large maps;
    # it was priced as a GlobalAveragePool, which only the older TorchScript exporter wrote
    import onnx

    from edgegrow.export.onnx_format import export_onnx_float

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)).eval()
    example = torch.zeros(1, 3, 16, 16)
    ops = [node.op_type for node in onnx.load_from_string(export_onnx_float(model, example)).graph.node]
    kinds = [kernel.kind for kernel in fused_kernels(model, example)]
    assert "ReduceMean" in ops and "GlobalAveragePool" not in ops
    assert kinds == ["conv", "mean", "fully_connected"]
    # and a global max pool is a ReduceMax, priced as the reduction it is (it was priced as a GlobalAveragePool)
    max_pooled = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveMaxPool2d(1)).eval()
    ops = [node.op_type for node in onnx.load_from_string(export_onnx_float(max_pooled, example)).graph.node]
    assert "ReduceMax" in ops and "GlobalMaxPool" not in ops
    assert [kernel.kind for kernel in fused_kernels(max_pooled, example)] == ["conv", "mean"]


class _FunctionalPooling(nn.Module):
    """Pooling written as functions in ``forward``, as PyTorch's tutorials write it."""

    def __init__(self, pool):
        super().__init__()
        self.conv, self.pool = nn.Conv2d(3, 8, 3, padding=1), pool

    def forward(self, x):
        return self.pool(torch.relu(self.conv(x)))


@pytest.mark.parametrize(("pool", "kind", "window", "stride", "padding", "onnx_op"), [
    (lambda x: F.max_pool2d(x, 2), "pool", (2, 2), (2, 2), (0, 0), "MaxPool"),
    (lambda x: torch.max_pool2d(x, 3, 2, 1), "pool", (3, 3), (2, 2), (1, 1), "MaxPool"),
    (lambda x: F.max_pool2d(x, kernel_size=(3, 2), stride=1, padding=(1, 0)), "pool", (3, 2), (1, 1), (1, 0),
     "MaxPool"),
    (lambda x: F.avg_pool2d(x, 2), "avg_pool", (2, 2), (2, 2), (0, 0), "AveragePool"),
    (lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), "avg_pool", (3, 3), (2, 2), (1, 1), "AveragePool"),
    (lambda x: F.adaptive_avg_pool2d(x, (4, 4)), "avg_pool", (4, 4), (4, 4), (0, 0), "AveragePool"),
    (lambda x: F.adaptive_avg_pool2d(x, 1), "mean", (1, 1), (1, 1), (0, 0), "ReduceMean"),
    (lambda x: F.adaptive_max_pool2d(x, 1), "mean", (1, 1), (1, 1), (0, 0), "ReduceMax"),
    (lambda x: x.amax((2, 3)), "mean", (1, 1), (1, 1), (0, 0), "ReduceMax"),
    (lambda x: F.pad(x, (0, 1, 0, 1)), "pad", (1, 1), (1, 1), (0, 0), "Pad"),
])
def test_pooling_written_as_a_function_is_the_kernel_it_exports_to(pool, kind, window, stride, padding, onnx_op):
    # F.max_pool2d, F.avg_pool2d and the rest were kernels of kind "unknown", priced at their roofline (a
    # 16-channel 2×2 max pool at 32×32: 0.33 µs against 1.8 µs from the host's table) and flagged as uncosted
    import onnx

    from edgegrow.export.onnx_format import export_onnx_float

    model, example = _FunctionalPooling(pool).eval(), torch.zeros(1, 3, 16, 16)
    (kernel,) = fused_kernels(model, example)[1:]
    assert (kernel.kind, kernel.kernel_size, kernel.stride, kernel.padding) == (kind, window, stride, padding)
    assert onnx_op in [node.op_type for node in onnx.load_from_string(export_onnx_float(model, example)).graph.node]


@pytest.mark.parametrize("head", [
    lambda x: F.adaptive_avg_pool2d(x, 3),            # windows of 5 and 6 on 16: not one pooling
    lambda x: F.max_pool2d(x, 3, 2, 1, dilation=2),   # a dilated window
])
def test_a_pooling_that_is_no_window_of_one_size_stays_unknown_and_is_flagged(head):
    kernel = fused_kernels(_FunctionalPooling(head).eval(), torch.zeros(1, 3, 16, 16))[1]
    assert kernel.kind == "unknown"


def test_a_head_with_one_value_per_example_is_traced():
    # the pooling check read the output's channel count before knowing it was a pooling: a squeezed head raised
    class Squeezed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 1)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3))).squeeze(-1)

    kinds = [kernel.kind for kernel in fused_kernels(Squeezed().eval(), torch.zeros(1, 3, 8, 8))]
    assert kinds[:3] == ["conv", "mean", "fully_connected"]


def test_a_module_pooling_and_its_function_are_the_same_kernel():
    as_modules = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(3, 2, 1)).eval()
    as_function = _FunctionalPooling(lambda x: F.avg_pool2d(x, 3, 2, 1)).eval()
    example = torch.zeros(1, 3, 16, 16)
    kernels = [fused_kernels(model, example) for model in (as_modules, as_function)]
    shapes = [[KernelShape.from_kernel(k) for k in found] for found in kernels]
    assert shapes[0] == shapes[1] and shapes[0][1].kind == "avg_pool"
    assert kernels[0][1].padding == kernels[1][1].padding == (1, 1)


def test_residual_add_fuses_its_relu_and_reads_both_branches():
    kernels = {k.name: k for k in fused_kernels(resnet8(), torch.zeros(1, 3, 32, 32))}
    add = kernels["add"]
    assert add.kind == "add" and add.activation == "ReLU"
    assert sorted(add.inputs) == ["features.0.0", "features.1.body.1.0"]


def test_an_unknown_operation_is_a_kernel_of_kind_unknown():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, dim=1)

    (kernel,) = fused_kernels(Odd(), torch.zeros(1, 3, 4, 4))
    assert kernel.kind == "unknown"


def test_arena_of_a_chain_is_the_largest_neighbouring_pair():
    chain = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1),
                          nn.Conv2d(8, 2, 3, padding=1))
    kernels = fused_kernels(chain, torch.zeros(1, 1, 8, 8))
    plan = plan_arena(activation_buffers(kernels, (1, 1, 8, 8), 1))
    # input 64 B, 256 B, 512 B, 128 B: the worst moment holds 256 + 512 bytes.
    assert plan.lower_bound_bytes == 768 and plan.arena_bytes == 768


def test_residual_keeps_three_tensors_alive():
    plan = plan_arena(activation_buffers(fused_kernels(resnet8(), torch.zeros(1, 3, 32, 32)), (1, 3, 32, 32), 1))
    assert plan.lower_bound_bytes == 3 * 16 * 32 * 32 and plan.arena_bytes == 3 * 16 * 32 * 32


def test_a_module_run_twice_is_two_kernels_with_their_own_names_and_readers():
    class TwoPools(nn.Module):  # one pooling module for the gate and for the head, as a user writes an SE net
        def __init__(self):
            super().__init__()
            self.conv, self.gate, self.pool = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 1), nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            x = self.conv(x)
            x = x * torch.sigmoid(self.gate(self.pool(x)))
            return self.pool(x)

    kernels = fused_kernels(TwoPools(), torch.zeros(1, 1, 8, 8))
    names = [k.name for k in kernels]
    assert names == ["conv", "pool", "gate", "mul", "pool_1"]
    assert [k.inputs for k in kernels] == [["input"], ["conv"], ["pool"], ["conv", "gate"], ["mul"]]
    # the first pool's output dies when the gate has read it, before the mul's output is written
    buffers = {b.tensor: b for b in activation_buffers(kernels, (1, 1, 8, 8), 1)}
    assert buffers["pool"].last_step == buffers["gate"].first_step < buffers["mul"].first_step
    assert buffers["pool_1"].first_step > buffers["mul"].first_step


@pytest.mark.parametrize("size, stride, padding, expected", [
    (32, 2, 1, (1, 1)),   # SAME would pad 0 before, 1 after: the converter adds a PAD op
    (31, 2, 1, None),     # odd size: SAME pads 1 and 1, as PyTorch does
    (32, 1, 1, None),     # stride 1, 3×3: SAME is symmetric
    (32, 2, 0, None),     # VALID
])
def test_converter_padding_follows_what_same_and_valid_can_express(size, stride, padding, expected):
    conv = nn.Sequential(nn.Conv2d(4, 4, 3, stride=stride, padding=padding))
    (kernel,) = fused_kernels(conv, torch.zeros(1, 4, size, size))
    assert converter_padding(kernel) == expected


@pytest.mark.parametrize("pool, size, expected, op", [
    (nn.MaxPool2d(3, 2, 1), 32, (1, 1), "PADV2"),  # as for a conv: SAME pads 0 before, 1 after
    (nn.MaxPool2d(3, 2, 1), 31, None, None),       # SAME pads 1 and 1, as PyTorch does: folded
    (nn.AvgPool2d(3, 2, 1), 31, (1, 1), "PAD"),    # PyTorch averages the zeros in, TFLite's SAME leaves them out
    (nn.AvgPool2d(2), 32, None, None),
])
def test_a_pooling_with_padding_gets_the_pad_op_tflites_converter_writes(pool, size, expected, op):
    # without these an int8 network with such pools on a 32×32 or 48×48 map needed a TFLite Micro arena 1.5x the
    # predicted one (its activations 0.59-0.66x predicted; 2026-12-07)
    from edgegrow.export.runtimes import litert_ops
    from edgegrow.export.tflite_format import export_tflite_float

    model, example = nn.Sequential(nn.Conv2d(4, 4, 1), pool).eval(), torch.zeros(1, 4, size, size)
    kernel = fused_kernels(model, example)[1]
    assert converter_padding(kernel) == expected
    ops = litert_ops(export_tflite_float(model, example))
    assert (op in ops) if op else not {"PAD", "PADV2"} & set(ops)


def test_a_converter_pad_adds_the_padded_copy_between_its_source_and_the_convolution():
    chain = nn.Sequential(nn.Conv2d(1, 4, 1), nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4))
    kernels = fused_kernels(chain, torch.zeros(1, 1, 8, 8))
    plain = activation_buffers(kernels, (1, 1, 8, 8), 1)
    padded = activation_buffers(kernels, (1, 1, 8, 8), 1, converter_pads=True)
    (pad,) = [b for b in padded if b.tensor.endswith("/pad")]
    assert pad.size_bytes == 4 * 10 * 10 and (pad.first_step, pad.last_step) == (3, 4)  # kernel 1 runs at step 4
    source = next(b for b in padded if b.tensor == kernels[0].name)
    assert source.last_step == 3  # read by the PAD op, not by the convolution
    # input 64 B, 256 B, padded 400 B, output 64 B: the PAD step holds 256 + 400, the conv 400 + 64
    assert plan_arena(padded).arena_bytes == 656 and plan_arena(plain).arena_bytes == 256 + 64


@pytest.mark.parametrize("activation, unfused", [(nn.ReLU(), False), (nn.ReLU6(), False), (nn.Hardswish(), True),
                                                 (nn.Sigmoid(), True), (nn.GELU(), True)])
def test_an_activation_tflite_cannot_fuse_is_an_operator_with_a_tensor_of_its_own(activation, unfused):
    """Conv (1 → 8 channels, 16×16, int8: 2,048 B) then the activation then a strided 1×1 conv to 2
    channels (128 B): TFLite fuses ReLU and ReLU6 into the conv; Hardswish, the sigmoid, GELU are
    operators reading the conv's output and writing a copy, so both are alive at once (found on held-out
    squeeze-and-excitation networks, whose arena was 29 % over the prediction, bench/tflm_arena.py
    --held-out)."""
    chain = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), activation, nn.Conv2d(8, 2, 1, stride=2))
    kernels = fused_kernels(chain, torch.zeros(1, 1, 16, 16))
    assert len(kernels) == 2 and kernels[0].activation is not None  # fused in the kernel list (latency)
    buffers = activation_buffers(kernels, (1, 1, 16, 16), 1, converter_pads=True)
    names = [b.tensor for b in buffers]
    assert (f"{kernels[0].name}/pre" in names) == unfused
    # input 256 B, conv output 2,048 B, (the activation's copy 2,048 B,) the last conv's output 128 B
    assert plan_arena(buffers).arena_bytes == (2048 + 2048 if unfused else 256 + 2048)
    assert plan_arena(activation_buffers(kernels, (1, 1, 16, 16), 1)).arena_bytes == 256 + 2048  # the plain view
    if unfused:
        pre = next(b for b in buffers if b.tensor.endswith("/pre"))
        post = next(b for b in buffers if b.tensor == kernels[0].name)
        assert (pre.first_step, pre.last_step) == (1, 2) and post.first_step == 2  # both alive at step 2


def test_same_padding_written_as_a_pad_layer_is_folded_into_the_convolution():
    model = ds_cnn("M").eval()  # ZeroPad2d to SAME before the stem and each stride-2 depthwise
    kernels = fused_kernels(model, example_input(model))
    pads = [i for i, kernel in enumerate(kernels) if kernel.kind == "pad"]
    assert pads and folded_pads(kernels) == set(pads)
    names = {b.tensor for b in activation_buffers(kernels, (1, *model.input_shape), 1, converter_pads=True)}
    assert not names & {kernels[i].name for i in pads}
    other = nn.Sequential(nn.ZeroPad2d((2, 2, 2, 2)), nn.Conv2d(1, 4, 3, stride=2))  # more than SAME: kept
    assert folded_pads(fused_kernels(other, torch.zeros(1, 1, 8, 8))) == set()


def test_tflite_micro_targets_count_the_interpreters_own_allocations():
    arena = runtime_memory("tflite-micro")
    assert arena is not None and arena.converter_pads and arena.bytes_per_output_channel == 8
    assert runtime_memory("onnxruntime") is None
    assert arena.overhead_bytes(operators=10, output_channels=100) == (
        arena.fixed_bytes + 10 * arena.bytes_per_operator + 800)


def test_greedy_placement_never_overlaps_live_buffers():
    buffers = [Buffer("a", 100, -1, 1), Buffer("b", 300, 0, 2), Buffer("c", 50, 1, 3), Buffer("d", 300, 2, 3),
               Buffer("e", 20, 3, 3)]
    plan = plan_arena(buffers)
    for x in plan.buffers:
        for y in plan.buffers:
            if x is not y and x.first_step <= y.last_step and y.first_step <= x.last_step:
                x_end, y_end = x.offset_bytes + x.size_bytes, y.offset_bytes + y.size_bytes
                assert x_end <= y.offset_bytes or y_end <= x.offset_bytes
    assert plan.lower_bound_bytes <= plan.arena_bytes


def test_the_arena_lower_bound_is_the_most_bytes_alive_at_any_one_step():
    import random

    from cost_models.memory import _align
    draw = random.Random(0)
    for _ in range(500):
        buffers = []
        for index in range(draw.randint(0, 12)):
            first = draw.randint(-1, 20)
            buffers.append(Buffer(f"t{index}", draw.randint(0, 1000), first, draw.randint(first, 25)))
        steps = range(min((b.first_step for b in buffers), default=0),
                      max((b.last_step for b in buffers), default=0) + 1)
        most = max((sum(_align(b.size_bytes) for b in buffers if b.first_step <= t <= b.last_step) for t in steps),
                   default=0)
        assert plan_arena(buffers).lower_bound_bytes == most
