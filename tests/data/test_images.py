import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from edgegrow.data.images import (
    ImageTaskConfig,
    augment_images,
    image_input,
    load_cifar10,
    load_digits_task,
    load_faces_task,
    load_image_folder,
    stratified_split,
)


def test_digits_are_upscaled_normalised_and_stratified():
    task = load_digits_task(ImageTaskConfig(resolution=32, channels=1, flips=False))
    assert task.input_shape == (1, 32, 32) and task.num_classes == 10
    assert len(task.train) + len(task.validation) + len(task.test) == 1797
    assert abs(task.train.inputs.mean().item()) < 1e-3 and abs(task.train.inputs.std().item() - 1) < 1e-2
    counts = task.test.class_counts(10)
    assert max(counts) - min(counts) <= 2
    assert task.preprocessing["resolution"] == 32 and len(task.preprocessing["mean"]) == 1


def test_faces_task_is_person_detection_with_two_balanced_classes():
    task = load_faces_task(ImageTaskConfig(resolution=48))
    assert task.class_names == ["no_person", "person"] and task.input_shape == (3, 48, 48)
    assert task.train.class_counts(2) == [70, 70]


def test_split_is_deterministic_and_disjoint():
    labels = np.repeat(np.arange(4), 25)
    first, second = stratified_split(labels, 0.2, 0.2, 7), stratified_split(labels, 0.2, 0.2, 7)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert len(np.intersect1d(first[0], first[2])) == 0 and sum(len(p) for p in first) == 100


def _transforms(image: torch.Tensor, max_shift: int) -> dict[tuple[bool, int, int], torch.Tensor]:
    """Every image the augmentation may make of ``image``: flipped or not, shifted by (dy, dx) with
    reflection padding, computed independently of edgegrow's code."""
    height, width = image.shape[-2:]
    found = {}
    for flipped in (False, True):
        source = image.flip(-1) if flipped else image
        padded = torch.nn.functional.pad(source[None], (max_shift,) * 4, mode="reflect")[0]
        for dy in range(2 * max_shift + 1):
            for dx in range(2 * max_shift + 1):
                found[(flipped, dy - max_shift, dx - max_shift)] = padded[..., dy:dy + height, dx:dx + width]
    return found


def test_augmentation_flips_and_shifts_deterministically():
    batch = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    augment = augment_images(flips=True, max_shift=2)
    one = augment(batch, torch.Generator().manual_seed(1))
    assert one.shape == batch.shape and torch.equal(one, augment(batch, torch.Generator().manual_seed(1)))
    seen = set()
    for seed in range(12):
        out = augment(batch, torch.Generator().manual_seed(seed))
        made = []
        for image, result in zip(batch, out):  # each output is one flip-and-shift of its own input
            matches = [key for key, candidate in _transforms(image, 2).items() if torch.equal(candidate, result)]
            assert len(matches) == 1, (seed, matches)
            made.append(matches[0])
        assert len({(dy, dx) for _, dy, dx in made}) == 1  # one shift per batch
        seen.update(made)
    assert {flipped for flipped, _, _ in seen} == {False, True}  # some images flipped, some not
    assert len({(dy, dx) for _, dy, dx in seen}) >= 5  # the shift varies, up to ±2 pixels
    assert all(abs(dy) <= 2 and abs(dx) <= 2 for _, dy, dx in seen)
    assert torch.equal(augment_images(flips=False, max_shift=0)(batch, torch.Generator().manual_seed(3)), batch)


def write_image_folder(root, presplit=False):
    rng = np.random.default_rng(0)
    for split in (["train", "val"] if presplit else [""]):
        for name, level in (("cat", 40), ("dog", 200)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(6):
                pixels = np.clip(rng.normal(level, 20, (20, 24, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_image_folder_loads_classes_and_counts_unreadable_files(tmp_path):
    root = write_image_folder(tmp_path / "pets")
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    task = load_image_folder(root, ImageTaskConfig(resolution=16, validation_fraction=0.2, test_fraction=0.2))
    assert task.class_names == ["cat", "dog"] and task.input_shape == (3, 16, 16)
    assert len(task.train) + len(task.validation) + len(task.test) == 12
    assert list(task.skipped.values()) == [1] and "cat/broken.png" in next(iter(task.skipped))


def test_image_folder_with_train_and_val_folders(tmp_path):
    task = load_image_folder(write_image_folder(tmp_path / "pets", presplit=True), ImageTaskConfig(resolution=16))
    assert (len(task.train), len(task.validation)) == (12, 12)
    assert any("no test/ folder" in note for note in task.notes)


@pytest.mark.parametrize("channels", [3, 1])
def test_image_input_is_the_loaders_preprocessing_of_one_image(tmp_path, channels):
    """``image_input`` (the reference the device pipeline's tests compare with) gives the very input the
    folder loader trained on, for RGB and for grey networks."""
    root = write_image_folder(tmp_path / "pets", presplit=True)
    task = load_image_folder(root, ImageTaskConfig(resolution=16, channels=channels))
    paths = [root / "val" / name / f"{i}.png" for name in ("cat", "dog") for i in range(6)]
    for path, stored in zip(paths, task.validation.inputs, strict=True):
        pixels = np.asarray(Image.open(path))
        torch.testing.assert_close(image_input(pixels, task.preprocessing)[0], stored, atol=1e-5, rtol=0)


@pytest.mark.parametrize("make,message", [
    (lambda root: root / "missing", "no image folder at"),
    (lambda root: root.mkdir() or root, "has no class folders"),
    (lambda root: (write_image_folder(root), (root / "bird").mkdir(), root)[2], "class 'bird' has no readable images"),
])
def test_bad_image_folders_are_clear_errors(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        load_image_folder(make(tmp_path / "pets"))


def write_cifar(root, rows=40):
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        batch = {b"data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8),
                 b"labels": [int(x) for x in rng.integers(0, 10, rows)], b"batch_label": name.encode()}
        with open(root / name, "wb") as handle:
            pickle.dump(batch, handle)
    with open(root / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, handle)
    return root


def test_cifar10_batches_load_as_train_validation_and_test(tmp_path):
    task = load_cifar10(write_cifar(tmp_path / "cifar"), ImageTaskConfig(validation_fraction=0.25))
    assert task.input_shape == (3, 32, 32) and task.class_names[3] == "class3"
    assert len(task.test) == 40 and len(task.train) + len(task.validation) == 80


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar_loader_refuses_pickles_that_would_run_code(tmp_path):
    root = write_cifar(tmp_path / "cifar")
    with open(root / "data_batch_2", "wb") as handle:
        pickle.dump({b"data": Exploit(), b"labels": []}, handle)
    with pytest.raises(ValueError, match="refusing to load (posix|os).system"):
        load_cifar10(root)


def test_missing_cifar_files_are_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no CIFAR-10 python batches in"):
        load_cifar10(tmp_path)


def all_inputs(split) -> torch.Tensor:
    return torch.cat(list(split.batches(torch.arange(len(split)), 7)))


@pytest.mark.parametrize("kind", ["folder", "presplit folder", "cifar"])
def test_a_streamed_image_set_gives_the_inputs_of_the_held_one(tmp_path, kind):
    """stream=True (what a set above STREAM_ABOVE_BYTES gets): nothing held as float32 — CIFAR's pixels
    stay uint8, a folder's files are decoded as read — and every split's inputs are those of the set
    held in memory (the normalisation statistics are summed in float64 instead of float32)."""
    if kind == "cifar":
        root = write_cifar(tmp_path / "cifar")
        load = lambda stream: load_cifar10(root, ImageTaskConfig(resolution=24, validation_fraction=0.25,  # noqa: E731
                                                                 stream=stream))
    else:
        root = write_image_folder(tmp_path / "pets", presplit=kind == "presplit folder")
        (root / ("train" if kind == "presplit folder" else "") / "cat" / "broken.png").write_bytes(b"not a png")
        load = lambda stream: load_image_folder(root, ImageTaskConfig(resolution=16, channels=1,  # noqa: E731
                                                                      validation_fraction=0.2, test_fraction=0.2,
                                                                      stream=stream))
    held, streamed = load(False), load(True)
    assert not held.train.streamed and streamed.train.streamed
    assert streamed.skipped == held.skipped and streamed.input_shape == held.input_shape
    for mine, theirs in zip((streamed.train, streamed.validation, streamed.test),
                            (held.train, held.validation, held.test)):
        assert torch.equal(mine.labels, theirs.labels)
        assert torch.allclose(all_inputs(mine), all_inputs(theirs), atol=1e-5)
    for key in ("mean", "std"):
        assert streamed.preprocessing[key] == pytest.approx(held.preprocessing[key], rel=1e-5)
    if kind == "cifar":
        assert streamed.train.inputs.read(0).dtype == torch.uint8  # kept as uint8


def test_an_image_set_streams_by_its_size_unless_told():
    config = ImageTaskConfig(resolution=96)
    assert not config.streams(1000)  # 1,000 × 3 × 96 × 96 float32: 106 MiB
    assert config.streams(82_783)  # Visual Wake Words' training set: 8.5 GiB as float32
    assert ImageTaskConfig(stream=True).streams(1) and not ImageTaskConfig(stream=False).streams(10**9)
    with pytest.raises(ValueError, match="stream must be True, False or None"):
        ImageTaskConfig(stream="yes")
