"""The finished grow run that the report tests (file and browser) read."""
import pytest
from toy import grow_toy

from edgegrow.grow import read_run


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """A finished fast-split run (the seed, growth events, retraining) in a run folder, and its log and summary."""
    folder = tmp_path_factory.mktemp("report") / "run"
    grow_toy(folder, {"retrain": True})  # to 2.2× the seed's host latency
    log, summary = read_run(folder)
    return folder, log, summary
