"""Tasks: the data a grow run trains on and the seed family it starts from.

- ``kws``: keyword spotting on MFCCs, DS-CNN seed. Data: a Speech Commands v2 folder, or by
  default the synthetic set made with espeak-ng (``edgegrow data kws``), made or reused in the cache.
- ``image``: image classification, a MobileNetV2 seed (or MobileNetV1 or ResNet-8: ``family=``). Data:
  an image folder (``ROOT/CLASS/*`` or ``ROOT/{train,val,test}/CLASS/*``), a CIFAR-10 python folder, or
  by default scikit-learn's digits.

Which family grows on which task, and its default, come from ``edgegrow.models.registry``; a
registered family of your own grows on its task by name.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from .checkpoint import build_seed_from_options
from .data.task_data import TaskData
from .models.registry import DEFAULT_FAMILY, FAMILIES, TASKS, Family, families_of, get_family

if TYPE_CHECKING:
    from .grow.run_folder import RunMeta


def task_of_family(family: str) -> str | None:
    """The task a family grows on (a checkpoint's family tells which task it was grown on); None for a
    name that is no registered family."""
    return FAMILIES[family].task if family in FAMILIES else None


@dataclass
class Task:
    data: TaskData
    family: str
    seed_options: dict  # JSON-able keyword arguments of build_seed(family, ...)
    source: dict = field(default_factory=dict)  # {"task": "kws", "data": absolute folder or None (the default)}

    @property
    def family_record(self) -> Family:
        return get_family(self.family)

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
        """The family's reference network at ``width_multiplier`` (``Family.network``), built for this
        task's input shape and classes: a uniform baseline."""
        return self.family_record.network(self.data.num_classes, self.data.input_shape, width_multiplier)


def load_task(task: str, data: str | Path | None = None, *, family: str | None = None,
              cache_dir: str | Path | None = None, progress: bool = True, new_classes: Sequence[str] = (),
              normalization: dict | None = None) -> Task:
    """The task's data and its seed family (default ``registry.DEFAULT_FAMILY[task]``), sized for the
    data's input shape and classes.

    ``new_classes`` (kws): words of the folder that become classes after the 12 (``edgegrow extend``);
    ``normalization`` (kws): the standardisation ``{"mean", "std"}`` to use instead of the training
    split's. Both are recorded in ``Task.source`` so a checkpoint's data loads the same again."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    family = family or DEFAULT_FAMILY[task]
    if task_of_family(family) != task:
        raise ValueError(f"family {family!r} does not grow on the {task} task; choose one of "
                         f"{', '.join(families_of(task))}")
    source = {"task": task, "data": None if data is None else str(Path(data).resolve()), "family": family}
    if (new_classes or normalization is not None) and task != "kws":
        raise ValueError(f"new classes and a fixed normalisation are for the kws task, not {task}")
    if new_classes:
        source["new_classes"] = list(new_classes)
    if normalization is not None:
        source["normalization"] = {"mean": list(normalization["mean"]), "std": list(normalization["std"])}
    if task == "kws":
        from .data.speech_commands import KwsConfig, load_speech_commands

        if data is None:
            from .data.synthesize_kws import ensure_default_kws_set

            data = ensure_default_kws_set(cache_dir, progress=progress).folder
        config = KwsConfig(extra_keywords=tuple(new_classes), normalization=source.get("normalization"))
        task_data = load_speech_commands(data, config, cache_dir=cache_dir, progress=progress)
        return Task(task_data, family, _seed_options(task_data), source)
    if task == "image":
        from .data import images

        if data is None:
            task_data = images.load_digits_task()
        else:
            root = Path(data)
            is_cifar = (root / "data_batch_1").is_file()
            task_data = images.load_cifar10(root) if is_cifar else images.load_image_folder(root)
        _, height, width = task_data.input_shape
        if height != width:
            raise ValueError(f"image task needs square images, got {height}×{width}")
        return Task(task_data, family, _seed_options(task_data), source)


def _seed_options(data: TaskData) -> dict:
    """A seed's options (``Family.build_seed``'s signature), JSON-able for its checkpoint."""
    return {"num_classes": data.num_classes, "input_shape": list(data.input_shape)}


def load_task_of_checkpoint(family: str, meta: RunMeta, data: str | Path | None = None, *,
                            cache_dir: str | Path | None = None, progress: bool = True) -> TaskData:
    """The data a checkpoint was grown on: ``data`` if given, else the folder its run recorded (or the
    task's default set). The loaded data must preprocess inputs exactly as the run's did.

    Raises:
        ValueError: unknown family, or data whose preprocessing (MFCC settings, normalisation
            statistics, image size, classes) differs from the checkpoint's.
    """
    source = meta.task_source or {}
    task = source.get("task") or task_of_family(family)
    if task is None:
        raise ValueError(f"cannot tell the task of a {family!r} checkpoint; it was not grown by 'edgegrow grow'")
    folder = data if data is not None else source.get("data")
    if folder is not None and not Path(folder).exists():
        raise ValueError(f"the data the run used, {folder}, is not there; pass --data with its folder")
    task_data = load_task(task, folder, cache_dir=cache_dir, progress=progress,
                          new_classes=source.get("new_classes", ()), normalization=source.get("normalization")).data
    expected = meta.preprocessing
    if expected is not None and json.loads(json.dumps(task_data.preprocessing)) != expected:
        where = "--data" if data is not None else "the run's data"
        raise ValueError(f"{where} preprocesses inputs differently from the checkpoint's run (other MFCC settings, "
                         "normalisation statistics or classes); pass --data with the folder the run was grown on")
    return task_data
