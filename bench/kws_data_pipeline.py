"""Cost of the default KWS data: synthesis once, then feature extraction cold versus from the cache.

    python bench/kws_data_pipeline.py            # synthesises into a temporary folder (about 75 s)
    python bench/kws_data_pipeline.py --data DIR # time only the loading of an existing folder

Loading is timed ``--repeats`` times each way in this one process (cold: an empty cache folder each
time; cached: the folder the first cold load filled); the table gives medians and min–max.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from edgegrow.data.speech_commands import load_speech_commands
from edgegrow.data.synthesize_kws import SynthesisConfig, synthesize_speech_commands


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="an existing Speech Commands folder (skips the synthesis timing)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="espeak-ng processes for the synthesis")
    parser.add_argument("--out", default="bench/results/kws_data_pipeline.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {"threads": args.threads, "workers": args.workers, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.data) if args.data else Path(scratch) / "kws"
        if not args.data:
            report = synthesize_speech_commands(folder, SynthesisConfig(), workers=args.workers, progress=False)
            results["synthesis_seconds"] = report.seconds
            results["clips"] = sum(report.clips.values())
            print(f"synthesis: {results['clips']} clips in {report.seconds:.1f} s ({args.workers} workers)")
        cold = []
        for repeat in range(args.repeats):
            cache = Path(scratch) / f"cache-{repeat}"
            cold.append(timed(lambda: load_speech_commands(folder, cache_dir=cache, progress=False)))
        warm = [timed(lambda: load_speech_commands(folder, cache_dir=Path(scratch) / "cache-0", progress=False))
                for _ in range(args.repeats)]
    results["load_cold_seconds"], results["load_cached_seconds"] = spread(cold), spread(warm)
    results["cold_over_cached"] = statistics.median(cold) / statistics.median(warm)
    print(f"load, cold (decode + augment + MFCC): median {statistics.median(cold):.2f} s "
          f"(min {min(cold):.2f}, max {max(cold):.2f})")
    print(f"load, cached features:              median {statistics.median(warm):.3f} s "
          f"(min {min(warm):.3f}, max {max(warm):.3f})  → {results['cold_over_cached']:.0f}× faster")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
