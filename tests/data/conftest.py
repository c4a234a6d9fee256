"""Fixtures of the data tests."""
from pathlib import Path

import pytest
from fake_speech_commands import write_speech_commands


@pytest.fixture
def speech_commands(tmp_path) -> Path:
    return write_speech_commands(tmp_path / "speech_commands")
