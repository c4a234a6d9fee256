"""estimate(): totals, per-kernel rows, memory, energy, limits and what could not be costed."""
import pytest
import torch
from profiles import analytic_profile, table_profile, target
from torch import nn

from cost_models import count_macs, estimate
from cost_models.kernels import fused_kernels
from cost_models.memory import activation_buffers, plan_arena
from edgegrow.models import ds_cnn, example_input, mobilenet_v2_seed


def test_totals_agree_with_the_analytic_counts_and_the_arena_plan():
    model = ds_cnn("S").eval()
    x = example_input(model)
    device = target(analytic_profile())
    report = estimate(model, x, device)
    assert report.macs == count_macs(model, x).total == sum(row.macs for row in report.kernels)
    assert report.parameters == sum(p.numel() for p in model.parameters())
    arena = plan_arena(activation_buffers(fused_kernels(model, x), tuple(x.shape), 1)).arena_bytes
    assert report.sram_bytes == arena  # int8 target: one byte per activation
    assert report.flash_bytes == report.weight_bytes_int8 + 100
    stem = report.kernels[1]  # 10×4 conv, 1 → 64 channels: 2,560 weights and 64 biases
    assert stem.weight_bytes_fp32 == (2560 + 64) * 4
    # int32 bias; a float32 scale and an int64 zero point per channel for the weights, and again for the bias
    assert stem.weight_bytes_int8 == 2560 + 64 * (4 + 2 * (4 + 8))
    assert report.latency_ms == pytest.approx(sum(row.latency_ms for row in report.kernels) + 0.01)
    assert report.energy_mj == pytest.approx(2000.0 * report.latency_ms * 1e-3)  # power × time


def test_per_operation_energy_is_used_when_the_profile_gives_it():
    profile = analytic_profile(energy_pj_per_mac={"value": 1.0, "source": "t"},
                               energy_pj_per_byte={"value": 10.0, "source": "t"})
    model = mobilenet_v2_seed(resolution=32, num_classes=2).eval()
    x = example_input(model)
    report = estimate(model, x, target(profile))
    expected = sum(row.shape.macs * 1.0 + row.shape.traffic_bytes(1) * 10.0 for row in report.kernels) * 1e-9
    assert report.energy_mj == pytest.approx(expected)


def test_no_power_figure_means_no_energy_rather_than_zero():
    profile = table_profile(active_power_mw={"value": None, "source": "not measured"})
    model = ds_cnn("S").eval()
    report = estimate(model, example_input(model), target(profile))
    assert report.energy_mj is None and "n/a" in report.table()


def test_an_operation_without_a_cost_is_flagged_and_never_free():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            return torch.cumsum(self.conv(x), dim=1)

    report = estimate(Odd().eval(), torch.zeros(1, 3, 16, 16), target(table_profile()))
    odd = [row for row in report.kernels if row.kind == "unknown"]
    assert len(odd) == 1 and odd[0].latency_ms > 0 and odd[0].latency_method == "roofline"
    assert any("cumsum" in line and "roofline" in line for line in report.uncosted)
    assert "uncosted: cumsum" in report.table()


def test_memory_limits_are_reported_when_exceeded():
    model = ds_cnn("L").eval()
    report = estimate(model, example_input(model), target(analytic_profile()))  # 64 KB SRAM, 256 KB flash
    assert report.limits == {"sram_bytes": 65536, "flash_bytes": 262144}
    assert any(line.startswith("flash") for line in report.over_limits)
    assert "over the limit: flash" in report.table()


def test_estimate_accepts_a_target_name():
    model = ds_cnn("S").eval()
    report = estimate(model, example_input(model), "host")
    assert report.target == "host" and report.latency_ms > 0 and report.energy_mj is None
