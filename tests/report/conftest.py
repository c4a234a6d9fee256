"""The finished grow run that the report tests (file and browser) read."""
import pytest
from toy import EXAMPLE, TINY, seed_model, toy_task

from cost_models import estimate
from edgegrow.grow import GrowConfig, grow, read_run
from edgegrow.growth.budget import Budget


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """A finished fast-split run (the seed, growth events, retraining) in a run folder, and its log and summary."""
    folder = tmp_path_factory.mktemp("report") / "run"
    seed_cost = estimate(seed_model(), EXAMPLE, "host")
    budget = Budget({"latency_ms": 2.2 * seed_cost.latency_ms})
    grow(seed_model(), toy_task(), "host", budget, GrowConfig(**TINY, retrain=True), folder, family="ds-cnn",
         seed_options={"num_classes": 4}, log=lambda line: None)
    log, summary = read_run(folder)
    return folder, log, summary
