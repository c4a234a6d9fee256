"""Keyword spotting on the Google Speech Commands v2 folder layout, in the MLPerf Tiny setup.

Layout: one folder per word of 1 s 16 kHz 16-bit mono WAVs, ``validation_list.txt`` and
``testing_list.txt`` (paths relative to the root; every other clip is training), and
``_background_noise_/`` with long noise recordings. Works on the real dataset and on the set
``edgegrow data kws`` synthesises.

12 classes in the MLPerf Tiny order: the 10 keywords, ``_silence_`` and ``_unknown_``; words of the
folder named in ``extra_keywords`` become classes of their own after these (``edgegrow extend``),
and leave ``_unknown_``. As in the
TensorFlow speech_commands pipeline the reference uses, each split gets silence clips and clips of
other words ("unknown") amounting to ``silence_percent`` and ``unknown_percent`` of its keyword
clips. Training clips are shifted by up to ±``time_shift_ms`` and, with probability
``background_frequency``, mixed with background noise at a volume up to ``background_volume``;
silence clips are noise at a volume up to 1. Validation and test clips are not augmented; their
silence clips are noise segments drawn with a fixed seed, like the official test set's.

With ``normalize`` (the default) every MFCC coefficient is standardised with the training split's
mean and standard deviation, recorded in ``TaskData.preprocessing`` so a device can do the same.
The MLPerf Tiny reference feeds raw MFCCs; on the default set standardised inputs train a seed
DS-CNN to a median 53.1 % test accuracy in 8 epochs against 43.0 % raw (3 seeds, ranges 48.5–53.4 %
and 39.3–52.5 %: bench/kws_input_standardisation.py).

Everything is deterministic for a seed. Features are cached on disk (``cache_dir``), so later
runs, and every epoch of a run, reuse them; ``augment_every_epoch`` draws fresh augmentation for each
epoch from the decoded audio instead.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..progress import progress_bar
from .audio import AudioFormatError, read_wav
from .cache import cache_path, load_tensors, save_tensors
from .mfcc import MfccConfig, mfcc
from .task_data import Split, TaskData

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_WORDS_V2 = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one", "seven",
    "sheila", "six", "three", "tree", "two", "wow", "zero", "backward", "follow", "forward", "learn", "visual",
)
SILENCE, UNKNOWN = "_silence_", "_unknown_"
CLASS_NAMES = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", SILENCE, UNKNOWN)
BACKGROUND_FOLDER = "_background_noise_"
SPLITS = ("training", "validation", "testing")
_CACHE_FORMAT = 1
_CHUNK_CLIPS = 1024


@dataclass(frozen=True)
class KwsConfig:
    """Sampling and augmentation of the KWS task; defaults are MLPerf Tiny's (../shared/docs/ANCHORS.md)."""

    silence_percent: float = 10.0
    unknown_percent: float = 10.0
    time_shift_ms: float = 100.0
    background_volume: float = 0.1
    background_frequency: float = 0.8
    seed: int = 0
    augment_every_epoch: bool = False
    normalize: bool = True
    mfcc: MfccConfig = field(default_factory=MfccConfig)
    extra_keywords: tuple[str, ...] = ()  # classes after the 12, in this order (words of the folder)
    # fixed standardisation {"mean": [...], "std": [...]} per coefficient instead of the training split's:
    # a network extended to new words must see its inputs as it was trained to
    normalization: dict | None = None

    @property
    def keywords(self) -> tuple[str, ...]:
        """The words with classes of their own: the 10 keywords, then ``extra_keywords``."""
        return KEYWORDS + self.extra_keywords

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES + self.extra_keywords

    def __post_init__(self):
        object.__setattr__(self, "extra_keywords", tuple(self.extra_keywords))
        words = self.extra_keywords
        reserved = [word for word in words if word in CLASS_NAMES or word.startswith(("_", ".")) or "/" in word
                    or not word]
        if reserved:
            raise ValueError(f"{reserved[0]!r} cannot be a new keyword: it is one of the 12 classes or not a word "
                             "folder's name")
        if len(set(words)) != len(words):
            raise ValueError(f"new keywords are given twice: {', '.join(words)}")
        if self.normalization is not None:
            mean, std = self.normalization.get("mean"), self.normalization.get("std")
            size = self.mfcc.coefficients
            if not (isinstance(mean, (list, tuple)) and isinstance(std, (list, tuple)) and len(mean) == len(std) == size
                    and all(isinstance(v, (int, float)) and math.isfinite(v) for v in [*mean, *std])
                    and all(v > 0 for v in std)):
                raise ValueError(f"normalization must be {{'mean': [...], 'std': [...]}} with {size} finite values "
                                 "each and positive std")
        for name in ("silence_percent", "unknown_percent", "time_shift_ms", "background_volume"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0 <= self.background_frequency <= 1:
            raise ValueError(f"background_frequency must be in [0, 1], got {self.background_frequency!r}")


@dataclass
class _Clips:
    """Decoded clips of one split: audio (N, samples) and label indices; silence rows are zeros."""

    audio: np.ndarray
    labels: np.ndarray
    silence: np.ndarray  # bool per clip


def _split_lists(root: Path, notes: list[str]) -> dict[str, str] | None:
    lists = {}
    for split, filename in (("validation", "validation_list.txt"), ("testing", "testing_list.txt")):
        path = root / filename
        if not path.exists():
            notes.append("no validation_list.txt / testing_list.txt: splitting by speaker hash (10 % / 10 %)")
            return None
        for line in path.read_text().splitlines():
            if line.strip():
                lists[line.strip()] = split
    return lists


def which_set(filename: str, validation_percent: float, testing_percent: float) -> str:
    """Speech Commands' split rule: hash the speaker part of the name, so a speaker stays in one split."""
    speaker = re.sub(r"_nohash_.*$", "", Path(filename).name)
    max_per_class = 2 ** 27 - 1
    percent = (int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % (max_per_class + 1)) * (100.0 / max_per_class)
    if percent < validation_percent:
        return "validation"
    if percent < validation_percent + testing_percent:
        return "testing"
    return "training"


def _assign_split(relative: str, lists: dict[str, str] | None) -> str:
    if lists is not None:
        return lists.get(relative, "training")
    return which_set(relative, 10.0, 10.0)


def _index(root: Path, notes: list[str], keywords: tuple[str, ...] = KEYWORDS) -> dict[str, list[tuple[str, str]]]:
    """(relative path, word) of every clip, by split."""
    if not root.is_dir():
        raise ValueError(
            f"no dataset folder at {root}; point --data at Speech Commands v2, or make one with "
            f"`edgegrow data kws --out {root}`"
        )
    words = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))
    missing = [word for word in keywords if word not in words]
    if all(word not in words for word in KEYWORDS):
        raise ValueError(
            f"{root} has none of the keyword folders ({', '.join(KEYWORDS)}); is it a Speech Commands folder?"
        )
    if missing:
        raise ValueError(f"{root} has no folder for the keyword(s) {', '.join(missing)}: every class needs clips")
    lists = _split_lists(root, notes)
    by_split: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
    for word in words:
        for path in sorted((root / word).glob("*.wav")):
            relative = f"{word}/{path.name}"
            by_split[_assign_split(relative, lists)].append((relative, word))
    return by_split


def _fingerprint(root: Path, by_split: dict, config: KwsConfig) -> str:
    digest = hashlib.sha1()
    settings = asdict(config)
    for name in ("extra_keywords", "normalization"):  # left out when unused: older caches keep their names
        if not settings[name]:
            del settings[name]
    digest.update(json.dumps([_CACHE_FORMAT, str(root.resolve()), settings], sort_keys=True).encode())
    paths = [relative for split in SPLITS for relative, _ in by_split[split]]
    paths += [f"{BACKGROUND_FOLDER}/{p.name}" for p in sorted((root / BACKGROUND_FOLDER).glob("*.wav"))]
    paths += [name for name in ("validation_list.txt", "testing_list.txt") if (root / name).exists()]
    for relative in paths:
        stat = (root / relative).stat()
        digest.update(f"{relative}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class _Skips:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, str] = {}

    def add(self, error: AudioFormatError, relative: str) -> None:
        self.counts[error.reason] = self.counts.get(error.reason, 0) + 1
        self.examples.setdefault(error.reason, relative)

    def as_dict(self) -> dict[str, int]:
        return {f"{reason} (e.g. {self.examples[reason]})": count for reason, count in self.counts.items()}


def _read_clip(root: Path, relative: str, samples: int, skips: _Skips) -> np.ndarray | None:
    try:
        audio, _ = read_wav(root / relative, expected_rate=16000)
    except AudioFormatError as error:
        skips.add(error, relative)
        return None
    out = np.zeros(samples, dtype=np.float32)
    out[: min(samples, len(audio))] = audio[:samples]
    return out


def _backgrounds(root: Path, samples: int, skips: _Skips, notes: list[str]) -> list[np.ndarray]:
    tracks = []
    for path in sorted((root / BACKGROUND_FOLDER).glob("*.wav")):
        try:
            audio, _ = read_wav(path, expected_rate=16000)
        except AudioFormatError as error:
            skips.add(error, f"{BACKGROUND_FOLDER}/{path.name}")
            continue
        if len(audio) >= samples:
            tracks.append(audio)
    if not tracks:
        notes.append(f"no usable background noise in {BACKGROUND_FOLDER}/: no noise augmentation, silence is zeros")
    return tracks


def _plan_split(entries: list[tuple[str, str]], split_index: int, config: KwsConfig) -> list[tuple[str | None, int]]:
    """(relative path, label) of every clip of a split: its keywords, the sampled unknown words, and
    silence clips (path None)."""
    names = config.class_names
    keywords = config.keywords
    keyword_clips = [(relative, names.index(word)) for relative, word in entries if word in keywords]
    unknown_paths = [relative for relative, word in entries if word not in keywords]
    rng = np.random.default_rng([config.seed, 10, split_index])
    unknown_count = min(len(unknown_paths), math.ceil(len(keyword_clips) * config.unknown_percent / 100))
    chosen = sorted(rng.choice(len(unknown_paths), unknown_count, replace=False))
    silence_count = math.ceil(len(keyword_clips) * config.silence_percent / 100)
    return (keyword_clips + [(unknown_paths[i], CLASS_NAMES.index(UNKNOWN)) for i in chosen]
            + [(None, CLASS_NAMES.index(SILENCE))] * silence_count)


def _decode(root: Path, plan: list[tuple[str | None, int]], samples: int, skips: _Skips) -> _Clips:
    audio, labels = [], []
    for relative, label in plan:
        clip = np.zeros(samples, dtype=np.float32) if relative is None else _read_clip(root, relative, samples, skips)
        if clip is not None:
            audio.append(clip)
            labels.append(label)
    stacked = np.stack(audio) if audio else np.zeros((0, samples), dtype=np.float32)
    labels_array = np.asarray(labels, dtype=np.int64)
    return _Clips(stacked, labels_array, labels_array == CLASS_NAMES.index(SILENCE))


def _split_features(root: Path, plan: list[tuple[str | None, int]], tracks: list[np.ndarray], config: KwsConfig,
                    rng: np.random.Generator, training: bool, skips: _Skips, description: str, progress: bool,
                    keep_audio: bool) -> tuple[torch.Tensor, torch.Tensor, _Clips | None]:
    """MFCC features and labels of a split, computed 1,024 clips at a time so memory stays bounded
    (the decoded audio of Speech Commands' training split alone would take about 3 GB)."""
    features, labels, kept = [], [], []
    for start in progress_bar(range(0, len(plan), _CHUNK_CLIPS), total=math.ceil(len(plan) / _CHUNK_CLIPS),
                              description=description, enabled=progress):
        clips = _decode(root, plan[start: start + _CHUNK_CLIPS], config.mfcc.clip_samples, skips)
        features.append(_features(augment_clips(clips, tracks, config, rng, training), config))
        labels.append(torch.from_numpy(clips.labels))
        if keep_audio:
            kept.append(clips)
    if not features:
        return torch.zeros((0, *config.mfcc.feature_shape)), torch.zeros(0, dtype=torch.long), None
    audio = None
    if keep_audio:
        audio = _Clips(np.concatenate([c.audio for c in kept]), np.concatenate([c.labels for c in kept]),
                       np.concatenate([c.silence for c in kept]))
    return torch.cat(features), torch.cat(labels), audio


def _noise_segment(tracks: list[np.ndarray], rng: np.random.Generator, samples: int) -> np.ndarray:
    track = tracks[rng.integers(len(tracks))]
    start = int(rng.integers(0, len(track) - samples + 1))
    return track[start: start + samples]


def augment_clips(clips: _Clips, tracks: list[np.ndarray], config: KwsConfig, rng: np.random.Generator,
                  training: bool) -> np.ndarray:
    """Audio after the MLPerf Tiny augmentation (training) or the evaluation treatment (silence = noise)."""
    samples = clips.audio.shape[1]
    out = clips.audio.copy()
    shift_max = int(config.time_shift_ms * config.mfcc.sample_rate / 1000)
    for i in range(len(out)):
        if training and shift_max > 0 and not clips.silence[i]:
            shift = int(rng.integers(-shift_max, shift_max + 1))
            out[i] = np.roll(out[i], shift)
            if shift > 0:
                out[i, :shift] = 0
            elif shift < 0:
                out[i, shift:] = 0
        if not tracks:
            continue
        if clips.silence[i]:
            out[i] = _noise_segment(tracks, rng, samples) * rng.uniform(0, 1)
        elif training and rng.random() < config.background_frequency:
            out[i] = out[i] + _noise_segment(tracks, rng, samples) * rng.uniform(0, config.background_volume)
    return np.clip(out, -1.0, 1.0)


def _features(audio: np.ndarray, config: KwsConfig) -> torch.Tensor:
    batches = [mfcc(torch.from_numpy(audio[i: i + 1024]), config.mfcc) for i in range(0, len(audio), 1024)]
    return torch.cat(batches) if batches else torch.zeros((0, *config.mfcc.feature_shape))


def features_cache_file(root: str | Path, config: KwsConfig = KwsConfig(), *,
                        cache_dir: str | Path | None = None) -> Path:
    """The file that holds the MFCC features of the Speech Commands folder ``root`` once
    ``load_speech_commands`` has computed them (it may not exist yet)."""
    root = Path(root)
    return cache_path(cache_dir, "kws", _fingerprint(root, _index(root, [], config.keywords), config))


def load_kws_features(path: str | Path) -> TaskData:
    """The KWS task from a features file that ``load_speech_commands`` wrote (``features_cache_file``),
    without the audio: for a machine that has the file but not the clips or espeak-ng.

    Raises:
        ValueError: the file is missing, unreadable or not a KWS features file.
    """
    cached = load_tensors(Path(path), mmap=True)
    if not isinstance(cached, dict) or "meta" not in cached or any(f"{s}_inputs" not in cached for s in SPLITS):
        raise ValueError(f"{path} is not a KWS features file (made by load_speech_commands); check the path")
    return _task_of_features(cached)


def _task_of_features(cached: dict) -> TaskData:
    meta = json.loads(cached["meta"])
    splits = [Split(cached[f"{s}_inputs"], cached[f"{s}_labels"]) for s in SPLITS]
    names = meta["preprocessing"].get("class_names") or list(CLASS_NAMES)
    return TaskData("kws", list(names), *splits, meta["preprocessing"], meta["skipped"],
                    meta["notes"] + ["features loaded from the cache"])


def load_speech_commands(
    root: str | Path,
    config: KwsConfig = KwsConfig(),
    *,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> TaskData:
    """The KWS task from a Speech Commands v2 folder: MFCC inputs (N, 1, 49, 10), 12 classes (and one per
    ``config.extra_keywords``).

    Unreadable clips, clips of another sample rate or channel count, are skipped and counted in
    ``TaskData.skipped``; a keyword with no usable training clip is an error.

    Raises:
        ValueError: missing folder, missing keyword folders, or a class with no usable training clips.
    """
    root = Path(root)
    notes: list[str] = []
    by_split = _index(root, notes, config.keywords)
    names = config.class_names
    preprocessing = {"kind": "mfcc", **config.mfcc.to_dict(), "class_names": list(names)}
    key = _fingerprint(root, by_split, config)
    # memory-mapped: the features are read from the cache as batches index them, not held
    cached = None if config.augment_every_epoch else load_tensors(cache_path(cache_dir, "kws", key), mmap=True)
    if cached is not None:
        return _task_of_features(cached)

    skips = _Skips()
    tracks = _backgrounds(root, config.mfcc.clip_samples, skips, notes)
    computed = [
        _split_features(root, _plan_split(by_split[split], index, config), tracks, config,
                        np.random.default_rng([config.seed, 20, index]), split == "training", skips,
                        f"{split} features", progress, keep_audio=split == "training" and config.augment_every_epoch)
        for index, split in enumerate(SPLITS)
    ]
    train_counts = torch.bincount(computed[0][1], minlength=len(names))
    empty = [name for i, name in enumerate(names) if name not in (SILENCE, UNKNOWN) and train_counts[i] == 0]
    if empty:
        raise ValueError(
            f"class(es) {', '.join(empty)} have no usable training clips in {root} "
            f"(skipped: {skips.as_dict() or 'none'})"
        )
    mean, std = torch.zeros(config.mfcc.coefficients), torch.ones(config.mfcc.coefficients)
    if config.normalization is not None:
        mean, std = torch.tensor(config.normalization["mean"]), torch.tensor(config.normalization["std"])
        preprocessing["normalization"] = {"mean": list(config.normalization["mean"]),
                                          "std": list(config.normalization["std"]),
                                          "formula": "(mfcc - mean[k]) / std[k] per coefficient k"}
    elif config.normalize:
        train_inputs = computed[0][0]
        mean, std = train_inputs.mean(dim=(0, 1, 2)), train_inputs.std(dim=(0, 1, 2)).clamp(min=1e-6)
        preprocessing["normalization"] = {"mean": mean.tolist(), "std": std.tolist(),
                                          "formula": "(mfcc - mean[k]) / std[k] per coefficient k"}

    def standardise(inputs: torch.Tensor) -> torch.Tensor:
        return (inputs - mean) / std if config.normalize or config.normalization is not None else inputs

    splits = []
    for inputs, labels, audio in computed:
        epoch_inputs = None
        if audio is not None:
            def epoch_inputs(epoch: int, audio=audio) -> torch.Tensor:
                generator = np.random.default_rng([config.seed, 21, epoch])
                return standardise(_features(augment_clips(audio, tracks, config, generator, True), config))
        splits.append(Split(standardise(inputs), labels, epoch_inputs))
    skipped = skips.as_dict()
    if not config.augment_every_epoch:
        tensors = {f"{s}_{part}": getattr(split, part) for s, split in zip(SPLITS, splits)
                   for part in ("inputs", "labels")}
        tensors["meta"] = json.dumps({"skipped": skipped, "notes": notes, "preprocessing": preprocessing})
        save_tensors(cache_path(cache_dir, "kws", key), tensors)
    return TaskData("kws", list(names), *splits, preprocessing, skipped, notes)
