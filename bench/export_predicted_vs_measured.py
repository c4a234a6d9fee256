"""Predicted against measured cost of exported models: host latency, TFLite Micro arena, flash.

For the host runs of the grow-vs-uniform work folder (each grown network and its architecture
retrained; ``python bench/grow_vs_uniform.py run`` makes them), export
``model.onnx`` and ``model_int8.tflite`` with ``edgegrow.export.export_model`` and measure them with
``edgegrow.export.benchmark`` — the code behind ``edgegrow export`` and ``edgegrow bench``:

- host latency: ``model.onnx`` in onnxruntime, 1 thread, batch 1, ``--runs`` timed runs after 50
  warm-up, in a fresh process; ``--rounds`` rounds over all models in turn (so slow spells of this
  shared machine hit every model alike), keeping each model's fastest round median and fastest
  round 10th percentile. Both are divided by the host prediction; the host profile's tables keep
  each kernel's 10th percentile, so the p10 ratio compares like with like.
- microcontroller memory: TFLite Micro's arena for ``model_int8.tflite`` against the
  ``cortex-m4f-120mhz`` prediction of SRAM (the cost model counts activations only; the arena also
  holds TFLite Micro's own structures), and the int8 file's size against the predicted flash.

    python bench/export_predicted_vs_measured.py [--work DIR] [--rounds 3] [--runs 300]

Writes bench/results/export_predicted_vs_measured.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grown_models import DEFAULT_WORK, grown_models  # noqa: E402
from growth_data import kws_folder  # noqa: E402

from edgegrow.export import export_model  # noqa: E402
from edgegrow.export.benchmark import benchmark  # noqa: E402
from edgegrow.tasks import load_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "export_predicted_vs_measured.json"
METHODS = ("grown", "retrained", "uniform")


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(DEFAULT_WORK))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    task = load_task("kws", kws_folder(), progress=False).data
    exports = work / "exports"
    models = []
    for row, model in grown_models(work, "cpu"):
        name = row["run"]
        out = exports / name
        if not (out / "model_card.json").is_file():
            export_model(model, task, out, formats="onnx,tflite-int8", family="ds-cnn",
                         task_kind="kws", force=True, measure_host=False, max_test_examples=64,
                         log=lambda line: None)
        card = json.loads((out / "model_card.json").read_text())
        models.append({"run": name, "method": row["method"], "setting": row["setting"], "folder": out,
                       "card": card, "medians": [], "p10s": []})
        print(f"exported {name}", flush=True)
    for round_number in range(args.rounds):
        started = time.perf_counter()
        for model in models:
            result = benchmark(model["folder"] / "model.onnx", "onnxruntime", threads=1, target="host", warmup=50,
                               runs=args.runs, record=False)
            model["medians"].append(result.latency_ms_median)
            model["p10s"].append(result.latency_ms_p10)
        print(f"round {round_number + 1}/{args.rounds}: {time.perf_counter() - started:.0f} s", flush=True)
    entries = []
    for model in models:
        card = model["card"]
        host = card["targets"]["host"]["predicted"]
        micro = card["targets"]["cortex-m4f-120mhz"]["predicted"]
        measured = min(model["medians"])
        fast = min(model["p10s"])
        entry = {"run": model["run"], "method": model["method"], "setting": model["setting"],
                 "depth": sum(count for op, count in card["files"]["onnx"]["ops"].items() if op in ("Conv", "Gemm")),
                 "host_predicted_ms": host["latency_ms"], "host_measured_ms": measured,
                 "host_round_medians_ms": model["medians"], "host_ratio": measured / host["latency_ms"],
                 "host_measured_p10_ms": fast, "host_p10_ratio": fast / host["latency_ms"],
                 "onnx_ops": card["files"]["onnx"]["ops"],
                 "tflm_arena_bytes": card["tflm"]["arena_bytes"], "m4f_predicted_sram_bytes": micro["sram_kb"] * 1024,
                 "arena_ratio": card["tflm"]["arena_bytes"] / (micro["sram_kb"] * 1024),
                 "int8_file_bytes": card["files"]["tflite-int8"]["bytes"],
                 "m4f_predicted_flash_bytes": micro["flash_kb"] * 1024,
                 "flash_ratio": card["files"]["tflite-int8"]["bytes"] / (micro["flash_kb"] * 1024)}
        entries.append(entry)
        print(f"{entry['run']:<26} depth {entry['depth']:>2}  host median {measured:.4f} ms, p10 {fast:.4f} ms / "
              f"predicted {host['latency_ms']:.4f} = {entry['host_ratio']:.2f}, {entry['host_p10_ratio']:.2f}   "
              f"arena {entry['tflm_arena_bytes']:>6} B / "
              f"SRAM {entry['m4f_predicted_sram_bytes']:>6.0f} B = {entry['arena_ratio']:.2f}   int8 file "
              f"{entry['int8_file_bytes']:>6} B / flash {entry['m4f_predicted_flash_bytes']:>6.0f} B = "
              f"{entry['flash_ratio']:.2f}", flush=True)
    summary = {method: {key: _spread([e[key] for e in entries if e["method"] == method])
                        for key in ("host_ratio", "host_p10_ratio", "arena_ratio", "flash_ratio")}
               for method in METHODS if any(e["method"] == method for e in entries)}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"command": "python bench/export_predicted_vs_measured.py " + " ".join(sys.argv[1:]),
                                   "summary": summary, "models": entries}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
