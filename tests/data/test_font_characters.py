"""The rendered-characters image set: fonts that cannot draw every character are left out, whole
superfamilies are held out for the test split, the folder loads as an image task, and it is reused
only when made with the same settings and fonts."""
import json

import pytest

from edgegrow.data.font_characters import (
    CHARACTERS,
    FontSetConfig,
    class_name,
    render_font_characters,
    split_families,
    superfamily,
    text_fonts,
)
from edgegrow.data.images import ImageTaskConfig, load_image_folder

FONTS = text_fonts()
needs_fonts = pytest.mark.skipif(
    len({superfamily(f) for f in FONTS}) < 3,
    reason="fewer than 3 unrelated font families installed (sh scripts/install-fonts.sh installs some)")


def test_class_names_keep_case_apart():
    names = [class_name(c) for c in CHARACTERS]
    assert len(CHARACTERS) == 62 and len({n.lower() for n in names}) == 62
    assert class_name("a") == "lower_a" and class_name("A") == "upper_A" and class_name("7") == "digit_7"


def test_related_families_share_a_superfamily_and_never_straddle_splits():
    assert superfamily("Go Mono") == superfamily("Go") == "go"
    assert superfamily("FreeSans") == superfamily("FreeMono") == "free"
    families = ["Go", "Go Mono", "Go Medium", "FreeSans", "FreeSerif", "Lato", "Hack", "Carlito", "Cantarell"]
    splits = split_families(families, FontSetConfig())
    assert sorted(f for part in splits.values() for f in part) == sorted(families)
    for split, members in splits.items():
        others = {superfamily(f) for other, part in splits.items() if other != split for f in part}
        assert not {superfamily(f) for f in members} & others
    with pytest.raises(ValueError, match="need at least 3"):
        split_families(["Go", "Go Mono"], FontSetConfig())


def test_fonts_that_lack_a_character_are_left_out():
    for family, paths in FONTS.items():
        assert not any(word in family.lower() for word in ("symbol", "dingbat", "math"))
        assert paths


@needs_fonts
def test_the_set_loads_as_an_image_task_with_held_out_families(tmp_path):
    config = FontSetConfig(renders_per_font=1, image_size=16)
    report = render_font_characters(tmp_path / "fonts", config)
    assert not report.reused and set(report.images) == {"train", "val", "test"}
    manifest = json.loads((tmp_path / "fonts" / "edgegrow-fonts.json").read_text())
    assert manifest["families"] == report.families
    fonts_of = {split: sum(len(FONTS[family]) for family in families) for split, families in report.families.items()}
    assert report.images == {split: 62 * count for split, count in fonts_of.items()}
    task = load_image_folder(tmp_path / "fonts", ImageTaskConfig(resolution=16, channels=1, flips=False))
    assert task.num_classes == 62 and len(task.test) == report.images["test"]
    again = render_font_characters(tmp_path / "fonts", config)
    assert again.reused
    counts = ", ".join(f"{split} {count:,}" for split, count in report.images.items())
    assert report.describe().startswith(f"{report.folder}: {counts} images, made; test fonts: ")
    assert "reused" in again.describe() and all(family in again.describe() for family in report.families["test"])
    with pytest.raises(ValueError, match="not a character set made with these settings"):
        render_font_characters(tmp_path / "fonts", FontSetConfig(renders_per_font=2, image_size=16))


@needs_fonts
def test_two_processes_making_the_same_set_at_once_both_end_with_it(tmp_path, monkeypatch):
    """Two first uses at once (the growth benchmark's jobs): the one that finishes second finds the
    folder in place, drops its own copy and reuses the other's instead of failing."""
    import os
    import shutil

    config = FontSetConfig(renders_per_font=1, image_size=16)
    render_font_characters(tmp_path / "made-by-the-other", config)
    real_replace = os.replace

    def the_other_process_finished_first(source, destination):  # only at the folder's own rename
        if str(destination) == str(tmp_path / "fonts"):
            shutil.copytree(tmp_path / "made-by-the-other", destination)
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", the_other_process_finished_first)
    report = render_font_characters(tmp_path / "fonts", config)
    assert report.reused and not list(tmp_path.glob(".fonts.partial-*"))

