"""Tasks: the data a grow run trains on and the seed family it starts from.

- ``kws``: keyword spotting on MFCCs, DS-CNN seed. Data: a Speech Commands v2 folder, or by
  default the synthetic set made with espeak-ng (``edgegrow data kws``), made or reused in the cache.
- ``image``: image classification, a MobileNetV1 seed (or MobileNetV2 or ResNet-8: ``family=``). Data:
  an image folder (``ROOT/CLASS/*`` or ``ROOT/{train,val,test}/CLASS/*``), a CIFAR-10 python folder, or
  by default scikit-learn's digits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from .checkpoint import build_seed_from_options
from .data.task_data import TaskData

if TYPE_CHECKING:
    from .grow.run_folder import RunMeta

TASKS = ("kws", "image")


# The seed family each task grows; a checkpoint's family tells which task it was grown on.
TASK_OF_FAMILY = {"ds-cnn": "kws", "mobilenet-v1": "image", "mobilenet-v2": "image", "resnet8": "image"}
DEFAULT_FAMILY = {"kws": "ds-cnn", "image": "mobilenet-v1"}
# The family network that width multipliers scale (a seed's --seed-width, the uniform baselines).
REFERENCE_OPTIONS = {"ds-cnn": {"size": "S"}, "mobilenet-v1": {}, "mobilenet-v2": {}, "resnet8": {}}


@dataclass
class Task:
    data: TaskData
    family: str
    seed_options: dict  # JSON-able keyword arguments of build_seed(family, ...)
    source: dict = field(default_factory=dict)  # {"task": "kws", "data": absolute folder or None (the default)}

    def seed(self) -> nn.Module:
        return build_seed_from_options(self.family, self.seed_options)

    def with_seed_width(self, width_multiplier: float | None) -> Task:
        """This task with its seed the family's reference network at ``width_multiplier`` (None: the
        family's seed shape, a few channels per layer)."""
        options = {key: value for key, value in self.seed_options.items() if key != "width_multiplier"}
        if width_multiplier is not None:
            if isinstance(width_multiplier, bool) or not isinstance(width_multiplier, (int, float)) \
                    or not 0 < width_multiplier <= 8:
                raise ValueError(f"seed width must be a width multiplier in (0, 8], got {width_multiplier!r}")
            options["width_multiplier"] = float(width_multiplier)
        return Task(self.data, self.family, options, self.source)

    def uniform(self, width_multiplier: float) -> nn.Module:
        """The family's reference network (REFERENCE_OPTIONS) at ``width_multiplier``, built for this
        task's input shape and classes: a uniform baseline."""
        from .models import build_model

        options = dict(REFERENCE_OPTIONS[self.family])
        shape = tuple(self.data.input_shape)
        if self.family in ("ds-cnn", "resnet8"):
            options.update(num_classes=self.data.num_classes, input_shape=shape)
        else:
            options.update(resolution=shape[1], num_classes=self.data.num_classes, in_channels=shape[0])
        return build_model(self.family, width_multiplier=width_multiplier, **options)


def load_task(task: str, data: str | Path | None = None, *, family: str | None = None,
              cache_dir: str | Path | None = None, progress: bool = True) -> Task:
    """The task's data and its seed family (default ``DEFAULT_FAMILY[task]``), sized for the data's input
    shape and classes."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    family = family or DEFAULT_FAMILY[task]
    if TASK_OF_FAMILY.get(family) != task:
        fits = ", ".join(name for name, of in TASK_OF_FAMILY.items() if of == task)
        raise ValueError(f"family {family!r} does not grow on the {task} task; choose one of {fits}")
    source = {"task": task, "data": None if data is None else str(Path(data).resolve()), "family": family}
    if task == "kws":
        from .data.speech_commands import load_speech_commands

        if data is None:
            from .data.synthesize_kws import ensure_default_kws_set

            data = ensure_default_kws_set(cache_dir, progress=progress).folder
        task_data = load_speech_commands(data, cache_dir=cache_dir, progress=progress)
        return Task(task_data, "ds-cnn", {"num_classes": task_data.num_classes,
                                          "input_shape": list(task_data.input_shape)}, source)
    if task == "image":
        from .data import images

        if data is None:
            task_data = images.load_digits_task()
        else:
            root = Path(data)
            is_cifar = (root / "data_batch_1").is_file()
            task_data = images.load_cifar10(root) if is_cifar else images.load_image_folder(root)
        channels, height, width = task_data.input_shape
        if height != width:
            raise ValueError(f"image task needs square images, got {height}×{width}")
        if family == "resnet8":
            options = {"num_classes": task_data.num_classes, "input_shape": list(task_data.input_shape)}
        else:
            options = {"resolution": height, "num_classes": task_data.num_classes, "in_channels": channels}
        return Task(task_data, family, options, source)


def load_task_of_checkpoint(family: str, meta: RunMeta, data: str | Path | None = None, *,
                            cache_dir: str | Path | None = None, progress: bool = True) -> TaskData:
    """The data a checkpoint was grown on: ``data`` if given, else the folder its run recorded (or the
    task's default set). The loaded data must preprocess inputs exactly as the run's did.

    Raises:
        ValueError: unknown family, or data whose preprocessing (MFCC settings, normalisation
            statistics, image size, classes) differs from the checkpoint's.
    """
    source = meta.task_source or {}
    task = source.get("task") or TASK_OF_FAMILY.get(family)
    if task is None:
        raise ValueError(f"cannot tell the task of a {family!r} checkpoint; it was not grown by 'edgegrow grow'")
    folder = data if data is not None else source.get("data")
    if folder is not None and not Path(folder).exists():
        raise ValueError(f"the data the run used, {folder}, is not there; pass --data with its folder")
    task_data = load_task(task, folder, cache_dir=cache_dir, progress=progress).data
    expected = meta.preprocessing
    if expected is not None and json.loads(json.dumps(task_data.preprocessing)) != expected:
        where = "--data" if data is not None else "the run's data"
        raise ValueError(f"{where} preprocesses inputs differently from the checkpoint's run (other MFCC settings, "
                         "normalisation statistics or classes); pass --data with the folder the run was grown on")
    return task_data
