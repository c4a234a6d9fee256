"""Exact vs fast minimum eigenpairs of S2D splitting matrices on layers with fan-in ≥ 576.

Exact: form every neuron's splitting matrix (C × D × D) and take ``eigh``. Fast: ``S v`` products from
the auxiliary-term trick, Rayleigh–Ritz descent, S never formed. Same model, batch and process;
median and range over repeats; agreement of λ_min between the two.

    python bench/splitting_eigen.py [--repeats 3] [--steps 30] [--out bench/results/splitting_eigen.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgegrow.growth import (
    curvature_sites,
    find_channel_groups,
    growable_groups,
    min_eigenpairs,
    min_eigenpairs_fast,
    splitting_matrices,
)


def model_and_batch(channels: int, size: int, batch: int) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),  # fan-in 9C
        nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * channels), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * channels, 10)).eval()
    return model, (torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,)))


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ranks_a, ranks_b = a.argsort().argsort().double(), b.argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ranks_a, ranks_b]))[0, 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 128],
                        help="widths of the test network (fan-in 9x): 64 -> 576, 128 -> 1152")
    parser.add_argument("--out", default="bench/results/splitting_eigen.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = []
    for channels in args.channels:
        model, batch = model_and_batch(channels, 16, 32)
        groups = growable_groups(find_channel_groups(model, batch[0][:1]))
        sites = {name: site for name, site in curvature_sites(model, groups).items()
                 if model.get_submodule(site.producer).weight[0].numel() >= 576}
        exact_s, fast_s = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            exact = min_eigenpairs(splitting_matrices(model, sites, [batch], F.cross_entropy))
            exact_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            fast = min_eigenpairs_fast(model, sites, [batch], F.cross_entropy, steps=args.steps)
            fast_s.append(time.perf_counter() - start)
        errors = torch.cat([(fast[n].values - exact[n].values.double()).abs()
                            / exact[n].values.double().abs().clamp_min(1e-12) for n in sites])
        # relative to the layer's scale: neurons with λ_min ≈ 0 (a dead ReLU) make plain relative errors huge
        scaled = torch.cat([(fast[n].values - exact[n].values.double()).abs()
                            / exact[n].values.double().abs().max() for n in sites])
        fan_ins = {n: model.get_submodule(s.producer).weight[0].numel() for n, s in sites.items()}
        # what selection uses: the order of λ_min over all neurons, and the quarter picked to split
        exact_all = torch.cat([exact[n].values.double() for n in sites])
        fast_all = torch.cat([fast[n].values.double() for n in sites])
        quarter = max(1, len(exact_all) // 4)
        picked_exact = set(exact_all.argsort()[:quarter].tolist())
        picked_fast = set(fast_all.argsort()[:quarter].tolist())
        row = {"channels": channels, "fan_in": fan_ins, "neurons": int(errors.numel()),
               "exact_s_median": statistics.median(exact_s), "exact_s_range": [min(exact_s), max(exact_s)],
               "fast_s_median": statistics.median(fast_s), "fast_s_range": [min(fast_s), max(fast_s)],
               "speedup": statistics.median(exact_s) / statistics.median(fast_s),
               "lambda_min_within_1_percent": float((errors <= 0.01).double().mean()),
               "lambda_min_median_relative_error": float(errors.median()),
               "lambda_min_within_1_percent_of_layer_scale": float((scaled <= 0.01).double().mean()),
               "lambda_min_worst_error_of_layer_scale": float(scaled.max()),
               "rank_correlation_spearman": _spearman(exact_all, fast_all),
               "most_negative_quarter_overlap": len(picked_exact & picked_fast) / quarter}
        results.append(row)
        print(json.dumps(row))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python bench/splitting_eigen.py " + " ".join(sys.argv[1:]),
                               "steps": args.steps, "repeats": args.repeats, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
