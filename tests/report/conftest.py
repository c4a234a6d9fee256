"""The finished grow run that the report tests (file and browser) read."""
import json

import pytest
from test_grow import EXAMPLE, TINY, seed_model, toy_task

from cost_models import estimate
from edgegrow.grow import GrowConfig, grow
from edgegrow.growth.budget import Budget


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """A finished fast-split run (seed, growth steps, final) in a run folder, and its rows and summary."""
    folder = tmp_path_factory.mktemp("report") / "run"
    seed_cost = estimate(seed_model(), EXAMPLE, "host")
    budget = Budget({"latency_ms": 2.2 * seed_cost.latency_ms})
    grow(seed_model(), toy_task(), "host", budget, GrowConfig(**TINY), folder, family="ds-cnn",
         seed_options={"num_classes": 4}, log=lambda line: None)
    rows = [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]
    rows = [row for row in rows if row["phase"] != "stop"]
    summary = json.loads((folder / "summary.json").read_text())
    return folder, rows, summary
