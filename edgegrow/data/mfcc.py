"""MFCC features computed with torch, with the MLPerf Tiny keyword-spotting settings by default.

The computation follows TensorFlow's signal ops that the MLPerf Tiny reference uses, so features
(and so a model's input) mean the same thing as in the reference: frames of ``window_samples``
every ``stride_samples`` (no padding), periodic Hann window, magnitude of a ``fft_size`` FFT,
HTK-scale triangular mel filters from ``lower_hz`` to ``upper_hz`` (DC bin excluded),
log(mel + ``log_offset``), DCT-II scaled by 1/√(2·mel_bins), first ``coefficients`` kept.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True)
class MfccConfig:
    """Front-end parameters; the defaults are MLPerf Tiny KWS (../shared/docs/ANCHORS.md)."""

    sample_rate: int = 16000
    clip_samples: int = 16000  # 1 s
    window_samples: int = 480  # 30 ms
    stride_samples: int = 320  # 20 ms
    fft_size: int = 512
    mel_bins: int = 40
    lower_hz: float = 20.0
    upper_hz: float = 4000.0
    log_offset: float = 1e-6
    coefficients: int = 10

    @property
    def frames(self) -> int:
        return 1 + (self.clip_samples - self.window_samples) // self.stride_samples

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """(channels, frames, coefficients) of one example: (1, 49, 10) by default."""
        return (1, self.frames, self.coefficients)

    def to_dict(self) -> dict:
        return asdict(self)


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


@lru_cache(maxsize=8)
def mel_matrix(config: MfccConfig) -> torch.Tensor:
    """(fft_size // 2 + 1, mel_bins) triangular filters on the HTK mel scale, as TensorFlow builds them."""
    bins = config.fft_size // 2 + 1
    linear = torch.linspace(0.0, config.sample_rate / 2, bins, dtype=torch.float64)[1:]
    linear_mel = _hz_to_mel(linear).unsqueeze(1)
    edges = torch.linspace(_hz_to_mel(torch.tensor(config.lower_hz, dtype=torch.float64)).item(),
                           _hz_to_mel(torch.tensor(config.upper_hz, dtype=torch.float64)).item(),
                           config.mel_bins + 2, dtype=torch.float64)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (linear_mel - lower) / (center - lower)
    falling = (upper - linear_mel) / (upper - center)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return torch.cat([torch.zeros(1, config.mel_bins, dtype=torch.float64), weights]).float()


@lru_cache(maxsize=8)
def dct_matrix(mel_bins: int, coefficients: int) -> torch.Tensor:
    """(mel_bins, coefficients): DCT-II scaled by 1/√(2N), TensorFlow's mfccs_from_log_mel_spectrograms."""
    n = torch.arange(mel_bins, dtype=torch.float64).unsqueeze(1)
    k = torch.arange(coefficients, dtype=torch.float64).unsqueeze(0)
    return (2.0 * torch.cos(math.pi * k * (2 * n + 1) / (2 * mel_bins)) / math.sqrt(2 * mel_bins)).float()


def mfcc(audio: torch.Tensor, config: MfccConfig = MfccConfig()) -> torch.Tensor:
    """MFCCs of a batch of clips.

    Args:
        audio: (N, samples) float waveforms in [-1, 1] at ``config.sample_rate``; shorter clips
            are zero-padded and longer ones cut to ``config.clip_samples``.

    Returns:
        (N, 1, frames, coefficients) float32, (N, 1, 49, 10) by default.
    """
    if audio.dim() != 2:
        raise ValueError(f"mfcc expects (batch, samples) audio, got shape {tuple(audio.shape)}")
    audio = audio.float()
    if audio.shape[1] != config.clip_samples:
        audio = torch.nn.functional.pad(audio, (0, max(0, config.clip_samples - audio.shape[1])))
        audio = audio[:, : config.clip_samples]
    frames = audio.unfold(1, config.window_samples, config.stride_samples)
    window = torch.hann_window(config.window_samples, periodic=True)
    magnitude = torch.fft.rfft(frames * window, n=config.fft_size).abs()
    log_mel = torch.log(magnitude @ mel_matrix(config) + config.log_offset)
    return (log_mel @ dct_matrix(config.mel_bins, config.coefficients)).unsqueeze(1)
