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

The reference kernels fit in a core's level-2 cache and run for well under a millisecond; whole
networks do neither. On 2026-12-07 the onnxruntime profile's 60 calibration networks, timed again
2.5-3 hours after it, ran 0.6-2.0 % faster at the median (eight timings) and up to 12 % faster for the largest
ones (1–7 ms), while its reference kernels ran within 0.7 % of their profiled times. So a profile's calibration
networks (``calibration_networks``: rebuilt from their seed, their profiled times are in the profile)
are timed again too: their speed now against the profile's, and the calibration scale they would give
now (``calibration.scale_now``), say how much of a comparison is the calibration's moment.
"""
from __future__ import annotations

import statistics
from pathlib import Path

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


def drift_note(ratio: float, target: str, tolerance: float = DRIFT_TOLERANCE,
               what: str = "reference kernels", runtime: str = "onnxruntime", threads: int = 1) -> str | None:
    """What to tell a user when the machine runs ``what`` (the reference kernels, or the calibration
    networks) more than ``tolerance`` slower or faster than when ``target`` was profiled (None within it),
    with the command that profiles it again as it was made (``runtime``, ``threads``)."""
    if abs(ratio - 1) <= tolerance:
        return None
    direction = "slower" if ratio > 1 else "faster"
    command = (f"edgegrow profile --target {target}" + ("" if runtime == "onnxruntime" else f" --runtime {runtime}")
               + ("" if threads == 1 else f" --threads {threads}"))
    return (f"this machine ran {target}'s {what} {abs(ratio - 1):.1%} {direction} "
            f"than when {target} was profiled: the prediction is for the machine as it was then "
            f"({command} measures it again)")


class CalibrationNetworksChanged(ValueError):
    """A profile's calibration networks are not the ones this edgegrow rebuilds from their seed (their digest,
    ``calibration.chains_digest``, differs from the one the profile keeps)."""


def calibration_networks(target, runtime: str, convert: bool = True) -> tuple[list, list[float], list[bytes]]:
    """A profile's (``target``'s) calibration networks: (``calibration.random_chains`` as many as it timed,
    their times there (ms, ``Target.calibration_measured_ms``), each as a model ``runtime`` runs); three
    empty lists for a profile that keeps no times. litert's come from the profile's cache of .tflite files
    (``<profile>.tflite`` beside its file, the profiler's) where there is one, and are converted (about 2 s
    each, with litert-torch) where not; ``convert`` False: three empty lists unless the cache holds every one.
    ``CalibrationNetworksChanged`` where the profile keeps a digest of its networks and the ones rebuilt here differ
    (profiles from before 2026-12-07 night keep none, and are not checked)."""
    from .calibration import chains_digest, random_chains

    profiled_ms = list(target.calibration_measured_ms)
    if not profiled_ms:
        return [], [], []
    chains = random_chains(len(profiled_ms))
    digest = chains_digest(chains)
    if target.calibration_networks_sha256 not in (None, digest):
        raise CalibrationNetworksChanged(
            f"target {target.name!r}: its calibration networks are not the ones this edgegrow builds from their seed "
            f"(latency.calibration.networks_sha256 {target.calibration_networks_sha256}, built here {digest}), so "
            "they were not timed again; profile the target again with this edgegrow to time them")
    if runtime == "onnxruntime":
        from .kernel_onnx import chain_model

        return chains, profiled_ms, [chain_model(shapes, inputs).SerializeToString() for shapes, inputs in chains]
    from .kernel_tflite import chain_tflite
    from .profiler_litert import cached_model, chain_key

    folder = Path(target.path + ".tflite") if target.path else None
    cached = folder is not None and folder.is_dir()
    if not convert and not (cached and all((folder / f"{chain_key(index)}.tflite").is_file()
                                           for index in range(len(chains)))):
        return [], [], []
    models = [cached_model(folder, chain_key(index), lambda chain=chain: chain_tflite(*chain)) if cached
              else chain_tflite(*chain) for index, chain in enumerate(chains)]
    return chains, profiled_ms, models
