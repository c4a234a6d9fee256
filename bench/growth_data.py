"""The data sets the growth benchmarks train on, made offline and cached, each large enough that one
point of test accuracy is many examples.

- ``kws``: the synthetic Speech Commands set at 1,000 clips per keyword from 240 speakers (espeak-ng
  voices × variants), 15 % of the speakers held out for the test split: ≈ 9,000 training clips and
  ≈ 1,760 test clips of unseen speakers (one point = 17 clips).
- ``kws-extend``: the same keywords and speakers with 400 clips of each other word, for learning five of
  them as new classes (bench/extend_keywords.py).
- ``fonts``: the 62 characters 0-9, A-Z, a-z rendered from the fonts installed on this machine
  (``edgegrow data fonts``), whole font families held out for the test split.

``python bench/growth_data.py kws-features OUT.pt`` copies the KWS set's MFCC features (about 24 MB)
to one file, which ``grow_vs_uniform.py --kws-features OUT.pt`` trains on where the clips or espeak-ng
are not (a GPU machine).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from edgegrow.data.cache import cache_root
from edgegrow.data.synthesize_kws import SynthesisConfig, synthesize_speech_commands

KWS = SynthesisConfig(per_class=1000, unknown_per_word=80, speakers=240, validation_percent=10.0,
                      testing_percent=15.0)


def kws_folder(cache_dir: str | Path | None = None) -> Path:
    """The large synthetic KWS set, synthesised into the cache on first use (about 2 minutes on 2 cores)."""
    folder = cache_root(cache_dir) / "kws-synthetic-large-v1"
    return synthesize_speech_commands(folder, KWS, progress=False).folder


# the set issue 21's extension benchmark learns new words on: the large set's keywords and speakers, and 400
# clips of each of the 25 other words, so five of them can become classes with ≈ 60 test clips each
KWS_EXTEND = SynthesisConfig(per_class=1000, unknown_per_word=400, speakers=240, validation_percent=10.0,
                             testing_percent=15.0)


def kws_extend_folder(cache_dir: str | Path | None = None) -> Path:
    """The KWS set with many clips of the 'unknown' words (synthesised into the cache on first use)."""
    folder = cache_root(cache_dir) / "kws-synthetic-extend-v1"
    return synthesize_speech_commands(folder, KWS_EXTEND, progress=False).folder


def fonts_folder(cache_dir: str | Path | None = None) -> Path:
    """The rendered-characters image set (``edgegrow.data.font_characters``), made on first use."""
    from edgegrow.data.font_characters import FontSetConfig, render_font_characters

    folder = cache_root(cache_dir) / "font-characters-v1"
    return render_font_characters(folder, FontSetConfig()).folder


def kws_features_file(cache_dir: str | Path | None = None) -> Path:
    """The large KWS set's MFCC features file (computed on first use), which
    ``edgegrow.data.speech_commands.load_kws_features`` reads without the clips."""
    from edgegrow.data.speech_commands import features_cache_file, load_speech_commands

    folder = kws_folder(cache_dir)
    load_speech_commands(folder, cache_dir=cache_dir, progress=False)
    return features_cache_file(folder, cache_dir=cache_dir)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "kws-features":
        sys.exit("usage: python bench/growth_data.py kws-features OUT.pt")
    shutil.copyfile(kws_features_file(), sys.argv[2])
    print(f"wrote {sys.argv[2]}")
