"""Checkpoints carry a SHA-256 of their record and weights: a file altered after it was written is
refused with a clear message, even where the container itself still reads."""
import pytest
import torch

from edgegrow.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgegrow.models import ds_cnn_seed


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, ds_cnn_seed(num_classes=4), Checkpoint("ds-cnn", {"num_classes": 4}, [], {"phase": "seed"}))
    return path


def test_an_intact_checkpoint_loads(saved):
    model, checkpoint = load_checkpoint(saved)
    assert checkpoint.meta == {"phase": "seed"} and sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("alter", ["weight", "record"])
def test_an_altered_checkpoint_is_refused(saved, alter):
    payload = torch.load(saved, weights_only=True)
    if alter == "weight":
        name = next(iter(payload["state_dict"]))
        payload["state_dict"][name] = payload["state_dict"][name] + 1e-3  # one bad disk block, say
    else:
        payload["meta_json"] = '{"phase": "final"}'
    torch.save(payload, saved)  # a readable file whose contents no longer match the stored digest
    with pytest.raises(ValueError, match=r"checkpoint.pt: damaged checkpoint: its contents do not match the SHA-256"):
        load_checkpoint(saved)


def test_a_checkpoint_from_before_checksums_still_loads(saved):
    payload = torch.load(saved, weights_only=True)
    del payload["sha256"]
    torch.save(payload, saved)
    load_checkpoint(saved)
