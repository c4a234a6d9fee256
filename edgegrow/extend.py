"""Teach a grown keyword-spotting network new words without changing what it says about the old ones.

The method is Firefly's continual-learning scheme (seed 000, Wu et al. 2020; ../shared/docs/ALGORITHMS.md,
Firefly): the old network's weights are frozen, and the new task gets neurons of its own.

- Every growable channel group gets about ``r · width`` new neurons (at least one), rounded so its new
  width is a multiple of ``channel_multiple`` (8: onnxruntime's depthwise kernels on this machine's
  profile take 5–8× longer for 63 or 65 channels than for 64, and CMSIS-NN prefers multiples of 4),
  and the head a row per new class.
- A new neuron reads old and new neurons. An old neuron reads old neurons only: the weights from new
  neurons into old ones start at zero (``add_neurons``' zero fan-out) and are held there.
- Every old weight, bias and BatchNorm statistic is held at its value. The whole old block of each
  tensor (its rows for the old output channels) is written back after every optimizer step, so
  neither the optimizer's momentum and weight decay nor BatchNorm's running statistics move it.

So the old classes' logits are a function of the old neurons only, which are the old network's:
equal to float rounding on every input. The network is a plain PyTorch module, one head for all
classes. Its checkpoint is an ordinary one (the seed with ``num_classes`` of the new total, the old
run's edits, then one ``widen`` per group), so ``edgegrow export`` and ``load_checkpoint`` take it.

What the old classes can lose is only to the new ones: an old word heard as a new word. Replayed
clips of the old classes teach the new head rows where not to fire: by default every old training clip
the data holds; with ``replay_per_class`` N, N clips of each old keyword, and the generic classes
(``_unknown_`` and ``_silence_``: any speech and background noise, not clips collected for the
product) whole, because other words are what a new word is most often mistaken for. The new words' clips
leave ``_unknown_`` (``KwsConfig.extra_keywords``), and the inputs are standardised with the old
network's statistics, so it sees them as it was trained to.

After training, one offset on the new classes' logits, folded into the head's bias, is chosen on the
validation split (``calibrate_new_logits``): the most new-word clips recognised while the old classes'
validation accuracy stays within ``max_old_drop`` of the old network's. It is the bias correction of
class-incremental learning (BiC, Wu et al. 2019) reduced to one number, and it moves only where a new
word wins: the old logits stay as they were.

``r`` is the largest share up to ``max_width_increase`` whose network fits the budget on the target
(bisection on the predicted cost), or ``width_increase`` when given; without a budget, 0.25.
"""
from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .argument_checks import check_finite, check_positive_integer
from .atomic import replace_durably, write_atomically
from .checkpoint import CUSTOM_FAMILY, Checkpoint, load_checkpoint, save_checkpoint
from .data.speech_commands import SILENCE, UNKNOWN
from .data.task_data import Split, TaskData
from .growth import add_neurons, find_channel_groups, group_named, growable_groups
from .growth.budget import Budget
from .models import example_input

SUMMARY = "extend.json"
CHECKPOINT = "checkpoint.pt"
DEFAULT_WIDTH_INCREASE = 0.25  # without a budget
OLD_OUTPUT_TOLERANCE = 1e-5  # the largest change of an old class's logit the extension may cause
FLOAT_FILE_TOLERANCE = 1e-4  # the same in an exported float file (the exporter's own tolerance against PyTorch)
GENERIC_CLASSES = (UNKNOWN, SILENCE)  # replayed whole by default: other words, and background noise


@dataclass
class ExtendConfig:
    """How the new words are learnt. ``replay_per_class``: training examples of each old class kept
    beside the new words' (None: every one; 0: none, the new head rows then never see an old keyword);
    the classes ``replay_whole`` (None: the network's ``_unknown_`` and ``_silence_``; (): none) are kept
    whole whatever it says. ``width_increase``: the share of each group's width added; None: the largest
    share up to ``max_width_increase`` that fits the budget (``DEFAULT_WIDTH_INCREASE`` without one)."""

    # chosen on the validation split of bench/extend_keywords.py (new words recognised after the offset, mean
    # of seeds 0-2): every old clip replayed, 20 epochs at 5e-3 89.8 %, 30 at 1e-2 90.9 %, 60 at 2e-2 91.5 %;
    # 200 clips of each keyword and the generic classes whole (seeds 0-1), 20 at 5e-3 83.3 %, 30 at 1e-2
    # 90.5 %, 60 at 2e-2 88.9 %: 30 at 1e-2 is at most 0.6 points from the best of either, in half 60's time
    epochs: int = 30
    learning_rate: float = 1e-2
    batch_size: int = 64
    warmup_epochs: float = 1.0
    weight_decay: float = 0.0
    replay_per_class: int | None = None
    replay_whole: tuple[str, ...] | None = None
    balanced: bool = False  # weigh every class equally in the loss (with --replay N the old keywords have few examples)
    width_increase: float | None = None
    max_width_increase: float = 1.0
    # after training, one offset on the new classes' logits (in the head's bias) chosen on the validation
    # split: the most new-word clips recognised while the old classes lose at most this share of their
    # validation accuracy; None: no offset
    max_old_drop: float | None = 0.005
    channel_multiple: int = 8  # new widths are multiples of this (1: any width)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        check_positive_integer("epochs", self.epochs)
        check_positive_integer("batch_size", self.batch_size)
        if self.replay_per_class is not None:
            check_positive_integer("replay_per_class", self.replay_per_class, allow_zero=True)
        if self.replay_whole is not None:
            if not isinstance(self.replay_whole, (list, tuple)) or not all(isinstance(name, str)
                                                                          for name in self.replay_whole):
                raise ValueError(f"replay_whole must be a list of class names, got {self.replay_whole!r}")
            self.replay_whole = tuple(self.replay_whole)
        check_positive_integer("channel_multiple", self.channel_multiple)
        check_finite("learning_rate", self.learning_rate, above=0)
        check_finite("weight_decay", self.weight_decay, at_least=0)
        check_finite("warmup_epochs", self.warmup_epochs, at_least=0)
        check_finite("max_width_increase", self.max_width_increase, above=0)
        if self.width_increase is not None:
            check_finite("width_increase", self.width_increase, above=0)
        if self.max_old_drop is not None:
            check_finite("max_old_drop", self.max_old_drop, at_least=0)

    def whole_classes(self, class_names: Sequence[str]) -> list[int]:
        """The indices in ``class_names`` (the old network's) of the classes replayed whole."""
        class_names = list(class_names)
        if self.replay_whole is None:
            return [class_names.index(name) for name in GENERIC_CLASSES if name in class_names]
        missing = [name for name in self.replay_whole if name not in class_names]
        if missing:
            raise ValueError(f"{missing[0]!r} is not one of the network's classes ({', '.join(class_names)}); "
                             "--replay-whole names old classes")
        return [class_names.index(name) for name in self.replay_whole]

    def train_config(self):
        from .training import TrainConfig

        return TrainConfig(epochs=self.epochs, learning_rate=self.learning_rate, batch_size=self.batch_size,
                           warmup_epochs=min(self.warmup_epochs, self.epochs - 0.5), weight_decay=self.weight_decay,
                           seed=self.seed, device=self.device)


@dataclass
class ClassAccuracy:
    """Test accuracy (shares in [0, 1]) on the old classes' and the new classes' examples."""

    old_before: float  # the old network, choosing among the old classes
    old_after: float  # the extended network, choosing among all classes
    new_after: float
    all_after: float
    old_examples: int
    new_examples: int


@dataclass
class ExtendResult:
    out_dir: Path
    model: nn.Module
    class_names: list[str]
    old_classes: int  # the first this many classes are the old network's
    new_neurons: dict[str, int]  # group → neurons added
    width_increase: float  # the share asked of every group; the counts round it up to the channel multiple
    predicted: dict  # the extended network's cost on the target
    predicted_before: dict
    test: ClassAccuracy
    old_output_difference: float  # the largest change of an old class's logit on the test inputs
    old_top1_agreement: float  # share of test inputs whose top-1 among the old classes is the old network's
    seconds: float
    exported: dict = field(default_factory=dict)  # format → its old-class check (when exported)
    calibration: dict = field(default_factory=dict)  # the new logits' offset and the validation figures it gave
    replayed: dict = field(default_factory=dict)  # the old clips trained on: per class asked, classes whole, counts

    def describe(self) -> str:
        test = self.test
        added = ", ".join(f"{group} +{count}" for group, count in self.new_neurons.items())
        lines = [f"extended from {self.old_classes} to {len(self.class_names)} classes: new neurons {added}, "
                 f"{self.predicted.get('latency_ms', float('nan')):.4g} ms "
                 f"predicted (was {self.predicted_before.get('latency_ms', float('nan')):.4g})",
                 f"old classes: {test.old_before:.1%} before, {test.old_after:.1%} after ({test.old_examples} test "
                 f"examples); new classes: {test.new_after:.1%} ({test.new_examples}); all: {test.all_after:.1%}",
                 f"old classes' logits changed by at most {self.old_output_difference:.2g}; top-1 among them "
                 f"unchanged on {self.old_top1_agreement:.1%} of test inputs"]
        if self.replayed:
            lines.insert(1, f"trained on the new words' {self.replayed['new_clips']:,} clips and "
                            f"{describe_replay(self.replayed)}")
        calibration = self.calibration
        if calibration and "skipped" not in calibration:
            lines.insert(2 if self.replayed else 1,
                         f"new classes' logits offset by {calibration['offset']:+.3g} on validation (old classes "
                         f"there {calibration['old_accuracy']:.1%}, at most {100 * calibration['max_old_drop']:.1f} "
                         f"points below {calibration['old_accuracy_before']:.1%})")
        for fmt, check in self.exported.items():
            lines.append(f"  {fmt}: " + ", ".join(f"{key} {value:.3g}" for key, value in check.items()))
        lines.append(f"wrote {self.out_dir} in {self.seconds:.0f} s")
        return "\n".join(lines)


class _FrozenBlocks:
    """The old block of every tensor of an extended network, written back after every optimizer step.

    A tensor's old block is its first ``rows`` entries along dim 0 (the old output channels or classes,
    since new neurons are appended after the old), with every other dim whole: old weights where the
    input is old, zero where it is new. Tensors are looked up on their module at every restore, so the
    blocks follow the network to another device (``Module.to`` swaps a parameter's data)."""

    def __init__(self, model: nn.Module, old: nn.Module):
        old_state = old.state_dict()
        self.blocks: list[list] = []  # [module, attribute, rows (None: the whole tensor), value]
        for name, tensor in model.state_dict().items():
            before = old_state[name]
            path, _, attribute = name.rpartition(".")
            module = model.get_submodule(path)
            if tensor.dim() == 0:
                self.blocks.append([module, attribute, None, tensor.detach().clone()])
                continue
            block = tensor[:before.shape[0]]
            if not torch.equal(block[tuple(slice(0, size) for size in before.shape)], before):
                raise ValueError(f"cannot extend this network: {name}'s old entries did not stay first when it was "
                                 "widened (a concatenation inside a group?); extend supports networks whose new "
                                 "channels follow the old")
            self.blocks.append([module, attribute, before.shape[0], block.detach().clone()])

    def restore(self) -> None:
        with torch.no_grad():
            for entry in self.blocks:
                module, attribute, rows, value = entry
                tensor = getattr(module, attribute)
                if value.device != tensor.device:
                    entry[3] = value = value.to(tensor.device)
                (tensor if rows is None else tensor[:rows]).copy_(value)


def describe_replay(replayed: dict) -> str:
    """'3,802 of the 9,309 old training clips (200 of each other class, _unknown_ and _silence_ whole)', or
    'all 9,309 old training clips'."""
    if replayed["per_class"] is None:
        return f"all {replayed['old_training_clips']:,} old training clips"
    text = f"{replayed['old_clips']:,} of the {replayed['old_training_clips']:,} old training clips"
    whole = replayed["whole"]
    return text + (f" ({replayed['per_class']} of each {'other ' if whole else ''}class"
                   + (f", {' and '.join(whole)} whole)" if whole else ")"))


def _output_producer(model: nn.Module, example: torch.Tensor) -> str:
    groups = find_channel_groups(model, example)
    heads = [group for group in groups if any("model output" in reason for reason in group.reasons)]
    if len(heads) != 1 or len(heads[0].producers) != 1:
        raise ValueError("cannot find the network's classifier layer (one layer whose outputs are the logits)")
    return heads[0].producers[0].layer


def extend_head(model: nn.Module, layer: str, count: int, generator: torch.Generator) -> None:
    """``count`` more outputs (classes) on the classifier ``layer`` (Linear or 1×1 Conv2d), in place: the
    old rows are kept, the new ones get PyTorch's default initialisation."""
    from .growth.new_neurons import default_fan_in

    head = model.get_submodule(layer)
    if isinstance(head, nn.Linear):
        bigger = nn.Linear(head.in_features, head.out_features + count, bias=head.bias is not None)
    elif isinstance(head, nn.Conv2d) and head.groups == 1:
        bigger = nn.Conv2d(head.in_channels, head.out_channels + count, head.kernel_size, head.stride, head.padding,
                           head.dilation, bias=head.bias is not None)
    else:
        raise ValueError(f"cannot add classes to {layer} ({type(head).__name__}): the classifier must be a Linear or "
                         "a Conv2d")
    bigger = bigger.to(head.weight.device, head.weight.dtype)
    with torch.no_grad():
        old_rows = head.weight.shape[0]
        bigger.weight[:old_rows] = head.weight
        bigger.weight[old_rows:] = default_fan_in(tuple(head.weight.shape[1:]), count, generator).to(bigger.weight)
        if head.bias is not None:
            bigger.bias[:old_rows] = head.bias
            bigger.bias[old_rows:] = 0.0
    parent, _, name = layer.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, bigger)


def new_neurons(width: int, share: float, multiple: int = 1) -> int:
    """How many neurons a group of ``width`` gets for ``share``: at least one, about ``share · width``,
    and as many more as make the new width a multiple of ``multiple``."""
    wanted = width + max(1, math.ceil(share * width - 1e-9))
    return math.ceil(wanted / multiple) * multiple - width


def widen_every_group(model: nn.Module, example: torch.Tensor, share: float, multiple: int = 1,
                      generator: torch.Generator | None = None) -> dict[str, int]:
    """``new_neurons(width, share, multiple)`` new neurons (zero fan-out) in every growable group, in
    place; group → count."""
    added = {}
    for name, width in [(g.name, g.width_at_discovery) for g in growable_groups(find_channel_groups(model, example))]:
        group = group_named(find_channel_groups(model, example), name)  # again: the edits before changed it
        count = new_neurons(width, share, multiple)
        add_neurons(model, group, count, generator=generator)
        added[name] = count
    return added


def _fitting_share(old: nn.Module, example: torch.Tensor, classes: int, layer: str, budget: Budget | None, target,
                   config: ExtendConfig) -> float:
    """The width share to add: given, or the largest that fits the budget (bisection on the predicted cost)."""
    from cost_models import estimate

    def over(share: float) -> list[str]:
        trial, _ = _extended(old, example, classes, layer, share, config.channel_multiple,
                             torch.Generator().manual_seed(0))
        return budget.violations(estimate(trial.eval(), example, target))

    if config.width_increase is not None or budget is None:
        share = config.width_increase if config.width_increase is not None else DEFAULT_WIDTH_INCREASE
        exceeded = over(share) if budget is not None else []
        if exceeded:
            raise ValueError(f"the extended network at width increase {share:g} is over the budget "
                             f"({exceeded[0]}); lower --width-increase or raise the budget")
        return share
    smallest = 1e-9  # the fewest new neurons: one per group, rounded up to the channel multiple
    exceeded = over(smallest)
    if exceeded:
        raise ValueError(f"the budget leaves no room for new neurons: the fewest new neurons and the new classes are "
                         f"already over it ({exceeded[0]}); raise the budget")
    if not over(config.max_width_increase):
        return config.max_width_increase
    low, high = smallest, config.max_width_increase
    for _ in range(12):
        middle = (low + high) / 2
        low, high = (low, middle) if over(middle) else (middle, high)
    return low


def _extended(old: nn.Module, example: torch.Tensor, classes: int, layer: str, share: float, multiple: int,
              generator: torch.Generator) -> tuple[nn.Module, dict[str, int]]:
    model = copy.deepcopy(old).eval()
    extend_head(model, layer, classes, generator)
    added = widen_every_group(model, example, share, multiple, generator)
    return model, added


def _replay_split(train: Split, old_classes: int, per_class: int | None, seed: int,
                  whole: Sequence[int] = ()) -> Split:
    """Every example of a new class and of the old classes ``whole``, and ``per_class`` random examples
    (None: every one) of each other old class."""
    generator = torch.Generator().manual_seed(seed)
    keep = [torch.nonzero(train.labels >= old_classes).flatten()]
    for label in range(old_classes):
        members = torch.nonzero(train.labels == label).flatten()
        # drawn for every class, so the draw of a class does not depend on which classes are kept whole
        chosen = members[torch.randperm(len(members), generator=generator)[:per_class]]
        keep.append(members if label in whole else chosen)
    chosen = torch.cat(keep).sort().values
    return Split(train.take(chosen), train.labels[chosen])


def replay_split(train: Split, old_class_names: Sequence[str], config: ExtendConfig) -> Split:
    """What ``extend`` trains on: every example of a new class and the replay ``config`` asks of the old
    classes (``old_class_names``, the first labels)."""
    return _replay_split(train, len(old_class_names), config.replay_per_class, config.seed,
                         config.whole_classes(old_class_names))


def _logits(model: nn.Module, inputs: torch.Tensor, batch: int = 512) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        if len(inputs) == 0:
            return model(torch.zeros(1, *inputs.shape[1:], device=device)).cpu()[:0]
        return torch.cat([model(inputs[i:i + batch].to(device)).cpu() for i in range(0, len(inputs), batch)])


def extend(checkpoint: str | Path, new_classes: Sequence[str], out: str | Path, *, data: str | Path | None = None,
           budget: Budget | None = None, target: str | None = None, config: ExtendConfig = ExtendConfig(),
           formats: str | Sequence[str] | None = None, cache_dir: str | Path | None = None, progress: bool = True,
           log: Callable[[str], None] = print) -> ExtendResult:
    """Extend the KWS network in ``checkpoint`` (a run folder or checkpoint file) to ``new_classes``,
    words with folders of their own in ``data`` (default: the data its run used), and write the run to
    ``out`` (``checkpoint.pt``, ``extend.json``; with ``formats``, the exported files in ``exported/``,
    each checked to give the old classes' logits of the old network).

    ``budget``: limits on ``target`` (default: the run's target) the extended network must fit.

    Raises:
        ValueError: a user mistake (not a KWS network, a network of one's own, a word that is already a
            class or has no folder, a budget with no room, an ``out`` that holds results); nothing is
            written.
    """
    from cost_models import estimate, load_target

    from .export.exporter import find_checkpoint, parse_formats
    from .grow.growth_step import predicted_costs
    from .grow.run_folder import RunMeta
    from .tasks import load_task

    started = time.perf_counter()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already holds files; choose another --out or remove it")
    if formats:
        formats = parse_formats(formats)  # a bad format is said now, not after training
    new_classes = list(new_classes)
    if not new_classes:
        raise ValueError("name at least one new word to learn (--classes WORD,WORD)")
    path = find_checkpoint(checkpoint)
    old, record = load_checkpoint(path) if _family(path) != CUSTOM_FAMILY else (None, None)
    if old is None:
        raise ValueError(f"{path} grew a network of your own, which cannot be rebuilt from the file; extend "
                         "supports the zoo's KWS families")
    meta = RunMeta.from_dict(record.meta, str(path))
    if meta.task != "kws":
        raise ValueError(f"{path} is a {meta.task} network; extend teaches keyword-spotting networks new words")
    already = [word for word in new_classes if word in meta.class_names]
    if already:
        raise ValueError(f"{already[0]!r} is already one of the network's classes")
    whole = config.whole_classes(meta.class_names)  # a class the network lacks is said before the data loads
    preprocessing = meta.preprocessing or {}
    normalization = preprocessing.get("normalization")
    coefficients = int(meta.input_shape[-1])
    normalization = ({"mean": normalization["mean"], "std": normalization["std"]} if normalization
                     else {"mean": [0.0] * coefficients, "std": [1.0] * coefficients})
    target_name = target or meta.target
    target_profile = load_target(target_name)  # an unknown target is said before the data loads
    source = meta.task_source or {}
    folder = data if data is not None else source.get("data")
    all_new = [*source.get("new_classes", []), *new_classes]
    task = load_task("kws", folder, family=record.family, cache_dir=cache_dir, progress=progress,
                     new_classes=all_new, normalization=normalization)
    names = task.data.class_names
    old_count = len(meta.class_names)
    if list(names[:old_count]) != list(meta.class_names):
        raise ValueError(f"the data's classes ({', '.join(names[:old_count])}) are not the network's "
                         f"({', '.join(meta.class_names)}) in its order; pass the data the network was trained on")
    example = example_input(old)
    layer = _output_producer(old, example)
    share = _fitting_share(old, example, len(new_classes), layer, budget, target_profile, config)
    generator = torch.Generator().manual_seed(config.seed)
    model, added = _extended(old, example, len(new_classes), layer, share, config.channel_multiple, generator)
    frozen = _FrozenBlocks(model, old)
    log(f"extending {path.parent.name if path.name == CHECKPOINT else path.name} from {old_count} to {len(names)} "
        f"classes: +{', +'.join(f'{count} in {group}' for group, count in added.items())} neurons "
        f"(asked width +{share:.0%}, in whole steps of {config.channel_multiple}); old weights frozen")

    train = replay_split(task.data.train, meta.class_names, config)
    old_train = int((task.data.train.labels < old_count).sum())
    replayed = {"per_class": config.replay_per_class, "whole": [meta.class_names[i] for i in whole],
                "old_clips": int((train.labels < old_count).sum()), "old_training_clips": old_train,
                "new_clips": int((train.labels >= old_count).sum())}
    log(f"replaying {describe_replay(replayed)}")
    model = _train_new_neurons(model, frozen, TaskData(task.data.name, names, train, task.data.validation,
                                                       task.data.test, task.data.preprocessing), config, progress)
    calibration = {}
    if config.max_old_drop is not None and len(task.data.validation):
        calibration = calibrate_new_logits(model, layer, task.data.validation, old_count, config.max_old_drop)
    if "skipped" in calibration:
        log(f"no offset on the new classes' logits: {calibration['skipped']}")
    elif calibration:
        log(f"new classes' logits offset by {calibration['offset']:+.3g} (validation: old classes "
            f"{calibration['old_accuracy_before']:.1%} → {calibration['old_accuracy']:.1%}, new "
            f"{calibration['new_accuracy_uncalibrated']:.1%} → {calibration['new_accuracy']:.1%})")

    inputs = task.data.test.take(torch.arange(len(task.data.test)))
    accuracy, difference, agreement = _test_old_and_new(old, model, inputs, task.data.test.labels, old_count)
    predicted_before = predicted_costs(estimate(old, example, target_profile))
    predicted = predicted_costs(estimate(model, example, target_profile))

    new_meta = RunMeta(task="kws", class_names=list(names), input_shape=list(meta.input_shape),
                       preprocessing=task.data.preprocessing, task_source=task.source, target=target_name,
                       budget=dict(budget.limits) if budget else {}, method="extend",
                       config={**asdict(config), "new_classes": new_classes, "extended_from": str(path.resolve())},
                       model="extended", stopped_by="epochs", events=0)
    extended_record = Checkpoint(record.family, {**record.seed_options, "num_classes": len(names)},
                                 [*record.edits, *({"op": "widen", "group": group, "channels": count}
                                                   for group, count in added.items())], asdict(new_meta))
    result = ExtendResult(out, model, list(names), old_count, added, share, predicted, predicted_before, accuracy,
                          difference, agreement, 0.0, calibration=calibration, replayed=replayed)
    # everything is written to a staging folder and appears under ``out`` in one rename at the end: a run
    # that fails or is killed half-way leaves no folder that looks finished
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        save_checkpoint(staging / CHECKPOINT, model, extended_record)
        rebuilt, _ = load_checkpoint(staging / CHECKPOINT)  # the file rebuilds the same network, or this is a bug
        if not torch.equal(_logits(rebuilt, inputs[:64]), _logits(model, inputs[:64])):
            raise RuntimeError("the extended checkpoint does not rebuild the extended network (a bug in edgegrow)")
        if formats:
            result.exported = _export_and_check(model, old, task.data, staging / "exported", formats, old_count,
                                                record.family, log)
        result.seconds = time.perf_counter() - started
        _write_summary(staging, result, path, new_classes, budget, target_name, config)
        if out.exists():
            out.rmdir()  # empty (checked above)
        replace_durably(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _train_new_neurons(model: nn.Module, frozen: _FrozenBlocks, data: TaskData, config: ExtendConfig,
                       progress: bool) -> nn.Module:
    """Train ``model`` on ``data`` (the new words and the replayed clips) with ``frozen`` written back after
    every optimizer step; the trained network, on the CPU in eval mode."""
    from .training import Training, make_optimizer, resolve_device

    train_config = config.train_config()
    optimizer = make_optimizer(model, train_config)
    optimizer.register_step_post_hook(lambda optimizer, args, kwargs: frozen.restore())
    loss_function = None
    if config.balanced:
        classes, labels = len(data.class_names), data.train.labels
        counts = torch.bincount(labels, minlength=classes).clamp(min=1).float()
        loss_function = nn.CrossEntropyLoss(weight=(len(labels) / (classes * counts)).to(
            resolve_device(train_config.device)))  # where Training will move the network
    stopped = Training(model, data, train_config, optimizer=optimizer, loss_function=loss_function,
                       progress=progress).run()
    if stopped != "epochs":
        from .grow.loop import NumericalFault

        raise NumericalFault(f"training the new neurons stopped early ({stopped}): lower --lr")
    return model.cpu().eval()


def _test_old_and_new(old: nn.Module, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                      old_count: int) -> tuple[ClassAccuracy, float, float]:
    """Test accuracy of the old and the extended network, the largest change of an old class's logit, and
    the share of inputs whose top-1 among the old classes is the old network's. A change past
    ``OLD_OUTPUT_TOLERANCE`` is a bug (RuntimeError)."""
    before, after = _logits(old, inputs), _logits(model, inputs)
    difference = float((after[:, :old_count] - before).abs().max()) if len(inputs) else 0.0
    agreement = float((after[:, :old_count].argmax(1) == before.argmax(1)).float().mean()) if len(inputs) else 1.0
    if len(inputs) and difference > OLD_OUTPUT_TOLERANCE * max(1.0, float(before.abs().max())):
        raise RuntimeError(f"the old classes' logits moved by {difference:.2g}: the old weights were not held "
                           "(a bug in edgegrow; please report it)")
    old_rows, new_rows = labels < old_count, labels >= old_count
    accuracy = ClassAccuracy(
        old_before=_share(before.argmax(1)[old_rows] == labels[old_rows]),
        old_after=_share(after.argmax(1)[old_rows] == labels[old_rows]),
        new_after=_share(after.argmax(1)[new_rows] == labels[new_rows]),
        all_after=_share(after.argmax(1) == labels),
        old_examples=int(old_rows.sum()), new_examples=int(new_rows.sum()))
    return accuracy, difference, agreement


def _write_summary(out: Path, result: ExtendResult, source: Path, new_classes: list[str], budget: Budget | None,
                   target_name: str, config: ExtendConfig) -> None:
    """extend.json: what was learnt, the neurons added, costs before and after, and the test figures."""
    summary = {"format": "edgegrow-extend/1", "checkpoint": str(source.resolve()), "new_classes": new_classes,
               "class_names": result.class_names, "new_neurons": result.new_neurons,
               "width_increase": result.width_increase, "budget": dict(budget.limits) if budget else None,
               "target": target_name, "predicted_before": result.predicted_before, "predicted": result.predicted,
               "test": asdict(result.test), "old_output_difference": result.old_output_difference,
               "old_top1_agreement": result.old_top1_agreement, "calibration": result.calibration,
               "replayed": result.replayed,
               "exported": result.exported,
               "config": asdict(config), "seconds": result.seconds}
    write_atomically(out / SUMMARY, json.dumps(summary, indent=1) + "\n")


def calibrate_new_logits(model: nn.Module, head: str, validation: Split, old_classes: int, max_old_drop: float) -> dict:
    """Add one offset ``b`` to the new classes' logits (the head's bias), in place, chosen on
    ``validation``: the most new-class examples recognised while the old classes' accuracy stays within
    ``max_old_drop`` (a share) of what it is with the new classes never chosen. The old logits do not
    change; only where a new word wins moves.

    An example's answer is a new class exactly when ``max new logit + b > max old logit``, so each
    example switches at ``d = max old − max new``: accuracies are step functions of ``b``, evaluated
    between consecutive ``d``."""
    bias = model.get_submodule(head).bias
    if bias is None:
        return {}
    logits = _logits(model, validation.take(torch.arange(len(validation))))
    labels = validation.labels
    old_best, new_best = logits[:, :old_classes].max(1), logits[:, old_classes:].max(1)
    switch = (old_best.values - new_best.values).double()
    old_rows, new_rows = labels < old_classes, labels >= old_classes
    old_right = old_rows & (old_best.indices == labels)  # right while no new class wins
    new_right = new_rows & (new_best.indices + old_classes == labels)  # right once its new class wins
    points = torch.unique(switch)
    candidates = torch.cat([points[:1] - 1, (points[1:] + points[:-1]) / 2, points[-1:] + 1])
    if not old_rows.any() or not new_rows.any():  # nothing to trade: the validation split lacks one side
        return {"offset": 0.0, "skipped": "the validation split has no clips of the "
                                          f"{'old classes' if not old_rows.any() else 'new words'}",
                "max_old_drop": max_old_drop}
    old_count, new_count = int(old_rows.sum()), int(new_rows.sum())
    # b means "switch < b"; offsets on the rows, examples on the columns
    old_accuracy = ((switch[None, :] > candidates[:, None]) & old_right[None, :]).sum(1).double() / old_count
    new_accuracy = ((switch[None, :] < candidates[:, None]) & new_right[None, :]).sum(1).double() / new_count
    ceiling = float(old_right.sum()) / old_count
    allowed = old_accuracy >= ceiling - max_old_drop - 1e-12
    best = float(new_accuracy[allowed].max())
    chosen = int(torch.nonzero(allowed & (new_accuracy == best)).flatten()[0])  # the smallest such offset
    offset = float(candidates[chosen])
    with torch.no_grad():
        bias[old_classes:] += offset
    uncalibrated = float(((switch < 0) & new_right).sum()) / new_count
    return {"offset": offset, "old_accuracy_before": ceiling, "old_accuracy": float(old_accuracy[chosen]),
            "old_accuracy_uncalibrated": float(((switch >= 0) & old_right).sum()) / old_count,  # ties: old
            "new_accuracy": best, "new_accuracy_uncalibrated": uncalibrated, "max_old_drop": max_old_drop}


def _family(path: Path) -> str:
    from .checkpoint import read_checkpoint

    return read_checkpoint(path).family


def _share(correct: torch.Tensor) -> float:
    return float(correct.float().mean()) if len(correct) else float("nan")


def _export_and_check(model: nn.Module, old: nn.Module, data: TaskData, out: Path, formats, old_count: int,
                      family: str, log) -> dict:
    """Export the extended network and check, in each file's own runtime, that the old classes' answers
    are the old network's: a float file whose old logits are more than ``FLOAT_FILE_TOLERANCE`` from the
    old network's, or that ever answers another old class, is an ExportError (nothing is kept); for an
    int8 file the top-1 agreement among the old classes is recorded."""
    from .export import runtimes
    from .export.exporter import ExportError, export_model

    result = export_model(model, data, out, formats=formats, family=family, task_kind="kws", log=log)
    inputs = data.test.take(torch.arange(min(len(data.test), 512))).numpy()
    with torch.no_grad():
        before = old.eval()(torch.from_numpy(inputs)).double().numpy()
    nhwc = np.ascontiguousarray(inputs.transpose(0, 2, 3, 1))
    checks = {}
    for fmt, path in result.files.items():
        if fmt in ("onnx", "onnx-int8"):
            loaded, batch = runtimes.open_onnx(path), inputs
        elif fmt in ("tflite", "tflite-int8"):
            loaded, batch = runtimes.open_litert(path), nhwc
        else:
            continue
        answers = loaded.output.dequantize(loaded.run(loaded.input.quantize(batch)))
        old_answers = np.asarray(answers, dtype=np.float64)[:, :old_count]
        check = {"old_top1_agreement": float((old_answers.argmax(1) == before.argmax(1)).mean())}
        if "int8" not in fmt:
            check["old_max_abs_difference"] = float(np.abs(old_answers - before).max())
            if check["old_max_abs_difference"] > FLOAT_FILE_TOLERANCE or check["old_top1_agreement"] < 1:
                raise ExportError(f"{path.name} moves the old classes' logits by {check['old_max_abs_difference']:.2g} "
                                  f"(top-1 among them the old network's on {check['old_top1_agreement']:.1%} of test "
                                  "inputs): the exported network is not the extended one (a bug in edgegrow)")
        checks[fmt] = check
    return checks
