"""The ``edgegrow`` command: a thin layer over the library API.

Exit codes: 0 success, 2 bad input (a one-line message, no traceback), 1 failure.
"""
from __future__ import annotations

import argparse
import sys

EXAMPLES = """\
examples:
  edgegrow demo                      train a seed DS-CNN on the default synthetic KWS set and grow it
  edgegrow data kws --out data/kws   synthesise a Speech Commands-style set with espeak-ng
  edgegrow models                    the model zoo with MACs and parameters
  edgegrow groups ds-cnn --seed      the channel groups of a seed DS-CNN, and which can grow
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgegrow", description="Grow tiny neural networks into the most accurate network a device can afford.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="train a seed DS-CNN on the default KWS set and grow it by splitting",
        description="Build (or reuse) the default synthetic KWS set, train a seed DS-CNN, grow it a few steps "
                    "by simple splitting with fine-tuning, and print widths, MACs and accuracy before and after.")
    demo.add_argument("--data", metavar="DIR", help="a Speech Commands v2 folder (default: the synthetic set)")
    demo.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: $EDGEGROW_CACHE or ~/.cache/edgegrow)")
    demo.add_argument("--steps", type=int, default=3, help="growth steps (default 3)")
    demo.add_argument("--fraction", type=float, default=0.5,
                      help="share of each group's neurons split per step (default 0.5)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    data = commands.add_parser("data", help="make datasets",
                               description="Make datasets in the layouts edgegrow's loaders read.")
    kinds = data.add_subparsers(dest="kind", required=True, metavar="KIND")
    kws = kinds.add_parser(
        "kws", help="synthesise a keyword-spotting set with espeak-ng (Speech Commands v2 layout)",
        description="Synthesise a keyword-spotting set with espeak-ng in the Google Speech Commands v2 layout: "
                    "10 keywords, 25 other words, _background_noise_/, validation and testing lists. An "
                    "existing folder made with the same settings is reused.",
        epilog="example:\n  edgegrow data kws --out data/kws --per-class 300 --seed 0",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    kws.add_argument("--out", required=True, metavar="DIR", help="folder to create")
    kws.add_argument("--per-class", type=int, default=300, help="clips per keyword (default 300)")
    kws.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    kws.add_argument("--workers", type=int, default=2, help="parallel espeak-ng processes (default 2)")
    kws.add_argument("--quiet", action="store_true", help="no progress bar")

    commands.add_parser("models", help="list the model zoo with MACs and parameters")

    groups = commands.add_parser("groups", help="list a zoo model's channel groups",
                                 description="List the channel groups of a zoo model and why any cannot grow.")
    groups.add_argument("family", help="ds-cnn, mobilenet-v1, mobilenet-v2 or resnet8")
    groups.add_argument("--seed", action="store_true", help="the family's seed instead of the full model")
    return parser


def _demo(args) -> None:
    from .demo import run_demo

    result = run_demo(data=args.data, cache_dir=args.cache_dir, steps=args.steps, fraction=args.fraction,
                      seed=args.seed, progress=not args.quiet)
    before, after = result.before, result.after
    print(f"\nSeed DS-CNN grown {len(result.accuracy_right_after_each_split)} steps by splitting "
          f"{args.fraction:.0%} of each group per step ({result.seconds:.0f} s)\n")
    print(f"{'channel group':<18}{'before':>10}{'after':>12}")
    for name, width in before.widths.items():
        print(f"{name:<18}{width:>10}{after.widths[name]:>12}")
    print(f"{'MACs':<18}{before.macs:>10,}{after.macs:>12,}")
    print(f"{'parameters':<18}{before.parameters:>10,}{after.parameters:>12,}")
    print(f"{'test accuracy':<18}{before.test_accuracy:>10.1%}{after.test_accuracy:>12.1%}")
    print(f"\ndata: {result.data_folder}")


def _data(args) -> None:
    from .data.synthesize_kws import SynthesisConfig, synthesize_speech_commands

    config = SynthesisConfig(per_class=args.per_class, unknown_per_word=max(1, args.per_class // 5), seed=args.seed)
    report = synthesize_speech_commands(args.out, config, workers=args.workers, progress=not args.quiet)
    how = "reused (made earlier with the same settings)" if report.reused else f"made in {report.seconds:.0f} s"
    print(f"{report.folder}: {sum(report.clips.values())} clips, {how}")


def _models(args) -> None:
    from cost_models import count_macs

    from .models import MODELS, example_input

    print(f"{'family':<14}{'MACs':>14}{'parameters':>12}  input")
    for family, build in MODELS.items():
        model = build()
        report = count_macs(model, example_input(model))
        print(f"{family:<14}{report.total:>14,}{report.parameters:>12,}  {model.input_shape}")


def _groups(args) -> None:
    from .growth import find_channel_groups
    from .models import build_model, build_seed, example_input

    model = (build_seed if args.seed else build_model)(args.family)
    for group in find_channel_groups(model, example_input(model)):
        print(group.describe())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"demo": _demo, "data": _data, "models": _models, "groups": _groups}
    try:
        handlers[args.command](args)
    except ValueError as error:
        print(f"edgegrow {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # disk full, permission denied: a failure of the environment, not of the input
        print(f"edgegrow {args.command}: failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgegrow {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
