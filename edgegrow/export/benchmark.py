"""Benchmark an exported model in a real runtime, beside the cost model's prediction for a target.

``benchmark(path, runtime)`` measures, in a fresh child Python process that imports the runtime and
numpy but not torch (an app running the model would not have it):

- latency: ``warmup`` untimed runs, then ``runs`` timed runs of one example (batch 1) of random data
  in the model's input dtype and shape (int8 inputs: normal samples quantized with the input's scale),
  each timed around ``Loaded.run`` (copy in, invoke, copy out), in ``rounds`` rounds with a probe
  workload timed before each: the measurement protocol of ``cost_models.runner.measure``, which gives
  the fast-regime figure the latency tables predict (``latency_ms_fast``), the median beside it, the
  noise floor (how far the two halves of the rounds disagree) and a verdict: a figure from a machine
  too noisy to trust says so (``trusted``, and a note). Also reported: p90, p10 and min of all runs.
- memory: the child's peak resident set (``VmHWM`` from ``/proc/self/status``; ``ru_maxrss`` where
  there is no ``/proc``) once the runtime is imported and the input made, with nothing loaded
  (``baseline_rss_bytes``), and again after loading the model and every timed run
  (``peak_rss_bytes``). The model's share is the difference: weights, the runtime's plans and
  buffers for this model, and the file's bytes where the loader reads the whole file (TFLite).
- TFLite Micro: the arena the model needs (``Loaded.arena_bytes``, measured by loading it on this
  64-bit host); the child loads the model in exactly that arena. The interpreter is TFLM's reference
  build (no CMSIS-NN) running on this machine's CPU, so its latency is not a microcontroller's and is
  never compared with a prediction; the arena is compared with the predicted SRAM instead.

The prediction for ``target`` comes from ``model_card.json`` beside the file
(``card["targets"][target]["predicted"]``), else from ``checkpoint.pt`` beside it through
``cost_models.estimate``; with neither, the result says there is no prediction. With ``record``, the
result is appended to ``card["measured"]`` (the card is rewritten atomically).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .runtimes import TensorSpec, open_model, open_tflm

CARD_NAME = "model_card.json"
CHECKPOINT_NAME = "checkpoint.pt"
# a target profile's runtime.name -> the runtime here that runs that kind of file
TARGET_RUNTIMES = {"onnxruntime": "onnxruntime", "tflite": "litert", "litert": "litert", "tflite-micro": "tflm"}
RUNTIME_MODULES = {"onnxruntime": "onnxruntime", "litert": "ai_edge_litert.interpreter",
                   "tflm": "tflite_micro.python.tflite_micro.runtime"}
RUNTIME_DISTRIBUTIONS = {"onnxruntime": "onnxruntime", "litert": "ai-edge-litert", "tflm": "tflite-micro"}
TFLM_NOTE = ("TFLite Micro here is the reference build (no CMSIS-NN) on this machine's CPU: its latency is "
             "not a microcontroller's, so it is not compared with a prediction; compare the arena with the "
             "predicted SRAM (the arena also holds TFLM's own bookkeeping, sized for a 64-bit host)")


@dataclass
class Prediction:
    """The cost model's figures for one target; ``source`` says where they were read or computed."""

    target: str
    latency_ms: float | None
    energy_mj: float | None
    sram_bytes: int | None
    flash_bytes: int | None
    source: str


@dataclass
class BenchResult:
    """One benchmark: latency (ms), memory (bytes), the prediction beside it, and notes on what
    the comparison means. ``latency_ratio`` is measured median / predicted latency (None for TFLite
    Micro, or with no prediction) and ``fast_latency_ratio`` the 10th percentile over it: a measured
    profile's tables keep each kernel's 10th percentile (the uncontended level of a shared machine),
    so that is the statistic its predictions estimate. ``arena_ratio`` is TFLM arena / predicted SRAM."""

    file: str
    runtime: str
    runtime_version: str | None
    threads: int
    input_shape: tuple[int, ...]
    input_dtype: str
    warmup: int
    runs: int
    latency_ms_median: float
    latency_ms_p90: float
    latency_ms_p10: float
    latency_ms_min: float
    peak_rss_bytes: int
    baseline_rss_bytes: int
    arena_bytes: int | None
    target: str | None
    prediction: Prediction | None
    latency_ratio: float | None
    fast_latency_ratio: float | None
    arena_ratio: float | None
    date: str
    machine: str
    notes: list[str] = field(default_factory=list)
    rounds: int = 1
    latency_ms_fast: float | None = None  # the protocol's fast-regime figure (what tables predict)
    noise_split_half: float | None = None  # relative disagreement of the two halves of the rounds
    slow_rounds: int = 0  # rounds run while the probe said the machine was slow
    trusted: bool = True  # False: too noisy to trust (the notes say why)
    # the target profile's reference kernels timed now over their time when it was profiled (median;
    # > 1: this machine runs slower than then; None: the profile has none, or another runtime)
    speed_vs_profile: float | None = None
    # the same for the profile's calibration networks (cost_models.speed_reference.calibration_networks: whole
    # networks, which drift more than single kernels; None: it keeps no times, another runtime or thread count,
    # TFLite Micro, or a litert profile without its cache of them)
    calibration_speed_vs_profile: float | None = None

    @property
    def model_rss_bytes(self) -> int:
        """The model's share of the peak: peak RSS minus the same process before loading it."""
        return self.peak_rss_bytes - self.baseline_rss_bytes

    def to_dict(self) -> dict:
        """A flat JSON-ready record (what ``benchmark`` appends to ``card["measured"]``)."""
        row = asdict(self)
        prediction = row.pop("prediction") or {}
        notes = row.pop("notes")
        row["input_shape"] = list(self.input_shape)
        ordered = {}
        for key, value in row.items():
            ordered[key] = value
            if key == "baseline_rss_bytes":
                ordered["model_rss_bytes"] = self.model_rss_bytes
            if key == "target":
                ordered.update({f"predicted_{name}": prediction.get(name)
                                for name in ("latency_ms", "energy_mj", "sram_bytes", "flash_bytes")})
                ordered["prediction_source"] = prediction.get("source")
        ordered["notes"] = notes
        return ordered

    def table(self) -> str:
        """A few human-readable lines: what ran, latency, memory, the prediction, notes."""
        thread_word = "thread" if self.threads == 1 else "threads"
        calibration = ("" if self.calibration_speed_vs_profile is None else
                       f"; its calibration networks at {self.calibration_speed_vs_profile:.3f}×"
                       if self.speed_vs_profile is not None else
                       f"; the profile's calibration networks ran at {self.calibration_speed_vs_profile:.3f}× their "
                       "profiled time")
        shape = "x".join(str(d) for d in self.input_shape)
        lines = [f"{self.file} on {self.runtime} {self.runtime_version or ''}".rstrip()
                 + f", {self.threads} {thread_word}, {self.runs} runs after {self.warmup} warm-up "
                 f"(one example, random {self.input_dtype} {shape})",
                 f"latency    fast {_ms(self.latency_ms_fast or self.latency_ms_p10)}   median "
                 f"{_ms(self.latency_ms_median)}   p90 {_ms(self.latency_ms_p90)}   p10 {_ms(self.latency_ms_p10)}   "
                 f"min {_ms(self.latency_ms_min)}",
                 f"noise      {self.rounds} rounds, {self.slow_rounds} slow; the halves agree "
                 + ("n/a" if self.noise_split_half is None else f"within {self.noise_split_half:.1%}")
                 + ("" if self.trusted else "  TOO NOISY TO TRUST (see the note)")
                 + ("" if self.speed_vs_profile is None else
                    f"; the profile's reference kernels ran at {self.speed_vs_profile:.3f}× their profiled time")
                 + calibration,
                 f"memory     peak RSS {_mib(self.peak_rss_bytes)}; runtime loaded, no model "
                 f"{_mib(self.baseline_rss_bytes)}; model's share {_mib(self.model_rss_bytes)} "
                 f"({self.model_rss_bytes:,} B)"]
        prediction = self.prediction
        if self.arena_bytes is not None:
            arena = f"arena      {self.arena_bytes:,} B (TFLite Micro, 64-bit host)"
            if prediction is not None and prediction.sram_bytes is not None:
                arena += f"; predicted SRAM on {prediction.target} {prediction.sram_bytes:,} B"
                if self.arena_ratio is not None:
                    arena += f" (arena/predicted {_ratio(self.arena_ratio)})"
            lines.append(arena)
        if prediction is None:
            lines.append("predicted  none" + (f" for {self.target}" if self.target else " (no target)"))
        else:
            parts = []
            if prediction.latency_ms is not None:
                latency = f"latency {_ms(prediction.latency_ms)}"
                if self.latency_ratio is not None:
                    latency += (f" (measured/predicted: fast {_ratio(self.fast_latency_ratio)}, "
                                f"median {_ratio(self.latency_ratio)})")
                elif self.runtime == "tflm":
                    latency += " (not compared)"
                parts.append(latency)
            if prediction.sram_bytes is not None:
                parts.append(f"SRAM {prediction.sram_bytes:,} B")
            if prediction.flash_bytes is not None:
                parts.append(f"flash {prediction.flash_bytes:,} B")
            parts.append("energy n/a" if prediction.energy_mj is None else f"energy {prediction.energy_mj:.4g} mJ")
            lines.append(f"predicted  {prediction.target}: " + ", ".join(parts) + f"  [{prediction.source}]")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def benchmark(path: str | Path, runtime: str, *, threads: int = 1, target: str | None = "host",
              warmup: int = 20, runs: int = 200, rounds: int | None = None, record: bool = True) -> BenchResult:
    """Measure ``path`` in ``runtime`` (one of RUNTIMES) and compare with ``target``'s prediction.

    ``threads`` is the runtime's intra-op thread count (TFLite Micro is single-threaded: it runs
    with 1 and says so). ``target`` None skips the prediction. ``record`` appends the result to the
    ``model_card.json`` beside the file, if there is one. The file is first loaded here, to check it
    and read its input; the measurement then runs in a child process (see the module docstring).

    Raises:
        ValueError: a missing file, a file the runtime does not run, threads < 1, warmup < 0,
            runs < 1, an unknown target, or a model_card.json that is not a JSON object.
    """
    path = Path(path)
    if threads < 1:
        raise ValueError(f"--threads must be 1 or more, not {threads}")
    if warmup < 0 or runs < 1:
        raise ValueError(f"need warmup >= 0 and runs >= 1 (got warmup {warmup}, runs {runs})")
    rounds = min(8, runs) if rounds is None else rounds  # default: 8 rounds, or one per run when fewer
    if rounds < 1 or runs < rounds:
        raise ValueError(f"need 1 <= rounds <= runs (got rounds {rounds}, runs {runs}): each round times "
                         "runs / rounds runs")
    card_path = path.parent / CARD_NAME
    card = _read_card(card_path) if path.is_file() else None
    check_against_card(path, card)
    loaded = open_model(path, runtime, threads)  # checks the runtime, the file and its suffix, and loads it
    spec, arena_bytes = loaded.input, loaded.arena_bytes
    del loaded
    notes = []
    if runtime == "tflm":
        if threads != 1:
            notes.append(f"TFLite Micro is single-threaded; ran with 1 thread, not {threads}")
            threads = 1
        notes.append(TFLM_NOTE)
    profile = None
    if target is not None:
        from cost_models import load_target  # imports torch: only when a prediction is wanted

        profile = load_target(target)

    from cost_models.runner import noise_verdict  # here, not at the top: the measuring child imports this file

    references = _reference_kernels(profile, runtime, threads)
    calibration = _calibration_networks(profile, runtime, threads, notes)
    child = _measure_in_child_process(path, runtime, threads, spec, arena_bytes, warmup, runs, rounds,
                                      [model for model, _ in references], [model for model, _ in calibration])
    times_ms = np.asarray(child["times_ms"], dtype=np.float64)
    protocol = child["protocol"]
    timing = protocol["models"][0]
    untrusted = noise_verdict(protocol, timing) if runtime != "tflm" else None
    if untrusted:
        notes.append(f"too noisy to trust: {untrusted}; close other programs and run again, or give more --rounds")
    if child["imported_torch"]:
        notes.append("torch was imported in the measuring process, so both RSS figures include it")

    prediction = None
    if profile is not None:
        prediction, reason = _predict(path, card, profile)
        if prediction is None:
            notes.append(reason)
        else:
            notes += _comparison_notes(runtime, spec, profile)
    median = float(np.median(times_ms))
    fast = float(timing["fast_ms"])
    latency_ratio = fast_latency_ratio = None
    if runtime != "tflm" and prediction is not None and prediction.latency_ms:
        latency_ratio = median / prediction.latency_ms
        fast_latency_ratio = fast / prediction.latency_ms
    arena_ratio = None
    if arena_bytes is not None and prediction is not None and prediction.sram_bytes:
        arena_ratio = arena_bytes / prediction.sram_bytes
    speed = _speed_now(profile, references, child["reference_ms"], "reference kernels", notes)
    calibration_speed = _speed_now(profile, calibration, child["calibration_ms"],
                                   f"{len(calibration)} calibration networks", notes)

    result = BenchResult(
        file=path.name, runtime=runtime, runtime_version=_runtime_version(runtime), threads=threads,
        input_shape=tuple(int(d) for d in child["input_shape"]), input_dtype=str(spec.dtype),
        warmup=warmup, runs=len(times_ms), latency_ms_median=median,
        latency_ms_p90=float(np.percentile(times_ms, 90)), latency_ms_p10=float(np.percentile(times_ms, 10)),
        latency_ms_min=float(times_ms.min()),
        peak_rss_bytes=int(child["peak_rss_bytes"]), baseline_rss_bytes=int(child["baseline_rss_bytes"]),
        arena_bytes=arena_bytes, target=target, prediction=prediction, latency_ratio=latency_ratio,
        fast_latency_ratio=fast_latency_ratio,
        arena_ratio=arena_ratio, date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine=machine_description(), notes=notes, rounds=rounds, latency_ms_fast=fast,
        noise_split_half=timing["split_half"], slow_rounds=protocol["slow_rounds"], trusted=not untrusted,
        speed_vs_profile=speed, calibration_speed_vs_profile=calibration_speed)
    if record and card is not None:
        _append_measurement(card_path, result.to_dict())
    return result


def machine_description() -> str:
    """This machine in a few words: CPU model (or architecture) and logical CPU count."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} ({platform.machine()}), {os.cpu_count()} CPUs"


# --- the measuring child process ------------------------------------------------------------------
# The child runs this file's ``_measure_in_child`` without executing edgegrow/__init__.py (which imports
# torch): empty package modules stand in for edgegrow and edgegrow.export, so only runtimes.py, this
# file, numpy and the runtime are imported, and the baseline is what an app with the runtime has.
_CHILD_PROGRAM = """
import sys, types
for name, folder in (("edgegrow", sys.argv[2]), ("edgegrow.export", sys.argv[3]), ("cost_models", sys.argv[4])):
    package = types.ModuleType(name)
    package.__path__ = [folder]
    sys.modules[name] = package
from edgegrow.export.benchmark import _measure_in_child
_measure_in_child(sys.argv[1])
"""


def _runner_folder() -> str:
    """Where cost_models is, found without importing it (its __init__ imports torch)."""
    import importlib.util

    return importlib.util.find_spec("cost_models").submodule_search_locations[0]


def _reference_kernels(profile, runtime: str, threads: int) -> list[tuple[bytes, float]]:
    """The target profile's reference kernels as ONNX models with their profiled times (ms), when this
    measurement can time them as the profile did: onnxruntime, the profile's own runtime and threads."""
    if (profile is None or not profile.speed_reference or runtime != "onnxruntime"
            or TARGET_RUNTIMES.get(profile.runtime) != "onnxruntime" or profile.threads != threads):
        return []
    from cost_models.speed_reference import reference_models

    shapes = [shape for shape, _ in profile.speed_reference]
    return list(zip(reference_models(shapes), [ms for _, ms in profile.speed_reference]))


def _speed_now(profile, timed: list[tuple[bytes, float]], now_ms: list[float], what: str,
               notes: list[str]) -> float | None:
    """The median of now over then of ``timed`` ((model, profiled ms) pairs, timed again: ``now_ms``), with a note
    added to ``notes`` beyond the drift tolerance; None when nothing was timed."""
    if not timed:
        return None
    from cost_models.speed_reference import drift_note, speed_ratio

    ratio = speed_ratio([ms for _, ms in timed], now_ms)
    note = drift_note(ratio, profile.name, what=what, runtime=TARGET_RUNTIMES.get(profile.runtime, profile.runtime),
                      threads=profile.threads)
    if note is not None:
        notes.append(note)
    return ratio


def _calibration_networks(profile, runtime: str, threads: int, notes: list[str]) -> list[tuple[bytes, float]]:
    """The target profile's calibration networks as models ``runtime`` runs, with their profiled times (ms),
    when this measurement can time them as the profiler did: the profile's own runtime and threads, and for
    litert the profile's cache of every one of them beside it (converting 40 networks would take over a minute).
    onnxruntime's are built here: with 60 of them, about 4 s more for the whole ``benchmark``. No networks, with a note
    in ``notes`` saying why, where the profile's networks are not the ones this edgegrow builds
    (``speed_reference.CalibrationNetworksChanged``)."""
    if (profile is None or TARGET_RUNTIMES.get(profile.runtime) != runtime or runtime == "tflm"
            or profile.threads != threads):
        return []
    from cost_models.speed_reference import CalibrationNetworksChanged, calibration_networks

    try:
        _, profiled_ms, models = calibration_networks(profile, runtime, convert=False)
    except CalibrationNetworksChanged as error:  # timed against other networks' times, the ratio would mean nothing
        notes.append(str(error))
        return []
    return list(zip(models, profiled_ms))


def _measure_in_child_process(path: Path, runtime: str, threads: int, spec: TensorSpec,
                              arena_bytes: int | None, warmup: int, runs: int, rounds: int,
                              references: list[bytes] = (), calibration: list[bytes] = ()) -> dict:
    export_folder = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="edgegrow-bench-") as folder:
        request = Path(folder) / "request.json"
        reference_timing = {}
        if references or calibration:
            from cost_models.speed_reference import TIMING as reference_timing

        def written(models: list[bytes], name: str, suffix: str) -> list[str]:
            paths = [str(Path(folder) / f"{name}-{index}{suffix}") for index in range(len(models))]
            for model, model_path in zip(models, paths):
                Path(model_path).write_bytes(model)
            return paths

        reference_paths = written(references, "reference", ".onnx")
        calibration_paths = written(calibration, "calibration", ".onnx" if runtime == "onnxruntime" else ".tflite")
        request.write_text(json.dumps({
            "path": str(path.resolve()), "runtime": runtime, "threads": threads, "arena_bytes": arena_bytes,
            "warmup": warmup, "runs": runs, "rounds": rounds, "result": str(Path(folder) / "result.json"),
            "references": reference_paths, "calibration": calibration_paths, "reference_timing": reference_timing,
            "input": {"name": spec.name, "shape": list(spec.shape), "dtype": str(spec.dtype),
                      "scale": spec.scale, "zero_point": spec.zero_point}}))
        done = subprocess.run([sys.executable, "-c", _CHILD_PROGRAM, str(request), str(export_folder.parent),
                               str(export_folder), _runner_folder()], capture_output=True, text=True)
        result = Path(folder) / "result.json"
        if done.returncode != 0 or not result.is_file():
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"the benchmark process failed (exit code {done.returncode}): {tail}")
        return json.loads(result.read_text())


def _measure_in_child(request_path: str) -> None:
    """The child's work: import the runtime, make the input, read the baseline peak RSS, load the
    model, warm up, time, read the peak RSS again; write the figures as JSON."""
    import importlib

    request = json.loads(Path(request_path).read_text())
    runtime = request["runtime"]
    importlib.import_module(RUNTIME_MODULES[runtime])
    described = request["input"]
    spec = TensorSpec(described["name"], tuple(described["shape"]), np.dtype(described["dtype"]),
                      described["scale"], described["zero_point"])
    shape = (1,) + tuple(d if d > 0 else 1 for d in spec.shape[1:])  # one example; dynamic sizes -> 1
    batch = spec.quantize(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    baseline = _peak_rss_bytes()

    if runtime == "tflm":
        loaded = open_tflm(request["path"], arena_bytes=request["arena_bytes"])
    else:
        loaded = open_model(request["path"], runtime, request["threads"])
    for _ in range(request["warmup"]):
        loaded.run(batch)
    from cost_models.runner import measure  # the protocol (numpy only; cost_models' __init__ is not run)

    runs, rounds = request["runs"], request["rounds"]
    protocol = measure([lambda: loaded.run(batch)], rounds=rounds,  # the runs spread evenly over the rounds
                       repeats=[runs // rounds + (r < runs % rounds) for r in range(rounds)], sample_ms=0, warmup_ms=0)
    peak = _peak_rss_bytes()
    times_ms = [value for taken in protocol["models"][0].pop("samples_ms") for value in taken]
    # the profile's reference kernels (ONNX) and calibration networks, timed as the profiler timed them
    # (speed_reference.TIMING)
    reference_ms = _fast_ms(request["references"], "onnxruntime", request)
    calibration_ms = _fast_ms(request["calibration"], runtime, request)
    Path(request["result"]).write_text(json.dumps({
        "times_ms": times_ms, "protocol": protocol, "baseline_rss_bytes": baseline, "peak_rss_bytes": peak,
        "input_shape": list(shape), "imported_torch": "torch" in sys.modules, "reference_ms": reference_ms,
        "calibration_ms": calibration_ms}))


def _fast_ms(paths: list[str], runtime: str, request: dict) -> list[float]:
    """The fast-regime times (ms) of the model files ``paths`` in ``runtime``, 4 rounds of the protocol with
    ``request``'s timing and threads (in the measuring child)."""
    if not paths:
        return []
    from cost_models.runner import Session, measure

    sessions = [Session(path, runtime, request["threads"], xnnpack=True) for path in paths]
    timed = measure([session.run for session in sessions], rounds=4, **request["reference_timing"])
    return [model["fast_ms"] for model in timed["models"]]


def _peak_rss_bytes() -> int:
    """This process's peak resident set size (bytes) so far."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


# --- the prediction and the card ------------------------------------------------------------------
def _predict(path: Path, card: dict | None, profile) -> tuple[Prediction | None, str]:
    """The prediction for ``profile`` from the card, else from checkpoint.pt; or None and why."""
    entry = ((card or {}).get("targets") or {}).get(profile.name) or {}
    predicted = entry.get("predicted")
    if isinstance(predicted, dict):
        def kib_to_bytes(value):
            return None if value is None else int(round(float(value) * 1024))

        latency, energy = predicted.get("latency_ms"), predicted.get("energy_mj")
        return Prediction(profile.name, None if latency is None else float(latency),
                          None if energy is None else float(energy), kib_to_bytes(predicted.get("sram_kb")),
                          kib_to_bytes(predicted.get("flash_kb")), CARD_NAME), ""
    checkpoint_path = path.parent / CHECKPOINT_NAME
    if not checkpoint_path.is_file():
        where = f"{CARD_NAME} has no {profile.name!r} target" if card is not None else f"no {CARD_NAME}"
        return None, f"no prediction for {profile.name}: {where} and no {CHECKPOINT_NAME} beside {path.name}"
    import torch

    from cost_models import estimate

    from ..checkpoint import load_checkpoint

    try:
        model, checkpoint = load_checkpoint(checkpoint_path)
    except ValueError as error:
        return None, f"no prediction for {profile.name}: {error}"
    shape = checkpoint.meta.get("input_shape") or getattr(model, "input_shape", None)
    if shape is None:
        return None, f"no prediction for {profile.name}: {CHECKPOINT_NAME} records no input shape"
    report = estimate(model, torch.zeros(1, *shape), profile)
    return Prediction(profile.name, report.latency_ms, report.energy_mj, report.sram_bytes, report.flash_bytes,
                      f"{CHECKPOINT_NAME} through the cost model"), ""


def _profiled_here(profile) -> bool:
    """Whether ``profile`` describes this machine: the host profile, or one 'edgegrow profile' measured on a
    machine of this processor and network name (its latency source names both, e.g. host-litert)."""
    from cost_models.runner import machine_tag

    return profile.name == "host" or (profile.latency_source.startswith("measured here by 'edgegrow profile")
                                      and machine_tag() in profile.latency_source)


def _comparison_notes(runtime: str, spec: TensorSpec, profile) -> list[str]:
    """What the prediction is for, where it differs from what was measured."""
    notes = []
    if TARGET_RUNTIMES.get(profile.runtime) != runtime:
        notes.append(f"the prediction is for another runtime: {profile.name} runs {profile.runtime} "
                     f"{profile.runtime_version}, this measurement is {runtime}")
    if not _profiled_here(profile):
        device = profile.description.split(". ")[0].rstrip(".")
        notes.append(f"{profile.name} is another device ({device}); this measurement is on this machine")
    file_dtype = "int8" if np.issubdtype(spec.dtype, np.integer) else "float32"
    if profile.dtype != file_dtype:
        notes.append(f"{profile.name} is predicted for {profile.dtype} tensors; this file takes {file_dtype}")
    return notes


def check_against_card(path: Path, card: dict | None) -> None:
    """ValueError if ``card`` (the ``model_card.json`` beside ``path``) lists it with another
    SHA-256: the file changed or was damaged after the export verified it."""
    files = card.get("files") if isinstance(card, dict) else None
    entries = [entry for entry in (files or {}).values() if isinstance(entry, dict) and entry.get("path") == path.name]
    expected = entries[0].get("sha256") if entries else None
    if expected and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise ValueError(f"{path} does not match the SHA-256 its model_card.json recorded at export (damaged, cut "
                         "short or replaced since): export it again, or move it away from the card to time it as it is")


def _read_card(card_path: Path) -> dict | None:
    from .model_card import read_card

    return read_card(card_path) if card_path.is_file() else None


def _append_measurement(card_path: Path, row: dict) -> None:
    """Append ``row`` to ``card["measured"]``, re-reading the card just before writing it (and its
    Markdown rendering) atomically."""
    from .model_card import write_card

    card = _read_card(card_path) or {}
    card["measured"] = card.get("measured", []) + [row]
    write_card(card_path.parent, card)


def _runtime_version(runtime: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(RUNTIME_DISTRIBUTIONS[runtime])
    except metadata.PackageNotFoundError:
        return None


def _ratio(ratio: float) -> str:
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"


def _ms(milliseconds: float) -> str:
    return f"{milliseconds:.4g} ms"


def _mib(size_bytes: int) -> str:
    return f"{size_bytes / 2**20:.1f} MiB"
