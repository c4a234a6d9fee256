"""How fast this machine runs now, against when its profile was measured.

A shared machine drifts: on 2026-12-05 the same table kernels timed 20 minutes after ``edgegrow
profile`` ran 4–6 % slower, whole networks 3 % slower, while the measurement protocol's probe (a
sort, ``runner.probe_workload``) did not move, so the protocol's slow-round test could not see it.
A prediction is for the machine as it was profiled; a measurement is of the machine as it is.

So a profile made here also times a few fixed single-kernel models (``REFERENCE_KERNELS``: convs,
depthwise and pointwise layers in onnxruntime's blocked and plain layouts, an add) in the same rounds
as its calibration networks, and keeps their times (``speed_reference`` in the profile). Whoever
measures a model against that profile later (``edgegrow bench``, ``bench/cost_model_accuracy.py``)
times the same kernels the same way and reports the median of now / then (``speed_ratio``): 1.05
means the machine runs them 5 % slower than when it was profiled. The figure is reported beside the
comparison, never folded into it.
"""
from __future__ import annotations

import statistics

from .kernel_shape import KernelShape

REFERENCE_KERNELS = (
    KernelShape.same("conv", 32, 32, (16, 16), 3, 1, "relu"),  # blocked
    KernelShape.same("conv", 21, 21, (24, 24), 3, 1, "relu"),  # plain
    KernelShape.same("depthwise", 64, 64, (28, 28), 3, 1, "relu"),  # blocked
    KernelShape.same("depthwise", 33, 33, (32, 32), 3, 1, "relu"),  # plain
    KernelShape.same("pointwise", 96, 24, (28, 28), 1, 1, "relu"),  # blocked
    KernelShape("add", (64, 28, 28), (64, 28, 28), activation="relu"),
)
DRIFT_TOLERANCE = 0.03  # beyond ±3 % the report says the machine is not running as it was profiled
# how the kernels are timed, then and now: runner.measure's protocol with these settings
TIMING = {"repeats": 10, "sample_ms": 1.0, "warmup_ms": 5.0}


def reference_models(shapes=REFERENCE_KERNELS) -> list[bytes]:
    """Reference kernels (default: today's; a profile's own: ``Target.speed_reference``) as serialized
    single-kernel ONNX models (``kernel_onnx.kernel_model``)."""
    from .kernel_onnx import kernel_model

    return [kernel_model(shape).SerializeToString() for shape in shapes]


def reference_block(fast_ms: list[float], rounds: int, where: str) -> dict:
    """A profile's ``speed_reference``: each reference kernel's model with its fast-regime time (ms,
    runner.measure over ``rounds`` rounds), as timed while the profile was made."""
    if len(fast_ms) != len(REFERENCE_KERNELS):
        raise ValueError(f"{len(REFERENCE_KERNELS)} reference times expected, got {len(fast_ms)}")
    return {"kernels": [shape.to_dict() for shape in REFERENCE_KERNELS], "ms": [float(ms) for ms in fast_ms],
            "source": f"{where}: {len(fast_ms)} single-kernel models (cost_models.speed_reference) timed in the "
                      f"calibration's {rounds} rounds, each its fast-regime time"}


def speed_ratio(profiled_ms: list[float], now_ms: list[float]) -> float:
    """Median over the reference kernels of now / when profiled (> 1: the machine runs slower now)."""
    if not profiled_ms or len(profiled_ms) != len(now_ms):
        raise ValueError("speed_ratio needs as many times now as when profiled, and at least one")
    return statistics.median(now / then for now, then in zip(now_ms, profiled_ms))


def drift_note(ratio: float, target: str, tolerance: float = DRIFT_TOLERANCE) -> str | None:
    """What to tell a user when the machine runs the reference kernels more than ``tolerance`` slower or
    faster than when ``target`` was profiled (None within it)."""
    if abs(ratio - 1) <= tolerance:
        return None
    direction = "slower" if ratio > 1 else "faster"
    return (f"this machine ran {target}'s reference kernels {abs(ratio - 1):.1%} {direction} "
            f"than when {target} was profiled: the prediction is for the machine as it was then "
            f"(edgegrow profile --target {target} measures it again)")
