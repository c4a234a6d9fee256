"""Reference on-device pipeline for a model exported by edgegrow: raw input → features → .tflite → label.

This file needs only numpy, the Python standard library and ai-edge-litert
(``pip install numpy ai-edge-litert``); it imports neither torch nor edgegrow. The exporter copies
it verbatim into every export folder, beside ``model.tflite`` and ``model_card.json``, so it can be
copied to a device (a Raspberry Pi, a phone's Python, a CI job) and run there::

    python pipeline.py clip.wav                         # model.tflite beside this file
    python pipeline.py clip.wav --model model_int8.tflite

Every preprocessing parameter is read from the model card (``input.preprocessing``), never
assumed:

- ``kind: "mfcc"`` (keyword spotting): the clip is zero-padded at the end or cut to
  ``clip_samples``; frames of ``window_samples`` every ``stride_samples`` (no padding), periodic
  Hann window, magnitude of an ``fft_size``-point real FFT, HTK-mel triangular filters from
  ``lower_hz`` to ``upper_hz`` (DC bin excluded, built in float64 then rounded to float32),
  log(mel + ``log_offset``), DCT-II scaled by 1/√(2·mel_bins), first ``coefficients`` kept; then,
  when the card has ``normalization``, (mfcc − mean[k]) / std[k] per coefficient k. This is
  edgegrow.data.mfcc computed with numpy, equal to it to float32 rounding (~1e-5).
- ``kind: "image"``: pixels in [0, 1] (uint8 / 255), grey/RGB converted to the card's
  ``channels``, resized to ``resolution``² with plain bilinear interpolation (half-pixel centres,
  no antialiasing), then (x − mean[c]) / std[c] per channel. Training resized with *antialiased*
  bilinear interpolation: the two are identical when the image already has the model's size or
  is enlarged, and differ slightly when it is shrunk — resize on the device as training did, or
  feed images of the model's resolution, for the best match.

The model's input is NHWC: (1, frames, coefficients, 1) for audio, (1, H, W, C) for images. For a
full-integer model (``model_int8.tflite``) the features are quantized with the input tensor's
scale and zero point, and the int8 output is dequantized back to float scores.
"""
from __future__ import annotations

import argparse
import json
import sys
import wave
from pathlib import Path

import numpy as np

CARD_FORMAT = "edgegrow-model-card/1"
MFCC_KEYS = ("sample_rate", "clip_samples", "window_samples", "stride_samples", "fft_size", "mel_bins",
             "lower_hz", "upper_hz", "log_offset", "coefficients")
IMAGE_KEYS = ("resolution", "channels", "mean", "std")
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # RGB → grey, as edgegrow's training does


# ----------------------------------------------------------------------------------------- card

def load_card(path: str | Path) -> dict:
    """The model card (``model_card.json``) of an export, checked for the fields this pipeline uses.

    Raises:
        ValueError: missing or unreadable file, another card format, or a missing field.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no model card at {path}; pass card_path= (or --card) for model_card.json of the export")
    try:
        card = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON model card ({error})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ValueError(f"{path}: card format is {found!r}; this pipeline reads {CARD_FORMAT!r}")
    preprocessing = card.get("input", {}).get("preprocessing")
    if not isinstance(preprocessing, dict) or not isinstance(card.get("classes"), list):
        raise ValueError(f"{path}: the card needs 'classes' and 'input.preprocessing'")
    kind = preprocessing.get("kind")
    required = {"mfcc": MFCC_KEYS, "image": IMAGE_KEYS}.get(kind)
    if required is None:
        raise ValueError(f"{path}: unknown preprocessing kind {kind!r}; expected 'mfcc' or 'image'")
    missing = [key for key in required if key not in preprocessing]
    if missing:
        raise ValueError(f"{path}: input.preprocessing ({kind}) lacks {', '.join(missing)}")
    return card


# ----------------------------------------------------------------------------------------- audio

def _hz_to_mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix(preprocessing: dict) -> np.ndarray:
    """(fft_size // 2 + 1, mel_bins) float32 HTK-mel triangular filters; row 0 (DC) is zero."""
    bins = int(preprocessing["fft_size"]) // 2 + 1
    mel_bins = int(preprocessing["mel_bins"])
    linear = np.linspace(0.0, preprocessing["sample_rate"] / 2, bins, dtype=np.float64)[1:]
    linear_mel = _hz_to_mel(linear)[:, None]
    edges = np.linspace(_hz_to_mel(preprocessing["lower_hz"]), _hz_to_mel(preprocessing["upper_hz"]),
                        mel_bins + 2, dtype=np.float64)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (linear_mel - lower) / (center - lower)
    falling = (upper - linear_mel) / (upper - center)
    weights = np.maximum(np.minimum(rising, falling), 0.0)
    return np.concatenate([np.zeros((1, mel_bins)), weights]).astype(np.float32)


def dct_matrix(mel_bins: int, coefficients: int) -> np.ndarray:
    """(mel_bins, coefficients) float32 DCT-II scaled by 1/√(2·mel_bins) (TensorFlow's MFCC DCT)."""
    n = np.arange(mel_bins, dtype=np.float64)[:, None]
    k = np.arange(coefficients, dtype=np.float64)[None, :]
    return (2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * mel_bins)) / np.sqrt(2 * mel_bins)).astype(np.float32)


def mfcc(audio: np.ndarray, preprocessing: dict) -> np.ndarray:
    """Raw MFCCs of one clip: (frames, coefficients) float32, (49, 10) with the MLPerf Tiny settings.

    Args:
        audio: 1-D float waveform in [-1, 1] at ``preprocessing["sample_rate"]``; zero-padded at
            the end or cut to ``clip_samples``.
        preprocessing: the card's ``input.preprocessing`` (kind "mfcc").
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"mfcc expects a 1-D (samples,) waveform, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"mfcc expects float samples in [-1, 1], got {audio.dtype} (divide int16 by 32768)")
    clip, window = int(preprocessing["clip_samples"]), int(preprocessing["window_samples"])
    stride, fft_size = int(preprocessing["stride_samples"]), int(preprocessing["fft_size"])
    frames = 1 + (clip - window) // stride
    if frames < 1:
        raise ValueError(f"clip_samples {clip} is shorter than one window of {window} samples")
    samples = np.zeros(clip, dtype=np.float32)
    kept = audio[:clip].astype(np.float32)
    samples[: len(kept)] = kept
    framed = samples[stride * np.arange(frames)[:, None] + np.arange(window)[None, :]]
    hann = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window) / window)).astype(np.float32)  # periodic
    magnitude = np.abs(np.fft.rfft(framed * hann, n=fft_size, axis=-1)).astype(np.float32)
    log_mel = np.log(magnitude @ mel_matrix(preprocessing) + np.float32(preprocessing["log_offset"]))
    return (log_mel @ dct_matrix(int(preprocessing["mel_bins"]), int(preprocessing["coefficients"]))).astype(
        np.float32)


def audio_features(audio: np.ndarray, preprocessing: dict) -> np.ndarray:
    """The model's input for one clip: standardised MFCCs, NHWC (1, frames, coefficients, 1) float32.

    Standardisation ``(mfcc - mean[k]) / std[k]`` uses ``preprocessing["normalization"]``; a card
    without it (a model trained on raw MFCCs) gets raw MFCCs.
    """
    features = mfcc(audio, preprocessing)
    normalization = preprocessing.get("normalization")
    if normalization is not None:
        mean = np.asarray(normalization["mean"], dtype=np.float32)
        std = np.asarray(normalization["std"], dtype=np.float32)
        if mean.shape != (features.shape[1],) or std.shape != (features.shape[1],):
            raise ValueError(f"normalization needs {features.shape[1]} means and stds (one per coefficient), "
                             f"got {mean.size} and {std.size}")
        features = (features - mean) / std
    return features[None, :, :, None].astype(np.float32)


def read_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """Samples of a 16-bit PCM mono WAV at ``sample_rate`` Hz, as float32 in [-1, 1).

    Raises:
        ValueError: unreadable, not 16-bit PCM, not mono, or another sample rate.
    """
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width, rate = handle.getnchannels(), handle.getsampwidth(), handle.getframerate()
            data = handle.readframes(handle.getnframes())
    except (wave.Error, EOFError, OSError) as error:
        raise ValueError(f"{path}: not a readable WAV file ({error})") from None
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit samples; expected 16-bit PCM")
    if channels != 1:
        raise ValueError(f"{path}: {channels} channels; expected mono (convert with: sox IN -c 1 OUT)")
    if rate != sample_rate:
        raise ValueError(f"{path}: sample rate {rate} Hz; this model expects {sample_rate} Hz "
                         f"(resample with: sox IN -r {sample_rate} OUT)")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


# ----------------------------------------------------------------------------------------- images

def _bilinear_indices(size_out: int, size_in: int):
    """Source indices and weights of bilinear resizing with half-pixel centres (no antialiasing)."""
    source = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0.0)
    first = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
    second = np.minimum(first + 1, size_in - 1)
    return first, second, (source - first).astype(np.float32)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, C) float image resized to (height, width, C) by plain bilinear interpolation.

    Equal to torch's ``interpolate(mode="bilinear", align_corners=False)``; not antialiased, so it
    matches training's antialiased resize only when enlarging (or keeping the size).
    """
    rows0, rows1, row_weight = _bilinear_indices(height, image.shape[0])
    cols0, cols1, col_weight = _bilinear_indices(width, image.shape[1])
    row_weight, col_weight = row_weight[:, None, None], col_weight[None, :, None]
    top = image[rows0][:, cols0] * (1 - col_weight) + image[rows0][:, cols1] * col_weight
    bottom = image[rows1][:, cols0] * (1 - col_weight) + image[rows1][:, cols1] * col_weight
    return (top * (1 - row_weight) + bottom * row_weight).astype(np.float32)


def image_features(image: np.ndarray, preprocessing: dict) -> np.ndarray:
    """The model's input for one image: NHWC (1, resolution, resolution, channels) float32.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) — uint8 in 0..255 or float in [0, 1];
            an alpha channel is dropped.
        preprocessing: the card's ``input.preprocessing`` (kind "image").
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W, C) image with 1, 3 or 4 channels, got shape {image.shape}")
    if image.dtype == np.uint8:
        pixels = image.astype(np.float32) / 255.0
    elif np.issubdtype(image.dtype, np.floating):
        pixels = image.astype(np.float32)
        if pixels.size and (pixels.min() < 0.0 or pixels.max() > 1.0):
            raise ValueError(f"float images must be in [0, 1], got {pixels.min():g}..{pixels.max():g} "
                             "(divide 0-255 values by 255)")
    else:
        raise ValueError(f"images must be uint8 or float in [0, 1], got {image.dtype}")
    pixels = pixels[:, :, :3]
    channels = int(preprocessing["channels"])
    if pixels.shape[2] == 1 and channels == 3:
        pixels = np.repeat(pixels, 3, axis=2)
    elif pixels.shape[2] == 3 and channels == 1:
        pixels = (pixels * LUMA_WEIGHTS).sum(axis=2, keepdims=True, dtype=np.float32)
    resolution = int(preprocessing["resolution"])
    if pixels.shape[:2] != (resolution, resolution):
        pixels = resize_bilinear(pixels, resolution, resolution)
    mean = np.asarray(preprocessing["mean"], dtype=np.float32)
    std = np.asarray(preprocessing["std"], dtype=np.float32)
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"image preprocessing needs {channels} means and stds, got {mean.size} and {std.size}")
    return ((pixels - mean) / std)[None].astype(np.float32)


# ----------------------------------------------------------------------------------------- model

def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:  # the older standalone runtime offers the same Interpreter API
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ValueError("ai-edge-litert is not installed; pip install ai-edge-litert") from None
    return Interpreter


def softmax(scores: np.ndarray) -> np.ndarray:
    """Probabilities from logits (float64 for a stable sum)."""
    shifted = np.exp(np.asarray(scores, dtype=np.float64) - np.max(scores))
    return shifted / shifted.sum()


class Classifier:
    """A .tflite model of an edgegrow export with its model card: raw audio or images in, labels out.

    Args:
        model_path: ``model.tflite`` (float) or ``model_int8.tflite`` (int8 input and output).
        card_path: the export's ``model_card.json``; by default the one beside the model.
        num_threads: CPU threads for the interpreter (None: LiteRT's default).

    Raises:
        ValueError: missing files, a card this pipeline cannot read, or a model whose input shape
            or number of outputs disagrees with the card.
    """

    def __init__(self, model_path: str | Path, card_path: str | Path | None = None,
                 num_threads: int | None = None):
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ValueError(f"no model file at {model_path}")
        self.card = load_card(model_path.parent / "model_card.json" if card_path is None else card_path)
        self.preprocessing = self.card["input"]["preprocessing"]
        self.classes = [str(name) for name in self.card["classes"]]
        try:
            self.interpreter = _interpreter_class()(model_path=str(model_path), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{model_path}: LiteRT cannot load the model ({str(error).strip()[:200]})") from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        expected = self.card["input"].get("shape_nhwc")
        if expected is not None and list(self._input["shape"]) != list(expected):
            raise ValueError(f"{model_path}: input shape {list(self._input['shape'])} differs from the card's "
                             f"shape_nhwc {list(expected)}; is this the card of this model?")
        if int(np.prod(self._output["shape"])) != len(self.classes):
            raise ValueError(f"{model_path}: {int(np.prod(self._output['shape']))} outputs but the card names "
                             f"{len(self.classes)} classes")

    @property
    def input_dtype(self) -> np.dtype:
        """The model's input type: float32, or int8 for a full-integer model."""
        return np.dtype(self._input["dtype"])

    def _require_kind(self, kind: str, method: str) -> None:
        if self.preprocessing["kind"] != kind:
            other = "classify_image" if kind == "mfcc" else "classify_audio / classify_wav"
            raise ValueError(f"{method} needs a model with {kind} input; this card's input is "
                             f"{self.preprocessing['kind']} (use {other})")

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Standardised MFCCs of one clip (float waveform in [-1, 1]), NHWC (1, frames, coefficients, 1)."""
        self._require_kind("mfcc", "features")
        return audio_features(audio, self.preprocessing)

    def image_features(self, image: np.ndarray) -> np.ndarray:
        """Normalised pixels of one image, NHWC (1, resolution, resolution, channels)."""
        self._require_kind("image", "image_features")
        return image_features(image, self.preprocessing)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """The model's output (float, one score per class) for NHWC float features.

        An integer model's input is quantized with the input tensor's (scale, zero point) and its
        output dequantized with the output tensor's.
        """
        features = np.asarray(features, dtype=np.float32)
        if list(features.shape) != list(self._input["shape"]):
            raise ValueError(f"features of shape {list(features.shape)}; the model takes {list(self._input['shape'])}")
        dtype = self.input_dtype
        if np.issubdtype(dtype, np.integer):
            scale, zero_point = self._input["quantization"]
            if not scale:
                raise ValueError(f"the model's {dtype} input has no quantization scale")
            info = np.iinfo(dtype)
            features = np.clip(np.round(features / scale) + zero_point, info.min, info.max)
        self.interpreter.set_tensor(self._input["index"], features.astype(dtype))
        self.interpreter.invoke()
        output = self.interpreter.get_tensor(self._output["index"]).reshape(-1)
        if np.issubdtype(output.dtype, np.integer):
            scale, zero_point = self._output["quantization"]
            return ((output.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32)
        return output.astype(np.float32)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Class probabilities: softmax of logits, or the scores themselves for a softmax output."""
        kind = self.card.get("output", {}).get("kind", "logits")
        return softmax(scores) if kind == "logits" else np.asarray(scores, dtype=np.float64)

    def _label(self, scores: np.ndarray) -> tuple[str, np.ndarray]:
        return self.classes[int(np.argmax(scores))], scores

    def classify_audio(self, audio: np.ndarray) -> tuple[str, np.ndarray]:
        """(label, scores) of one clip: float waveform in [-1, 1] at the card's sample rate."""
        self._require_kind("mfcc", "classify_audio")
        return self._label(self.scores(self.features(audio)))

    def classify_wav(self, path: str | Path) -> tuple[str, np.ndarray]:
        """(label, scores) of a 16-bit PCM mono WAV at the card's sample rate (another rate is a ValueError)."""
        self._require_kind("mfcc", "classify_wav")
        return self.classify_audio(read_wav(path, int(self.preprocessing["sample_rate"])))

    def classify_image(self, image: np.ndarray) -> tuple[str, np.ndarray]:
        """(label, scores) of one (H, W, C) image, uint8 or float in [0, 1]."""
        self._require_kind("image", "classify_image")
        return self._label(self.scores(self.image_features(image)))


# ----------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    """``python pipeline.py INPUT [--model model.tflite] [--card model_card.json] [--top 3]``.

    INPUT is a 16-bit mono WAV for an audio model, or a ``.npy`` (H, W, C) array for an image model
    (reading image files would need an imaging library; this script sticks to numpy).
    """
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description="Classify a clip (or image) with an edgegrow export.")
    parser.add_argument("input", help="a 16-bit PCM mono WAV, or a .npy HxWxC image for an image model")
    parser.add_argument("--model", default=str(here / "model.tflite"),
                        help="the .tflite model (default: model.tflite beside this script)")
    parser.add_argument("--card", default=None, help="model_card.json (default: the one beside the model)")
    parser.add_argument("--top", type=int, default=3, help="how many classes to print (default 3)")
    args = parser.parse_args(argv)
    try:
        classifier = Classifier(args.model, args.card)
        if classifier.preprocessing["kind"] == "image":
            label, scores = classifier.classify_image(np.load(args.input, allow_pickle=False))
        else:
            label, scores = classifier.classify_wav(args.input)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    probabilities = classifier.probabilities(scores)
    print(label)
    for index in np.argsort(-scores)[: max(1, args.top)]:
        print(f"  {classifier.classes[index]:<16} score {scores[index]:9.4f}  p {probabilities[index]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
