"""The data of a classification task, split into train, validation and test: each split's inputs either
as one tensor in memory or streamed from a map-style ``torch.utils.data.Dataset`` (data larger than
memory: a memory-mapped array, files read on demand), batch by batch through a ``DataLoader``."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset

from ..argument_checks import check_positive_integer


def _stack_inputs(items: list) -> torch.Tensor:
    """A DataLoader batch of a Dataset whose item is the input or an (input, label) pair: the inputs."""
    return torch.stack([torch.as_tensor(item[0] if isinstance(item, (tuple, list)) else item) for item in items]).float()


@dataclass
class Split:
    """Inputs (N, C, H, W) float32 and labels (N,) int64 of one split.

    ``inputs`` is a tensor in memory, or a map-style ``Dataset`` whose item ``i`` is input ``i`` (or an
    ``(input, label)`` pair, whose label is ignored: ``labels`` are given, they are small) read only
    when a batch needs it, ``num_workers`` DataLoader processes reading ahead. Which examples form a
    batch is decided by the caller from its seed (``Training``), never by the loader, so a streamed
    run is the same run as one in memory and resumes exactly.

    ``epoch_inputs``, when set, gives the inputs of training epoch ``e`` (fresh augmentation per
    epoch; in-memory inputs only); otherwise every epoch sees ``inputs``. ``augment_batch``, when set,
    transforms each training batch (random crops and flips of images) with the generator it is given.
    """

    inputs: torch.Tensor | Dataset
    labels: torch.Tensor
    epoch_inputs: Callable[[int], torch.Tensor] | None = None
    augment_batch: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, torch.Tensor) and not callable(getattr(self.inputs, "__getitem__", None)):
            raise ValueError(f"a split's inputs must be a tensor or a map-style Dataset, got {type(self.inputs).__name__}")
        if len(self.inputs) != len(self.labels):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.labels)} labels")
        if self.streamed and self.epoch_inputs is not None:
            raise ValueError("epoch_inputs needs inputs in memory; augment a streamed split in its Dataset or "
                             "with augment_batch")
        check_positive_integer("num_workers", self.num_workers, allow_zero=True)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def streamed(self) -> bool:
        """Whether the inputs come from a Dataset batch by batch (not a tensor in memory)."""
        return not isinstance(self.inputs, torch.Tensor)

    @property
    def input_shape(self) -> tuple[int, ...]:
        if not self.streamed:
            return tuple(self.inputs.shape[1:])
        return tuple(_stack_inputs([self.inputs[0]]).shape[1:])

    def inputs_for_epoch(self, epoch: int) -> torch.Tensor | Dataset:
        return self.inputs if self.epoch_inputs is None else self.epoch_inputs(epoch)

    def take(self, index: torch.Tensor, epoch: int | None = None) -> torch.Tensor:
        """The inputs at ``index`` (a 1-D index tensor), as a float32 tensor (of ``epoch``'s inputs if given)."""
        inputs = self.inputs if epoch is None else self.inputs_for_epoch(epoch)
        if not self.streamed:
            return inputs[index]
        return _stack_inputs([inputs[int(i)] for i in index])

    def batches(self, order: torch.Tensor, batch_size: int, start: int = 0, epoch: int | None = None
                ) -> Iterator[torch.Tensor]:
        """The inputs of batches ``start``, ``start + 1``, … of ``order`` cut into ``batch_size`` pieces: a
        streamed split reads them through a DataLoader (``num_workers`` processes reading ahead)."""
        cuts = [order[i: i + batch_size] for i in range(start * batch_size, len(order), batch_size)]
        if not self.streamed:
            inputs = self.inputs if epoch is None else self.inputs_for_epoch(epoch)
            return (inputs[cut] for cut in cuts)
        # its own generator: a loader seeds its workers from torch's global one otherwise, which would shift
        # every later draw of the run (new neurons' default fan-in) away from the run on the same data in memory
        loader = DataLoader(self.inputs, batch_sampler=[cut.tolist() for cut in cuts], collate_fn=_stack_inputs,
                            num_workers=self.num_workers, generator=torch.Generator().manual_seed(len(cuts) + start))
        return iter(loader)

    def class_counts(self, classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=classes).tolist()


@dataclass
class TaskData:
    """A task ready for training: splits, class names, the input shape, and how inputs were made.

    ``preprocessing`` holds the exact parameters needed to reproduce the inputs on a device (the
    MFCC settings, the image size and normalisation). ``skipped`` counts files left out, by reason.
    """

    name: str
    class_names: list[str]
    train: Split
    validation: Split
    test: Split
    preprocessing: dict = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.input_shape

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> str:
        """A few lines: sizes of the splits, what was skipped and why, notes."""
        lines = [f"{self.name}: {self.num_classes} classes, input {self.input_shape}, "
                 f"train {len(self.train)} / validation {len(self.validation)} / test {len(self.test)}"]
        lines += [f"  skipped {count} file(s): {reason}" for reason, count in self.skipped.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)
