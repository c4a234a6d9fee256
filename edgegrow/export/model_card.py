"""The model card: what a device needs to run an exported model, and what it costs there.

``model_card.json`` (format ``edgegrow-model-card/1``) holds the task, the classes, the input spec
with the exact preprocessing (MFCC parameters and standardisation, or image size and
normalisation), the int8 input and output quantization, MACs and parameters, accuracy of every
exported file on the task's test split, the files with their sizes and SHA-256, TFLite Micro's
arena and op list, and for each known target the predicted latency, energy, SRAM and flash beside
what was measured (``measured``; ``edgegrow bench`` appends to it). ``model_card.md`` renders the
same facts for a person.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_atomically

FORMAT = "edgegrow-model-card/1"


def _number(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _percent(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def render_markdown(card: dict) -> str:
    """A short Markdown page of the card's facts."""
    lines = [f"# {card['name']}", "",
             f"{card['task']} model ({card['family']}, grown by edgegrow {card['edgegrow_version']}), "
             f"{len(card['classes'])} classes: {', '.join(card['classes'])}.", ""]
    spec = card["input"]
    pre = spec["preprocessing"]
    lines += ["## Input", "",
              f"- ONNX: float32 {spec['shape_nchw']} (NCHW); TFLite: float32 {spec['shape_nhwc']} (NHWC)",
              ]
    if spec.get("int8"):
        lines.append(f"- int8 files: int8 input, real = (q − {spec['int8']['zero_point']}) × "
                     f"{spec['int8']['scale']:.6g}")
    if pre.get("kind") == "mfcc":
        lines.append(f"- MFCC: {pre['sample_rate']} Hz, {pre['clip_samples']} samples, window {pre['window_samples']}, "
                     f"stride {pre['stride_samples']}, FFT {pre['fft_size']}, {pre['mel_bins']} mel bins "
                     f"{pre['lower_hz']:g}–{pre['upper_hz']:g} Hz, log offset {pre['log_offset']:g}, "
                     f"{pre['coefficients']} coefficients")
        if pre.get("normalization"):
            norm = pre["normalization"]
            lines.append(f"- standardise per coefficient k: (mfcc − mean[k]) / std[k]; mean "
                         f"{[round(v, 4) for v in norm['mean']]}, std {[round(v, 4) for v in norm['std']]}")
    elif pre.get("kind") == "image":
        lines.append(f"- image {pre['resolution']}×{pre['resolution']}, {pre['channels']} channel(s); {pre['scale']}; "
                     f"mean {[round(v, 4) for v in pre['mean']]}, std {[round(v, 4) for v in pre['std']]}")
    out = card["output"]
    lines += [f"- output: {out['kind']} {out['shape']}, class order as labels.txt", ""]

    lines += ["## Size and accuracy", "", f"- {card['macs']:,} MACs, {card['params']:,} parameters", ""]
    accuracy = card["accuracy"]
    lines += [f"Accuracy on the {accuracy['split']} split ({accuracy['examples']} examples):", "",
              "| file | runtime | accuracy | bytes |", "|---|---|---|---|"]
    for key, file in card["files"].items():
        if "runtime" in file:
            lines.append(f"| {file['path']} | {file['runtime']} | {_percent(file.get('accuracy'))} | "
                         f"{file['bytes']:,} |")
    lines.append(f"| (PyTorch) | torch | {_percent(accuracy.get('pytorch'))} | |")
    if card.get("tflm"):
        tflm = card["tflm"]
        lines += ["", f"TFLite Micro: arena {tflm['arena_bytes']:,} bytes (measured on a 64-bit host; a 32-bit MCU "
                      f"needs about the same or less), ops {', '.join(tflm['ops'])}."]
    for note in card.get("notes", []):
        lines += ["", f"Note: {note}"]

    lines += ["", "## Cost on each known target", "",
              "| target | runtime | dtype | latency ms | energy mJ | SRAM KB | flash KB | measured |",
              "|---|---|---|---|---|---|---|---|"]
    for name, target in card["targets"].items():
        predicted = target["predicted"]
        measured = "; ".join(f"{key} {_number(value)}" for key, value in (target.get("measured") or {}).items())
        lines.append(f"| {name} | {target['runtime']} | {target['dtype']} | {_number(predicted['latency_ms'])} | "
                     f"{_number(predicted['energy_mj'])} | {_number(predicted['sram_kb'], 3)} | "
                     f"{_number(predicted['flash_kb'], 3)} | {measured or '—'} |")
    if card.get("measured"):
        lines += ["", "## Benchmarks (edgegrow bench)", "",
                  "| file | runtime | threads | median ms | p90 ms | target | predicted ms | ratio | arena B | date |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in card["measured"]:
            lines.append(f"| {row.get('file')} | {row.get('runtime')} | {row.get('threads')} | "
                         f"{_number(row.get('latency_ms_median'))} | {_number(row.get('latency_ms_p90'))} | "
                         f"{row.get('target') or '—'} | {_number(row.get('predicted_latency_ms'))} | "
                         f"{_number(row.get('latency_ratio'), 3)} | {_number(row.get('arena_bytes'))} | "
                         f"{(row.get('date') or '')[:10]} |")
    lines += ["", "Predicted figures come from edgegrow's cost model (the target's profile); SRAM is the "
                  "arena (activations plus the runtime's own allocations), flash the weights plus model overhead.", ""]
    return "\n".join(lines)


def read_json(path: str | Path, kind: type = dict, what: str = "a JSON object") -> object:
    """The JSON document in ``path``, which must be a ``kind`` (dict or list).

    Raises:
        ValueError: unreadable JSON or another kind of document, in one line that says to fix the file.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}); fix or remove it") from None
    if not isinstance(document, kind):
        raise ValueError(f"{path} is not {what}; fix or remove it")
    return document


def read_card(path: str | Path) -> dict:
    """A ``model_card.json`` (one-line ValueError for a damaged one)."""
    card = read_json(path, dict, "a model card (a JSON object whose 'measured' is a list)")
    if not isinstance(card.get("measured", []), list):
        raise ValueError(f"{path} is not a model card (a JSON object whose 'measured' is a list); fix or remove it")
    return card


def dumps(card: dict) -> str:
    return json.dumps(card, indent=1) + "\n"


def write_card(folder: str | Path, card: dict) -> None:
    """``model_card.json`` and, for a complete card, ``model_card.md`` in ``folder``, each written atomically."""
    folder = Path(folder)
    write_atomically(folder / "model_card.json", dumps(card))
    if card.get("format") == FORMAT:
        write_atomically(folder / "model_card.md", render_markdown(card))
