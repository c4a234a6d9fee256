"""Image classification tasks for the MobileNet family.

Built in, from data that ships inside installed packages (nothing is downloaded):
- ``digits``: scikit-learn's 1,797 handwritten digits (8×8), upscaled; 10 classes.
- ``faces``: scikit-image's ``lfw_subset`` (100 faces, 100 non-faces, 25×25), upscaled; a small
  person-detection task in the spirit of MLPerf Tiny's visual wake words; 2 classes.
Loaders for what users have: an ImageFolder-style directory (one folder per class, or
``train/``, ``val/``, ``test/`` folders of class folders) and CIFAR-10's python batch files.

Inputs are (N, C, resolution, resolution) float32, normalised per channel with the training
split's mean and standard deviation (recorded in ``TaskData.preprocessing``). A set whose float32
inputs would take more than ``STREAM_ABOVE_BYTES`` (or any set, with ``ImageTaskConfig(stream=True)``)
is streamed instead of held: CIFAR's pixels stay uint8 in memory (a quarter of float32), an image
folder's files are decoded when a batch needs them, and each item is resized and normalised as it is
read (``StoredImages``), giving the same inputs as the set held in memory.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .task_data import Split, TaskData

STREAM_ABOVE_BYTES = 256 * 2**20  # with stream=None, sets whose float32 inputs exceed this are streamed
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
    stream: bool | None = None  # None: stream the folder/CIFAR loaders' sets above STREAM_ABOVE_BYTES of float32

    def __post_init__(self):
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or self.resolution < 8:
            raise ValueError(f"resolution must be an integer of at least 8 pixels, got {self.resolution!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
        if not (0 <= self.validation_fraction < 1 and 0 <= self.test_fraction < 1
                and self.validation_fraction + self.test_fraction < 1):
            raise ValueError("validation_fraction and test_fraction must be in [0, 1) and sum to less than 1")
        if self.stream not in (None, True, False):
            raise ValueError(f"stream must be True, False or None (decide by size), got {self.stream!r}")

    def streams(self, count: int) -> bool:
        """Whether a set of ``count`` images is streamed rather than held as float32."""
        if self.stream is not None:
            return self.stream
        return count * self.channels * self.resolution ** 2 * 4 > STREAM_ABOVE_BYTES


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


def image_input(image: np.ndarray, preprocessing: dict) -> torch.Tensor:
    """One image (H, W, C) or (H, W), uint8 pixels or floats in [0, 1], as the network's input
    (1, C, resolution, resolution): what an image task's loaders do to the images it trains on, with the
    task's ``preprocessing`` (its resolution, channels and training statistics)."""
    pixels = np.asarray(image)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    pixels = pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels.astype(np.float32)
    config = ImageTaskConfig(resolution=preprocessing["resolution"], channels=preprocessing["channels"])
    images = _resize(torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None], config)
    mean = torch.tensor(preprocessing["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(preprocessing["std"]).view(1, -1, 1, 1)
    return (images - mean) / std


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


class StoredImages(torch.utils.data.Dataset):
    """Images read one at a time and prepared as they are read: item ``i`` is ``read(rows[i])`` (a
    (C, H, W) tensor of pixels, uint8 or float in [0, 1]) resized to the task's resolution and channels
    and normalised with ``mean`` and ``std`` (per channel; None before they are known)."""

    def __init__(self, read: Callable[[int], torch.Tensor], rows: np.ndarray, config: ImageTaskConfig,
                 mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        self.read, self.rows, self.config, self.mean, self.std = read, rows, config, mean, std

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> torch.Tensor:
        pixels = self.read(int(self.rows[index]))
        if pixels.dtype == torch.uint8:
            pixels = pixels.float() / 255.0
        image = _resize(pixels.unsqueeze(0), self.config)[0]
        if self.mean is None:
            return image
        return (image - self.mean.view(-1, 1, 1)) / self.std.view(-1, 1, 1)

    def normalised(self, rows: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> StoredImages:
        return StoredImages(self.read, rows, self.config, mean, std)


def _channel_statistics(images: StoredImages, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) standard deviation over ``images``, read a chunk at a time."""
    total = squares = None
    count = 0
    for start in range(0, len(images), chunk):
        batch = torch.stack([images[i] for i in range(start, min(start + chunk, len(images)))]).double()
        sums, sums_of_squares = batch.sum(dim=(0, 2, 3)), (batch * batch).sum(dim=(0, 2, 3))
        total = sums if total is None else total + sums
        squares = sums_of_squares if squares is None else squares + sums_of_squares
        count += batch.numel() // batch.shape[1]
    mean = total / count
    variance = (squares - count * mean * mean) / max(1, count - 1)
    return mean.float(), variance.clamp(min=0).sqrt().float().clamp(min=1e-6)


def _task(name: str, images: torch.Tensor | StoredImages, labels: np.ndarray, class_names: list[str],
          config: ImageTaskConfig, indices=None, skipped=None, notes=None) -> TaskData:
    """Split (unless ``indices`` are given), normalise with training statistics, wrap as TaskData.
    ``images``: all of them in memory, or ``StoredImages`` over all of them, read as batches need them."""
    if indices is None:
        indices = stratified_split(labels, config.validation_fraction, config.test_fraction, config.seed)
    labels_tensor = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    if isinstance(images, StoredImages):
        mean, std = _channel_statistics(images.normalised(indices[0], None, None))
        splits = [Split(images.normalised(i, mean, std), labels_tensor[torch.from_numpy(i)]) for i in indices]
    else:
        images = _resize(images, config)
        train_index = torch.from_numpy(indices[0])
        mean = images[train_index].mean(dim=(0, 2, 3))
        std = images[train_index].std(dim=(0, 2, 3)).clamp(min=1e-6)
        images = (images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
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
    listed = []  # (split, label, path)
    for split_index, base in enumerate(split_roots if presplit else [root]):
        for label, name in enumerate(class_names):
            folder = base / name
            files = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
            listed.extend((split_index, label, path) for path in files)
    stream = config.streams(len(listed))
    images, paths, labels, split_of, skipped, readable = [], [], [], [], {}, set()
    size = (config.resolution, config.resolution)
    for split_index, label, path in listed:  # every file decoded once: which are readable (and, held, the pixels)
        try:
            pixels = torch.from_numpy(_read_image(path)).permute(2, 0, 1).unsqueeze(0)
        except ValueError:
            key = f"unreadable image (e.g. {path.relative_to(root)})"
            skipped[key] = skipped.get(key, 0) + 1
            continue
        if stream:
            paths.append(path)
        else:
            images.append(F.interpolate(pixels, size=size, mode="bilinear", antialias=True))
        labels.append(label)
        split_of.append(split_index)
        readable.add((split_index, label))
    for label, name in enumerate(class_names):
        if (0, label) not in readable:
            raise ValueError(f"class '{name}' has no readable images in {(split_roots[0] if presplit else root) / name}")

    def read(row: int) -> torch.Tensor:  # the same pixels as the held path's: decoded, then resized alone
        pixels = torch.from_numpy(_read_image(paths[row])).permute(2, 0, 1).unsqueeze(0)
        return F.interpolate(pixels, size=size, mode="bilinear", antialias=True)[0]

    stacked = StoredImages(read, np.arange(len(paths)), config) if stream else torch.cat(images)
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
    pixels = torch.from_numpy(data.reshape(-1, 3, 32, 32))  # uint8
    if config.streams(len(pixels)):  # a quarter of float32's memory: each image made float when read
        images = StoredImages(lambda row: pixels[row], np.arange(len(pixels)), config)
    else:
        images = pixels.float() / 255.0
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
