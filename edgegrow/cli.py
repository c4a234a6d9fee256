"""The ``edgegrow`` command: a thin layer over the library API.

Exit codes: 0 success, 2 bad input (a one-line message, no traceback), 1 failure.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

EXAMPLES = """\
examples:
  edgegrow workflow                  data, profile host, grow to a host and a Cortex-M budget, export, bench, report
  edgegrow data kws --out data/kws   synthesise a Speech Commands-style set with espeak-ng
  edgegrow models                    the model zoo with MACs and parameters
  edgegrow groups ds-cnn --seed      the channel groups of a seed DS-CNN, and which can grow
  edgegrow targets                   the device profiles edgegrow knows
  edgegrow cost ds-cnn --target cortex-m4f-120mhz
                                     latency, energy, SRAM and flash of DS-CNN-S on a device
  edgegrow profile --target host     measure this machine's latency table (a few minutes)
  edgegrow grow --task kws --target host --budget latency_ms=0.05 --method fast-split --out runs/kws
                                     grow a seed DS-CNN to a latency budget on this machine
  edgegrow export runs/kws --out exported/kws
                                     ONNX, TFLite float and int8, C array; verified in their runtimes
  edgegrow extend runs/kws --classes bed,cat --out runs/kws-14
                                     learn new words; the old words' answers stay as they were
  edgegrow compare --targets host,cortex-m4f-120mhz,cortex-m7-480mhz --accuracy 85 --quick
                                     grow for each device at a ladder of budgets: which is cheapest for 85 %
  edgegrow bench exported/kws/model_int8.tflite --runtime tflm --target cortex-m4f-120mhz
                                     measure a file in a runtime beside the cost model's prediction
  edgegrow report runs/kws           the run's HTML report: training, widths, accuracy vs cost, costs
  edgegrow grow --config run.toml    any command's flags from a TOML file (keys = flag names)
"""


OPTIMIZER_CHOICES = ("adam", "adamw", "sgd")
SCHEDULE_CHOICES = ("cosine", "one-cycle", "constant", "step")


class _UsageError(Exception):
    """A command line argparse refuses (unknown option, missing or malformed argument)."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, except that a usage error is one line (no usage block) and ``main`` returns 2
    instead of argparse exiting; the subcommands' parsers are of this class too."""

    def error(self, message: str):
        raise _UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def _method_help() -> str:
    from .grow.methods import METHODS
    from .models.registry import FAMILIES

    measured = ", ".join(f"{family.growth['method']} for {name}" for name, family in FAMILIES.items()
                         if "method" in family.growth)
    return (f"growth method: {', '.join(METHODS)} (default: the family's measured one, {measured}; auto for other "
            "families and networks of your own)")


def _add_training_arguments(parser) -> None:
    """The flags of a grow run's training and growth schedule (``GrowConfig``), shared by grow and workflow.
    Each defaults to GrowConfig's value (``--quick``: GrowConfig.quick's)."""
    from .grow import GrowConfig

    defaults = GrowConfig()
    group = parser.add_argument_group("training (one run, one schedule, growth inside it)")
    group.add_argument("--epochs", type=int, metavar="N", help=f"epochs of the whole run (default {defaults.epochs})")
    group.add_argument("--lr", type=float, metavar="RATE",
                       help=f"peak learning rate (default {defaults.learning_rate:g})")
    group.add_argument("--batch-size", type=int, metavar="N",
                       help=f"examples per batch (default {defaults.batch_size})")
    group.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, help=f"default {defaults.optimizer}")
    group.add_argument("--weight-decay", type=float, metavar="DECAY", help=f"default {defaults.weight_decay:g}")
    group.add_argument("--schedule", choices=SCHEDULE_CHOICES, help=f"learning-rate schedule after the warm-up "
                                                                    f"(default {defaults.schedule})")
    group.add_argument("--warmup", type=float, metavar="EPOCHS",
                       help=f"epochs of linear warm-up (default {defaults.warmup_epochs:g})")
    group.add_argument("--label-smoothing", type=float, metavar="SHARE", help=f"default {defaults.label_smoothing:g}")
    group.add_argument("--growth-start", type=float, metavar="SHARE",
                       help=f"share of the run before the first growth event (default {defaults.growth_start:g})")
    group.add_argument("--growth-end", type=float, metavar="SHARE",
                       help=f"share of the run by which growth ends (default {defaults.growth_end:g})")
    group.add_argument("--growth-every", type=float, metavar="EPOCHS",
                       help=f"epochs between growth events, fractions allowed (default {defaults.growth_every:g})")
    group.add_argument("--shrink", type=float, metavar="FACTOR",
                       help="scale old convolutions by this at each event (1: off; default: the family's, "
                            "0.5 for DS-CNN, 1 for the others)")
    group.add_argument("--new-units", choices=("fresh", "method"),
                       help=f"how new units start: fresh (default fan-in, zero fan-out) or as the method proposes "
                            f"(split twins) (default {defaults.new_units})")
    group.add_argument("--seed-width", type=_seed_width, metavar="auto|seed|MULTIPLIER",
                       help="the seed: auto (default) is the family's reference network at half the width of the "
                            "largest uniform network that fits the budget; seed, the family's seed of a few "
                            "channels per layer; a number, the reference network at that width multiplier "
                            "(e.g. 0.25 of DS-CNN-S)")
    group.add_argument("--device", metavar="auto|cpu|cuda[:N]|mps",
                       help="where to train and score growth (default auto: a CUDA GPU where there is one, else the "
                            "CPU; mps only when asked, untested); a run resumes on another device")
    group.add_argument("--sync-batch-norm", action="store_true",
                       help="under torchrun: BatchNorm normalises with the global batch's statistics, so the run is "
                            "the one a single process makes (slower: every process waits for the others at every "
                            "BatchNorm); default: each process's own share of the batch, as plain DDP")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard scalars of every epoch and growth event to RUN_DIR/tensorboard "
                             '(needs pip install "edgegrow[tensorboard]"; epochs.csv and growth.csv are always written)')
    group.add_argument("--retrain", action="store_true",
                       help="also train the found architecture from scratch with the same schedule and keep the "
                            "better of the two by validation accuracy (a second run's training compute)")
    group.add_argument("--restart", action=argparse.BooleanOptionalAction,
                       help="growth as search within the run: once growth ends (--growth-end, rounded up to a whole "
                            "epoch), train the found architecture for the remaining epochs (from its grown weights "
                            "blended with fresh ones, --restart-keep) and "
                            "keep the better of the two by validation accuracy (one run's training compute; "
                            "default: the family's, on for DS-CNN, off for the others and with --retrain)")
    group.add_argument("--restart-keep", type=float, metavar="SHARE",
                       help="how much of the grown network a restart keeps: its weights' directions blended with a "
                            "fresh draw's (0: fresh weights, 1: the grown weights; default "
                            f"{defaults.restart_keep:g})")


def _seed_width(text: str) -> float | str:
    if text in ("auto", "seed"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, seed or a width multiplier, got {text!r}") from None


TRAINING_FLAGS = {"epochs": "epochs", "lr": "learning_rate", "batch_size": "batch_size", "optimizer": "optimizer",
                  "weight_decay": "weight_decay", "schedule": "schedule", "warmup": "warmup_epochs",
                  "label_smoothing": "label_smoothing", "growth_start": "growth_start", "growth_end": "growth_end",
                  "growth_every": "growth_every", "shrink": "shrink", "new_units": "new_units", "device": "device",
                  "restart_keep": "restart_keep"}


def _training_settings(args) -> dict:
    """The GrowConfig fields the command line sets (flags given), by GrowConfig name."""
    settings = {field: getattr(args, flag) for flag, field in TRAINING_FLAGS.items() if getattr(args, flag) is not None}
    if args.retrain:
        settings["retrain"] = True
    if args.restart is not None:
        settings["restart"] = args.restart
    if getattr(args, "sync_batch_norm", False):
        settings["sync_batch_norm"] = True
    return settings


@dataclass(frozen=True)
class Command:
    """One command of the CLI: its name (``"data kws"`` for one under ``data``), the function that adds its
    parser to a subparsers object, and the handler that runs it (``args`` → a JSON-able result for ``--json``)."""

    name: str
    parser: Callable
    handler: Callable


def _commands() -> tuple[Command, ...]:
    return (
        Command("workflow", _workflow_parser, _workflow),
        Command("data kws", _data_kws_parser, _data_kws),
        Command("data fonts", _data_fonts_parser, _data_fonts),
        Command("models", _models_parser, _models),
        Command("groups", _groups_parser, _groups),
        Command("targets", _targets_parser, _targets),
        Command("cost", _cost_parser, _cost),
        Command("profile", _profile_parser, _profile),
        Command("grow", _grow_parser, _grow),
        Command("export", _export_parser, _export),
        Command("extend", _extend_parser, _extend),
        Command("compare", _compare_parser, _compare),
        Command("bench", _bench_parser, _bench),
        Command("report", _report_parser, _report),
    )


COMMON_FLAGS_HELP = {
    "quiet": "no progress bars and no messages (errors still go to stderr; the exit code tells)",
    "json": "print the result as one JSON document on stdout (messages go to stderr)",
    "config": "read flags from a TOML file (keys = flag names, e.g. cache-dir = \"x\"); flags given here win",
}


def _parser() -> argparse.ArgumentParser:
    """The whole command line, built from the table of commands (``_commands``): every command gets
    ``--quiet``, ``--json`` and ``--config``, and its handler as ``args.handler``. ``parser.commands``
    maps each command's name to its parser (``cli_config`` reads it)."""
    parser = _Parser(
        prog="edgegrow", description="Grow tiny neural networks into the most accurate network a device can afford.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups = {}  # "data" → its subparsers, made when its first command comes (the help lists them in table order)
    parser.commands = {}
    for command in _commands():
        group, _, _ = command.name.rpartition(" ")
        if group and group not in groups:
            groups[group] = GROUPS[group](commands)
        sub = command.parser(groups[group] if group else commands)
        sub.set_defaults(handler=command.handler)
        sub.add_argument("--quiet", action="store_true", help=COMMON_FLAGS_HELP["quiet"])
        sub.add_argument("--json", action="store_true", help=COMMON_FLAGS_HELP["json"])
        sub.add_argument("--config", metavar="FILE.toml", help=COMMON_FLAGS_HELP["config"])
        parser.commands[command.name] = sub
    return parser


def _data_group(commands):
    """``edgegrow data``: a command whose subcommands (``data kws``, ``data fonts``) make datasets."""
    data = commands.add_parser("data", help="make datasets",
                               description="Make datasets in the layouts edgegrow's loaders read.")
    return data.add_subparsers(dest="kind", required=True, metavar="KIND")


GROUPS = {"data": _data_group}


def _add_data_arguments(parser) -> None:
    """--data and --family, for the commands that load a task (grow, workflow)."""
    from .models.registry import describe_families

    parser.add_argument("--data", metavar="DIR", help="kws: a Speech Commands folder (default: the synthetic set); "
                                                      "image: an image folder or CIFAR-10 (default: digits)")
    parser.add_argument("--family", help=f"the seed family: {describe_families()}")


def _add_cache_dir_argument(parser) -> None:
    parser.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: $EDGEGROW_CACHE or ~/.cache/edgegrow)")


def _workflow_parser(commands) -> argparse.ArgumentParser:
    """The 'workflow' command's parser, added to ``commands``."""
    from .models.registry import TASKS

    workflow = commands.add_parser(
        "workflow", help="the whole path: data, profile, grow for host and a microcontroller, export, bench, report",
        description="From device budgets to deployable, benchmarked models and a report in one command: make (or "
                    "reuse) the task's data, measure this machine as the 'host' target (quick grid; reused once "
                    "measured), grow a seed to a latency budget on host and to a latency + SRAM + flash budget on a "
                    "microcontroller, train the family's uniform baselines, export both grown networks (ONNX, TFLite "
                    "float and int8, C array; verified in their runtimes), benchmark the exports and write "
                    "report.html per run and index.html over everything. Budgets not given are the reference "
                    "network's predicted cost on each target (DS-CNN-S x0.5 for kws, MobileNetV2 x0.35 for image).",
        epilog="examples:\n  edgegrow workflow                                   keyword spotting on the default "
               "synthetic set (~5 min on 2 cores)\n"
               "  edgegrow workflow --task image                      MobileNetV2 on the digits set (~5 min)\n"
               "  edgegrow workflow --data data/speech_commands_v2 --host-budget latency_ms=0.05 \\\n"
               "      --mcu-target cortex-m7-480mhz --mcu-budget latency_ms=20 --mcu-budget sram_kb=64 "
               "--mcu-budget flash_kb=256\n"
               "  edgegrow workflow --quick --out runs/smoke            a few minutes, fewer epochs and runs",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    workflow.add_argument("--task", default="kws", choices=TASKS, help="kws (default) or image")
    _add_data_arguments(workflow)
    workflow.add_argument("--out", metavar="DIR", help="results folder (default runs/TASK-DATE-TIME)")
    workflow.add_argument("--host-budget", action="append", metavar="METRIC=VALUE",
                          help="budget on host; repeat for several (default: the reference's latency)")
    workflow.add_argument("--mcu-target", default="cortex-m4f-120mhz",
                          help="the microcontroller profile (default cortex-m4f-120mhz)")
    workflow.add_argument("--mcu-budget", action="append", metavar="METRIC=VALUE",
                          help="budget on the microcontroller; repeat (default: the reference's latency, SRAM, flash)")
    workflow.add_argument("--format", default="all", help="export formats (default all)")
    workflow.add_argument("--reprofile", action="store_true", help="measure host again even if a profile exists")
    _add_grow_runs_arguments(workflow, quick_help="fewer epochs, steps and timed runs (a smoke run)")
    return workflow


def _add_grow_runs_arguments(parser, *, quick_help: str) -> None:
    """--method, --quick, --seed, --cache-dir and the training flags: for the commands that make grow runs
    of their own (workflow, compare)."""
    parser.add_argument("--method", help=_method_help())
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_cache_dir_argument(parser)
    _add_training_arguments(parser)


def _compare_parser(commands) -> argparse.ArgumentParser:
    """The 'compare' command's parser, added to ``commands``."""
    from .compare import DEFAULT_TARGETS, RANK_METRICS
    from .models.registry import TASKS

    compare = commands.add_parser(
        "compare", help="grow for several devices at a ladder of budgets: what each budget buys, which device is "
                        "cheapest for an accuracy",
        description="Grow a network for every target at every rung of a ladder of budgets (a rung: the predicted "
                    "cost of the family's reference network at that width on the target; latency, and on a "
                    "microcontroller also SRAM and flash), measure what this machine can (host latency in "
                    "onnxruntime; a microcontroller's TFLite Micro arena and int8 file size), and write "
                    "comparison.html (accuracy against latency, energy, SRAM and flash, every device on each chart) "
                    "and comparison.json. With --accuracy: per device the cheapest rung that reaches it on the "
                    "validation split, and the cheapest device.",
        epilog="examples:\n  edgegrow compare --quick                                  the default targets, a "
               "smoke run (two minutes on 2 cores)\n"
               "  edgegrow compare --targets cortex-m4f-120mhz,cortex-m7-480mhz --accuracy 88 --rank-by energy_mj\n"
               "  edgegrow compare --targets cortex-m4f-120mhz,cortex-m7-480mhz --accuracy 88 "
               "--price cortex-m4f-120mhz=6.5 --price cortex-m7-480mhz=9\n"
               "  edgegrow compare --budget sram_kb=16 --ladder 0.25,0.5,0.75,1,1.5 --out runs/boards\n"
               "  edgegrow compare --resume --out runs/boards                continue a killed comparison",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("--targets", default=",".join(DEFAULT_TARGETS), metavar="A,B,C",
                         help=f"the devices, names from 'edgegrow targets' or profile files (default "
                              f"{','.join(DEFAULT_TARGETS)})")
    compare.add_argument("--task", default="kws", choices=TASKS, help="kws (default) or image")
    _add_data_arguments(compare)
    compare.add_argument("--out", metavar="DIR", help="results folder (default runs/compare-TASK-DATE-TIME)")
    compare.add_argument("--ladder", type=_ladder, metavar="W,W,...",
                         help="the rungs, width multipliers of the reference network (default: the family's baseline "
                              "widths, 0.25,0.5,1 of DS-CNN-S; 0.35,0.5,0.75 of MobileNet)")
    compare.add_argument("--seeds", type=int, default=1, metavar="N",
                         help="grow runs per rung, random seeds --seed, --seed + 1, …: each rung's figures are their "
                              "medians (default 1)")
    compare.add_argument("--budget", action="append", metavar="METRIC=VALUE",
                         help="a limit on every rung of every device; repeat for several (e.g. sram_kb=64)")
    compare.add_argument("--accuracy", type=float, metavar="PERCENT",
                         help="an accuracy target in percent (e.g. 88): the cheapest device and budget that reach it")
    compare.add_argument("--rank-by", default="latency_ms", choices=RANK_METRICS,
                         help="the cost devices are ranked by when no price is given (default latency_ms)")
    compare.add_argument("--price", action="append", metavar="TARGET=PRICE",
                         help="a device's unit price, for --accuracy; repeat per device")
    compare.add_argument("--no-measure", action="store_true", help="predicted figures only: no export, no timing")
    compare.add_argument("--resume", action="store_true", help="continue the comparison killed in --out")
    _add_grow_runs_arguments(compare, quick_help="short runs, fewer timed runs (a smoke run)")
    return compare


def _ladder(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected width multipliers separated by commas, e.g. 0.25,0.5,1; got "
                                         f"{text!r}") from None


def _prices(items: list[str] | None) -> dict[str, float]:
    prices: dict[str, float] = {}
    for item in items or ():
        name, separator, text = item.partition("=")
        try:
            price = float(text)
        except ValueError:
            price = None
        if not separator or not name.strip() or price is None:
            raise ValueError(f"--price {item!r} is not TARGET=PRICE; e.g. --price cortex-m4f-120mhz=6.5")
        if name.strip() in prices:
            raise ValueError(f"--price {name.strip()} is given twice")
        prices[name.strip()] = price
    return prices


def _data_kws_parser(commands) -> argparse.ArgumentParser:
    """The 'data kws' command's parser, added to ``commands``."""
    kws = commands.add_parser(
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
    return kws


def _data_fonts_parser(commands) -> argparse.ArgumentParser:
    """The 'data fonts' command's parser, added to ``commands``."""
    fonts = commands.add_parser(
        "fonts", help="render the 62 characters 0-9, A-Z, a-z from this machine's fonts (an image-folder set)",
        description="Render 0-9, A-Z and a-z from every installed font that draws them all, into ROOT/{train,val,"
                    "test}/CLASS/*.png, with whole font families held out for the test split (an image task "
                    "harder than digits: read shapes of fonts never seen). An existing folder made with the same "
                    "settings and fonts is reused.",
        epilog="example:\n  sh scripts/install-fonts.sh && edgegrow data fonts --out data/fonts\n"
               "  edgegrow grow --task image --data data/fonts --family mobilenet-v2 --target host "
               "--budget latency_ms=0.2 --out runs/fonts",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    fonts.add_argument("--out", required=True, metavar="DIR", help="folder to create")
    fonts.add_argument("--renders", type=int, default=2, help="images per font and character (default 2)")
    fonts.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    fonts.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return fonts


def _models_parser(commands) -> argparse.ArgumentParser:
    """The 'models' command's parser, added to ``commands``."""
    return commands.add_parser("models", help="list the model zoo with MACs and parameters")


def _groups_parser(commands) -> argparse.ArgumentParser:
    """The 'groups' command's parser, added to ``commands``."""
    from .models.registry import FAMILIES

    groups = commands.add_parser("groups", help="list a zoo model's channel groups",
                                 description="List the channel groups of a zoo model and why any cannot grow.")
    groups.add_argument("family", help=", ".join(FAMILIES))
    groups.add_argument("--seed", action="store_true", help="the family's seed instead of the full model")
    return groups


def _targets_parser(commands) -> argparse.ArgumentParser:
    """The 'targets' command's parser, added to ``commands``."""
    return commands.add_parser("targets", help="list the device profiles (targets)")


def _cost_parser(commands) -> argparse.ArgumentParser:
    """The 'cost' command's parser, added to ``commands``."""
    from .models.registry import FAMILIES

    cost = commands.add_parser("cost", help="estimate a zoo model's cost on a target",
                               description="Latency, energy, SRAM and flash of a zoo model on a target, per kernel.")
    cost.add_argument("family", help=", ".join(FAMILIES))
    cost.add_argument("--target", required=True, help="a name from 'edgegrow targets' or a profile .json")
    cost.add_argument("--seed", action="store_true", help="the family's seed instead of the full model")
    return cost


def _profile_parser(commands) -> argparse.ArgumentParser:
    """The 'profile' command's parser, added to ``commands``."""
    profile = commands.add_parser(
        "profile", help="measure a latency table on this machine",
        description="Time single-kernel models (conv, depthwise, pointwise, fully connected, pooling, add; fused "
                    "with their activation) over a grid of shapes on this machine and write a target profile. "
                    "An interrupted run resumes where it stopped.",
        epilog="examples:\n  edgegrow profile --target host --quick\n"
               "  edgegrow profile --target pixel7 --write-suite suite/   # then on the phone: "
               "python runner.py suite/ --out pixel7.jsonl\n"
               "  edgegrow profile --target pixel7 --from-measurements pixel7.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    profile.add_argument("--target", required=True, help="name of the profile to write")
    profile.add_argument("--runtime", choices=("onnxruntime", "litert"), default="onnxruntime",
                         help="onnxruntime (default), or litert: TFLite's float kernels with XNNPACK through "
                              "ai-edge-litert, as a phone runs them (each kernel converted by litert-torch: about "
                              "a second each, kept beside the profile)")
    profile.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    profile.add_argument("--quick", action="store_true", help="a smaller grid in fewer rounds (about a minute)")
    profile.add_argument("--out", metavar="FILE", help="profile to write (default: ~/.edgegrow/targets/NAME.json "
                                                       "or the first folder of $EDGEGROW_TARGETS)")
    profile.add_argument("--write-suite", metavar="DIR",
                         help="only write the single-kernel models and suite.json for runner.py on another device")
    profile.add_argument("--from-measurements", metavar="FILE",
                         help="build the profile from runner.py's measurements instead of measuring here")
    profile.add_argument("--from-op-profile", metavar="FILE",
                         help="build (or extend, if --out exists) the profile from TFLite benchmark_model "
                              "--enable_op_profiling output of the zoo model named by --model")
    profile.add_argument("--model", metavar="FAMILY", help="with --from-op-profile: the zoo family profiled")
    profile.add_argument("--calibrate", metavar="CSV",
                         help="write profile --target by scaling the analytic profile --base to whole models measured "
                              "on the device: a CSV 'model,measured_ms' (model: a zoo family, FAMILY@WIDTH, a run "
                              "folder or checkpoint)")
    profile.add_argument("--base", metavar="PROFILE", help="with --calibrate: the analytic profile to calibrate")
    return profile


def _grow_parser(commands) -> argparse.ArgumentParser:
    """The 'grow' command's parser, added to ``commands``."""
    from .models.registry import TASKS

    grow = commands.add_parser(
        "grow", help="grow a seed network to a device budget",
        description="Train a seed network in one run with one learning-rate schedule; at growth events inside "
                    "it (every --growth-every epochs until --growth-end of the run) score growth candidates, keep "
                    "the ones with the most predicted loss decrease per unit of the target's cost under the event's "
                    "share of the budget and apply them, carrying the optimizer's state. With --retrain, also train "
                    "the found architecture from scratch and keep the better by validation accuracy; with --restart "
                    "(DS-CNN's default) train it from scratch for the epochs left once growth ends. Writes "
                    "log.jsonl, checkpoint.pt and summary.json to --out.",
        epilog="budget metrics: latency_ms, energy_mj, macs, params, sram_kb, flash_kb (repeat --budget for several)\n"
               "methods: split (S2D, exact), fast-split, signed-split, firefly, tiny, auto (splitting, TINY or "
               "gradient-new per group), gradient-new, random-split (alias random), random-new\n\nexamples:\n"
               "  edgegrow grow --task kws --target host --budget latency_ms=0.05 --out runs/kws-host\n"
               "  edgegrow grow --task kws --target cortex-m4f-120mhz --budget latency_ms=40 --budget sram_kb=64 "
               "--method firefly --out runs/kws-m4\n"
               "  edgegrow grow --task kws --target host --budget latency_ms=0.05 --seed-width 0.25 --epochs 40 "
               "--growth-end 0.3 --retrain --out runs/kws-search",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    grow.add_argument("--task", choices=TASKS, help="required unless --resume RUN_DIR")
    grow.add_argument("--target", help="a name from 'edgegrow targets' or a profile .json (required unless "
                                       "--resume RUN_DIR)")
    grow.add_argument("--budget", action="append", metavar="METRIC=VALUE",
                      help="an upper limit, e.g. latency_ms=0.05; repeat for several (required unless --resume RUN_DIR)")
    grow.add_argument("--method", help=_method_help())
    _add_data_arguments(grow)
    grow.add_argument("--out", metavar="RUN_DIR",
                      help="folder for log.jsonl, checkpoint.pt, summary.json (required unless --resume RUN_DIR)")
    grow.add_argument("--resume", nargs="?", const=True, metavar="RUN_DIR",
                      help="continue a run after its last finished epoch: --resume RUN_DIR alone takes every setting "
                           "from RUN_DIR/run.json (a flag that says otherwise is an error); --resume with the run's "
                           "flags continues the run in --out")
    grow.add_argument("--quick", action="store_true", help="few epochs and steps (a smoke run)")
    grow.add_argument("--seed", type=int, help="random seed (default 0)")
    _add_cache_dir_argument(grow)
    _add_training_arguments(grow)
    return grow


def _export_parser(commands) -> argparse.ArgumentParser:
    """The 'export' command's parser, added to ``commands``."""
    export = commands.add_parser(
        "export", help="export a grown model to ONNX, TFLite (float, int8) and a C array, verified",
        description="Write a grown model as ONNX (float, int8) and TFLite (float NHWC, full-integer int8) files and "
                    "a C array of the int8 model for TFLite Micro, with labels.txt, model_card.json/.md and "
                    "pipeline.py. Every file is checked in its runtime (onnxruntime, ai-edge-litert, TFLite Micro) "
                    "against PyTorch before the folder appears; int8 files are calibrated on the task's training "
                    "data and their accuracy is measured on its test split.",
        epilog="formats: onnx, onnx-int8, tflite, tflite-int8, c (the C array of the int8 TFLite model), or all\n\n"
               "examples:\n  edgegrow export runs/kws-host --out exported/kws-host\n"
               "  edgegrow export runs/kws-m4/checkpoint.pt --format tflite-int8,c --out exported/kws-m4 --force",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT",
                        help="a folder made by 'edgegrow grow', or its checkpoint.pt")
    export.add_argument("--format", default="all", help="comma-separated formats (default all)")
    export.add_argument("--out", metavar="DIR", help="output folder (default exported/RUN_NAME)")
    export.add_argument("--force", action="store_true", help="replace an existing output folder")
    export.add_argument("--data", metavar="DIR", help="the task data, if not where the run found it")
    export.add_argument("--calibration", type=int, default=300, metavar="N",
                        help="training examples that calibrate the int8 files (default 300)")
    _add_cache_dir_argument(export)
    return export


def _extend_parser(commands) -> argparse.ArgumentParser:
    """The 'extend' command's parser, added to ``commands``."""
    from .extend import ExtendConfig

    defaults = ExtendConfig()
    extend = commands.add_parser(
        "extend", help="teach a grown KWS model new words without changing its answers on the old ones",
        description="Add new words as classes to a grown keyword-spotting network. Its weights are frozen; every "
                    "layer gets new neurons that read the old and new ones, old neurons never read new ones, and the "
                    "head gets a row per new word, so the old classes' logits stay the old network's (to float "
                    "rounding) on every input. The new neurons train on the new words' clips and the old classes' "
                    "(all of them, or --replay N of each keyword and the generic classes whole). Writes checkpoint.pt and extend.json to --out, and the exported files, "
                    "each checked against the old network, to --out/exported.",
        epilog="examples:\n  edgegrow extend runs/kws-host --classes bed,bird,cat,dog,eight --out runs/kws-host-17\n"
               "  edgegrow extend runs/kws-m4 --classes happy,house --target cortex-m4f-120mhz --budget latency_ms=60 "
               "--budget sram_kb=16 --out runs/kws-m4-14",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    extend.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT", help="a KWS run made by 'edgegrow grow' (or "
                                                                        "'edgegrow extend'), or its checkpoint.pt")
    extend.add_argument("--classes", required=True, metavar="WORD,WORD",
                        help="the new words: folders of the data (from the 'unknown' words of the set)")
    extend.add_argument("--out", required=True, metavar="RUN_DIR", help="folder for checkpoint.pt, extend.json, exported/")
    extend.add_argument("--data", metavar="DIR", help="a Speech Commands folder with the new words (default: the "
                                                      "data the run used)")
    extend.add_argument("--target", help="the target the budget is on (default: the run's)")
    extend.add_argument("--budget", action="append", metavar="METRIC=VALUE",
                        help="an upper limit for the extended network, e.g. latency_ms=0.05 (repeat for several); "
                             "without one, every layer grows by --width-increase")
    extend.add_argument("--width-increase", type=float, metavar="SHARE",
                        help="share of each layer's width to add (default: the largest that fits the budget, up to 1; "
                             "0.25 without a budget)")
    extend.add_argument("--replay", type=_replay_count, default=defaults.replay_per_class, metavar="N|all",
                        help="training clips replayed of each old keyword (default all the data holds; 0: none, "
                             "with --replay-whole none no old clip at all)")
    extend.add_argument("--replay-whole", type=_class_list, default=defaults.replay_whole, metavar="CLASS,CLASS|none",
                        help="old classes replayed whole whatever --replay says (default: the generic ones, "
                             "_unknown_ and _silence_: other words are what a new word is most often taken for)")
    extend.add_argument("--epochs", type=int, default=defaults.epochs,
                        help=f"epochs of training the new neurons (default {defaults.epochs})")
    extend.add_argument("--lr", type=float, default=defaults.learning_rate,
                        help=f"peak learning rate (default {defaults.learning_rate:g})")
    extend.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    extend.add_argument("--format", default="all", help="export formats, comma-separated, or none (default all)")
    _add_cache_dir_argument(extend)
    return extend


def _bench_parser(commands) -> argparse.ArgumentParser:
    """The 'bench' command's parser, added to ``commands``."""
    bench = commands.add_parser(
        "bench", help="time an exported file in its runtime beside the cost model's prediction",
        description="Latency (median, p90 after warm-up), peak memory and, for TFLite Micro, the arena of an "
                    "exported model, measured in a fresh process, beside the cost model's prediction for --target "
                    "(read "
                    "from model_card.json next to the file). The result is appended to that card's 'measured' list.",
        epilog="examples:\n  edgegrow bench exported/kws/model.onnx --runtime onnxruntime\n"
               "  edgegrow bench exported/kws/model.tflite --runtime litert --threads 4 --target cortex-a76\n"
               "  edgegrow bench exported/kws/model_int8.tflite --runtime tflm --target cortex-m4f-120mhz",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("file", metavar="FILE", help="a .onnx or .tflite file")
    bench.add_argument("--runtime", required=True, choices=("onnxruntime", "litert", "tflm"))
    bench.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    bench.add_argument("--target", default="host", help="target whose prediction to show (default host)")
    bench.add_argument("--runs", type=int, default=200, help="timed runs (default 200)")
    bench.add_argument("--warmup", type=int, default=20, help="untimed runs first (default 20)")
    bench.add_argument("--rounds", type=int,
                       help="rounds the timed runs are spread over, a probe timed before each to find the ones the "
                            "machine ran slow (default 8, or --runs when fewer)")
    bench.add_argument("--no-record", action="store_true", help="do not append the result to model_card.json")
    return bench


def _report_parser(commands) -> argparse.ArgumentParser:
    """The 'report' command's parser, added to ``commands``."""
    report = commands.add_parser(
        "report", help="write a grow run's HTML report (grow writes one too)",
        description="Write RUN_DIR/report.html: training curves with growth events, width per layer over the steps, "
                    "accuracy against cost with the budget (and baselines, if given), predicted against measured "
                    "latency (from an export's model card, if given), and the final model's cost on every target.",
        epilog="examples:\n  edgegrow report runs/kws-host\n"
               "  edgegrow report runs/kws-host --export exported/kws-host --baselines baselines.json\n\n"
               "baselines.json: [{\"name\": \"ds-cnn x0.5\", \"latency_ms\": 0.039, \"accuracy\": 0.87}, ...]",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("run_dir", metavar="RUN_DIR", help="a folder made by 'edgegrow grow'")
    report.add_argument("--export", metavar="DIR",
                        help="the run's export folder (model_card.json), for measured latency")
    report.add_argument("--baselines", metavar="FILE.json",
                        help="other networks to compare with: a JSON list of {name, latency_ms, accuracy}")
    return report


def _grow(args):
    from cost_models import load_target

    from .baseline import seed_width_for
    from .grow import GrowConfig, TensorBoardLog, grow
    from .growth.budget import Budget
    from .tasks import load_task
    from .training import resolve_device
    from .training.distributed import current_world, rank_zero_first

    recorded_seed_options = None
    if isinstance(args.resume, str):
        config, recorded_seed_options = _resume_settings(args)
    else:
        if args.resume and args.out is not None:  # the run's own seed, not one the width search finds today
            from .grow.run_folder import STATE, RunFolder

            folder = RunFolder(args.out)
            if not folder.holds_run():  # say so before loading data and searching widths
                raise ValueError(f"nothing to resume in {args.out}: it has no {STATE} (run without --resume to start)")
            recorded_seed_options = (folder.read_record() or {}).get("seed_options")
        missing = [f"--{name}" for name in ("task", "target", "budget", "out") if getattr(args, name) is None]
        if missing:
            raise ValueError(f"grow needs {', '.join(missing)} (or --resume RUN_DIR to continue a run)")
        config = (GrowConfig.quick if args.quick else GrowConfig)(method=args.method, seed=args.seed or 0,
                                                                  **_training_settings(args))
    budget = Budget.parse(args.budget)
    target = load_target(args.target)
    resolve_device(config.device)  # a device this machine lacks is said before the data loads
    callbacks = [TensorBoardLog(Path(args.out) / "tensorboard")] if args.tensorboard else []  # before the data
    # under torchrun rank 0 fills the feature cache first and the others read it
    task = rank_zero_first(current_world(), lambda: load_task(args.task, args.data, family=args.family,
                                                              cache_dir=args.cache_dir, progress=not args.quiet))
    if recorded_seed_options is not None:
        task = task.with_seed_width(recorded_seed_options.get("width_multiplier"))
    else:
        seed_width = "auto" if args.seed_width is None else args.seed_width  # None: not given
        task = task.with_seed_width(seed_width_for(task, target, budget, seed_width))
    print(task.data.summary())
    resolved = config.for_family(task.family, len(task.data.train))
    if args.restart_keep is not None:
        why = config.no_restart_reason(task.family, len(task.data.train))
        if why:
            print(f"note: --restart-keep {args.restart_keep:g} has no effect: {why}")
    restart = (f", then the found architecture from {resolved.restart_start} for the last {resolved.epochs - resolved.search_epochs}"
               if resolved.restart else "")
    print(f"growing a {task.family} seed on {target.name} to {budget.describe()} with {resolved.method}: "
          f"{config.epochs} epochs, growth by {config.growth_end:.0%} of the run{restart}")
    result = grow(task.seed(), task.data, target, budget, config, args.out, family=task.family,
                  seed_options=task.seed_options, resume=bool(args.resume), progress=not args.quiet,
                  task_source=task.source, callbacks=callbacks)
    summary = result.summary
    print(f"\n{summary.describe()}")
    print(f"run folder: {result.out_dir} (log.jsonl, checkpoint.pt, summary.json, report.html)")
    from dataclasses import asdict

    return {"run_dir": str(result.out_dir), **asdict(summary)}


def _same_target(given: str, record: dict) -> bool:
    """Whether ``--target given`` names the profile a run recorded: the same file, or a profile of the
    same name (where the recorded file has moved)."""
    from cost_models import load_target

    recorded = record.get("target_profile")
    if recorded and Path(given).is_file() and Path(given).resolve() == Path(recorded).resolve():
        return True
    try:
        return load_target(given).name == record.get("target")
    except ValueError:
        return False


def _resume_settings(args):
    """``--resume RUN_DIR`` alone: the run's task, data, family, target, budget, seed and settings from its
    run.json, written into ``args``; a flag given that says otherwise is a ValueError naming both values.
    Returns the run's GrowConfig and its seed options."""
    from dataclasses import fields, replace

    from .grow import GrowConfig
    from .grow.run_folder import RUN, RunFolder
    from .growth.budget import Budget

    folder = Path(args.resume)
    if args.out is not None and Path(args.out).resolve() != folder.resolve():
        raise ValueError(f"--resume {folder} and --out {args.out} name two runs; give one of them")
    record = RunFolder(folder).read_record() if folder.is_dir() else None
    if not record or "config" not in record:
        raise ValueError(f"{folder} has no readable {RUN}: not a grow run folder, or one that never started "
                         "(start it with --task, --target, --budget and --out)")
    source = record.get("task_source") or {}
    if not source.get("task"):
        raise ValueError(f"the run in {folder} was started from the Python API on data of its own, which the command "
                         "line cannot load; continue it with edgegrow.grow.grow(..., resume=True)")
    recorded = {"task": source.get("task"), "data": source.get("data"), "family": record.get("family"),
                # the profile file it was priced with; where that is gone, the target's name (resume notes a change)
                "target": record.get("target_profile") if record.get("target_profile") and
                Path(record["target_profile"]).is_file() else record.get("target"),
                "budget": Budget(record["budget"]).limits}
    given = {"task": args.task, "data": args.data, "family": args.family, "target": args.target,
             "budget": Budget.parse(args.budget).limits if args.budget else None}
    for name, value in given.items():
        if value is None or value == recorded[name]:
            continue
        if name == "data" and recorded[name] is not None and Path(value).resolve() == Path(recorded[name]).resolve():
            continue
        if name == "target" and _same_target(value, record):
            recorded["target"] = value  # e.g. the profile moved: the file given now
            continue
        raise ValueError(f"--{name} {value} contradicts the run in {folder} ({recorded[name]}); drop it to resume, "
                         "or start a new run with another --out")
    config = GrowConfig.from_dict(record["config"])
    if args.device is not None:  # where, not what: a run started on a GPU goes on on a CPU and the other way round
        config = replace(config, device=args.device)
    quick = GrowConfig.quick() if args.quick else GrowConfig()
    wanted = {**{f.name: getattr(quick, f.name) for f in fields(GrowConfig)  # what --quick changes, then the flags
                 if getattr(quick, f.name) != getattr(GrowConfig(), f.name)},
              "method": GrowConfig(method=args.method).method if args.method else None, "seed": args.seed,
              **_training_settings(args)}
    for name, value in wanted.items():
        if value is not None and value != getattr(config, name):
            flag = {v: k for k, v in TRAINING_FLAGS.items()}.get(name, name).replace("_", "-")
            given_by = flag if name in ("method", "seed") or name in _training_settings(args) else "quick"
            raise ValueError(f"--{given_by} asks for {name} {value!r} but the run in {folder} has "
                             f"{getattr(config, name)!r}; drop it to resume, or start a new run with another --out")
    if args.seed_width is not None:
        raise ValueError(f"--seed-width has no effect when resuming: the run in {folder} keeps its seed; drop it")
    args.task, args.data, args.family, args.target = (recorded["task"], recorded["data"], recorded["family"],
                                                      recorded["target"])
    args.budget = [f"{metric}={value!r}" for metric, value in recorded["budget"].items()]
    args.out = str(folder)
    return config, record.get("seed_options") or {}


def _export(args):
    from .export import export_checkpoint

    if args.calibration < 1:
        raise ValueError(f"--calibration must be at least 1, got {args.calibration}")
    result = export_checkpoint(args.source, args.out, formats=args.format, data=args.data, cache_dir=args.cache_dir,
                               force=args.force, progress=not args.quiet, calibration_examples=args.calibration)
    print(result.describe())
    return {"out_dir": str(result.out_dir), "seconds": result.seconds, "card": result.card}


def _replay_count(text: str) -> int | None:
    """--replay's value: a count of clips, or 'all' (None)."""
    if text.strip().lower() == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"expected a number of clips (0 or more) or 'all', got {text!r}")
    return count


def _class_list(text: str) -> tuple[str, ...]:
    """--replay-whole's value: class names, comma-separated, or 'none'."""
    if text.strip().lower() == "none":
        return ()
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected class names, comma-separated, or 'none'")
    return names


def _extend(args):
    from .extend import ExtendConfig, extend
    from .growth.budget import Budget

    config = ExtendConfig(epochs=args.epochs, learning_rate=args.lr, replay_per_class=args.replay,
                          replay_whole=args.replay_whole, width_increase=args.width_increase, seed=args.seed)
    classes = [word.strip() for word in args.classes.split(",") if word.strip()]
    formats = None if args.format.strip().lower() == "none" else args.format
    result = extend(args.source, classes, args.out, data=args.data, target=args.target,
                    budget=Budget.parse(args.budget) if args.budget else None, config=config, formats=formats,
                    cache_dir=args.cache_dir, progress=not args.quiet)
    print(result.describe())
    return json.loads((result.out_dir / "extend.json").read_text())


def _compare(args):
    from .compare import CompareConfig, compare_targets
    from .grow import GrowConfig
    from .growth.budget import Budget

    if args.resume and not args.out:
        raise ValueError("--resume continues the comparison in --out; give that folder (--resume --out DIR)")
    unused = [flag for flag, given in (("--tensorboard", args.tensorboard), ("--sync-batch-norm", args.sync_batch_norm))
              if given]
    if unused:
        raise ValueError(f"edgegrow compare does not take {unused[0]} (its runs write no TensorBoard scalars and run "
                         "in one process)")
    if args.accuracy is not None and not 1 <= args.accuracy <= 100:
        raise ValueError(f"--accuracy is a percentage between 1 and 100 (e.g. 88 for 88 %), got {args.accuracy:g}")
    grow_config = (GrowConfig.quick if args.quick else GrowConfig)(method=args.method, seed=args.seed,
                                                                   **_training_settings(args))
    settings = {"seed_width": "auto" if args.seed_width is None else args.seed_width, "measure": not args.no_measure,
                "seeds": args.seeds}
    if args.ladder is not None:
        settings["ladder"] = args.ladder
    config = (CompareConfig.quick if args.quick else CompareConfig)(grow=grow_config, **settings)
    result = compare_targets(
        [name for name in args.targets.split(",")], args.task, data=args.data, family=args.family, out=args.out,
        cache_dir=args.cache_dir, budget=Budget.parse(args.budget).limits if args.budget else None, config=config,
        accuracy=None if args.accuracy is None else args.accuracy / 100, rank_by=args.rank_by,
        prices=_prices(args.price), resume=args.resume, progress=not args.quiet)
    print(f"\n{result.describe()}")
    return result.to_dict()


def _bench(args):
    from .export.benchmark import benchmark

    result = benchmark(args.file, args.runtime, threads=args.threads, target=args.target, warmup=args.warmup,
                       runs=args.runs, rounds=args.rounds, record=not args.no_record)
    print(result.table())
    return result.to_dict()


def _report(args):
    from .report import write_report
    from .report.run_report import read_baselines

    baselines = read_baselines(args.baselines) if args.baselines else None
    written = write_report(args.run_dir, export_dir=args.export, baselines=baselines)
    print(f"wrote {written}")
    return {"report": str(written)}


def _workflow(args):
    from .grow import GrowConfig
    from .growth.budget import Budget
    from .workflow import WorkflowConfig, run_workflow

    grow_config = (GrowConfig.quick if args.quick else GrowConfig)(method=args.method, seed=args.seed,
                                                                   **_training_settings(args))
    config = (WorkflowConfig.quick if args.quick else WorkflowConfig)(grow=grow_config, formats=args.format,
                                                                     seed_width="auto" if args.seed_width is None
                                                                     else args.seed_width,
                                                                     tensorboard=args.tensorboard)
    result = run_workflow(
        args.task, data=args.data, family=args.family, out=args.out, cache_dir=args.cache_dir,
        host_budget=Budget.parse(args.host_budget).limits if args.host_budget else None,
        mcu_target=args.mcu_target, mcu_budget=Budget.parse(args.mcu_budget).limits if args.mcu_budget else None,
        config=config, reprofile=args.reprofile, progress=not args.quiet)
    if result.index is None:  # a rank of a torchrun job other than 0: rank 0 exports and says where
        return {}
    print(f"\n{result.describe()}")
    return json.loads((result.out_dir / "workflow.json").read_text())


def _data_kws(args):
    from .data.synthesize_kws import SynthesisConfig, synthesize_speech_commands

    config = SynthesisConfig(per_class=args.per_class, unknown_per_word=max(1, args.per_class // 5), seed=args.seed)
    report = synthesize_speech_commands(args.out, config, workers=args.workers, progress=not args.quiet)
    print(report.describe())
    return {"folder": str(report.folder), "clips": report.clips, "reused": report.reused, "seconds": report.seconds}


def _data_fonts(args):
    from .data.font_characters import FontSetConfig, render_font_characters

    report = render_font_characters(args.out, FontSetConfig(renders_per_font=args.renders, image_size=args.size,
                                                            seed=args.seed))
    print(report.describe())
    return {"folder": str(report.folder), "images": report.images, "families": report.families,
            "reused": report.reused}


def _models(args):
    from cost_models import count_macs

    from .models import MODELS, example_input

    print(f"{'family':<14}{'MACs':>14}{'parameters':>12}  input")
    rows = []
    for family, build in MODELS.items():
        model = build()
        report = count_macs(model, example_input(model))
        print(f"{family:<14}{report.total:>14,}{report.parameters:>12,}  {model.input_shape}")
        rows.append({"family": family, "macs": report.total, "params": report.parameters,
                     "input_shape": list(model.input_shape)})
    return rows


def _groups(args):
    from .growth import find_channel_groups
    from .models import build_model, build_seed, example_input

    model = (build_seed if args.seed else build_model)(args.family)
    groups = find_channel_groups(model, example_input(model))
    for group in groups:
        print(group.describe())
    return [group.describe() for group in groups]


def _targets(args):
    from cost_models import known_targets, load_known_targets
    from cost_models.whole_model_calibration import calibration_status

    rows = []
    targets, unreadable = load_known_targets()
    for name, path in known_targets().items():
        if name in unreadable:
            print(f"{name:<22} unreadable: {unreadable[name]}")
            rows.append({"name": name, "path": str(path), "error": unreadable[name]})
            continue
        target = targets[name]
        how = "measured" if target.measured else calibration_status(target)
        print(f"{name:<22} {target.kind:<4} {target.runtime} {target.runtime_version} {target.dtype}, "
              f"{target.threads} thread(s), {how}  {path}")
        rows.append({"name": name, "path": str(path), "kind": target.kind, "runtime": target.runtime,
                     "runtime_version": target.runtime_version, "dtype": target.dtype, "threads": target.threads,
                     "measured": target.measured, "calibration": how})
    return rows


def _cost(args) -> dict:
    from dataclasses import asdict

    from cost_models import estimate, load_target
    from edgegrow.models import build_model, build_seed, example_input

    target = load_target(args.target)
    model = (build_seed if args.seed else build_model)(args.family).eval()
    report = estimate(model, example_input(model), target)
    print(report.table())
    return asdict(report)


def _calibrate_profile(args, out: str) -> dict:
    import json

    from cost_models import load_target
    from cost_models.whole_model_calibration import calibrate_analytic_profile

    from .atomic import write_atomically
    from .measured_models import read_measured_models

    if not args.base:
        raise ValueError("--calibrate needs --base PROFILE: the analytic profile to scale (see 'edgegrow targets')")
    base = load_target(args.base)
    measured = read_measured_models(args.calibrate)
    profile = json.loads(Path(base.path).read_text())
    calibrated, records = calibrate_analytic_profile(profile, measured, name=args.target,
                                                     source=f"measured models in {args.calibrate}")
    write_atomically(out, json.dumps(calibrated, indent=1) + "\n")
    scale = calibrated["whole_model_calibration"]["scale"]
    print(f"{base.name} × {scale:.4g} → {out} ({args.target}), from {len(records)} model(s):")
    for record in records:
        print(f"  {record['model']:<28} measured {record['measured_ms']:.4g} ms, predicted {record['predicted_before_ms']:.4g}"
              f" → {record['predicted_after_ms']:.4g} ms ({record['residual_after_pct']:+.1f} %)")
    return {"profile": out, "scale": scale, "models": records}


def _profile(args):
    from cost_models import profiler
    from cost_models.calibration import drift_warning
    from cost_models.target import user_targets_folder

    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.write_suite:
        shapes = profiler.profile_grid(args.quick)
        folder = profiler.write_suite(args.write_suite, shapes)
        print(f"wrote {len(shapes)} single-kernel models to {folder}; copy it and "
              f"cost_models/runner.py to the device and run: python runner.py {folder} --out {args.target}.jsonl")
        return {"suite": str(folder), "kernels": len(shapes)}
    out = args.out or str(user_targets_folder() / f"{args.target}.json")
    if args.calibrate:
        return _calibrate_profile(args, out)
    if args.from_measurements:
        profiler.profile_from_measurements(args.target, args.from_measurements, out)
        print(f"wrote {out}")
        return {"profile": out}
    if args.from_op_profile:
        from edgegrow.models import build_model, example_input

        if not args.model:
            raise ValueError("--from-op-profile needs --model FAMILY: the zoo model the profile was made from")
        model = build_model(args.model).eval()
        result = profiler.profile_from_op_profile(args.target, args.from_op_profile, model, example_input(model), out)
        print(f"wrote {out}: {len(result['latency']['entries'])} kernels")
        return {"profile": out, "kernels": len(result["latency"]["entries"])}
    import contextlib

    from .progress import counter_bar

    quiet_converter = contextlib.nullcontext()
    if args.runtime == "litert":
        from cost_models.profiler_litert import profile_here_litert

        from .export.library_output import captured
        from .export.runtimes import require

        with captured():  # importing them writes absl, oneDNN and torchao lines to descriptor 2
            require("litert_torch")  # a one-line error naming the extra before anything is measured
            require("ai_edge_litert")
        measure_here, quiet_converter = profile_here_litert, captured()  # the converter's C++ log lines
    else:
        measure_here = profiler.profile_here
    with counter_bar("kernels", enabled=not args.quiet) as advance, quiet_converter:
        result = measure_here(args.target, out, args.threads, args.quick, progress=advance)
    print(f"wrote {out}: {len(result['latency']['entries'])} kernels, per-model overhead "
          f"{result['model_overhead_ms']['value']:.4f} ms")
    warning = drift_warning(result["latency"].get("calibration", {}).get("drift"), out)
    if warning:
        print(f"edgegrow profile: warning: {warning}", file=sys.stderr)
    return {"profile": out, "kernels": len(result["latency"]["entries"]),
            "model_overhead_ms": result["model_overhead_ms"]["value"]}


def main(argv: list[str] | None = None) -> int:
    from .cli_config import expand_config
    from .export.exporter import ExportError
    from .grow import NumericalFault
    from .training.distributed import PeerLost, leave as leave_job, peer_lost

    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = expand_config(argv, parser.commands)
    except ValueError as error:
        print(f"edgegrow: error: {error}", file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
    except _UsageError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        world = _join_torchrun_job(args)
    except ValueError as error:
        print(f"edgegrow {args.command}: error: {error}", file=sys.stderr)
        return 2
    try:
        # --json: the human-readable lines go to stderr and stdout carries only the JSON document;
        # --quiet (and every rank of a torchrun job but rank 0): they go nowhere (errors are still printed below)
        quiet = args.quiet or not world.main
        messages = open(os.devnull, "w") if quiet else sys.stderr if args.json else sys.stdout
        with messages if quiet else contextlib.nullcontext(), contextlib.redirect_stdout(messages):
            result = args.handler(args)
        if args.json and world.main:
            print(json.dumps(result, indent=1, default=str))
    except ValueError as error:
        if world.main:  # every rank of a torchrun job meets the same mistake: said once
            print(f"edgegrow {args.command}: error: {error}", file=sys.stderr)
        return 2
    except NumericalFault as error:  # training diverged where no rollback helps: a failure, with the fix
        print(f"edgegrow {args.command}: failed: {error}", file=sys.stderr)
        return 1
    except ExportError as error:  # a file failed verification in its runtime: nothing was written
        print(f"edgegrow {args.command}: failed: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # disk full, permission denied: a failure of the environment, not of the input
        print(f"edgegrow {args.command}: failed: {error}", file=sys.stderr)
        return 1
    except (PeerLost, RuntimeError) as error:  # under torchrun: another process of the job stopped (the last
        # clause: ExportError and NumericalFault are RuntimeErrors too, answered above)
        if not (world.parallel and peer_lost(error)):
            raise
        where = getattr(args, "out", None) or (args.resume if isinstance(getattr(args, "resume", None), str) else None)
        resume = ""
        if args.command == "grow" and where:
            resume = (f"; {where} holds the run to its last finished epoch: 'torchrun --nproc_per_node {world.size} "
                      f"-m edgegrow grow --resume {where}' (or 'edgegrow grow --resume {where}') continues it")
        print(f"edgegrow {args.command}: failed on rank {world.rank}: {str(error).splitlines()[0]}{resume}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        resume = {"profile": "; run the same command again to resume",
                  "grow": f"; 'edgegrow grow --resume {out or 'RUN_DIR'}' continues after the last finished epoch",
                  "compare": f"; the same command with --resume --out {out or 'DIR'} continues it"
                  }.get(args.command, "")
        print(f"edgegrow {args.command}: interrupted{resume}", file=sys.stderr)
        return 130
    finally:
        leave_job()
    return 0


def _join_torchrun_job(args):
    """Under ``torchrun`` with several processes, join the job (grow and workflow train data-parallel,
    see ``edgegrow.training.distributed``); other commands run as one process. Returns this process's
    place in the job."""
    from .training.distributed import World, init_from_environment, launched_by_torchrun, stop_on_sigterm

    if not launched_by_torchrun():
        return World()
    if args.command not in ("grow", "workflow"):
        raise ValueError(f"'edgegrow {args.command}' runs as one process: run it without torchrun "
                         "(torchrun --nproc_per_node N -m edgegrow grow|workflow … trains on N processes)")
    world = init_from_environment(getattr(args, "device", None) or "auto")
    stop_on_sigterm()  # torchrun stops the other processes with SIGTERM when one of them fails
    return world


if __name__ == "__main__":
    sys.exit(main())
