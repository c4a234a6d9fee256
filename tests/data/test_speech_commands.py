import numpy as np
import pytest
import torch
from fake_speech_commands import write_speech_commands

from edgegrow.data.audio import write_wav
from edgegrow.data.speech_commands import (
    CLASS_NAMES,
    KwsConfig,
    features_cache_file,
    load_kws_features,
    load_speech_commands,
)


def load(root, tmp_path, **config):
    return load_speech_commands(root, KwsConfig(**config), cache_dir=tmp_path / "cache", progress=False)


def test_loads_the_12_mlperf_classes_with_silence_and_unknown(speech_commands, tmp_path):
    task = load(speech_commands, tmp_path)
    assert task.class_names == list(CLASS_NAMES) and task.input_shape == (1, 49, 10)
    counts = task.train.class_counts(12)
    assert counts[:10] == [6] * 10  # 10 clips per word: 2 validation, 2 testing, 6 training
    assert counts[10] == 6 and counts[11] == 6  # 10 % of 60 keyword clips each
    assert [len(task.validation), len(task.test)] == [24, 24]
    assert task.preprocessing["window_samples"] == 480 and task.preprocessing["coefficients"] == 10


def test_same_seed_same_features_and_second_load_hits_the_cache(speech_commands, tmp_path):
    first = load(speech_commands, tmp_path)
    again = load_speech_commands(speech_commands, KwsConfig(), cache_dir=tmp_path / "other", progress=False)
    assert torch.equal(first.train.inputs, again.train.inputs)
    cached = load(speech_commands, tmp_path)
    assert "features loaded from the cache" in cached.notes
    assert torch.equal(first.train.inputs, cached.train.inputs)
    other_seed = load(speech_commands, tmp_path, seed=1)
    assert not torch.equal(first.train.inputs, other_seed.train.inputs)


def test_the_features_file_gives_the_same_task_without_the_clips(speech_commands, tmp_path):
    """A machine with the features file but not the clips (a GPU machine without espeak-ng) trains on
    the same inputs, labels and preprocessing."""
    first = load(speech_commands, tmp_path)
    features = features_cache_file(speech_commands, cache_dir=tmp_path / "cache")
    moved = tmp_path / "elsewhere.pt"
    moved.write_bytes(features.read_bytes())
    task = load_kws_features(moved)
    for a, b in ((first.train, task.train), (first.validation, task.validation), (first.test, task.test)):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert task.preprocessing == first.preprocessing and task.class_names == first.class_names
    a_clip = next((speech_commands / "yes").iterdir())
    for bad in (tmp_path / "missing.pt", a_clip):
        with pytest.raises(ValueError, match="is not a KWS features file"):
            load_kws_features(bad)


def test_a_corrupt_cache_file_is_recomputed(speech_commands, tmp_path):
    load(speech_commands, tmp_path)
    (cache_file,) = (tmp_path / "cache").glob("kws-*.pt")
    cache_file.write_bytes(cache_file.read_bytes()[:100])
    task = load(speech_commands, tmp_path)
    assert "features loaded from the cache" not in task.notes and len(task.train) == 72


def test_augmentation_changes_training_inputs_only(speech_commands, tmp_path):
    # raw features: standardisation would carry the training statistics into every split
    plain = load(speech_commands, tmp_path, time_shift_ms=0, background_frequency=0, normalize=False)
    augmented = load(speech_commands, tmp_path, normalize=False)
    assert not torch.equal(plain.train.inputs, augmented.train.inputs)
    assert torch.equal(plain.validation.inputs, augmented.validation.inputs)


def test_fresh_augmentation_each_epoch(speech_commands, tmp_path):
    task = load(speech_commands, tmp_path, augment_every_epoch=True)
    assert not torch.equal(task.train.inputs_for_epoch(0), task.train.inputs_for_epoch(1))
    assert torch.equal(task.train.inputs_for_epoch(1), task.train.inputs_for_epoch(1))


def test_bad_clips_are_skipped_and_counted(speech_commands, tmp_path):
    write_wav(speech_commands / "yes" / "bad_nohash_0.wav", np.zeros(100), 8000)
    (speech_commands / "no" / "junk_nohash_0.wav").write_bytes(b"RIFF garbage")
    task = load(speech_commands, tmp_path)
    assert sum(task.skipped.values()) == 2
    assert any(reason.startswith("sample rate is not 16000 Hz") for reason in task.skipped)
    assert any(reason.startswith("unreadable or corrupt WAV") for reason in task.skipped)
    assert "skipped 1 file(s)" in task.summary()


def test_missing_background_folder_is_noted(tmp_path):
    root = write_speech_commands(tmp_path / "sc", background=False)
    task = load(root, tmp_path)
    assert any("no usable background noise" in note for note in task.notes)
    silence = task.train.inputs[task.train.labels == CLASS_NAMES.index("_silence_")]
    assert torch.allclose(silence, silence[0].expand_as(silence), atol=1e-4)  # all zeros: equal features


def test_missing_split_lists_fall_back_to_the_speaker_hash(speech_commands, tmp_path):
    (speech_commands / "validation_list.txt").unlink()
    (speech_commands / "testing_list.txt").unlink()
    task = load(speech_commands, tmp_path)
    assert any("splitting by speaker hash" in note for note in task.notes)
    assert len(task.train) + len(task.validation) + len(task.test) > 0


@pytest.mark.parametrize("damage,message", [
    (lambda root: root / "nowhere", "no dataset folder at .*nowhere; .*edgegrow data kws --out"),
    (lambda root: ((root / "yes").rename(root / "_yes"), root)[1], "has no folder for the keyword\\(s\\) yes"),
    (lambda root: [p.unlink() for p in (root / "go").glob("*")] and root,
     "class\\(es\\) go have no usable training clips"),
    (lambda root: [(root / w).rename(root / f"_{w}") for w in ("yes", "no", "up", "down", "left", "right", "on",
                                                                 "off", "stop", "go")] and root,
     "has none of the keyword folders"),
])
def test_bad_dataset_folders_are_clear_errors(speech_commands, tmp_path, damage, message):
    with pytest.raises(ValueError, match=message):
        load(damage(speech_commands), tmp_path)


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="background_frequency must be in"):
        KwsConfig(background_frequency=2)
    with pytest.raises(ValueError, match="time_shift_ms must be a finite number >= 0"):
        KwsConfig(time_shift_ms=-5)


def test_coefficients_are_standardised_with_training_statistics(speech_commands, tmp_path):
    task = load(speech_commands, tmp_path)
    per_coefficient = task.train.inputs.transpose(0, 3).reshape(10, -1)
    assert per_coefficient.mean(dim=1).abs().max() < 1e-4
    assert (per_coefficient.std(dim=1) - 1).abs().max() < 1e-2
    assert len(task.preprocessing["normalization"]["mean"]) == 10
    raw = load(speech_commands, tmp_path, normalize=False)
    assert "normalization" not in raw.preprocessing
    mean = torch.tensor(task.preprocessing["normalization"]["mean"])
    std = torch.tensor(task.preprocessing["normalization"]["std"])
    torch.testing.assert_close((raw.test.inputs - mean) / std, task.test.inputs)
