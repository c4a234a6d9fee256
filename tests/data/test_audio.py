import wave

import numpy as np
import pytest

from edgegrow.data.audio import AudioFormatError, fit_length, read_wav, resample, write_wav


def test_write_then_read_round_trips_16_bit_mono(tmp_path):
    samples = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    write_wav(tmp_path / "a.wav", samples, 16000)
    read, rate = read_wav(tmp_path / "a.wav", expected_rate=16000)
    assert rate == 16000 and np.abs(read - samples).max() < 1 / 32768 + 1e-7
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write leaves no temporary file


def write_raw(path, rate=16000, channels=1, width=2, frames=100):
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(width)
        handle.setframerate(rate)
        handle.writeframes(b"\0" * frames * channels * width)


@pytest.mark.parametrize("kwargs,reason,hint", [
    ({"rate": 22050}, "sample rate is not 16000 Hz", "sox IN -r 16000 OUT"),
    ({"channels": 2}, "not mono", "sox IN -c 1 OUT"),
    ({"width": 1}, "not 16-bit PCM", "expected 16-bit PCM"),
])
def test_wrong_format_names_file_problem_and_fix(tmp_path, kwargs, reason, hint):
    path = tmp_path / "bad.wav"
    write_raw(path, **kwargs)
    with pytest.raises(AudioFormatError, match=hint) as error:
        read_wav(path, expected_rate=16000)
    assert error.value.reason == reason and str(path) in str(error.value)


def test_corrupt_and_truncated_files_are_errors(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(AudioFormatError) as error:
        read_wav(tmp_path / "junk.wav")
    assert error.value.reason == "unreadable or corrupt WAV"
    write_raw(tmp_path / "cut.wav", frames=1000)
    data = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:-500])
    with pytest.raises(AudioFormatError) as error:
        read_wav(tmp_path / "cut.wav")
    assert error.value.reason == "truncated WAV"


def test_resampling_keeps_a_tone_at_its_frequency():
    t = np.arange(22050) / 22050
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample(tone, 22050, 16000)
    assert len(out) == 16000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) <= 1
    reference = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(out[800:-800] - reference[800:-800]).max() < 1e-3


def test_fit_length_places_and_cuts():
    assert fit_length(np.ones(3, np.float32), 5, 1).tolist() == [0, 1, 1, 1, 0]
    assert fit_length(np.ones(8, np.float32), 5, 2).tolist() == [0, 0, 1, 1, 1]
