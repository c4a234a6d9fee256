"""A tiny Speech Commands v2 folder written by the tests: each word is a tone of its own pitch."""
from pathlib import Path

import numpy as np

from edgegrow.data.audio import write_wav
from edgegrow.data.speech_commands import KEYWORDS

OTHER_WORDS = ("bed", "cat", "dog")


def write_speech_commands(root: Path, clips_per_word: int = 10, background: bool = True) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    validation, testing = [], []
    for number, word in enumerate(KEYWORDS + OTHER_WORDS):
        (root / word).mkdir(parents=True)
        for i in range(clips_per_word):
            tone = 0.3 * np.sin(2 * np.pi * (300 + 150 * number) * t) * (t > 0.2) * (t < 0.7)
            name = f"{word}/spk{i % 5}_nohash_{i}.wav"
            write_wav(root / name, tone + 0.01 * rng.standard_normal(16000), 16000)
            if i % 5 == 3:
                validation.append(name)
            elif i % 5 == 4:
                testing.append(name)
    (root / "validation_list.txt").write_text("\n".join(validation) + "\n")
    (root / "testing_list.txt").write_text("\n".join(testing) + "\n")
    if background:
        (root / "_background_noise_").mkdir()
        write_wav(root / "_background_noise_" / "white_noise.wav", 0.3 * rng.standard_normal(3 * 16000), 16000)
    return root
