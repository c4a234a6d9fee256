"""Optimizer state carries over growth: existing entries keep theirs, new entries start at zero."""
import pytest
import torch

from edgegrow.growth import add_neurons, deepen, find_channel_groups, growable_groups, split_neurons
from edgegrow.models import ds_cnn_seed, example_input


def trained_one_step(optimizer_class, **options):
    torch.manual_seed(0)
    model = ds_cnn_seed()
    x, y = example_input(model, 8), torch.randint(0, 12, (8,))
    optimizer = optimizer_class(model.parameters(), **options)
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer, x, y


def state_of(optimizer, parameter):
    return {k: v.clone() if torch.is_tensor(v) else v for k, v in optimizer.state[parameter].items()}


@pytest.mark.parametrize("optimizer_class,options,keys", [
    (torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}, ["momentum_buffer"]),
    (torch.optim.Adam, {"lr": 0.001}, ["exp_avg", "exp_avg_sq"]),
])
def test_split_and_add_carry_state_and_zero_new_entries(optimizer_class, options, keys):
    model, optimizer, x, y = trained_one_step(optimizer_class, **options)
    group = growable_groups(find_channel_groups(model, x))[1]  # block 1 pointwise → block 2
    producer = model.get_submodule("features.1.1.0")
    consumer = model.get_submodule("features.2.1.0")
    old_producer, old_consumer = state_of(optimizer, producer.weight), state_of(optimizer, consumer.weight)

    split_neurons(model, group, [3], optimizer=optimizer)
    add_neurons(model, group, 2, optimizer=optimizer)

    assert producer.weight is not None and all(p in optimizer.state for p in [producer.weight, consumer.weight])
    new_producer, new_consumer = optimizer.state[producer.weight], optimizer.state[consumer.weight]
    for key in keys:
        assert new_producer[key].shape == producer.weight.shape
        torch.testing.assert_close(new_producer[key][:8], old_producer[key])
        assert torch.count_nonzero(new_producer[key][8:]) == 0
        torch.testing.assert_close(new_consumer[key][:, :8], old_consumer[key])
        assert torch.count_nonzero(new_consumer[key][:, 8:]) == 0
    if "step" in old_producer:
        assert new_producer["step"] == old_producer["step"]
    # No stale parameter is left in the optimizer, and training continues.
    live = {id(p) for p in model.parameters()}
    assert all(id(p) in live for g in optimizer.param_groups for p in g["params"])
    assert all(id(p) in live for p in optimizer.state)
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def test_deepen_registers_new_parameters_with_empty_state():
    model, optimizer, x, y = trained_one_step(torch.optim.Adam, lr=0.01)
    inserted = deepen(model, "features.2", x, kind="ds-block", optimizer=optimizer)
    new_parameters = list(model.get_submodule(inserted).parameters())
    registered = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert new_parameters and all(id(p) in registered for p in new_parameters)
    assert all(p not in optimizer.state for p in new_parameters)
    before = [p.clone() for p in new_parameters]
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model.train()(x), y).backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, new_parameters))
