"""Small hand-written target profiles for tests: known numbers, so predictions can be checked exactly."""
from __future__ import annotations

import copy

from cost_models.kernel_shape import KernelShape
from cost_models.target import SCHEMA, parse_target


def conv_sweep(channels: range, latency_of) -> list[dict]:
    """Table entries of a 3×3 conv 64→c at 28×28 for each c, latency_of(c) ms."""
    return [{**KernelShape("conv", (64, 28, 28), (c, 28, 28), (3, 3), (1, 1), "relu").to_dict(),
             "latency_ms": latency_of(c), "layout": "blocked"} for c in channels]


def table_profile(entries: list[dict] | None = None, **changes) -> dict:
    """A measured-style profile: a staircase conv sweep (0.68 ms up to 64 channels, 0.84 ms from 65)."""
    profile = {
        "schema": SCHEMA, "name": "test-cpu", "kind": "cpu", "description": "test",
        "runtime": {"name": "onnxruntime", "version": "1.0"}, "threads": 1, "dtype": "float32",
        "peak_macs_per_s": {"value": 5e10, "source": "test"},
        "memory_bandwidth_bytes_per_s": {"value": 2e10, "source": "test"},
        "sram_bytes": {"value": None, "source": "test"}, "flash_bytes": {"value": None, "source": "test"},
        "active_power_mw": {"value": 2000.0, "source": "test"},
        "model_overhead_ms": {"value": 0.01, "source": "test"},
        "model_overhead_flash_bytes": {"value": 100, "source": "test"},
        "latency": {"source": "test", "layout": {"rule": "onnxruntime-nchwc", "block_channels": 8,
                                                 "reorder_ms_per_call": 0.002, "reorder_ms_per_element": 1e-7},
                    "entries": entries if entries is not None else
                    conv_sweep(range(48, 57, 8), lambda c: 0.6) + conv_sweep(range(57, 65, 3), lambda c: 0.68)
                    + conv_sweep(range(65, 81, 5), lambda c: 0.84 if c <= 72 else 0.95)},
    }
    for key, value in changes.items():
        profile[key] = value
    return profile


def analytic_profile(**changes) -> dict:
    profile = table_profile(**changes)
    profile = copy.deepcopy(profile)
    profile.update(name="test-mcu", kind="mcu", dtype="int8", sram_bytes={"value": 65536, "source": "test"},
                   flash_bytes={"value": 262144, "source": "test"})
    profile["latency"] = {"source": "test", "analytic": {
        "macs_per_s": {"default": 1e7, "depthwise": 5e6}, "per_kernel_overhead_ms": 0.1, "channel_step": 4,
        "bytes_per_s_elementwise": 1e7}}
    profile["peak_macs_per_s"] = {"value": 2.4e8, "source": "test"}
    profile["memory_bandwidth_bytes_per_s"] = {"value": 4e8, "source": "test"}
    return profile


def target(profile: dict):
    return parse_target(profile, "test.json")
