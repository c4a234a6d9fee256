"""The ``edgegrow`` command: a thin layer over the library API.

Exit codes: 0 success, 2 bad input (a one-line message, no traceback), 1 failure.
"""
from __future__ import annotations

import argparse
import sys

EXAMPLES = """\
examples:
  edgegrow demo                      grow a seed DS-CNN by splitting; widths and MACs before/after
  edgegrow models                    the model zoo with MACs and parameters
  edgegrow groups ds-cnn --seed      the channel groups of a seed DS-CNN, and which can grow
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgegrow", description="Grow tiny neural networks into the most accurate network a device can afford.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="grow a seed DS-CNN a few steps by simple splitting",
                               description="Grow a seed DS-CNN a few steps by simple splitting (no training).")
    demo.add_argument("--steps", type=int, default=3, help="growth steps (default 3)")
    demo.add_argument("--fraction", type=float, default=0.5,
                      help="share of each group's neurons split per step (default 0.5)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    commands.add_parser("models", help="list the model zoo with MACs and parameters")

    groups = commands.add_parser("groups", help="list a zoo model's channel groups",
                                 description="List the channel groups of a zoo model and why any cannot grow.")
    groups.add_argument("family", help="ds-cnn, mobilenet-v1, mobilenet-v2 or resnet8")
    groups.add_argument("--seed", action="store_true", help="the family's seed instead of the full model")
    return parser


def _demo(args) -> None:
    from .demo import grow_seed_by_splitting

    result = grow_seed_by_splitting(args.steps, args.fraction, args.seed)
    print(f"Seed DS-CNN grown {result.steps} steps by splitting {args.fraction:.0%} of each group per step\n")
    print(f"{'channel group':<18}{'before':>8}{'after':>8}")
    for name, width in result.before.widths.items():
        print(f"{name:<18}{width:>8}{result.after.widths[name]:>8}")
    print(f"\n{'MACs':<18}{result.before.macs:>8,}  →  {result.after.macs:,}")
    print(f"{'parameters':<18}{result.before.parameters:>8,}  →  {result.after.parameters:,}")
    print(f"largest output change (function kept at ε = 0): {result.max_output_change:.1e}")


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
    handlers = {"demo": _demo, "models": _models, "groups": _groups}
    try:
        handlers[args.command](args)
    except ValueError as error:
        print(f"edgegrow {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
