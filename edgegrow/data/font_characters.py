"""An offline image-classification set harder than digits: the 62 characters 0-9, A-Z and a-z rendered
from the fonts installed on this machine, with whole font families held out for the test split.

Each font renders every character ``renders_per_font`` times at a random size, position and small
rotation, white on black, into ``ROOT/{train,val,test}/CLASS/*.png`` (the image-folder layout
``edgegrow.data.images.load_image_folder`` reads; classes are ``digit_0``, ``upper_A``, ``lower_a`` so
that case survives case-insensitive file systems). Families, not single files, are split: the test
split's fonts share no family with the training fonts, so a model has to read shapes it never saw.
Some pairs are ambiguous in many fonts (O/0/o, l/I/1, c/C, s/S, v/V, w/W, x/X, z/Z), which keeps the
task's ceiling below 100 %. Symbol, dingbat and mathematical fonts are left out.

The folder is built under a temporary name and renamed when complete; ``edgegrow-fonts.json`` records
the settings and every font used, and a folder made with the same settings and fonts is reused.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import string
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..argument_checks import check_positive_integer
from ..atomic import publish_folder

CHARACTERS = string.digits + string.ascii_uppercase + string.ascii_lowercase
MANIFEST = "edgegrow-fonts.json"
FONT_FOLDERS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts", "/Library/Fonts",
                "/System/Library/Fonts", "C:/Windows/Fonts")
NOT_TEXT = ("symbol", "dingbat", "d050000l", "initials", "keyboard", "math", "smallcaps", "z003", "emoji")


@dataclass(frozen=True)
class FontSetConfig:
    """What a rendered-characters set is made of (part of the manifest: a folder is reused only for equal ones)."""

    renders_per_font: int = 2
    image_size: int = 32
    test_share: float = 0.25  # of the font families
    validation_share: float = 0.15
    seed: int = 0
    font_folders: tuple[str, ...] = FONT_FOLDERS

    def __post_init__(self):
        check_positive_integer("renders_per_font", self.renders_per_font)
        check_positive_integer("image_size", self.image_size)
        shares = (self.test_share, self.validation_share)
        if not (all(0 < share < 1 for share in shares) and sum(shares) < 1):
            raise ValueError("test_share and validation_share must be in (0, 1) and sum to less than 1")


@dataclass
class FontSetReport:
    folder: Path
    reused: bool
    families: dict[str, list[str]] = field(default_factory=dict)  # split → families
    images: dict[str, int] = field(default_factory=dict)  # split → images

    def describe(self) -> str:
        """One line: where the set is, its images per split, whether it was reused, the test fonts."""
        how = "reused (made earlier with the same settings and fonts)" if self.reused else "made"
        counts = ", ".join(f"{split} {count:,}" for split, count in self.images.items())
        return f"{self.folder}: {counts} images, {how}; test fonts: {', '.join(self.families['test'])}"


def class_name(character: str) -> str:
    kind = "digit" if character.isdigit() else "upper" if character.isupper() else "lower"
    return f"{kind}_{character}"


def text_fonts(folders: tuple[str, ...] = FONT_FOLDERS) -> dict[str, list[Path]]:
    """Installed TrueType/OpenType fonts that draw every character of CHARACTERS, by family name."""
    from PIL import ImageFont

    families: dict[str, list[Path]] = {}
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in (".ttf", ".otf"):
                continue
            try:
                font = ImageFont.truetype(str(path), 40)
                family, style = font.getname()
            except (OSError, ValueError):
                continue
            if any(word in f"{family} {style} {path.name}".lower() for word in NOT_TEXT) or not _draws_all(font):
                continue
            families.setdefault(family, []).append(path)
    return families


def _draws_all(font) -> bool:
    """Every character has a glyph of its own: none is empty or the font's missing-glyph box."""
    def bitmap(character: str):
        mask = font.getmask(character)
        return mask.size, bytes(mask)

    missing = bitmap("\ue000")
    for character in CHARACTERS:
        mask = font.getmask(character)
        if mask.getbbox() is None or bitmap(character) == missing:
            return False
    return True


def superfamily(family: str) -> str:
    """What related families share (``Go``, ``Go Mono`` and ``Go Medium``; ``FreeSans`` and ``FreeMono``):
    the first word of the name without a trailing Sans, Serif or Mono."""
    first = family.split()[0]
    for suffix in ("Sans", "Serif", "Mono"):
        if first.endswith(suffix) and len(first) > len(suffix):
            first = first[: -len(suffix)]
    return first.lower()


def split_families(families: list[str], config: FontSetConfig) -> dict[str, list[str]]:
    """Families to train, val and test, whole superfamilies at a time, by a seeded hash of each
    superfamily's name (so a split does not move as other fonts are installed)."""
    groups: dict[str, list[str]] = {}
    for family in families:
        groups.setdefault(superfamily(family), []).append(family)

    def rank(name: str) -> float:
        digest = hashlib.sha256(f"{config.seed}:{name}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    ordered = sorted(groups, key=rank)
    test = max(1, round(len(ordered) * config.test_share))
    validation = max(1, round(len(ordered) * config.validation_share))
    if len(ordered) < test + validation + 1:
        raise ValueError(f"found {len(ordered)} unrelated font families that draw 0-9, A-Z and a-z; need at least 3 "
                         "(one each for train, val and test): install more fonts (sh scripts/install-fonts.sh)")
    parts = {"test": ordered[:test], "val": ordered[test:test + validation], "train": ordered[test + validation:]}
    return {split: sorted(family for group in names for family in groups[group]) for split, names in parts.items()}


def _render(font_path: Path, character: str, size: int, rng: np.random.Generator):
    from PIL import Image, ImageDraw, ImageFont

    canvas = 2 * size  # drawn at twice the size, then downsampled: smooth edges
    font = ImageFont.truetype(str(font_path), int(canvas * rng.uniform(0.55, 0.85)))
    image = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), character, font=font)
    room_x, room_y = canvas - (right - left), canvas - (bottom - top)
    x = -left + room_x * rng.uniform(0.25, 0.75)
    y = -top + room_y * rng.uniform(0.25, 0.75)
    draw.text((x, y), character, fill=int(rng.uniform(170, 255)), font=font)
    image = image.rotate(rng.uniform(-8, 8), resample=Image.BILINEAR)
    return image.resize((size, size), Image.LANCZOS)


def render_font_characters(out: str | Path, config: FontSetConfig = FontSetConfig()) -> FontSetReport:
    """Build (or reuse) the rendered-characters folder at ``out``.

    Raises:
        ValueError: fewer than 3 usable font families, or ``out`` exists and was made otherwise.
    """
    out = Path(out)
    families = text_fonts(config.font_folders)
    fonts = {family: [str(p) for p in paths] for family, paths in sorted(families.items())}
    settings = json.loads(json.dumps(asdict(config)))
    if out.exists():
        try:
            manifest = json.loads((out / MANIFEST).read_text())
        except (OSError, ValueError):
            manifest = None
        if manifest is not None and manifest.get("config") == settings and manifest.get("fonts") == fonts:
            return FontSetReport(out, True, manifest["families"], manifest["images"])
        raise ValueError(f"{out} already exists and is not a character set made with these settings and fonts; "
                         "choose another --out or remove it")
    splits = split_families(list(families), config)
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    counts = {}
    try:
        for split, names in splits.items():
            counts[split] = 0
            for character in CHARACTERS:
                (building / split / class_name(character)).mkdir(parents=True)
            for family in names:
                for font_number, path in enumerate(families[family]):
                    key = hashlib.sha256(f"{config.seed}:{path.name}".encode()).digest()
                    rng = np.random.default_rng(list(key[:8]))
                    for character in CHARACTERS:
                        for render in range(config.renders_per_font):
                            image = _render(path, character, config.image_size, rng)
                            name = f"{path.stem}_{render}.png"
                            image.save(building / split / class_name(character) / name)
                            counts[split] += 1
        manifest = {"generator": "edgegrow data fonts", "config": settings, "fonts": fonts, "families": splits,
                    "images": counts}
        (building / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if not publish_folder(building, out):  # another process made it first: reuse it if it matches
            return render_font_characters(out, config)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return FontSetReport(out, False, splits, counts)
