"""Training throughput on one process against several under ``torchrun`` (edgegrow.training.distributed).

For each model: ``edgegrow.training.Training`` (the loop grow runs) on random in-memory inputs, global
batch 64, Adam; 3 warm-up steps, then 30 timed steps; examples per second. Configurations, each run
``--repeats`` times in its own fresh process(es), alternating, so a slow stretch of the machine hits all:

- ``1 process × 1 thread``: the baseline;
- ``1 process × N threads``: what one process makes of the same cores;
- ``N processes × 1 thread, synced BatchNorm``: ``torchrun --nproc_per_node N`` (gloo on CPUs), each
  process a share of every batch, gradients and BatchNorm statistics all-reduced (``--sync-batch-norm``:
  the run one process makes);
- ``N processes × 1 thread``: the same with each process's own BatchNorm statistics (the default, as
  plain DDP): gradients (and rank 0's BatchNorm buffers) are the only communication of a step.

Reported: median and min–max examples per second, and the ratio of each configuration's median to the
baseline's. ``--device cuda`` measures on GPUs instead (N processes then need N GPUs; NCCL).

    python bench/distributed_training.py [--processes 2] [--repeats 3]

Writes bench/results/distributed_training.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "distributed_training.json"
BATCH, WARMUP, STEPS = 64, 3, 30
MODELS = {"ds-cnn S": ("ds-cnn", {"size": "S"}), "mobilenet-v1 0.25/96": ("mobilenet-v1", {})}


def build(name: str):
    from edgegrow.models import ds_cnn, mobilenet_v1

    return ds_cnn("S") if name == "ds-cnn S" else mobilenet_v1(0.25, 96, 2)


def worker(name: str, threads: int, device: str, sync_batch_norm: bool = False) -> None:
    """One measurement in this process (or this torchrun job); rank 0 prints examples/s as JSON."""
    from edgegrow.data.task_data import Split, TaskData
    from edgegrow.training import TrainConfig
    from edgegrow.training.distributed import init_from_environment, leave
    from edgegrow.training.train import Training

    torch.set_num_threads(threads)
    world = init_from_environment(device)
    torch.manual_seed(0)
    model = build(name)
    classes = 12 if name.startswith("ds-cnn") else 2
    examples = BATCH * (WARMUP + STEPS + 1)  # no epoch ends (and no validation) inside the timed steps
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(examples, *model.input_shape, generator=generator)
    labels = torch.randint(0, classes, (examples,), generator=generator)
    empty = Split(inputs[:0], labels[:0])
    data = TaskData("random", [str(c) for c in range(classes)], Split(inputs, labels), empty, empty)
    training = Training(model, data, TrainConfig(epochs=1, batch_size=BATCH, device=device,
                                                 sync_batch_norm=sync_batch_norm))
    training.run(WARMUP)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    training.run(WARMUP + STEPS)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    if world.main:
        print(json.dumps({"examples_per_second": STEPS * BATCH / seconds}))
    leave()


def measure(name: str, processes: int, threads: int, device: str, sync_batch_norm: bool = False) -> float:
    command = [sys.executable, __file__, "worker", "--model", name, "--threads", str(threads), "--device", device,
               *(["--sync-batch-norm"] if sync_batch_norm else [])]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
                   *command[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["examples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "worker"])
    parser.add_argument("--model", choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sync-batch-norm", action="store_true")
    args = parser.parse_args()
    if args.mode == "worker":
        worker(args.model, args.threads, args.device, args.sync_batch_norm)
        return
    n = args.processes
    configurations = {"1 process × 1 thread": (1, 1, False), f"1 process × {n} threads": (1, n, False),
                      f"{n} processes × 1 thread": (n, 1, False),
                      f"{n} processes × 1 thread, synced BatchNorm": (n, 1, True)}
    if args.device != "cpu":
        configurations = {"1 process": (1, 1, False), f"{n} processes": (n, 1, False),
                          f"{n} processes, synced BatchNorm": (n, 1, True)}
    results = {}
    for name in MODELS:
        samples = {label: [] for label in configurations}
        for _ in range(args.repeats):
            for label, (processes, threads, synced) in configurations.items():
                samples[label].append(measure(name, processes, threads, args.device, synced))
        baseline = statistics.median(next(iter(samples.values())))
        results[name] = {label: {"median": statistics.median(values), "min": min(values), "max": max(values),
                                 "ratio_to_baseline": statistics.median(values) / baseline, "runs": values}
                         for label, values in samples.items()}
        for label, row in results[name].items():
            print(f"{name:<22} {label:<24} {row['median']:8.0f} examples/s ({row['min']:.0f}–{row['max']:.0f}), "
                  f"×{row['ratio_to_baseline']:.2f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "distributed_training", "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
        "machine": platform.machine(), "cpus": os.cpu_count(), "device": args.device, "batch": BATCH,
        "timed_steps": STEPS, "repeats": args.repeats, "results": results}, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
