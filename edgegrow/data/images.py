"""Image classification tasks for the MobileNet family.

Built in, from data that ships inside installed packages (nothing is downloaded):
- ``digits``: scikit-learn's 1,797 handwritten digits (8×8), upscaled; 10 classes.
- ``faces``: scikit-image's ``lfw_subset`` (100 faces, 100 non-faces, 25×25), upscaled; a small
  person-detection task in the spirit of MLPerf Tiny's visual wake words; 2 classes.
Loaders for what users have: an ImageFolder-style directory (one folder per class, or
``train/``, ``val/``, ``test/`` folders of class folders) and CIFAR-10's python batch files.

Inputs are (N, C, resolution, resolution) float32, normalised per channel with the training
split's mean and standard deviation (recorded in ``TaskData.preprocessing``).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .task_data import Split, TaskData

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class ImageTaskConfig:
    """Size, splits and augmentation of an image task."""

    resolution: int = 32
    channels: int = 3  # 1 keeps grey images grey; 3 repeats grey into RGB
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    flips: bool = True  # random horizontal flips in training (off for digits)
    max_shift: int = 2  # random translation in pixels in training

    def __post_init__(self):
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or self.resolution < 8:
            raise ValueError(f"resolution must be an integer of at least 8 pixels, got {self.resolution!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
        if not (0 <= self.validation_fraction < 1 and 0 <= self.test_fraction < 1
                and self.validation_fraction + self.test_fraction < 1):
            raise ValueError("validation_fraction and test_fraction must be in [0, 1) and sum to less than 1")


def stratified_split(labels: np.ndarray, validation_fraction: float, test_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train, validation and test, each class divided in the same proportions."""
    rng = np.random.default_rng([seed, 30])
    parts: tuple[list, list, list] = ([], [], [])
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(members) * test_fraction))
        n_validation = int(round(len(members) * validation_fraction))
        parts[2].extend(members[:n_test])
        parts[1].extend(members[n_test: n_test + n_validation])
        parts[0].extend(members[n_test + n_validation:])
    return tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)


def _resize(images: torch.Tensor, config: ImageTaskConfig) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] → (N, config.channels, resolution, resolution)."""
    if images.shape[1] == 1 and config.channels == 3:
        images = images.expand(-1, 3, -1, -1)
    elif images.shape[1] == 3 and config.channels == 1:
        images = (images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    size = (config.resolution, config.resolution)
    if tuple(images.shape[-2:]) != size:
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    return images.contiguous().float()


def augment_images(flips: bool, max_shift: int):
    """Random horizontal flips and translations by up to ``max_shift`` pixels (reflection padding)."""

    def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if flips:
            flip = torch.rand(len(batch), generator=generator) < 0.5
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
        if max_shift > 0:
            padded = F.pad(batch, (max_shift,) * 4, mode="reflect")
            height, width = batch.shape[-2:]
            dy, dx = torch.randint(0, 2 * max_shift + 1, (2,), generator=generator).tolist()
            batch = padded[..., dy: dy + height, dx: dx + width]
        return batch

    return augment


def _task(name: str, images: torch.Tensor, labels: np.ndarray, class_names: list[str],
          config: ImageTaskConfig, indices=None, skipped=None, notes=None) -> TaskData:
    """Split (unless ``indices`` are given), normalise with training statistics, wrap as TaskData."""
    if indices is None:
        indices = stratified_split(labels, config.validation_fraction, config.test_fraction, config.seed)
    images = _resize(images, config)
    train_index = torch.from_numpy(indices[0])
    mean = images[train_index].mean(dim=(0, 2, 3))
    std = images[train_index].std(dim=(0, 2, 3)).clamp(min=1e-6)
    images = (images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    labels_tensor = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    splits = [Split(images[torch.from_numpy(i)], labels_tensor[torch.from_numpy(i)]) for i in indices]
    splits[0].augment_batch = augment_images(config.flips, config.max_shift)
    preprocessing = {
        "kind": "image", "resolution": config.resolution, "channels": config.channels, "layout": "NCHW",
        "scale": "pixel values in [0, 1], then (x - mean) / std per channel",
        "mean": mean.tolist(), "std": std.tolist(), "resize": "bilinear, antialiased", "class_names": class_names,
    }
    return TaskData(name, class_names, *splits, preprocessing, skipped or {}, notes or [])


def load_digits_task(config: ImageTaskConfig = ImageTaskConfig(flips=False)) -> TaskData:
    """scikit-learn's handwritten digits (8×8, 16 grey levels), upscaled: 10 classes."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images / 16.0).float().unsqueeze(1)
    return _task("digits", images, digits.target, [str(d) for d in range(10)], config)


def load_faces_task(config: ImageTaskConfig = ImageTaskConfig()) -> TaskData:
    """scikit-image's lfw_subset: 100 faces and 100 non-face patches (25×25 grey): person / no person."""
    from skimage import data

    images = torch.from_numpy(data.lfw_subset()).float().unsqueeze(1)
    labels = np.array([1] * 100 + [0] * 100)  # the first 100 are faces
    return _task("faces", images, labels, ["no_person", "person"], config)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(str(error)) from None


def _class_folders(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def load_image_folder(root: str | Path, config: ImageTaskConfig = ImageTaskConfig()) -> TaskData:
    """Images in class folders: ``ROOT/CLASS/*.png`` (split here), or ``ROOT/{train,val,test}/CLASS/*``.

    Unreadable images are skipped and counted. Raises ValueError for a missing folder, no class
    folders, or a class with no readable image.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"no image folder at {root}; expected one sub-folder of images per class")
    presplit = (root / "train").is_dir() and (root / "val").is_dir()
    split_roots = [root / "train", root / "val"] + ([root / "test"] if (root / "test").is_dir() else [])
    class_names = [d.name for d in _class_folders(split_roots[0] if presplit else root)]
    if not class_names:
        raise ValueError(f"{root} has no class folders; expected ROOT/CLASS/IMAGE files")
    images, labels, split_of, skipped = [], [], [], {}
    size = (config.resolution, config.resolution)
    for split_index, base in enumerate(split_roots if presplit else [root]):
        for label, name in enumerate(class_names):
            folder = base / name
            files = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
            readable = 0
            for path in files:
                try:
                    pixels = torch.from_numpy(_read_image(path)).permute(2, 0, 1).unsqueeze(0)
                except ValueError:
                    key = f"unreadable image (e.g. {path.relative_to(root)})"
                    skipped[key] = skipped.get(key, 0) + 1
                    continue
                images.append(F.interpolate(pixels, size=size, mode="bilinear", antialias=True))
                labels.append(label)
                split_of.append(split_index)
                readable += 1
            if readable == 0 and split_index == 0:
                raise ValueError(f"class '{name}' has no readable images in {folder}")
    stacked = torch.cat(images)
    labels_array = np.asarray(labels)
    notes = []
    if presplit:
        split_array = np.asarray(split_of)
        validation = np.flatnonzero(split_array == 1)
        test = np.flatnonzero(split_array == 2) if len(split_roots) == 3 else validation
        if len(split_roots) == 2:
            notes.append("no test/ folder: the test split is the validation split")
        indices = (np.flatnonzero(split_array == 0), validation, test)
    else:
        indices = None
    return _task(f"image-folder:{root.name}", stacked, labels_array, class_names, config, indices, skipped, notes)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and numpy arrays; refuses anything that could run code."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only arrays are allowed)")


def _load_cifar_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            batch = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: not a CIFAR-10 python batch ({error})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: not a CIFAR-10 python batch (no data/labels)")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(batch[b"labels"]):
        raise ValueError(f"{path}: expected {len(batch[b'labels'])} rows of 3072 bytes, got data of shape {data.shape}")
    return batch


def load_cifar10(root: str | Path, config: ImageTaskConfig = ImageTaskConfig()) -> TaskData:
    """CIFAR-10 from its python batch files (``data_batch_1`` … ``data_batch_5``, ``test_batch``).

    The batches are pickles: they are read with an unpickler that only builds arrays, never code.
    The validation split is ``validation_fraction`` of the training batches.
    """
    root = Path(root)
    train_files = sorted(root.glob("data_batch_*"))
    if not root.is_dir() or not train_files or not (root / "test_batch").exists():
        raise ValueError(
            f"no CIFAR-10 python batches in {root}; expected data_batch_1 … data_batch_5 and test_batch "
            "(the cifar-10-batches-py folder)"
        )
    train_batches = [_load_cifar_batch(p) for p in train_files]
    test_batch = _load_cifar_batch(root / "test_batch")
    data = np.concatenate([b[b"data"] for b in train_batches] + [test_batch[b"data"]])
    labels = np.concatenate([np.asarray(b[b"labels"]) for b in train_batches] + [np.asarray(test_batch[b"labels"])])
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    n_train = len(data) - len(test_batch[b"data"])
    train_part, validation_part, _ = stratified_split(labels[:n_train], config.validation_fraction, 0.0, config.seed)
    indices = (train_part, validation_part, np.arange(n_train, len(data)))
    names = list(CIFAR10_CLASSES)
    meta_path = root / "batches.meta"
    if meta_path.exists():
        with open(meta_path, "rb") as handle:
            meta = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", names)]
    return _task("cifar10", images, labels, names, config, indices)
