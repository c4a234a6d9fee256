"""How many direction-training steps Firefly needs: the ranking of its candidates after ``steps`` Adam steps
against the ranking after 30 (the old default), next to the ranking's own noise — 30 steps from another
random initialisation of the directions — and the time each takes, in one process.

On each grown DS-CNN of the growth benchmark's ``kws-host-b`` setting (bench/grow_vs_uniform.py, seeds
0–2; its work folder holds them) and four training batches of 64 from the large synthetic KWS set:
``firefly_candidates`` at steps 10, 20, 30 from one initialisation and at 30 from a second. Reported per
model: Spearman's ρ of the predicted decreases against the 30-step ranking, and how many of the 30-step
ranking's top 32 candidates are in each ranking's top 32 (an event takes about that many).

    python bench/firefly_steps.py [--work DIR] [--out bench/results/firefly_steps.json]

``--work``: the growth benchmark's work folder (``bench/grow_vs_uniform.py run --work DIR``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grown_models import DEFAULT_WORK  # noqa: E402
from growth_data import kws_folder  # noqa: E402
from provenance import commit  # noqa: E402

from edgegrow.checkpoint import load_checkpoint  # noqa: E402
from edgegrow.growth.firefly import firefly_candidates  # noqa: E402
from edgegrow.tasks import load_task  # noqa: E402

TOP = 32


def scores(model, batches, steps: int, init: int) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    found = firefly_candidates(model, batches[0][0][:1], batches, torch.nn.functional.cross_entropy, steps=steps,
                               generator=torch.Generator().manual_seed(init))
    return torch.tensor([c.predicted_decrease for c in found]), time.perf_counter() - start


def compare(reference: torch.Tensor, other: torch.Tensor) -> dict:
    top = set(reference.argsort(descending=True)[:TOP].tolist())
    return {"spearman": float(spearmanr(reference.numpy(), other.numpy()).correlation),
            "top_overlap": len(top & set(other.argsort(descending=True)[:TOP].tolist()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="the growth benchmark's work folder")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "firefly_steps.json"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = load_task("kws", kws_folder(), progress=False).data
    rows = []
    for seed in (0, 1, 2):
        path = Path(args.work) / f"kws-host-b-{seed}-grown-run" / "checkpoint.pt"
        if not path.exists():
            print(f"skipped: {path} not found (run bench/grow_vs_uniform.py run --settings kws-host-b first)")
            continue
        model, _ = load_checkpoint(path)
        order = torch.randperm(len(task.train), generator=torch.Generator().manual_seed(100 + seed))
        batches = [(task.train.inputs[order[i * 64:(i + 1) * 64]], task.train.labels[order[i * 64:(i + 1) * 64]])
                   for i in range(4)]
        scores(model, batches, 1, 0)  # warm-up (first-call imports)
        reference, reference_seconds = scores(model, batches, 30, 0)
        row = {"seed": seed, "candidates": len(reference), "seconds_30": reference_seconds}
        for steps in (10, 20):
            found, seconds = scores(model, batches, steps, 0)
            row[f"steps_{steps}"] = {**compare(reference, found), "seconds": seconds,
                                     "time_ratio": seconds / reference_seconds}
        other, _ = scores(model, batches, 30, 1)
        row["steps_30_other_init"] = compare(reference, other)
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for key in ("steps_10", "steps_20", "steps_30_other_init"):
        if rows:
            summary[key] = {metric: statistics.median(row[key][metric] for row in rows)
                            for metric in rows[0][key]}
    result = {"benchmark": "firefly_steps", "commit": commit(), "torch": torch.__version__, "top": TOP,
              "threads": args.threads, "rows": rows, "median": summary}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
