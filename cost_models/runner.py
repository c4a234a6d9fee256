"""Time a suite of single-kernel models on the device this runs on. Needs only numpy plus
onnxruntime (for .onnx) or ai-edge-litert (for .tflite): copy this one file and a suite folder
written by ``edgegrow profile --write-suite DIR`` to a phone or a Raspberry Pi and run

    python runner.py SUITE_DIR --out measurements.jsonl [--threads 1] [--quick]

then bring the .jsonl back and turn it into a target profile with
``edgegrow profile --target NAME --from-measurements measurements.jsonl``.

Every result is appended (and flushed) as one JSON line as soon as it is measured; running the same
command again after an interruption skips what is already there.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SUITE_FILE = "suite.json"
OVERHEAD_ID = "overhead"  # the Identity model: per-model overhead outside any kernel
RUNTIMES = ("onnxruntime", "litert")
# a node a single-kernel model adds that is not the kernel (kernel_onnx.kernel_model): its time is left out
HELPER_NODE = "edgegrow_reader"


class Session:
    """One model loaded in a runtime with fixed threads; ``run()`` executes it once on fixed inputs.

    ``xnnpack``: with ai-edge-litert, apply TFLite's default delegate (XNNPACK), as an app gets by
    default and as a phone's TFLite runs float models; otherwise its builtin kernels alone."""

    def __init__(self, model: bytes | str | Path, runtime: str = "onnxruntime", threads: int = 1,
                 xnnpack: bool = False):
        if runtime == "onnxruntime":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            source = model if isinstance(model, bytes) else str(model)
            self._session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
            rng = np.random.default_rng(0)
            self._feeds = {item.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in item.shape])
                           .astype(np.float32) for item in self._session.get_inputs()}
            self.run = lambda: self._session.run(None, self._feeds)
            self.version = onnxruntime.__version__
        elif runtime == "litert":
            from ai_edge_litert import interpreter as litert

            kwargs = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
            resolvers = litert.OpResolverType
            resolver = resolvers.AUTO if xnnpack else resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            self._interpreter = litert.Interpreter(num_threads=threads, experimental_op_resolver_type=resolver,
                                                   **kwargs)
            self._interpreter.allocate_tensors()
            rng = np.random.default_rng(0)
            for detail in self._interpreter.get_input_details():
                data = rng.standard_normal(detail["shape"]) * 10
                self._interpreter.set_tensor(detail["index"], data.astype(detail["dtype"]))
            self.run = self._interpreter.invoke
            import ai_edge_litert

            self.version = getattr(ai_edge_litert, "__version__", "unknown")
        else:
            raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")


def time_session(session: Session, warmup_ms: float = 20.0, repeats: int = 30, sample_ms: float = 1.0) -> dict:
    """Latency of one run in ms over ``repeats`` samples, each the mean of as many back-to-back runs
    as fill ``sample_ms`` (at least one), after ``warmup_ms`` of warm-up runs.

    Returns {"latency_ms": median, "fast_ms": 10th percentile, "p10_ms", "p90_ms", "runs_per_sample",
    "samples"}. ``fast_ms`` is the statistic tables use: on a shared machine latency jumps between
    an uncontended and a contended level for seconds at a time, and the low percentile measured in
    several rounds spread over minutes is the level that repeats. It is one round of ``measure``
    without the probe (a kernel of the profiler's grid is timed in one block).
    """
    (timing,) = measure([session.run], rounds=1, repeats=repeats, sample_ms=sample_ms, warmup_ms=warmup_ms,
                        probe=lambda: None, thread_per_round=False)["models"]
    (samples,) = timing["samples_ms"]
    deciles = statistics.quantiles(samples, n=10) if len(samples) >= 2 else samples * 9
    return {"latency_ms": timing["latency_ms"], "fast_ms": timing["fast_ms"], "p10_ms": timing["fast_ms"],
            "p90_ms": deciles[-1], "runs_per_sample": timing["runs_per_sample"], "samples": timing["samples"]}


PROBE_ELEMENTS = 8_192
SLOW_MARGIN = 0.10  # a round whose probe ran more than 10 % slower than the run's fastest probe is slow
NOISE_TOLERANCE = 0.05  # split halves further apart than 5 %: the figure is not to be trusted


def probe_workload() -> Callable[[], object]:
    """A fixed single-threaded CPU workload of about 0.1–0.3 ms that depends on no model or runtime (a
    float32 sort): timed before every round, it tells which rounds ran while the machine was slow."""
    values = np.random.default_rng(0).standard_normal(PROBE_ELEMENTS).astype(np.float32)
    return lambda: np.sort(values)


def _on_new_thread(work: Callable[[threading.Event], None]) -> None:
    """Run ``work(stop)`` on a thread started for it and wait for it; what it raises is raised here. An
    interrupted wait (Ctrl-C) sets ``stop``, which ``work`` checks between samples, waits for ``work`` to
    return and raises again, so no round goes on running beside the caller. The waits are short ones on an
    event the thread sets as it ends, not joins: an interrupt breaks them on every platform, and a join
    that an interrupt broke takes the thread for ended (Python 3.11, bpo-45274)."""
    failure: list[BaseException] = []
    stop, done = threading.Event(), threading.Event()

    def target() -> None:
        try:
            work(stop)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread as it is
            failure.append(error)
        finally:
            done.set()

    threading.Thread(target=target, name="edgegrow-measure-round", daemon=True).start()
    try:
        while not done.wait(0.1):
            pass
    except BaseException:
        stop.set()
        while not done.wait(0.1):
            pass
        raise
    if failure:
        raise failure[0]


def _probe_ms(probe: Callable[[], object], clock: Callable[[], float] = time.perf_counter, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        begin = clock()
        probe()
        times.append((clock() - begin) * 1e3)
    return statistics.median(times)


def _p10(values: list[float]) -> float:
    """The 10th percentile of a round's samples, statistics.quantiles' (exclusive) one, which from 9 samples
    on lies among them; below 9 it extrapolates under the fastest sample (of two, 1 and 3 ms: -0.4 ms),
    so it is held to the fastest there."""
    return max(statistics.quantiles(values, n=10)[0], min(values)) if len(values) >= 2 else values[0]


def measure(sessions: list[Callable[[], object]], rounds: int = 8, repeats: int | list[int] = 10,
            sample_ms: float = 1.0, warmup_ms: float = 20.0, probe: Callable[[], object] | None = None, seed: int = 0,
            slow_margin: float = SLOW_MARGIN, progress: Callable[[int, int], None] | None = None,
            clock: Callable[[], float] = time.perf_counter, thread_per_round: bool = False) -> dict:
    """The measurement protocol every latency figure of edgegrow comes from (the profiler's calibration,
    ``edgegrow bench``, the cost-model benchmarks).

    1. warm-up: each callable runs for ``warmup_ms`` (and at least 3 times);
    2. ``rounds`` rounds; in each, the ``probe`` (default ``probe_workload``) is timed first, then every
       callable in a random order (seeded by ``seed``) for ``repeats`` samples (or ``repeats[round]``),
       each the mean of as many
       back-to-back runs as fill ``sample_ms`` (0: one run per sample);
    3. the slow regime: a shared machine flips between an uncontended and a contended speed for
       seconds at a time; a round whose probe took more than ``1 + slow_margin`` times the fastest
       probe of the run was slow, and the fast-regime statistic leaves it out;
    4. per callable: ``fast_ms``, the median over the fast rounds of each round's 10th percentile (what
       the latency tables hold and predict), ``latency_ms``, the median of every sample (beside it),
       and ``split_half``, the noise floor: the relative difference between ``fast_ms`` computed on the
       even and on the odd fast rounds (None with fewer than two fast rounds).
    5. ``thread_per_round`` (off by default): each round runs on a thread started for that round: two
       untimed runs of the probe and one of each callable, then the probe, then the samples. Through
       onnxruntime a model's speed depends on the thread that runs it, and stays so while that thread
       lives. On an x86 host (2026-12-08), 8 MobileNetV1s at random widths timed on the main thread of
       five processes in turn were 1.3-6.1 % under their prices at the median (one network 12 % apart
       from one process to the next), and on four fresh threads of one process 1.6-3.1 %; with each of 8
       rounds on a thread of its own, the five processes gave 2.2-3.3 %: the median over rounds is then
       the median over threads. Why the thread matters was not found. It is off because the probe does
       not work on fresh threads: at 04:34 the same day it called 11-14 of 15 rounds slow on them against
       3-7 on the main thread, while the models ran more than 10 % slow in 0-2 rounds either way, and with
       more than half the rounds slow every figure is called too noisy. Off: every round on the calling
       thread (and ``time_session``: one block, as the profiler's grid has always been timed).

    ``clock`` (seconds) is ``time.perf_counter``; the tests give a simulated one.

    Returns {"models": [per callable {"fast_ms", "latency_ms", "split_half", "rounds_fast_ms",
    "runs_per_sample", "samples", "samples_ms": every sample, per round}], "rounds", "probe_ms": per
    round, "fast_rounds": their indices, "slow_rounds": how many}.
    """
    probe = probe or probe_workload()
    per_sample = []
    for run in sessions:
        start, runs = clock(), 0
        while runs < 3 or (clock() - start) * 1e3 < warmup_ms:
            run()
            runs += 1
        one_run_ms = (clock() - start) * 1e3 / runs
        per_sample.append(1 if sample_ms <= 0 else max(1, int(sample_ms / max(one_run_ms, 1e-6))))
    _probe_ms(probe, clock)  # its own warm-up
    order_generator = np.random.default_rng(seed)
    samples: list[list[list[float]]] = [[] for _ in sessions]
    probe_times = []
    for round_index in range(rounds):
        order = order_generator.permutation(len(sessions))
        count_of_samples = repeats if isinstance(repeats, int) else repeats[round_index]

        def one_round(stop: threading.Event, order=order, count_of_samples=count_of_samples) -> None:
            if thread_per_round:  # the round's thread: its first runs of anything are not timed
                _probe_ms(probe, clock, runs=2)
            probe_times.append(_probe_ms(probe, clock))  # what the machine gives the thread that runs the round
            for index in order:
                run, count, taken = sessions[index], per_sample[index], []
                if thread_per_round:
                    run()
                for _ in range(count_of_samples):
                    if stop.is_set():
                        return
                    begin = clock()
                    for _ in range(count):
                        run()
                    taken.append((clock() - begin) * 1e3 / count)
                samples[index].append(taken)

        if thread_per_round:
            _on_new_thread(one_round)
        else:
            one_round(threading.Event())
        if progress is not None:
            progress(round_index + 1, rounds)
    fastest_probe = min(probe_times)
    fast_rounds = [r for r, ms in enumerate(probe_times) if ms <= fastest_probe * (1 + slow_margin)]
    models = []
    for index, rounds_of_one in enumerate(samples):
        round_fast = [_p10(taken) for taken in rounds_of_one]
        fast = [round_fast[r] for r in fast_rounds]
        even, odd = fast[0::2], fast[1::2]
        split_half = None
        if even and odd:
            a, b = statistics.median(even), statistics.median(odd)
            split_half = abs(a - b) / ((a + b) / 2) if a + b > 0 else 0.0
        models.append({"fast_ms": statistics.median(fast), "latency_ms": statistics.median(
            [value for taken in rounds_of_one for value in taken]), "split_half": split_half,
            "rounds_fast_ms": round_fast, "runs_per_sample": per_sample[index],
            "samples": sum(len(taken) for taken in rounds_of_one), "samples_ms": rounds_of_one})
    return {"models": models, "rounds": rounds, "probe_ms": probe_times, "fast_rounds": fast_rounds,
            "slow_rounds": rounds - len(fast_rounds)}


def noise_verdict(measured: dict, model: dict, tolerance: float = NOISE_TOLERANCE) -> str | None:
    """Why ``model``'s figure from ``measured`` (``measure``'s result) is not to be trusted, or None."""
    reasons = []
    if len(measured["fast_rounds"]) * 2 < measured["rounds"]:
        reasons.append(f"{measured['slow_rounds']} of {measured['rounds']} rounds ran while the machine was slow "
                       f"(probe up to {max(measured['probe_ms']) / min(measured['probe_ms']):.2f}× its fastest)")
    if model["split_half"] is None:
        reasons.append("fewer than two rounds in the fast regime, so no noise floor")
    elif model["split_half"] > tolerance:
        reasons.append(f"the two halves of the rounds disagree by {model['split_half']:.1%} (over {tolerance:.0%})")
    return "; ".join(reasons) or None


def time_interleaved(sessions: list[Session], rounds: int, repeats: int = 10,
                     progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Several models timed with the protocol (``measure``), ``rounds`` rounds spread over the whole run.

    Returns per model {"fast_ms", "latency_ms", "split_half", "rounds_fast_ms", ...} (see ``measure``).
    """
    models = measure([session.run for session in sessions], rounds, repeats, sample_ms=1.0, warmup_ms=5,
                     progress=progress)["models"]
    return [{key: value for key, value in model.items() if key != "samples_ms"} for model in models]


def _fast_mean(values: list[float]) -> float:
    """Mean of the fastest quarter: a low percentile with sub-microsecond resolution from µs-rounded
    profiler times."""
    ordered = sorted(values)
    return float(np.mean(ordered[: max(1, len(ordered) // 4)]))


def onnxruntime_node_times(model: bytes | str | Path, threads: int = 1, budget_ms: float = 150.0,
                           min_runs: int = 20, max_runs: int = 300) -> dict:
    """Per-node times of a model in onnxruntime's own profiler (µs resolution) over as many runs as fit
    in ``budget_ms``, within [min_runs, max_runs].

    Returns {"kernel_ms": time of every node but layout reorders and helper nodes (``HELPER_NODE``: mean
    of the fastest quarter of the runs after the first tenth), "reorders":
    [[elements, ms], ...], "layout": "blocked" when onnxruntime ran the kernel in its NCHWc layout, else
    "plain", "nodes": nodes per run, "helper_nodes": of them, helper nodes, "nodes_ms": all nodes' time
    per run, reorders and helpers included, as kernel_ms}.

    A node's time here is what the same node takes inside a whole model, plus the few microseconds
    the profiler adds to every node it times; the profile's calibration (``calibration``) takes
    that out again.
    """
    import tempfile

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = str(Path(folder) / "profile")
        source = model if isinstance(model, bytes) else str(model)
        session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feeds = {item.name: rng.standard_normal(item.shape).astype(np.float32) for item in session.get_inputs()}
        start, runs = time.perf_counter(), 0
        while runs < min_runs or (runs < max_runs and (time.perf_counter() - start) * 1e3 < budget_ms):
            session.run(None, feeds)
            runs += 1
        with open(session.end_profiling()) as handle:
            events = json.load(handle)
    kernel_per_run: dict[int, float] = {}
    nodes_per_run: dict[int, float] = {}
    reorder_times: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    run_index, seen, helpers = -1, set(), set()
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        name = event["name"]
        if name in seen or run_index < 0:  # a node seen again: the next run began
            run_index, seen = run_index + 1, set()
        seen.add(name)
        milliseconds = event["dur"] / 1e3
        nodes_per_run[run_index] = nodes_per_run.get(run_index, 0.0) + milliseconds
        if name.startswith(HELPER_NODE):
            helpers.add(name)
        elif event["args"].get("op_name", "").startswith("Reorder"):
            reorder_times.setdefault(name, []).append(milliseconds)
            shapes = event["args"].get("output_type_shape") or []
            sizes[name] = sum(int(np.prod(list(item.values())[0])) for item in shapes if item)
        else:
            kernel_per_run[run_index] = kernel_per_run.get(run_index, 0.0) + milliseconds
    warm = [value for index, value in sorted(kernel_per_run.items()) if index >= len(kernel_per_run) // 10]
    kernel_ms = _fast_mean(warm)
    reorders = [[sizes[name], _fast_mean(values[len(values) // 10:])] for name, values in reorder_times.items()]
    layout = "blocked" if reorders else "plain"
    nodes = len(seen)
    all_nodes = [value for index, value in sorted(nodes_per_run.items()) if index >= len(nodes_per_run) // 10]
    return {"kernel_ms": kernel_ms, "reorders": reorders, "layout": layout, "runs": runs,
            "nodes": nodes, "helper_nodes": len(helpers), "nodes_ms": _fast_mean(all_nodes)}


def load_suite(suite_dir: str | Path) -> dict:
    path = Path(suite_dir) / SUITE_FILE
    if not path.is_file():
        raise ValueError(f"{path} not found: a suite folder is written by 'edgegrow profile --write-suite DIR'")
    with open(path) as handle:
        return json.load(handle)


def measured_ids(out_path: str | Path) -> set[str]:
    """Ids already in a measurements file; a torn last line (interrupted write) is ignored."""
    done = set()
    if Path(out_path).exists():
        with open(out_path) as handle:
            for line in handle:
                try:
                    done.add(json.loads(line)["id"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
    return done


def append_line(out_path: str | Path, record: dict) -> None:
    with open(out_path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def machine_description() -> dict:
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "system": platform.system(), "python": platform.python_version(), "cpu_count": os.cpu_count()}


def machine_tag() -> str:
    """"(processor, network name)": how a profile measured here names this machine in its sources, and how
    ``edgegrow bench`` recognises a profile of this machine."""
    return f"({machine_description()['processor']}, {platform.node()})"


def run_suite(suite_dir: str | Path, out_path: str | Path, runtime: str = "onnxruntime", threads: int = 1,
              quick: bool = False, progress=None) -> int:
    """Time every model of the suite not yet in ``out_path``; returns how many were measured now."""
    suite = load_suite(suite_dir)
    done = measured_ids(out_path)
    extension = ".onnx" if runtime == "onnxruntime" else ".tflite"
    todo = [entry for entry in suite["kernels"] if entry["id"] not in done]
    if OVERHEAD_ID not in done:  # first, so the kernels can be told apart from the per-model overhead
        todo.insert(0, {"id": OVERHEAD_ID, "shape": None})
    repeats = 10 if quick else 30
    identity = Session(Path(suite_dir) / ("overhead" + extension), runtime, threads)
    for count, entry in enumerate(todo, 1):
        model_path = Path(suite_dir) / ((entry["id"] if entry["shape"] else "overhead") + extension)
        session = Session(model_path, runtime, threads)
        timing = time_session(session, repeats=repeats)
        if entry["shape"]:  # the per-model overhead of this moment, timed right after and as the kernel's model
            timing["overhead_ms"] = time_session(identity, repeats=repeats)["fast_ms"]
        append_line(out_path, {"id": entry["id"], "shape": entry["shape"], "runtime": runtime,
                               "runtime_version": session.version, "threads": threads, **timing})
        if progress is not None:
            progress(count, len(todo), entry["id"])
    return len(todo)


def _print_progress(count: int, total: int, name: str) -> None:
    print(f"\r[{count}/{total}] {name[:60]:<60}", end="" if count < total else "\n", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time a suite of single-kernel models on this device.")
    parser.add_argument("suite", help="folder written by 'edgegrow profile --write-suite DIR'")
    parser.add_argument("--out", required=True, help="measurements file (JSON lines); resumed if it exists")
    parser.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="10 samples per kernel instead of 30")
    args = parser.parse_args(argv)
    try:
        measured = run_suite(args.suite, args.out, args.runtime, args.threads, args.quick, _print_progress)
    except (ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    print(f"measured {measured} kernels into {args.out}; device: {json.dumps(machine_description())}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
