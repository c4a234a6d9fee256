"""int8 accuracy against float for exported KWS models, and what the calibration set size changes.

For each trained DS-CNN of the grow-vs-uniform work folder (every host run's grown network and its
architecture retrained; ``python bench/grow_vs_uniform.py run`` makes them), export float and int8
ONNX and TFLite through ``edgegrow.export.export_model`` — the same path as ``edgegrow export`` —
with ``--calibration`` training examples, then measure accuracy of every file in its runtime on the
validation and test splits together of the large synthetic KWS set (bench/growth_data.py). TFLite
Micro must agree with ai-edge-litert, which the export checks.

    python bench/export_int8_accuracy.py [--work DIR] [--calibration 300,1000] [--ranges min-max,moving-average]
        [--limit N]

``--ranges`` compares how the TFLite activation ranges are calibrated: min and max over the whole
calibration set (edgegrow's default) or ai-edge-quantizer's moving average of per-example ranges.
Writes bench/results/export_int8_accuracy.json: per model and setting the float and int8
accuracies and drops, and the median and range of the drops.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grown_models import DEFAULT_WORK, grown_models  # noqa: E402
from growth_data import kws_folder  # noqa: E402

from edgegrow.data.task_data import Split  # noqa: E402
from edgegrow.export import (
    export_model,  # noqa: E402
    runtimes,  # noqa: E402
)
from edgegrow.tasks import load_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "export_int8_accuracy.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(DEFAULT_WORK))
    parser.add_argument("--calibration", default="300,1000", help="calibration set sizes to compare")
    parser.add_argument("--ranges", default="min-max,moving-average", help="TFLite int8 range statistics to compare")
    parser.add_argument("--limit", type=int, help="at most this many models")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    models = list(grown_models(work, "cpu"))
    models = models[:args.limit] if args.limit else models
    task = load_task("kws", kws_folder(), progress=False).data
    # accuracy on validation + test: export_model evaluates its "test" split, so give it both
    evaluation = Split(torch.cat([task.validation.inputs, task.test.inputs]),
                       torch.cat([task.validation.labels, task.test.labels]))
    task.test = evaluation
    settings = [(int(size), ranges) for ranges in args.ranges.split(",") for size in args.calibration.split(",")]
    results = []
    for row, model in models:
        for size, ranges in settings:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as folder:
                exported = export_model(model, task, Path(folder) / "model",
                                        formats="onnx,onnx-int8,tflite,tflite-int8", family="ds-cnn",
                                        task_kind="kws", calibration_examples=size, int8_ranges=ranges,
                                        measure_host=False, log=lambda line: None)
                micro = runtimes.open_tflm(exported.files["tflite-int8"].read_bytes())
            accuracy = exported.card["accuracy"]
            entry = {"run": row["run"], "method": row["method"], "setting": row["setting"],
                     "calibration_examples": size,
                     "ranges": ranges,
                     "examples": accuracy["examples"], "pytorch": accuracy["pytorch"], "onnx": accuracy["onnx"],
                     "onnx_int8": accuracy["onnx-int8"], "tflite": accuracy["tflite"],
                     "tflite_int8": accuracy["tflite-int8"],
                     "tflm": exported.card["files"]["tflite-int8"]["accuracy_tflm"],
                     "tflm_arena_bytes": micro.arena_bytes, "seconds": time.perf_counter() - started}
            entry["tflite_int8_drop"] = entry["tflite"] - entry["tflite_int8"]
            entry["onnx_int8_drop"] = entry["onnx"] - entry["onnx_int8"]
            results.append(entry)
            print(f"{entry['run']:<28} {ranges:<14} cal {size:>5}: float {entry['tflite']:.1%}  "
                  f"tflite int8 {entry['tflite_int8']:.1%} (drop {entry['tflite_int8_drop']:+.1%})  "
                  f"onnx int8 {entry['onnx_int8']:.1%} (drop {entry['onnx_int8_drop']:+.1%})  "
                  f"{entry['seconds']:.0f} s", flush=True)
    summary = {}
    for size, ranges in settings:
        chosen = [entry for entry in results if (entry["calibration_examples"], entry["ranges"]) == (size, ranges)]
        key_name = f"{ranges}, {size} examples"
        summary[key_name] = {
            key: {"median": statistics.median(e[key] for e in chosen), "min": min(e[key] for e in chosen),
                  "max": max(e[key] for e in chosen)} for key in ("tflite_int8_drop", "onnx_int8_drop")}
        summary[key_name]["models_within_1_point"] = int(np.sum([e["tflite_int8_drop"] <= 0.01 for e in chosen]))
        summary[key_name]["models"] = len(chosen)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"command": "python bench/export_int8_accuracy.py " + " ".join(sys.argv[1:]),
                                   "evaluation": "validation + test splits of the large synthetic KWS set",
                                   "summary": summary, "models": results}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
