"""The reference on-device pipeline (numpy + ai-edge-litert only) computes edgegrow's features and labels.

pipeline.py is loaded by file path, as a device would run it: importing ``edgegrow.export.pipeline``
would pull in torch through ``edgegrow/__init__.py``, which is exactly what the pipeline must not need.
"""
import importlib.util
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgegrow.data.images import image_input
from edgegrow.data.mfcc import MfccConfig, mfcc
from edgegrow.data.speech_commands import CLASS_NAMES
from edgegrow.models import build_seed

pytest.importorskip("ai_edge_litert")
pytest.importorskip("litert_torch")

from edgegrow.export import tflite_format  # noqa: E402
pytestmark = pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors:UserWarning")  # the quantizer's

PIPELINE_PATH = Path(__file__).resolve().parents[2] / "edgegrow" / "export" / "pipeline.py"
SAMPLE_RATE_HZ = 16000
BAND_EDGES_HZ = np.geomspace(150.0, 3800.0, len(CLASS_NAMES) + 1)  # class c: a tone in band c
CUSTOM_MFCC = MfccConfig(window_samples=640, stride_samples=160, fft_size=1024, mel_bins=32, lower_hz=60.0,
                         upper_hz=7600.0, log_offset=1e-3, coefficients=13)


def _load_pipeline():
    spec = importlib.util.spec_from_file_location("edgegrow_reference_pipeline", PIPELINE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pipeline = _load_pipeline()


def _tone_clip(rng: np.random.Generator, label: int, samples: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A tone inside frequency band ``label`` plus some noise: a learnable stand-in for keywords."""
    low, high = BAND_EDGES_HZ[label], BAND_EDGES_HZ[label + 1]
    hz = np.exp(rng.uniform(np.log(low) + 0.15 * np.log(high / low), np.log(high) - 0.15 * np.log(high / low)))
    t = np.arange(samples) / SAMPLE_RATE_HZ
    tone = rng.uniform(0.1, 0.6) * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi))
    return np.clip(tone + rng.uniform(0.001, 0.05) * rng.standard_normal(samples), -1, 1).astype(np.float32)


def _write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(np.round(np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


def _kws_card(config: MfccConfig, mean, std) -> dict:
    shape = [1, config.frames, config.coefficients]
    normalization = {"mean": [float(m) for m in mean], "std": [float(s) for s in std],
                     "formula": "(mfcc - mean[k]) / std[k] per coefficient k"}
    return {
        "format": "edgegrow-model-card/1", "task": "kws", "classes": list(CLASS_NAMES),
        "input": {"shape_nchw": [1, 1, *shape[1:]], "shape_nhwc": [*shape, 1], "dtype": "float32",
                  "preprocessing": {"kind": "mfcc", **config.to_dict(), "normalization": normalization}},
        "output": {"shape": [1, len(CLASS_NAMES)], "kind": "logits"},
    }


def _to_tflite(model: torch.nn.Module, path: Path) -> Path:
    """edgegrow's own float conversion, as ``edgegrow export`` writes model.tflite."""
    path.write_bytes(tflite_format.export_tflite_float(model.eval(), torch.randn(1, *model.input_shape)))
    return path


def _quantize_int8(float_path: Path, calibration: np.ndarray, path: Path) -> Path:
    """edgegrow's own int8 quantization, as ``edgegrow export`` writes model_int8.tflite."""
    path.write_bytes(tflite_format.quantize_tflite_int8(float_path.read_bytes(), calibration))
    return path


@pytest.fixture(scope="module")
def kws_export(tmp_path_factory):
    """A DS-CNN seed trained briefly on tones (so its labels have margins), exported like edgegrow
    does: float and int8 .tflite plus a model card, in one folder; and 20 test clips."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(CLASS_NAMES)), 30)
    lengths = rng.choice([SAMPLE_RATE_HZ, 11000], size=len(labels))  # some end in silence, as test clips do
    clips = np.stack([np.pad(_tone_clip(rng, label, n), (0, SAMPLE_RATE_HZ - n)) for label, n in zip(labels, lengths)])
    raw = mfcc(torch.from_numpy(clips))
    mean = raw.mean(dim=(0, 1, 2)).double().round(decimals=2)  # a card's made-up, plausible statistics
    std = raw.std(dim=(0, 1, 2)).double().round(decimals=2)
    mean_t, std_t = mean.float(), std.float()
    inputs, targets = (raw - mean_t) / std_t, torch.from_numpy(labels)
    model = build_seed("ds-cnn")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    for _ in range(120):
        batch = torch.randint(0, len(inputs), (64,))
        loss = F.cross_entropy(model(inputs[batch]), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()

    folder = tmp_path_factory.mktemp("kws_export")
    card = _kws_card(MfccConfig(), mean.tolist(), std.tolist())
    (folder / "model_card.json").write_text(json.dumps(card))
    float_path = _to_tflite(model, folder / "model.tflite")
    calibration = inputs[::3].permute(0, 2, 3, 1).numpy()
    int8_path = _quantize_int8(float_path, calibration, folder / "model_int8.tflite")

    test_rng = np.random.default_rng(1)
    lengths = [SAMPLE_RATE_HZ, 11000, 21000]  # exact, padded, cut
    test_clips = [_tone_clip(test_rng, i % len(CLASS_NAMES), lengths[i % 3]) for i in range(20)]

    def torch_scores(audio: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model((mfcc(torch.from_numpy(audio)[None]) - mean_t) / std_t)[0].numpy()

    return {"folder": folder, "float": float_path, "int8": int8_path, "card": card, "clips": test_clips,
            "torch_scores": torch_scores}


# ----------------------------------------------------------------------------------------- features

@pytest.mark.parametrize("config", [MfccConfig(), CUSTOM_MFCC], ids=["mlperf", "custom"])
@pytest.mark.parametrize("signal", ["random", "sine"])
@pytest.mark.parametrize("samples", [16000, 7000, 25000], ids=["exact", "padded", "cut"])
def test_numpy_mfcc_equals_edgegrow_torch_mfcc(config, signal, samples):
    rng = np.random.default_rng(samples)
    if signal == "random":
        audio = (0.3 * rng.standard_normal(samples)).astype(np.float32)
    else:  # a tone over a quiet noise floor (-54 dB), as any microphone records it
        tone = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(samples) / config.sample_rate)
        audio = (tone + 1e-3 * rng.standard_normal(samples)).astype(np.float32)
    expected = mfcc(torch.from_numpy(audio)[None], config)[0, 0].numpy()
    ours = pipeline.mfcc(audio, {"kind": "mfcc", **config.to_dict()})
    assert ours.shape == (config.frames, config.coefficients) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("hz", [440.0, 3000.0])
def test_a_noiseless_tone_agrees_to_the_float32_fft_noise_floor(hz):
    """Far from a pure tone, FFT bins hold only float32 rounding (~1e-6), and torch's FFT and numpy's
    round differently; log(mel + 1e-6) magnifies that in the weakest bands to a few 1e-3."""
    audio = (0.5 * np.sin(2 * np.pi * hz * np.arange(16000) / 16000)).astype(np.float32)
    expected = mfcc(torch.from_numpy(audio)[None])[0, 0].numpy()
    ours = pipeline.mfcc(audio, {"kind": "mfcc", **MfccConfig().to_dict()})
    np.testing.assert_allclose(ours, expected, rtol=0, atol=5e-2)


def test_features_are_standardised_per_coefficient_in_nhwc():
    config = MfccConfig()
    mean, std = np.linspace(-20, 5, 10), np.linspace(1, 10, 10)
    preprocessing = _kws_card(config, mean, std)["input"]["preprocessing"]
    audio = (0.2 * np.random.default_rng(3).standard_normal(16000)).astype(np.float32)
    features = pipeline.audio_features(audio, preprocessing)
    raw = mfcc(torch.from_numpy(audio)[None], config)[0, 0].numpy()
    assert features.shape == (1, 49, 10, 1)
    np.testing.assert_allclose(features[0, :, :, 0], (raw - mean) / std, rtol=0, atol=1e-4)
    del preprocessing["normalization"]  # a model trained on raw MFCCs
    np.testing.assert_allclose(pipeline.audio_features(audio, preprocessing)[0, :, :, 0], raw, rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------------------- models

def test_float_tflite_pipeline_gives_pytorchs_labels_and_scores(kws_export):
    classifier = pipeline.Classifier(kws_export["float"])
    torch_labels = []
    for audio in kws_export["clips"]:
        expected = kws_export["torch_scores"](audio)
        label, scores = classifier.classify_audio(audio)
        torch_labels.append(CLASS_NAMES[int(expected.argmax())])
        assert label == torch_labels[-1]
        np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-4)
    assert len(set(torch_labels)) >= 4  # the model is not degenerate: the comparison means something


def test_int8_pipeline_quantizes_its_input_and_agrees_with_float(kws_export):
    float_classifier = pipeline.Classifier(kws_export["float"])
    int8_classifier = pipeline.Classifier(kws_export["int8"])
    assert int8_classifier.input_dtype == np.int8
    agree = [int8_classifier.classify_audio(a)[0] == float_classifier.classify_audio(a)[0]
             for a in kws_export["clips"]]
    assert np.mean(agree) >= 0.8, f"int8 agrees with float on {sum(agree)} of {len(agree)} clips"


def test_wav_gives_the_label_of_its_samples(kws_export, tmp_path):
    audio = kws_export["clips"][0]
    _write_wav(tmp_path / "clip.wav", audio, SAMPLE_RATE_HZ)
    classifier = pipeline.Classifier(kws_export["float"])
    stored = np.round(np.clip(audio, -1, 1) * 32767) / 32768.0
    label, scores = classifier.classify_wav(tmp_path / "clip.wav")
    expected_label, expected_scores = classifier.classify_audio(stored.astype(np.float32))
    assert label == expected_label
    np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-5)


def test_wav_of_another_sample_rate_is_a_clear_error(kws_export, tmp_path):
    _write_wav(tmp_path / "clip8k.wav", np.zeros(8000, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match=r"sample rate 8000 Hz; this model expects 16000 Hz"):
        pipeline.Classifier(kws_export["float"]).classify_wav(tmp_path / "clip8k.wav")


def test_pipeline_runs_without_torch_or_edgegrow(kws_export, tmp_path):
    audio = kws_export["clips"][1]
    _write_wav(tmp_path / "clip.wav", audio, SAMPLE_RATE_HZ)
    expected_label, _ = pipeline.Classifier(kws_export["float"]).classify_wav(tmp_path / "clip.wav")
    script = (  # argv: pipeline.py, model.tflite, clip.wav
        "import importlib.util, runpy, sys\n"
        "sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        "sys.modules['edgegrow'] = None\n"
        "pipeline_path, model_path, wav_path = sys.argv[1:4]\n"
        "spec = importlib.util.spec_from_file_location('pipeline', pipeline_path)\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print('LABEL', module.Classifier(model_path).classify_wav(wav_path)[0])\n"
        "sys.argv = ['pipeline.py', wav_path, '--model', model_path]\n"
        "runpy.run_path(pipeline_path, run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(PIPELINE_PATH), str(kws_export["float"]),
                             str(tmp_path / "clip.wav")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert f"LABEL {expected_label}" in lines
    cli = lines[lines.index(f"LABEL {expected_label}") + 1:]
    assert cli[0] == expected_label and len(cli) == 4  # the label, then the top 3 classes
    assert cli[1].split()[0] == expected_label


def test_card_that_does_not_fit_the_model_is_a_clear_error(kws_export, tmp_path):
    card = json.loads(json.dumps(kws_export["card"]))
    card["classes"] = card["classes"][:5]
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"12 outputs but the card names 5 classes"):
        pipeline.Classifier(kws_export["float"], tmp_path / "card.json")
    (tmp_path / "card.json").write_text(json.dumps({**card, "format": "something-else/2"}))
    with pytest.raises(ValueError, match=r"card format is 'something-else/2'"):
        pipeline.Classifier(kws_export["float"], tmp_path / "card.json")
    with pytest.raises(ValueError, match=r"classify_image needs a model with image input"):
        pipeline.Classifier(kws_export["float"]).classify_image(np.zeros((32, 32, 3), dtype=np.uint8))


# ----------------------------------------------------------------------------------------- images

IMAGE_MEAN, IMAGE_STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]


def _image_preprocessing(resolution: int = 32) -> dict:
    return {"kind": "image", "resolution": resolution, "channels": 3, "layout": "NCHW", "mean": IMAGE_MEAN,
            "std": IMAGE_STD, "scale": "pixel values in [0, 1], then (x - mean) / std per channel",
            "resize": "bilinear, antialiased"}


def _training_image_input(image: np.ndarray, resolution: int = 32) -> torch.Tensor:
    """edgegrow's own image preprocessing (``edgegrow.data.images.image_input``), as training did it."""
    return image_input(image, _image_preprocessing(resolution))


@pytest.mark.parametrize("size, channels", [((32, 32), 3), ((16, 16), 3), ((13, 20), 3), ((16, 16), 1)],
                         ids=["same-size", "enlarged", "enlarged-non-square", "grey-enlarged"])
def test_image_features_equal_training_preprocessing_when_not_shrinking(size, channels):
    image = np.random.default_rng(4).integers(0, 256, (*size, channels), dtype=np.uint8)
    expected = _training_image_input(image).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(pipeline.image_features(image, _image_preprocessing()), expected, rtol=0, atol=1e-5)


def test_shrinking_is_plain_bilinear_not_antialiased():
    image = np.random.default_rng(5).random((80, 64, 3)).astype(np.float32)
    plain = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None], size=(32, 32), mode="bilinear",
                          align_corners=False)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(pipeline.resize_bilinear(image, 32, 32), plain, rtol=0, atol=1e-5)


def test_float_images_outside_0_1_are_a_clear_error():
    with pytest.raises(ValueError, match=r"float images must be in \[0, 1\]"):
        pipeline.image_features(np.full((32, 32, 3), 200.0), _image_preprocessing())


def test_image_pipeline_gives_pytorchs_scores(tmp_path):
    torch.manual_seed(1)
    model = build_seed("resnet8")
    model.train()
    with torch.no_grad():  # BatchNorm statistics of real-looking inputs, so outputs are not degenerate
        for _ in range(3):
            model(torch.randn(16, *model.input_shape))
    model.eval()
    classes = [f"class_{i}" for i in range(10)]
    card = {"format": "edgegrow-model-card/1", "task": "image", "classes": classes,
            "input": {"shape_nchw": [1, 3, 32, 32], "shape_nhwc": [1, 32, 32, 3], "dtype": "float32",
                      "preprocessing": _image_preprocessing()},
            "output": {"shape": [1, 10], "kind": "logits"}}
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    classifier = pipeline.Classifier(_to_tflite(model, tmp_path / "model.tflite"))
    rng = np.random.default_rng(6)
    for size in [(32, 32), (20, 20)]:
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        with torch.no_grad():
            expected = model(_training_image_input(image))[0].numpy()
        label, scores = classifier.classify_image(image)
        assert label == classes[int(expected.argmax())]
        np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-4)
