"""Cost estimation for edgegrow, importable on its own (needs only torch).

Today: analytic MAC and parameter counts (``count_macs``). Latency, energy and memory from
device profiling tables come with the target profiles in ``targets/``.
"""
from .macs import MacReport, conv2d_macs, count_macs, linear_macs

__all__ = ["MacReport", "conv2d_macs", "count_macs", "linear_macs"]
