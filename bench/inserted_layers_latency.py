"""Predicted against measured host latency of the layers Firefly inserts (issue 17: they were measured
30–47 % slower than predicted on the deep Firefly networks of an older benchmark).

DS-CNN ×0.5 (32 channels) with k identity-initialised blocks inserted by ``edgegrow.growth.deepen`` after
features.1 … features.k (k = 0 … 4), once as ``ds-block`` (depthwise 3×3 + pointwise, Firefly's choice in
a depthwise-separable stack) and once as ``conv`` (a full 3×3 conv). Each network is exported with the
exporter's ONNX path and timed in onnxruntime in this process (1 thread, batch 1): 50 warm-up runs, then
``--rounds`` rounds over all networks in random order, each round 200 runs; a network's figure is its
fastest round's 10th percentile (the statistic the host profile's kernel tables keep), over
``--sessions`` sessions of it: one onnxruntime session of a network can run 30–40 % slower than
another session of the same file in every round (the first runs of this script saw it on a different
network each time), so a session's speed is partly fixed when it is made, and one session per network
is not a measurement. Predicted: the
pinned, measured profile bench/targets/x86-vm-onnxruntime.json (the growth benchmark's). Reported: each
network's measured / predicted, and per inserted block the measured and predicted increase over k = 0.

    python bench/inserted_layers_latency.py [--rounds 8] [--target bench/targets/x86-vm-onnxruntime.json]

Writes bench/results/inserted_layers_latency.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import commit  # noqa: E402

from cost_models import estimate, load_target  # noqa: E402
from edgegrow.export.onnx_format import export_onnx_float  # noqa: E402
from edgegrow.growth.deepen import deepen  # noqa: E402
from edgegrow.models import build_model  # noqa: E402

HERE = Path(__file__).resolve().parent
KINDS = ("ds-block", "conv")
BLOCKS = range(5)


def network(kind: str, blocks: int, example: torch.Tensor) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("ds-cnn", width_multiplier=0.5, num_classes=12).eval()
    for index in range(blocks):
        deepen(model, f"features.{index + 1}", example, kind=kind)
    with torch.no_grad():  # BatchNorm statistics as training would leave them (not the identity)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 1.5)
                module.running_mean.uniform_(-0.2, 0.2)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=3, help="sessions per network; the fastest counts")
    parser.add_argument("--target", default=str(HERE / "targets" / "x86-vm-onnxruntime.json"))
    parser.add_argument("--out", default=str(HERE / "results" / "inserted_layers_latency.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    target = load_target(args.target)
    example = torch.randn(1, 1, 49, 10)
    feed = example.numpy()
    sessions, predicted = {}, {}
    for kind in KINDS:
        for blocks in BLOCKS:
            model = network(kind, blocks, example)
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            name = f"{kind}-{blocks}"
            exported = export_onnx_float(model, example)
            for copy in range(args.sessions):
                sessions[(name, copy)] = ort.InferenceSession(exported, options, providers=["CPUExecutionProvider"])
            predicted[name] = estimate(model, example, target).latency_ms
    rounds: dict[tuple, list[float]] = {key: [] for key in sessions}
    for session in sessions.values():
        for _ in range(50):
            session.run(None, {session.get_inputs()[0].name: feed})
    order = np.random.default_rng(0)
    keys = list(sessions)
    for _ in range(args.rounds):
        for index in order.permutation(len(keys)):
            key = keys[index]
            session = sessions[key]
            input_name = session.get_inputs()[0].name
            times = []
            for _ in range(200):
                start = time.perf_counter()
                session.run(None, {input_name: feed})
                times.append(time.perf_counter() - start)
            rounds[key].append(float(np.percentile(times, 10)) * 1e3)
    networks = {}
    for name in predicted:
        per_session = [min(rounds[(name, copy)]) for copy in range(args.sessions)]
        networks[name] = {"measured_ms": min(per_session), "predicted_ms": predicted[name],
                          "ratio": min(per_session) / predicted[name], "sessions_ms": per_session}
    per_block = {}
    for kind in KINDS:
        base = networks[f"{kind}-0"]
        per_block[kind] = []
        for blocks in BLOCKS[1:]:
            row = networks[f"{kind}-{blocks}"]
            measured = (row["measured_ms"] - base["measured_ms"]) / blocks
            expected = (row["predicted_ms"] - base["predicted_ms"]) / blocks
            per_block[kind].append({"blocks": blocks, "measured_us": 1e3 * measured, "predicted_us": 1e3 * expected,
                                    "ratio": measured / expected})
    for name, row in networks.items():
        print(f"{name:<11} measured {row['measured_ms']:.4f} ms  predicted {row['predicted_ms']:.4f} ms  "
              f"ratio {row['ratio']:.3f}  sessions {', '.join(f'{ms:.4f}' for ms in row['sessions_ms'])}")
    for kind, rows in per_block.items():
        for row in rows:
            print(f"{kind} ×{row['blocks']}: {row['measured_us']:.1f} µs measured per inserted block, "
                  f"{row['predicted_us']:.1f} µs predicted (ratio {row['ratio']:.2f})")
    Path(args.out).write_text(json.dumps({
        "benchmark": "inserted_layers_latency", "commit": commit(), "torch": torch.__version__,
        "onnxruntime": ort.__version__, "machine": platform.processor() or platform.machine(),
        "target": Path(args.target).name, "rounds": args.rounds, "sessions": args.sessions, "networks": networks, "per_block": per_block,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
