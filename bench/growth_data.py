"""The data sets the growth benchmarks train on, made offline and cached, each large enough that one
point of test accuracy is many examples.

- ``kws``: the synthetic Speech Commands set at 1,000 clips per keyword from 240 speakers (espeak-ng
  voices × variants), 15 % of the speakers held out for the test split: ≈ 9,000 training clips and
  ≈ 1,760 test clips of unseen speakers (one point = 17 clips).
- ``fonts``: the 62 characters 0-9, A-Z, a-z rendered from the fonts installed on this machine
  (``edgegrow data fonts``), whole font families held out for the test split.
"""
from __future__ import annotations

from pathlib import Path

from edgegrow.data.cache import cache_root
from edgegrow.data.synthesize_kws import SynthesisConfig, synthesize_speech_commands

KWS = SynthesisConfig(per_class=1000, unknown_per_word=80, speakers=240, validation_percent=10.0,
                      testing_percent=15.0)


def kws_folder(cache_dir: str | Path | None = None) -> Path:
    """The large synthetic KWS set, synthesised into the cache on first use (about 2 minutes on 2 cores)."""
    folder = cache_root(cache_dir) / "kws-synthetic-large-v1"
    return synthesize_speech_commands(folder, KWS, progress=False).folder


def fonts_folder(cache_dir: str | Path | None = None) -> Path:
    """The rendered-characters image set (``edgegrow.data.font_characters``), made on first use."""
    from edgegrow.data.font_characters import FontSetConfig, render_font_characters

    folder = cache_root(cache_dir) / "font-characters-v1"
    return render_font_characters(folder, FontSetConfig()).folder
