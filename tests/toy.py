"""What many tests share: the toy task (four classes told apart by where a bump sits), the DS-CNN seed
that grows on it, a grow config small enough for a test, and a latency budget relative to the seed.
One module, imported by name (pytest puts tests/ on the path), so no test imports another test file."""
import torch

from cost_models import estimate
from edgegrow.data.task_data import Split, TaskData
from edgegrow.growth.budget import Budget
from edgegrow.models import ds_cnn_seed

EXAMPLE = torch.zeros(1, 1, 49, 10)
# 192 training examples at batch 64: 3 steps per epoch, 12 in the run; events at steps 1, 3, 5 and 7; growth in
# place (DS-CNN's default restart is tested on its own)
TINY = dict(epochs=4, warmup_epochs=0.5, growth_start=0.1, growth_end=0.6, growth_every=0.5, score_batches=1,
            fast_steps=5, firefly_steps=3, batch_size=64, restart=False)


def toy_task(examples: int = 192) -> TaskData:
    """Four classes told apart by where a bump sits in a (1, 49, 10) map."""
    def split(n, seed):
        generator = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, 4, (n,), generator=generator)
        inputs = 0.3 * torch.randn(n, 1, 49, 10, generator=generator)
        inputs[torch.arange(n), 0, 10 * labels + 5, 2 + 2 * labels] += 2.0
        return Split(inputs, labels)
    return TaskData("toy", ["a", "b", "c", "d"], split(examples, 0), split(64, 1), split(64, 2))


def seed_model():
    torch.manual_seed(0)
    return ds_cnn_seed(num_classes=4)


def latency_budget(factor: float) -> Budget:
    return Budget({"latency_ms": factor * estimate(seed_model(), EXAMPLE, "host").latency_ms})
