"""The README's promises that code can check: its set-up commands name real things, and its Python
API walkthrough runs as written (a user's own CNN grown to a Cortex-M budget, then exported)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_block_after(heading: str) -> str:
    section = README[README.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_setup_commands_run_the_workflow_and_the_tests_with_what_they_install():
    main = next(line for line in README.splitlines() if line.rstrip().endswith("# main job"))
    tests = next(line for line in README.splitlines() if line.rstrip().endswith("# tests"))
    assert "edgegrow workflow" in main and '".[tflite]"' in main  # the workflow exports TFLite
    assert "python -m pytest" in tests and '".[test]"' in tests
    assert "scripts/install-cxx.sh" in tests  # the C array's compile test must not skip in CI for want of g++
    assert "scripts/install-fonts.sh" in tests  # nor the rendered-characters test for want of font families
    for script in re.findall(r"sh (scripts/\S+)", main + tests):
        assert (ROOT / script).is_file()


def test_python_walkthrough_runs_as_written(tmp_path):
    code = code_block_after("## Your own network: the Python API")
    assert len(code.strip().splitlines()) <= 20
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "runs/mine/summary.json").read_text())
    assert summary["target"] == "cortex-m4f-120mhz" and all(share <= 1 for share in summary["usage"].values())
    assert (tmp_path / "runs/mine/report.html").is_file()
    card = json.loads((tmp_path / "exported/mine/model_card.json").read_text())
    assert {"onnx", "onnx-int8", "tflite", "tflite-int8", "c"} <= set(card["files"])
    assert card["tflm"]["arena_bytes"] > 0


def test_a_family_of_your_own_runs_as_written(tmp_path):
    code = code_block_after("### A family of your own")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "runs/tiny/summary.json").read_text())
    assert summary["widths"] and max(summary["widths"].values()) > 8 and summary["usage"]["macs"] <= 1
    assert (tmp_path / "exported/tiny/model.onnx").is_file()
    assert json.loads((tmp_path / "exported/tiny/model_card.json").read_text())["family"] == "tiny-cnn"


def test_a_custom_networks_checkpoint_needs_its_seed(tmp_path):
    """What the walkthrough's last paragraph says: the checkpoint of a network of your own loads
    with its seed, and without one the error says how."""
    import torch
    from torch import nn

    from edgegrow.checkpoint import load_checkpoint
    from edgegrow.data.task_data import Split, TaskData
    from edgegrow.grow import GrowConfig, grow
    from edgegrow.growth.budget import Budget

    def seed():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    x, y = torch.randn(90, 1, 8, 8), torch.arange(90) % 3
    data = TaskData("toy", ["a", "b", "c"], Split(x[:60], y[:60]), Split(x[60:75], y[60:75]), Split(x[75:], y[75:]))
    result = grow(seed(), data, "host", Budget({"macs": 4000}),
                  GrowConfig(epochs=3, warmup_epochs=0.5, growth_every=0.5), tmp_path / "run", log=lambda line: None)
    assert result.log.growth[-1].predicted["macs"] > result.log.growth[0].predicted["macs"]
    with pytest.raises(ValueError, match="network of your own.*seed="):
        load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    model, checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint.pt", seed=seed())
    assert checkpoint.family == "custom"
    with torch.no_grad():
        assert torch.allclose(model(x), result.model.eval()(x), atol=1e-6)


def test_the_architecture_page_names_files_and_functions_that_exist():
    """docs/ARCHITECTURE.md's links resolve, and each `name(` or `name` it quotes from a linked Python
    module is defined somewhere in the code (a def, a class or an assignment)."""
    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "ARCHITECTURE.md").read_text()
    links = re.findall(r"\]\((\.\./[^)#]+)\)", page)
    assert links and all((root / "docs" / link).resolve().exists() for link in links), \
        [link for link in links if not (root / "docs" / link).resolve().exists()]
    code = "\n".join(path.read_text() for folder in ("edgegrow", "cost_models")
                     for path in (root / folder).rglob("*.py"))
    quoted = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]{3,})`", page))
    modules = {path.stem for folder in ("edgegrow", "cost_models") for path in (root / folder).rglob("*.py")} | \
        {path.name for path in root.iterdir() if path.is_dir()}
    identifiers = {name for name in quoted if ("_" in name or re.fullmatch(r"[A-Z][a-z]+[A-Z]\w*", name))
                   and name not in modules}
    # a def, a class, an assignment or field at a line's start, an attribute set, or a key or name in quotes
    missing = sorted(name for name in identifiers
                     if not re.search(rf"^\s*(def |class )?{re.escape(name)}\b\s*(\(|:|=(?!=)|,)", code, re.MULTILINE)
                     and not re.search(rf"\.{re.escape(name)}\s*=(?!=)|[\"']{re.escape(name)}[\"'\s]", code))
    assert not missing, f"docs/ARCHITECTURE.md names what the code does not define: {missing}"
