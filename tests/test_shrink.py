"""Shrinking the convolutions at a growth event (GrowConfig.shrink) leaves the network's eval-mode function
as it was: BatchNorm's running statistics follow the convolutions they read."""
import pytest
import torch
from torch import nn

from edgegrow.grow.growth_step import shrink_convolutions
from edgegrow.models import ds_cnn


def trained(model: nn.Module, inputs: torch.Tensor, classes: int, steps: int = 20) -> nn.Module:
    torch.manual_seed(0)
    labels = torch.randint(0, classes, (inputs.shape[0],))
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(steps):  # running statistics and weights of its own
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    return model.eval()


def test_a_shrunk_ds_cnn_computes_the_same_in_eval_mode():
    torch.manual_seed(0)
    inputs = torch.randn(32, 1, 49, 10)
    model = trained(ds_cnn("S", width_multiplier=0.25), inputs, 12)
    convolutions = {name: m.weight.detach().clone() for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    with torch.no_grad():
        before = model(inputs)
        shrink_convolutions(model, 0.5)
        after = model(inputs)
    torch.testing.assert_close(after, before, atol=2e-3, rtol=1e-3)
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            torch.testing.assert_close(module.weight, convolutions[name] * 0.5)


class Mixed(nn.Module):
    """A convolution with a bias into a BatchNorm, and a BatchNorm behind a ReLU (not a convolution's output)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1, bias=True)
        self.norm = nn.BatchNorm2d(4)
        self.after_relu = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.after_relu(torch.relu(self.norm(self.conv(x)))).mean((2, 3))


def test_the_statistics_of_a_biased_convolution_scale_about_its_bias_and_others_stay():
    model = trained(Mixed(), torch.randn(16, 2, 6, 6), 4)
    mean, var = model.norm.running_mean.clone(), model.norm.running_var.clone()
    other = {k: v.clone() for k, v in model.after_relu.state_dict().items()}
    bias = model.conv.bias.detach().clone()
    shrink_convolutions(model, 0.25)
    torch.testing.assert_close(model.norm.running_mean, (mean - bias) * 0.25 + bias)
    torch.testing.assert_close(model.norm.running_var, var * 0.0625)
    for key, value in model.after_relu.state_dict().items():
        torch.testing.assert_close(value, other[key])  # behind a ReLU: not a convolution's output


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            x = -x
        return self.norm(self.conv(x)).mean((2, 3))


@pytest.mark.parametrize("factor", [1.0, 0.5])
def test_a_model_fx_cannot_trace_still_shrinks_and_keeps_its_statistics(factor):
    model = trained(Untraceable(), torch.randn(8, 1, 5, 5), 3)
    weight, statistics = model.conv.weight.detach().clone(), model.norm.running_var.clone()
    shrink_convolutions(model, factor)
    torch.testing.assert_close(model.conv.weight, weight * factor)
    torch.testing.assert_close(model.norm.running_var, statistics)


class TwoGroups(nn.Module):
    def __init__(self):
        super().__init__()
        self.first, self.first_norm = nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.second, self.second_norm = nn.Conv2d(4, 6, 1, bias=False), nn.BatchNorm2d(6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.second_norm(self.second(torch.relu(self.first_norm(self.first(x))))))
        return self.head(x.mean((2, 3)))


def test_a_methods_new_units_keep_their_size_relative_to_the_shrunk_weights():
    """Applying candidates to the shrunk network after on_shrunk_network equals applying them first and
    shrinking after: the convolutions' entries scale with the weights beside them, the Linear's do not,
    and fresh neurons (default fan-in, zero fan-out) stay fresh."""
    from edgegrow.grow.growth_step import on_shrunk_network
    from edgegrow.growth.candidates import Candidate, apply_candidates

    torch.manual_seed(0)
    example = torch.randn(2, 1, 6, 6)
    candidates = [
        Candidate("new", "first", 1.0, fan_in={"first": torch.randn(1, 3, 3)}, fan_out={"second": torch.randn(6, 1, 1)}),
        Candidate("new", "second", 1.0, fan_in={"second": torch.randn(4, 1, 1)}, fan_out={"head": torch.randn(3)}),
    ]
    applied_first, shrunk_first = TwoGroups(), TwoGroups()
    shrunk_first.load_state_dict(applied_first.state_dict())
    apply_candidates(applied_first, candidates, example)
    shrink_convolutions(applied_first, 0.5)
    edits = on_shrunk_network(candidates, shrunk_first, 0.5)
    shrink_convolutions(shrunk_first, 0.5)
    apply_candidates(shrunk_first, edits, example)
    for name in ("first.weight", "second.weight", "head.weight"):
        torch.testing.assert_close(shrunk_first.state_dict()[name], applied_first.state_dict()[name])
    torch.testing.assert_close(edits[1].fan_out["head"], candidates[1].fan_out["head"])  # a Linear: not shrunk
    fresh = [Candidate("new", "first", 0.0), Candidate("layer", "first", 0.0)]
    assert on_shrunk_network(fresh, TwoGroups(), 0.5) == fresh
    assert on_shrunk_network(candidates, TwoGroups(), 1.0) is candidates
