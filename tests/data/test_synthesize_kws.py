"""Synthesis with the real espeak-ng (installed by .ci/run; skipped, and reported so, elsewhere)."""
import json
import shutil
import wave

import pytest

from edgegrow.data import synthesize_kws
from edgegrow.data.speech_commands import BACKGROUND_FOLDER, KEYWORDS, UNKNOWN_WORDS_V2, which_set
from edgegrow.data.synthesize_kws import MissingToolError, SynthesisConfig, synthesize_speech_commands

TINY = SynthesisConfig(per_class=4, unknown_per_word=1, speakers=8, background_seconds=2)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@needs_espeak
def test_synthesised_folder_has_the_speech_commands_layout(tmp_path):
    report = synthesize_speech_commands(tmp_path / "kws", TINY, progress=False)
    root = report.folder
    assert not report.reused
    for word in KEYWORDS:
        assert len(list((root / word).glob("*_nohash_*.wav"))) == 4
    for word in UNKNOWN_WORDS_V2:
        assert len(list((root / word).glob("*.wav"))) == 1
    assert len(list((root / BACKGROUND_FOLDER).glob("*.wav"))) == 6
    listed = (root / "validation_list.txt").read_text().split() + (root / "testing_list.txt").read_text().split()
    assert all((root / name).exists() for name in listed)
    with wave.open(str(next((root / "yes").glob("*.wav"))), "rb") as clip:
        clip_format = (clip.getframerate(), clip.getnchannels(), clip.getsampwidth(), clip.getnframes())
    assert clip_format == (16000, 1, 2, 16000)
    manifest = json.loads((root / "edgegrow-synthesis.json").read_text())
    assert manifest["config"]["per_class"] == 4 and "espeak" in manifest["espeak_ng"].lower()
    assert len(manifest["variants"]) > 10  # the variant probe kept the ones that really change the voice
    assert not list(tmp_path.glob(".kws.partial-*"))


@needs_espeak
def test_same_settings_are_reused_other_settings_refused(tmp_path):
    made = synthesize_speech_commands(tmp_path / "kws", TINY, progress=False)
    again = synthesize_speech_commands(tmp_path / "kws", TINY, progress=False)
    assert again.reused
    clips = sum(made.clips.values())
    assert made.describe() == f"{made.folder}: {clips} clips, made in {made.seconds:.0f} s"
    assert again.describe() == f"{made.folder}: {clips} clips, reused (made earlier with the same settings)"
    with pytest.raises(ValueError, match="already exists and is a synthetic set made with other settings"):
        synthesize_speech_commands(tmp_path / "kws", SynthesisConfig(per_class=5), progress=False)
    (tmp_path / "mine").mkdir()
    with pytest.raises(ValueError, match="already exists and is not a synthetic set made by edgegrow"):
        synthesize_speech_commands(tmp_path / "mine", TINY, progress=False)


@needs_espeak
def test_two_processes_making_the_same_set_at_once_both_end_with_it(tmp_path, monkeypatch):
    import os

    synthesize_speech_commands(tmp_path / "made-by-the-other", TINY, progress=False)
    real_replace = os.replace

    def the_other_process_finished_first(source, destination):  # only at the folder's own rename
        if str(destination) == str(tmp_path / "kws"):
            shutil.copytree(tmp_path / "made-by-the-other", destination)
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", the_other_process_finished_first)
    assert synthesize_speech_commands(tmp_path / "kws", TINY, progress=False).reused
    assert not list(tmp_path.glob(".kws.partial-*"))


@needs_espeak
def test_a_failure_mid_way_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthesize_kws, "_render_clip", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        synthesize_speech_commands(tmp_path / "kws", TINY, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_missing_espeak_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(synthesize_kws.shutil, "which", lambda name: None)
    with pytest.raises(MissingToolError, match="apt-get install -y espeak-ng"):
        synthesize_speech_commands(tmp_path / "kws", TINY, progress=False)


def test_split_rule_keeps_a_speaker_in_one_split():
    names = [f"yes/abcd{i:04d}_nohash_{j}.wav" for i in range(300) for j in range(3)]
    by_speaker = {}
    for name in names:
        by_speaker.setdefault(name.split("_")[0], set()).add(which_set(name, 10, 10))
    assert all(len(splits) == 1 for splits in by_speaker.values())
    shares = [sum(which_set(n, 10, 10) == s for n in names) / len(names) for s in ("validation", "testing")]
    assert all(0.05 < share < 0.15 for share in shares)


def test_bad_synthesis_settings_are_clear_errors():
    with pytest.raises(ValueError, match="per_class must be a positive integer, got 0"):
        SynthesisConfig(per_class=0)


@needs_espeak
def test_an_interruption_stops_at_once_and_cleans_up(tmp_path, monkeypatch):
    rendered = []
    original = synthesize_kws._render_clip

    def render_then_interrupt(job, *args):
        rendered.append(job)
        if len(rendered) == 3:
            raise KeyboardInterrupt
        return original(job, *args)

    monkeypatch.setattr(synthesize_kws, "_render_clip", render_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        synthesize_speech_commands(tmp_path / "kws", TINY, workers=1, progress=False)
    # a worker may already hold the next clip; the rest of the 65 queued clips are cancelled, not rendered
    assert len(rendered) <= 5
    assert list(tmp_path.iterdir()) == []
