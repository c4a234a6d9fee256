"""The trained networks a grow_vs_uniform.py work folder holds, for the benchmarks that export them
(export_int8_accuracy.py, export_predicted_vs_measured.py): each grown run's grown and retrained model
and the uniform network trained for as many epochs."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from edgegrow.checkpoint import load_checkpoint

DEFAULT_WORK = Path.home() / ".cache" / "edgegrow" / "bench-grow-vs-uniform"


def grown_models(work: str | Path = DEFAULT_WORK, kind: str = "cpu") -> Iterator[tuple[dict, nn.Module]]:
    """(row, model) for each KWS run in ``work`` grown for a target of ``kind`` (``cpu``: the host
    settings, priced with a CPU profile; ``mcu``: the Cortex-M4F one): row names the run (``run``), which
    network it is (``method``: ``grown``, ``retrained`` or ``uniform``) and its ``setting``."""
    from grow_vs_uniform import SETTINGS, target_of

    work = Path(work)
    for path in sorted(work.glob("*-grown.json")):
        row = json.loads(path.read_text())
        setting = SETTINGS[row["setting"]]
        if setting.task != "kws" or target_of(setting).kind != kind:
            continue
        folder = work / f"{row['setting']}-{row['seed']}-grown-run"
        files = {"grown": folder / "grown.pt", "retrained": folder / "retrained.pt",
                 "uniform": work / f"{row['setting']}-{row['seed']}-uniform.pt"}
        for which, file in files.items():
            if file.is_file():
                model, _ = load_checkpoint(file)
                yield {"run": f"{row['setting']}_{row['seed']}_{which}", "method": which,
                       "setting": row["setting"], "seed": row["seed"]}, model.eval()
