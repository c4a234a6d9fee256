"""How much a 2-core machine trains: examples per second for the zoo's shapes, and the memory a
task's inputs take, for the README's limits.

For each model: Adam steps on random batches of 64 (the grow default) at torch's default thread
count, 3 warm-up steps, then 5 repeats of 10 steps; the median and spread of examples per second,
and the peak RSS of the process. From the median, the time of one epoch over datasets of known
size is projected (labelled as projected: those datasets are not here). Inputs are held in memory
as float32 (``TaskData``), so a dataset's bytes are examples × input size × 4.

    python bench/training_throughput.py                       # this CPU
    python bench/training_throughput.py --devices cpu cuda    # and a GPU, in the same process

Writes bench/results/training_throughput.json (``--out``). On a GPU every timed repeat ends with
``torch.cuda.synchronize()``, so the time is the device's, not the launch queue's.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from edgegrow.models import build_seed, ds_cnn, mobilenet_v1, mobilenet_v2, resnet8

RESULTS = Path(__file__).resolve().parent / "results" / "training_throughput.json"
BATCH = 64
# dataset → (title, training examples) of public datasets the tasks read
DATASETS = {"kws": ("Speech Commands v2, 12 classes", 84_843), "cifar10": ("CIFAR-10", 50_000),
            "vww": ("Visual Wake Words 96×96", 82_783)}


def models() -> list[tuple[str, str, nn.Module]]:
    return [
        ("ds-cnn seed", "kws", build_seed("ds-cnn")),
        ("ds-cnn S", "kws", ds_cnn("S")),
        ("ds-cnn M", "kws", ds_cnn("M")),
        ("ds-cnn L", "kws", ds_cnn("L")),
        ("resnet-8", "cifar10", resnet8(1.0, 10)),
        ("mobilenet-v2 0.35/32", "cifar10", mobilenet_v2(0.35, 32, 10)),
        ("mobilenet-v1 0.25/96", "vww", mobilenet_v1(0.25, 96, 2)),
    ]


def examples_per_second(model: nn.Module, repeats: int = 5, steps: int = 10,
                        device: torch.device = torch.device("cpu")) -> list[float]:
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_function = nn.CrossEntropyLoss()
    x = torch.randn(BATCH, *model.input_shape, device=device)
    model.eval()
    with torch.no_grad():
        classes = model(x[:1]).shape[1]
    y = torch.randint(0, classes, (BATCH,), device=device)
    model.train()

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step():
        loss = loss_function(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    synchronize()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize()
        rates.append(steps * BATCH / (time.perf_counter() - started))
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", nargs="+", default=["cpu"], help="cpu, cuda, cuda:N (default cpu)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    devices = [torch.device(name) for name in args.devices]
    torch.manual_seed(0)
    rows = []
    for (name, dataset, model), device in ((entry, device) for entry in models() for device in devices):
        rates = examples_per_second(model, device=device)
        median = statistics.median(rates)
        title, examples = DATASETS[dataset]
        input_bytes = 4 * math.prod(model.input_shape)
        row = {"model": name, "device": str(device),
               "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
               "input_shape": list(model.input_shape),
               "parameters": sum(p.numel() for p in model.parameters()),
               "examples_per_s_median": median, "examples_per_s_min": min(rates), "examples_per_s_max": max(rates),
               "dataset": title, "dataset_examples": examples,
               "projected_epoch_minutes": examples / median / 60,
               "dataset_inputs_gib": examples * input_bytes / 2 ** 30,
               "peak_rss_mib_so_far": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        rows.append(row)
        print(f"{name:22s} {str(device):6s} {median:8.0f} ex/s ({min(rates):.0f}–{max(rates):.0f}); "
              f"one epoch of {title} ({examples:,}) ≈ {row['projected_epoch_minutes']:.1f} min (projected); inputs "
              f"{row['dataset_inputs_gib']:.2f} GiB float32", flush=True)
    document = {"benchmark": "training_throughput", "batch": BATCH, "threads": torch.get_num_threads(),
                "torch": torch.__version__, "machine": platform.machine(), "cpus": os.cpu_count(), "rows": rows}
    Path(args.out).write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
