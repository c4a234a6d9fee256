"""WAV files in and out (16-bit PCM mono, the Speech Commands format), and resampling.

Only the standard library and numpy: no torchaudio, no librosa.
"""
from __future__ import annotations

import os
import tempfile
import wave
from pathlib import Path

import numpy as np


class AudioFormatError(ValueError):
    """A WAV file that is corrupt or not in the expected format; the message names the file,
    ``reason`` says what is wrong in a few words (for counting skips)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def read_wav(path: str | Path, expected_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Samples of a 16-bit PCM mono WAV as float32 in [-1, 1), and its sample rate in Hz.

    Raises:
        AudioFormatError: unreadable, not 16-bit PCM, not mono, or (with ``expected_rate``) another rate.
    """
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width, rate, frames = (handle.getnchannels(), handle.getsampwidth(),
                                             handle.getframerate(), handle.getnframes())
            data = handle.readframes(frames)
    except (wave.Error, EOFError, OSError) as error:
        raise AudioFormatError(f"{path}: not a readable WAV file ({error})", "unreadable or corrupt WAV") from None
    if width != 2:
        raise AudioFormatError(f"{path}: {8 * width}-bit samples; expected 16-bit PCM", "not 16-bit PCM")
    if channels != 1:
        raise AudioFormatError(f"{path}: {channels} channels; expected mono (convert with: sox IN -c 1 OUT)",
                               "not mono")
    if expected_rate is not None and rate != expected_rate:
        raise AudioFormatError(
            f"{path}: sample rate {rate} Hz; expected {expected_rate} Hz "
            f"(resample with: sox IN -r {expected_rate} OUT)",
            f"sample rate is not {expected_rate} Hz",
        )
    if len(data) != 2 * frames:
        raise AudioFormatError(f"{path}: truncated ({len(data)} bytes of {2 * frames} expected)", "truncated WAV")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0, rate


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Write float samples in [-1, 1] as a 16-bit PCM mono WAV, atomically (temp file, then rename)."""
    path = Path(path)
    pcm = (np.clip(samples, -1.0, 32767 / 32768) * 32768).round().astype("<i2")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        with wave.open(temporary, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(pcm.tobytes())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def resample(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling by FFT (the signal is zero-padded first, so the ends do not wrap)."""
    if rate == new_rate:
        return samples.astype(np.float32)
    pad = len(samples) // 2
    padded = np.pad(samples.astype(np.float64), (pad, pad))
    out_length = int(round(len(padded) * new_rate / rate))
    spectrum = np.fft.rfft(padded)
    bins = out_length // 2 + 1
    if bins <= len(spectrum):
        spectrum = spectrum[:bins]
    else:
        spectrum = np.pad(spectrum, (0, bins - len(spectrum)))
    resampled = np.fft.irfft(spectrum, out_length) * (out_length / len(padded))
    start = int(round(pad * new_rate / rate))
    return resampled[start:start + int(round(len(samples) * new_rate / rate))].astype(np.float32)


def fit_length(samples: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """Place ``samples`` in a zero signal of ``length`` starting at ``offset`` (cut what overhangs)."""
    out = np.zeros(length, dtype=np.float32)
    piece = samples[: max(0, length - offset)]
    out[offset: offset + len(piece)] = piece
    return out
