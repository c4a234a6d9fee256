"""Data beyond memory (issue 18 item 3): a split streamed from a map-style Dataset through a DataLoader
trains exactly as the same data in memory (with and without worker processes), resumes exactly, and
a grow run on a disk-backed set several times larger than the memory it is allowed keeps its peak
resident memory under that limit."""
import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from toy import seed_model, toy_task
from torch.utils.data import TensorDataset

from edgegrow.data.task_data import Split, TaskData
from edgegrow.training import TrainConfig, Training, evaluate

CONFIG = TrainConfig(epochs=2, batch_size=48, seed=3, device="cpu")


def streamed(data: TaskData, workers: int = 0) -> TaskData:
    """The same task with every split's inputs behind a Dataset of (input, label) pairs."""
    def split(s):
        return Split(TensorDataset(s.inputs, s.labels), s.labels, num_workers=workers)
    return TaskData(data.name, data.class_names, split(data.train), split(data.validation), split(data.test))


def trained(data: TaskData) -> tuple[list, torch.nn.Module]:
    model = seed_model()
    training = Training(model, data, CONFIG)
    training.run()
    return [(r.train_loss, r.validation_loss, r.validation_accuracy) for r in training.history], model


@pytest.mark.parametrize("workers", [0, 2])
def test_a_streamed_split_trains_exactly_as_the_same_data_in_memory(workers):
    data = toy_task()
    in_memory, model = trained(data)
    stream = streamed(data, workers)
    assert stream.train.streamed and stream.input_shape == data.input_shape
    from_dataset, streamed_model = trained(stream)
    assert from_dataset == in_memory  # the same batches in the same order: the same floats
    assert evaluate(streamed_model, stream.test, data.class_names).loss == evaluate(model, data.test,
                                                                                    data.class_names).loss


@pytest.mark.parametrize("method", ["random-new", "tiny"])
def test_a_grow_run_on_streamed_data_equals_the_run_in_memory(method):
    """Growth draws new neurons from torch's global generator: a DataLoader must not draw from it."""
    from toy import TINY, latency_budget

    from edgegrow.grow import GrowConfig, grow

    def run(data):
        result = grow(seed_model(), data, "host", latency_budget(2.2), GrowConfig(**{**TINY, "method": method,
                      "device": "cpu"}), None, family="ds-cnn", seed_options={"num_classes": 4}, log=lambda line: None)
        return [(row.train_loss, row.validation_loss) for row in result.log.epochs], result.summary.widths

    assert run(streamed(toy_task(), workers=2)) == run(toy_task())


def test_a_streamed_run_stopped_anywhere_goes_on_exactly():
    stream = streamed(toy_task(), workers=2)
    whole = Training(seed_model(), stream, CONFIG)
    whole.run()
    first = Training(seed_model(), stream, CONFIG)
    first.run(until_step=5)  # mid-epoch: the next run starts a stream at batch 1 of epoch 2
    model, state = copy.deepcopy(first.model), copy.deepcopy(first.state_dict())
    second = Training(model, stream, CONFIG)
    second.load_state_dict(state)
    second.run()
    assert [r.train_loss for r in second.history] == [r.train_loss for r in whole.history]
    for a, b in zip(second.model.state_dict().values(), whole.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_split_refuses_inputs_it_cannot_stream():
    with pytest.raises(ValueError, match="tensor or a map-style Dataset"):
        Split(object(), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="epoch_inputs needs inputs in memory"):
        Split(TensorDataset(torch.zeros(3, 1)), torch.zeros(3, dtype=torch.long), epoch_inputs=lambda e: None)
    with pytest.raises(ValueError, match="num_workers"):
        Split(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long), num_workers=-1)


CHILD = textwrap.dedent("""
    import json, os, resource, sys
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import Dataset
    from cost_models import estimate
    from edgegrow.data.task_data import Split, TaskData
    from edgegrow.grow import GrowConfig, grow
    from edgegrow.growth.budget import Budget

    torch.set_num_threads(1)
    SHAPE, path, count = (1, 128, 128), sys.argv[1], int(sys.argv[2])
    ROW = 4 * 128 * 128

    class FileRows(Dataset):
        \"\"\"Row i of a float32 file, read from disk when asked (pread, not mmap: nothing stays resident).\"\"\"
        def __init__(self, path, first, count):
            self.path, self.first, self.count, self.handle = path, first, count, None
        def __len__(self):
            return self.count
        def __getitem__(self, index):
            if self.handle is None:
                self.handle = os.open(self.path, os.O_RDONLY)
            raw = os.pread(self.handle, ROW, (self.first + index) * ROW)
            return torch.from_numpy(np.frombuffer(raw, dtype=np.float32).copy()).view(SHAPE)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 8, 5, stride=4, padding=2, bias=False), nn.BatchNorm2d(8)
            self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8)
            self.head = nn.Linear(8, 4)
        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = torch.relu(self.bn2(self.conv2(x)))
            return self.head(x.mean((2, 3)))

    labels = torch.arange(count) % 4
    held = 256
    data = TaskData("disk", ["a", "b", "c", "d"], Split(FileRows(path, 0, count - 2 * held), labels[:count - 2 * held]),
                    Split(FileRows(path, count - 2 * held, held), labels[:held]),
                    Split(FileRows(path, count - held, held), labels[:held]))
    torch.manual_seed(0)
    model = Net()
    example = torch.zeros(1, *SHAPE)
    budget = Budget({"macs": 2 * estimate(model, example, "host").macs})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = grow(model, data, "host", budget, GrowConfig(epochs=1, method="random-new", batch_size=64,
                  warmup_epochs=0.1, growth_start=0.1, growth_end=0.5, growth_every=0.2, score_batches=1,
                  device="cpu"), None, log=lambda line: None)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "after_kib": after, "events": result.summary.events,
                      "examples_seen": result.log.epochs[-1].samples_seen}))
""")


def peak_rise_mib(tmp_path: Path, count: int) -> float:
    """How far a grow run on ``count`` disk-backed inputs of 1×128×128 float32 (64 KiB each) raises its
    process's peak resident memory above what it held before training, in MiB."""
    path = tmp_path / f"inputs-{count}.f32"
    generator = torch.Generator().manual_seed(0)
    with open(path, "wb") as file:
        for start in range(0, count, 512):
            file.write(torch.randn(min(512, count - start), 128 * 128, generator=generator).numpy().tobytes())
    assert path.stat().st_size == count * 4 * 128 * 128
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), str(count)], capture_output=True, text=True,
                           timeout=900, cwd=Path(__file__).resolve().parents[2])
    assert child.returncode == 0, child.stderr[-3000:]
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    assert measured["events"] >= 1 and measured["examples_seen"] == count - 512
    return (measured["after_kib"] - measured["before_kib"]) / 1024


def test_growth_streams_a_data_set_without_holding_it_in_memory(tmp_path):
    """The same grow run on 64 MiB and on 256 MiB of inputs on disk: its peak resident memory rises by
    the working set of a few batches either way, not with the data (holding the extra 192 MiB would
    raise it by that much)."""
    small, large = peak_rise_mib(tmp_path, 1024), peak_rise_mib(tmp_path, 4096)
    assert large - small < 32, (small, large)


MAPPED = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from edgegrow.data.cache import load_tensors

    def resident_kib():  # now, not the peak: importing torch peaks higher than what follows
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))

    before = resident_kib()
    tensors = load_tensors(Path(sys.argv[1]), mmap=sys.argv[2] == "mmap")
    batch = tensors["train_inputs"][1000:1064].clone()  # one batch read, as training would
    after = resident_kib()
    print(json.dumps({"rise_mib": (after - before) / 1024, "rows": len(tensors["train_inputs"])}))
""")


def test_a_feature_cache_loads_memory_mapped_and_is_read_as_indexed(tmp_path):
    """The KWS loader's cache hit (load_tensors(..., mmap=True)): a 128 MiB cache costs a few MiB of
    resident memory to open and read a batch from; loaded whole (the control) it costs its size. (The
    pages a mapped run reads stay as page cache, which the system can take back; the pread-based test
    above is the one that bounds a whole run's peak.)"""
    from edgegrow.data.cache import save_tensors

    path = tmp_path / "kws-features.pt"
    save_tensors(path, {"train_inputs": torch.zeros(68_000, 1, 49, 10), "meta": "{}"})  # 128 MiB of float32

    def rise(mode: str) -> float:
        child = subprocess.run([sys.executable, "-c", MAPPED, str(path), mode], capture_output=True, text=True,
                               timeout=300, cwd=Path(__file__).resolve().parents[2])
        assert child.returncode == 0, child.stderr[-3000:]
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        assert measured["rows"] == 68_000
        return measured["rise_mib"]

    assert rise("mmap") < 16 and rise("whole") > 100


def test_the_kws_loader_maps_its_feature_cache(monkeypatch, tmp_path):
    import edgegrow.data.speech_commands as speech_commands
    from fake_speech_commands import write_speech_commands

    root = write_speech_commands(tmp_path / "speech", clips_per_word=4, background=False)
    speech_commands.load_speech_commands(root, cache_dir=tmp_path / "cache", progress=False)
    asked = []
    real = speech_commands.load_tensors
    monkeypatch.setattr(speech_commands, "load_tensors", lambda path, **kw: asked.append(kw) or real(path, **kw))
    again = speech_commands.load_speech_commands(root, cache_dir=tmp_path / "cache", progress=False)
    assert asked == [{"mmap": True}] and "features loaded from the cache" in again.notes
