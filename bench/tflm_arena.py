"""Predicted SRAM against the arena TFLite Micro asks for, and predicted flash against the int8
.tflite file, over the model zoo's shapes.

Each model (untrained, its BatchNorm statistics set on random inputs: the arena does not depend on
the weights) goes through the export's path,
litert-torch → ai-edge-quantizer's full-integer int8 (calibrated on a few random inputs), then is
loaded in TFLite Micro's Python interpreter, whose arena is what a microcontroller must reserve.
The prediction is ``estimate(model, x, "cortex-m4f-120mhz").sram_bytes``: activations as TFLite
Micro's planner lays them out, with the converter's PAD ops, plus ``cost_models/runtime_memory.json``'s
interpreter allocations; the activation part alone is compared with the arena's non-persistent
("head") part.

    python bench/tflm_arena.py
    python bench/tflm_arena.py --held-out 27 [--grown WORK_DIR]

Writes bench/results/tflm_arena.json: per model the predicted and measured bytes (arena, file) and
their ratios, and the median and range of the ratios. The file's size is what
``cost_models/runtime_memory.json``'s per-operator and per-tensor bytes were fitted on.

``--held-out N`` measures instead N networks the fit never saw (``held_out_models.py``: user-style CNNs
with max-pooling and flatten, residual blocks, squeeze-and-excitation gates, concatenations, 5×5 and
7×7 kernels, Hardswish; the zoo at random widths and resolutions) and, with ``--grown WORK_DIR``, the
networks a ``grow_vs_uniform.py`` work folder grew (uneven widths), into bench/results/tflm_arena_held_out.json, with the
ratios per family.
"""
from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cost_models import estimate, load_target
from edgegrow.export import library_output, runtimes, tflite_format
from edgegrow.models import build_seed, ds_cnn, mobilenet_v1, mobilenet_v2, resnet8

RESULTS = Path(__file__).resolve().parent / "results" / "tflm_arena.json"
HELD_OUT_RESULTS = Path(__file__).resolve().parent / "results" / "tflm_arena_held_out.json"
TARGET = "cortex-m4f-120mhz"


def models() -> dict[str, torch.nn.Module]:
    return {
        "ds-cnn seed": build_seed("ds-cnn"),
        "ds-cnn S x0.5": ds_cnn("S", width_multiplier=0.5),
        "ds-cnn S": ds_cnn("S"),
        "ds-cnn M": ds_cnn("M"),
        "mobilenet-v1 0.25/96, 2 classes": mobilenet_v1(0.25, 96, 2),
        "mobilenet-v2 seed 32, 10 classes": build_seed("mobilenet-v2", resolution=32, num_classes=10),
        "mobilenet-v2 0.35/32, 10 classes": mobilenet_v2(0.35, 32, 10),
        "mobilenet-v2 0.35/96, 2 classes": mobilenet_v2(0.35, 96, 2),
        "resnet-8": resnet8(1.0, 10),
    }


def tflm_allocations(content: bytes) -> dict[str, int]:
    """Total, head (non-persistent: activations) and tail (persistent) bytes of TFLite Micro's arena."""
    runtime = runtimes.require("tflite_micro.python.tflite_micro.runtime")
    interpreter = runtime.Interpreter.from_bytes(content, arena_size=4 << 20)
    with library_output.captured() as output:
        interpreter.print_allocations()
    found = {}
    for key in ("total", "head", "tail"):
        line = next(line for line in output.text.splitlines() if f"Arena allocation {key}" in line)
        found[key] = int(line.split()[-2])
    return found


def tensor_count(content: bytes) -> int:
    interpreter_module = runtimes.require("ai_edge_litert.interpreter")
    return len(interpreter_module.Interpreter(model_content=content).get_tensor_details())


def measure(name: str, model: torch.nn.Module, shape: tuple[int, ...], target, trained: bool = False) -> dict:
    """One model through the export's int8 path into TFLite Micro: predicted against measured bytes."""
    if not trained:
        with torch.no_grad():  # BatchNorm statistics of random inputs: sane int8 scales, which TFLM checks
            model.train()
            for _ in range(4):
                model(torch.randn(16, *shape))
    model.eval()
    example = torch.zeros(1, *shape)
    started = time.perf_counter()
    with library_output.captured():
        float_model = tflite_format.export_tflite_float(model, example)
        calibration = np.random.default_rng(0).standard_normal((8, *shape), dtype=np.float32)
        int8_model = tflite_format.quantize_tflite_int8(float_model, calibration.transpose(0, 2, 3, 1).copy())
    measured = tflm_allocations(int8_model)
    report = estimate(model, example, target)
    predicted_activations = report.sram_bytes - report.sram_runtime_bytes
    row = {"model": name, "predicted_bytes": report.sram_bytes, "measured_arena_bytes": measured["total"],
           "ratio": report.sram_bytes / measured["total"],
           "predicted_activation_bytes": predicted_activations, "measured_head_bytes": measured["head"],
           "activation_ratio": predicted_activations / measured["head"],
           "predicted_runtime_bytes": report.sram_runtime_bytes, "measured_tail_bytes": measured["tail"],
           "operators": len(runtimes.litert_ops(int8_model)), "tensors": tensor_count(int8_model),
           "output_channels": sum(k.shape.output[0] for k in report.kernels if k.weight_bytes_int8),
           "weight_bytes_int8": report.weight_bytes_int8, "predicted_flash_bytes": report.flash_bytes,
           "int8_file_bytes": len(int8_model), "flash_ratio": report.flash_bytes / len(int8_model),
           "seconds": time.perf_counter() - started}
    print(f"{name[:44]:44s} predicted {report.sram_bytes:>8,} B  TFLM arena {measured['total']:>8,} B  "
          f"ratio {row['ratio']:.3f}  (activations {row['activation_ratio']:.3f}); flash predicted "
          f"{report.flash_bytes:>9,} B, int8 file {len(int8_model):>9,} B", flush=True)
    return row


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "within_1_percent": sum(abs(v - 1) <= 0.01 for v in values) / len(values),
            "within_5_percent": sum(abs(v - 1) <= 0.05 for v in values) / len(values)}


def held_out_main(count: int, grown_work: str | None) -> None:
    from held_out_models import held_out

    target = load_target(TARGET)
    rows = []
    for family, description, model, shape in held_out(count):
        try:
            rows.append({"family": family, **measure(description, model, shape, target)})
        except Exception as error:  # noqa: BLE001 — a model the converter or TFLM refuses is reported, not fatal
            print(f"{description}: not measured ({type(error).__name__}: {str(error).splitlines()[0][:120]})")
            rows.append({"family": family, "model": description, "error": f"{type(error).__name__}: {error}"[:300]})
    if grown_work:
        from grown_models import grown_models

        for kind in ("cpu", "mcu"):
            for row, model in grown_models(grown_work, kind):
                if row["method"] != "grown":  # the retrained network has the grown one's architecture
                    continue
                name = f"{row['run']} ({kind} budget)"
                rows.append({"family": "grown",
                             **measure(name, model, tuple(model.input_shape), target, trained=True)})
    measured = [row for row in rows if "ratio" in row]
    families = sorted({row["family"] for row in measured})
    summary = {"models": len(measured), "not_measured": len(rows) - len(measured),
               "sram": spread([row["ratio"] for row in measured]),
               "flash": spread([row["flash_ratio"] for row in measured]),
               "per_family": {family: {"models": sum(row["family"] == family for row in measured),
                                       "sram_median": statistics.median(r["ratio"] for r in measured
                                                                        if r["family"] == family),
                                       "flash_median": statistics.median(r["flash_ratio"] for r in measured
                                                                         if r["family"] == family)}
                              for family in families}}
    print(json.dumps(summary, indent=1))
    HELD_OUT_RESULTS.write_text(json.dumps({
        "benchmark": "tflm_arena --held-out", "target": TARGET, "python": sys.version.split()[0],
        "machine": platform.machine(), "torch": torch.__version__,
        # the grown networks' folder by its name only: where it lies is this machine's business
        "command": f"python bench/tflm_arena.py --held-out {count}" + (f" --grown {Path(grown_work).name}"
                                                                        if grown_work else ""),
        "summary": summary, "rows": rows}, indent=1) + "\n")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", type=int, metavar="N", help="N networks the fit never saw (see the docstring)")
    parser.add_argument("--grown", metavar="WORK_DIR", help="with --held-out: also a grow_vs_uniform.py work folder's "
                                                           "grown networks")
    args = parser.parse_args()
    if args.held_out:
        held_out_main(args.held_out, args.grown)
        return
    torch.manual_seed(0)
    target = load_target(TARGET)
    rows = [measure(name, model, tuple(model.input_shape), target) for name, model in models().items()]
    ratios = [row["ratio"] for row in rows]
    summary = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    print(f"SRAM predicted / measured: median {summary['median']:.3f}, range {summary['min']:.3f}–{summary['max']:.3f}")
    flash = [row["flash_ratio"] for row in rows]
    flash_summary = {"median": statistics.median(flash), "min": min(flash), "max": max(flash)}
    print(f"flash predicted / int8 file: median {flash_summary['median']:.3f}, "
          f"range {flash_summary['min']:.3f}–{flash_summary['max']:.3f}")
    RESULTS.write_text(json.dumps({"benchmark": "tflm_arena", "target": TARGET, "python": sys.version.split()[0],
                                   "machine": platform.machine(), "torch": torch.__version__,
                                   "rows": rows, "ratio": summary, "flash_ratio": flash_summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
