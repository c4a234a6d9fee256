"""Fused kernels, their MACs (checked against fvcore and the hook-based count), and the arena plan."""
import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from cost_models import count_macs
from cost_models.kernels import fused_kernels
from cost_models.memory import Buffer, activation_buffers, plan_arena
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
    assert kinds == ["pad", "conv"] + ["depthwise", "pointwise"] * 4 + ["global_pool", "fully_connected"]
    stem = kernels[1]
    assert stem.layers == ["features.0.1", "features.0.2", "features.0.3"] and stem.activation == "ReLU"
    assert stem.output_shape == (1, 64, 25, 5)


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


def test_greedy_placement_never_overlaps_live_buffers():
    buffers = [Buffer("a", 100, -1, 1), Buffer("b", 300, 0, 2), Buffer("c", 50, 1, 3), Buffer("d", 300, 2, 3),
               Buffer("e", 20, 3, 3)]
    plan = plan_arena(buffers)
    for x in plan.buffers:
        for y in plan.buffers:
            if x is not y and x.first_kernel <= y.last_kernel and y.first_kernel <= x.last_kernel:
                x_end, y_end = x.offset_bytes + x.size_bytes, y.offset_bytes + y.size_bytes
                assert x_end <= y.offset_bytes or y_end <= x.offset_bytes
    assert plan.lower_bound_bytes <= plan.arena_bytes
