"""Synthesise a keyword-spotting dataset in the Google Speech Commands v2 layout with espeak-ng.

The result looks like the real dataset to every loader: one folder per word of 1 s, 16 kHz,
16-bit mono WAVs named ``SPEAKER_nohash_N.wav``, ``validation_list.txt`` and ``testing_list.txt``
(split by speaker hash, as Speech Commands does), and ``_background_noise_/`` with long noise
recordings. Speakers are espeak-ng voices × variants at a base pitch and speed; each clip varies
pitch, speed and level, sits at a random position in the second, and carries background noise at
a random SNR, so that held-out speakers make the task neither trivial nor hopeless.

The folder is built under a temporary name and renamed when complete, and ``edgegrow-synthesis.json``
records how it was made; a folder made with the same settings is reused, not rebuilt.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..argument_checks import check_positive_integer
from ..atomic import publish_folder
from ..progress import progress_bar
from .audio import fit_length, resample, write_wav
from .speech_commands import BACKGROUND_FOLDER, KEYWORDS, UNKNOWN_WORDS_V2, which_set

SAMPLE_RATE = 16000
MANIFEST = "edgegrow-synthesis.json"
FORMAT_VERSION = 1
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
VARIANTS = (
    "", "f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "croak", "klatt",
    "klatt2", "klatt3", "Alex", "Andy", "annie", "aunty", "Denis", "ed", "edward", "Gene", "john", "linda",
    "max", "Mike", "paul", "quincy", "rob", "steph", "travis", "victor", "zac", "grandma", "grandpa",
)
NOISES = ("white_noise", "pink_noise", "brown_noise", "hum", "running_tap", "babble")


class MissingToolError(ValueError):
    """A program edgegrow needs is not installed; the message says how to install it."""


@dataclass(frozen=True)
class SynthesisConfig:
    """What a synthetic set is made of. Part of the manifest: a folder is reused only for equal configs."""

    per_class: int = 300  # clips of each of the 10 keywords
    unknown_per_word: int = 60  # clips of each of the 25 other words (the loader samples 'unknown' from them)
    seed: int = 0
    speakers: int = 120
    snr_db: tuple[float, float] = (5.0, 30.0)
    background_seconds: int = 30
    validation_percent: float = 10.0
    testing_percent: float = 10.0
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        for name in ("per_class", "speakers", "background_seconds"):
            check_positive_integer(name, getattr(self, name))
        check_positive_integer("unknown_per_word", self.unknown_per_word, allow_zero=True)


@dataclass(frozen=True)
class Speaker:
    voice: str
    variant: str
    pitch: int  # espeak-ng 0..99
    words_per_minute: int

    @property
    def id(self) -> str:
        return hashlib.sha1(repr(self).encode()).hexdigest()[:8]

    @property
    def espeak_voice(self) -> str:
        return f"{self.voice}+{self.variant}" if self.variant else self.voice


@dataclass
class SynthesisReport:
    folder: Path
    reused: bool
    clips: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def describe(self) -> str:
        """One line: where the set is, how many clips, and whether it was made now or reused."""
        how = "reused (made earlier with the same settings)" if self.reused else f"made in {self.seconds:.0f} s"
        return f"{self.folder}: {sum(self.clips.values())} clips, {how}"


def find_espeak() -> str:
    """Path of the espeak-ng program, or MissingToolError with how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise MissingToolError(
            "espeak-ng is not installed; install it with `apt-get install -y espeak-ng` (Debian/Ubuntu; run "
            "`apt-get update` first), `brew install espeak-ng` (macOS) or from github.com/espeak-ng/espeak-ng"
        )
    return path


def _espeak(espeak: str, text: str, voice: str, pitch: int, words_per_minute: int,
            amplitude: int) -> tuple[np.ndarray, int]:
    result = subprocess.run(
        [espeak, "-v", voice, "-p", str(pitch), "-s", str(words_per_minute), "-a", str(amplitude), "--stdout", text],
        capture_output=True, check=False, timeout=60,
    )
    if result.returncode != 0 or len(result.stdout) <= 44:
        raise RuntimeError(
            f"espeak-ng failed for {text!r} with voice {voice}: {result.stderr.decode(errors='replace')}"
        )
    # --stdout writes a placeholder length in the header: read the format, then all data after it.
    with wave.open(io.BytesIO(result.stdout[:44])) as header:
        rate = header.getframerate()
    samples = np.frombuffer(result.stdout[44: 44 + (len(result.stdout) - 44) // 2 * 2], dtype="<i2")
    return samples.astype(np.float32) / 32768.0, rate


def usable_variants(espeak: str) -> list[str]:
    """Variants that really change the voice: a misspelled or missing one silently falls back to the default."""
    default = _espeak(espeak, "yes", "en-us", 50, 175, 100)[0]
    usable = [""]
    for variant in VARIANTS[1:]:
        samples = _espeak(espeak, "yes", f"en-us+{variant}", 50, 175, 100)[0]
        if len(samples) != len(default) or not np.array_equal(samples, default):
            usable.append(variant)
    return usable


def _speakers(config: SynthesisConfig, variants: list[str]) -> list[Speaker]:
    rng = np.random.default_rng([config.seed, 1])
    speakers = []
    for _ in range(config.speakers):
        speakers.append(Speaker(
            voice=VOICES[rng.integers(len(VOICES))], variant=variants[rng.integers(len(variants))],
            pitch=int(rng.integers(15, 86)), words_per_minute=int(rng.integers(130, 221)),
        ))
    return speakers


def _colored_noise(rng: np.random.Generator, length: int, exponent: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length, 1 / SAMPLE_RATE)
    spectrum[1:] /= frequencies[1:] ** (exponent / 2)
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, length)
    return noise / (np.abs(noise).max() + 1e-9)


def _noise(kind: str, rng: np.random.Generator, length: int, espeak: str | None = None,
           speakers: list[Speaker] | None = None) -> np.ndarray:
    t = np.arange(length) / SAMPLE_RATE
    if kind == "white_noise":
        noise = rng.standard_normal(length)
    elif kind == "pink_noise":
        noise = _colored_noise(rng, length, 1.0)
    elif kind == "brown_noise":
        noise = _colored_noise(rng, length, 2.0)
    elif kind == "hum":
        base = 50.0 if rng.random() < 0.5 else 60.0
        noise = sum(np.sin(2 * np.pi * base * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 8))
        noise = noise + 0.1 * rng.standard_normal(length)
    elif kind == "running_tap":
        hiss = _colored_noise(rng, length, 0.5)
        spectrum = np.fft.rfft(hiss)
        frequencies = np.fft.rfftfreq(length, 1 / SAMPLE_RATE)
        spectrum[(frequencies < 800) | (frequencies > 5000)] *= 0.1
        noise = np.fft.irfft(spectrum, length) * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    elif kind == "babble":
        noise = np.zeros(length)
        words = list(KEYWORDS) + list(UNKNOWN_WORDS_V2)
        for _ in range(int(length / SAMPLE_RATE * 6)):
            speaker = speakers[rng.integers(len(speakers))]
            samples, rate = _espeak(espeak, words[rng.integers(len(words))], speaker.espeak_voice,
                                    speaker.pitch, speaker.words_per_minute, 100)
            samples = resample(samples, rate, SAMPLE_RATE)
            start = int(rng.integers(0, max(1, length - len(samples))))
            noise[start: start + len(samples)] += samples[: length - start] * rng.uniform(0.3, 1.0)
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    return (noise / (np.abs(noise).max() + 1e-9) * 0.5).astype(np.float32)


def _trim(samples: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > threshold * (np.abs(samples).max() + 1e-9))
    return samples[loud[0]: loud[-1] + 1] if len(loud) else samples


@dataclass(frozen=True)
class _ClipJob:
    word: str
    speaker: Speaker
    filename: str
    index: int


def _render_clip(job: _ClipJob, config: SynthesisConfig, espeak: str, noises: dict[str, np.ndarray]) -> np.ndarray:
    rng = np.random.default_rng([config.seed, 2, job.index])
    speaker = job.speaker
    pitch = int(np.clip(speaker.pitch + rng.integers(-8, 9), 0, 99))
    speed = int(speaker.words_per_minute * rng.uniform(0.85, 1.15))
    samples, rate = _espeak(espeak, job.word, speaker.espeak_voice, pitch, speed, 100)
    word = _trim(resample(samples, rate, SAMPLE_RATE))[:SAMPLE_RATE]
    word = word / (np.abs(word).max() + 1e-9) * rng.uniform(0.1, 0.9)
    clip = fit_length(word, SAMPLE_RATE, int(rng.integers(0, SAMPLE_RATE - len(word) + 1)))
    noise_track = noises[NOISES[rng.integers(len(NOISES))]]
    start = int(rng.integers(0, len(noise_track) - SAMPLE_RATE))
    noise = noise_track[start: start + SAMPLE_RATE]
    snr_db = rng.uniform(*config.snr_db)
    speech_power = np.mean(word ** 2)
    noise = noise * np.sqrt(speech_power / (np.mean(noise ** 2) + 1e-12) / 10 ** (snr_db / 10))
    return np.clip(clip + noise, -1.0, 1.0)


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def synthesize_speech_commands(
    out: str | Path,
    config: SynthesisConfig = SynthesisConfig(),
    *,
    workers: int = 2,
    progress: bool = True,
) -> SynthesisReport:
    """Build (or reuse) a synthetic Speech Commands v2 folder at ``out``.

    Raises:
        MissingToolError: espeak-ng is not installed.
        ValueError: ``out`` exists and is not a synthetic set made with these settings.
    """
    out = Path(out)
    started = time.perf_counter()
    if out.exists():
        manifest = _read_manifest(out)
        if manifest is not None and manifest.get("config") == json.loads(json.dumps(asdict(config))):
            return SynthesisReport(out, True, manifest["clips"], 0.0)
        what = "a synthetic set made with other settings" if manifest else "not a synthetic set made by edgegrow"
        raise ValueError(f"{out} already exists and is {what}; choose another --out or remove it")
    espeak = find_espeak()
    version = subprocess.run([espeak, "--version"], capture_output=True, text=True).stdout.strip()
    variants = usable_variants(espeak)
    speakers = _speakers(config, variants)

    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        background = building / BACKGROUND_FOLDER
        background.mkdir()
        noises = {}
        for number, kind in enumerate(NOISES):
            rng = np.random.default_rng([config.seed, 3, number])
            noises[kind] = _noise(kind, rng, config.background_seconds * SAMPLE_RATE, espeak, speakers)
            write_wav(background / f"{kind}.wav", noises[kind], SAMPLE_RATE)

        jobs = []
        counts = {}
        rng = np.random.default_rng([config.seed, 4])
        plan = [(word, config.per_class) for word in KEYWORDS]
        plan += [(word, config.unknown_per_word) for word in UNKNOWN_WORDS_V2]
        for word, count in plan:
            (building / word).mkdir()
            repeats: dict[str, int] = {}
            for _ in range(count):
                speaker = speakers[rng.integers(len(speakers))]
                take = repeats.get(speaker.id, 0)
                repeats[speaker.id] = take + 1
                jobs.append(_ClipJob(word, speaker, f"{word}/{speaker.id}_nohash_{take}.wav", len(jobs)))
            counts[word] = count

        def render(job: _ClipJob) -> None:
            write_wav(building / job.filename, _render_clip(job, config, espeak, noises), SAMPLE_RATE)

        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            for _ in progress_bar(pool.map(render, jobs), total=len(jobs), description="synthesising clips",
                                  enabled=progress):
                pass
        finally:  # on Ctrl-C or an error, drop the clips not started yet instead of rendering them all
            pool.shutdown(wait=True, cancel_futures=True)

        splits = {"validation": [], "testing": []}
        for job in jobs:
            split = which_set(job.filename, config.validation_percent, config.testing_percent)
            if split in splits:
                splits[split].append(job.filename)
        (building / "validation_list.txt").write_text("".join(f"{name}\n" for name in sorted(splits["validation"])))
        (building / "testing_list.txt").write_text("".join(f"{name}\n" for name in sorted(splits["testing"])))
        manifest = {
            "generator": "edgegrow data kws",
            "config": asdict(config),
            "espeak_ng": version,
            "variants": variants,
            "speakers": {s.id: asdict(s) for s in speakers},
            "clips": counts,
        }
        (building / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if not publish_folder(building, out):  # another process made it first: reuse it if it matches
            return synthesize_speech_commands(out, config, workers=workers, progress=progress)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return SynthesisReport(out, False, counts, time.perf_counter() - started)


DEFAULT_KWS_FOLDER = "kws-synthetic-v1"


def default_kws_folder(cache_dir: str | Path | None = None) -> Path:
    """Where the default synthetic KWS set lives: CACHE/kws-synthetic-v1."""
    from .cache import cache_root

    return cache_root(cache_dir) / DEFAULT_KWS_FOLDER


def ensure_default_kws_set(cache_dir: str | Path | None = None, *, progress: bool = False) -> SynthesisReport:
    """Synthesise the default KWS set (``SynthesisConfig()``) into the cache folder, or reuse it."""
    return synthesize_speech_commands(default_kws_folder(cache_dir), SynthesisConfig(), progress=progress)
