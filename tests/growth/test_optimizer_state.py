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


def test_newborn_second_moments_at_the_tensors_mean_when_the_group_asks():
    model, optimizer, x, y = trained_one_step(torch.optim.Adam, lr=0.001)
    for group in optimizer.param_groups:
        group["newborn_state"] = "mean"
    group = growable_groups(find_channel_groups(model, x))[1]
    producer = model.get_submodule("features.1.1.0")
    old = state_of(optimizer, producer.weight)
    add_neurons(model, group, 3, optimizer=optimizer)
    new = optimizer.state[producer.weight]
    torch.testing.assert_close(new["exp_avg_sq"][:8], old["exp_avg_sq"])
    torch.testing.assert_close(new["exp_avg_sq"][8:], torch.full_like(new["exp_avg_sq"][8:],
                                                                      old["exp_avg_sq"].mean().item()))
    assert torch.count_nonzero(new["exp_avg"][8:]) == 0  # first moments of newborn entries still start at zero
    for group in optimizer.param_groups:
        group["newborn_state"] = "random"
    before = {name: p.clone() for name, p in model.state_dict().items()}
    with pytest.raises(ValueError, match="unknown newborn_state 'random'"):
        add_neurons(model, growable_groups(find_channel_groups(model, x))[1], 1, optimizer=optimizer)
    assert {name: p.shape for name, p in model.state_dict().items()} == {n: p.shape for n, p in before.items()}


def test_after_deepening_the_optimizer_lists_parameters_as_the_model_does():
    from edgegrow.growth.optimizer_state import match_parameter_order

    model, optimizer, x, y = trained_one_step(torch.optim.Adam, lr=0.01)
    deepen(model, "features.2", x, kind="ds-block", optimizer=optimizer)
    assert [id(p) for p in optimizer.param_groups[0]["params"]] != [id(p) for p in model.parameters()]
    match_parameter_order(optimizer, model)
    assert [id(p) for p in optimizer.param_groups[0]["params"]] == [id(p) for p in model.parameters()]
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    fresh = torch.optim.Adam(model.parameters(), lr=0.01)  # as a resumed run builds it
    fresh.load_state_dict(optimizer.state_dict())
    for parameter in model.parameters():
        torch.testing.assert_close(fresh.state[parameter]["exp_avg_sq"], optimizer.state[parameter]["exp_avg_sq"])
