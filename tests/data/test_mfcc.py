import math

import numpy as np
import pytest
import scipy.fft
import torch

from edgegrow.data.mfcc import MfccConfig, dct_matrix, mel_matrix, mfcc


def test_mlperf_settings_give_49_frames_of_10_coefficients():
    config = MfccConfig()
    assert config.frames == 49 and config.feature_shape == (1, 49, 10)
    assert mfcc(torch.zeros(3, 16000)).shape == (3, 1, 49, 10)
    assert mfcc(torch.zeros(2, 12000)).shape == (2, 1, 49, 10)  # short clips are padded


def test_dct_is_tensorflows_scaled_dct_ii():
    log_mel = np.random.default_rng(0).standard_normal((5, 40))
    expected = scipy.fft.dct(log_mel, type=2, axis=-1)[:, :10] / math.sqrt(2 * 40)
    ours = torch.from_numpy(log_mel).float() @ dct_matrix(40, 10)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5)


def test_silence_has_the_closed_form_coefficients():
    features = mfcc(torch.zeros(1, 16000))
    c0 = math.sqrt(2 * 40) * math.log(1e-6)
    torch.testing.assert_close(features[0, 0, :, 0], torch.full((49,), c0), rtol=1e-5, atol=1e-4)
    assert features[0, 0, :, 1:].abs().max() < 1e-3


def test_mel_filters_cover_20_to_4000_hz_and_skip_dc():
    weights = mel_matrix(MfccConfig())
    frequencies = np.linspace(0, 8000, 257)
    assert weights.shape == (257, 40) and weights[0].sum() == 0
    active = frequencies[weights.sum(dim=1).numpy() > 0]
    assert active.min() >= 20 and active.max() <= 4000
    centers = frequencies[weights.argmax(dim=0).numpy()]
    assert np.all(np.diff(centers) >= 0)


@pytest.mark.parametrize("hz", [300.0, 1000.0, 3000.0])
def test_a_tone_lights_the_mel_band_around_its_frequency(hz):
    config = MfccConfig()
    t = torch.arange(16000) / 16000
    frames = torch.sin(2 * math.pi * hz * t).unfold(0, 480, 320) * torch.hann_window(480, periodic=True)
    mel = torch.fft.rfft(frames, n=512).abs() @ mel_matrix(config)
    peak_band = mel.mean(dim=0).argmax().item()
    center_hz = np.linspace(0, 8000, 257)[mel_matrix(config)[:, peak_band].argmax().item()]
    assert abs(center_hz - hz) / hz < 0.15


def test_bad_audio_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"mfcc expects \(batch, samples\) audio, got shape \(16000,\)"):
        mfcc(torch.zeros(16000))
