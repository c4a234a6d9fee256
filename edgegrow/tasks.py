"""Tasks: the data a grow run trains on and the seed family it starts from.

- ``kws``: keyword spotting on MFCCs, DS-CNN seed. Data: a Speech Commands v2 folder, or by
  default the synthetic set made with espeak-ng (``edgegrow data kws``), made or reused in the cache.
- ``image``: image classification, MobileNetV1 seed. Data: an image folder (``ROOT/CLASS/*`` or
  ``ROOT/{train,val,test}/CLASS/*``), a CIFAR-10 python folder, or by default scikit-learn's digits.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .checkpoint import build_seed_from_options
from .data.task_data import TaskData

TASKS = ("kws", "image")


@dataclass
class Task:
    data: TaskData
    family: str
    seed_options: dict  # JSON-able keyword arguments of build_seed(family, ...)

    def seed(self) -> nn.Module:
        return build_seed_from_options(self.family, self.seed_options)


def load_task(task: str, data: str | Path | None = None, *, cache_dir: str | Path | None = None,
              progress: bool = True) -> Task:
    """The task's data and its seed family, sized for the data's input shape and classes."""
    if task == "kws":
        from .data.speech_commands import load_speech_commands

        if data is None:
            from .demo import ensure_default_kws_set

            data = ensure_default_kws_set(cache_dir, progress=progress).folder
        task_data = load_speech_commands(data, cache_dir=cache_dir, progress=progress)
        return Task(task_data, "ds-cnn", {"num_classes": task_data.num_classes,
                                          "input_shape": list(task_data.input_shape)})
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
        return Task(task_data, "mobilenet-v1", {"resolution": height, "num_classes": task_data.num_classes,
                                                "in_channels": channels})
    raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
