"""edgegrow extend (issue 21 item 1): a grown KWS network learns new words with its old weights frozen.

The old classes' logits stay the old network's on every input (data or not), in PyTorch and in the
exported float files; the new words are learnt; the extension fits its budget; the checkpoint is an
ordinary one that loads, exports and extends again; bad input is refused before anything is written."""
import json

import numpy as np
import pytest
import torch
from toy import grown_kws_run

from cost_models import estimate
from edgegrow.checkpoint import load_checkpoint
from edgegrow.cli import main
from edgegrow.data.speech_commands import CLASS_NAMES, KwsConfig, load_speech_commands
from edgegrow.export import export_checkpoint
from edgegrow.extend import ExtendConfig, extend, new_neurons
from edgegrow.growth.budget import Budget
from edgegrow.models import example_input
from edgegrow.tasks import load_task

NEW = ["bed", "cat"]  # words of the fake folder's 'unknown' vocabulary
QUICK = ExtendConfig(epochs=30, replay_per_class=20)


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A DS-CNN grown on the 12 classes of a small Speech Commands folder: the run folder, its root."""
    root = tmp_path_factory.mktemp("extend")
    folder, _ = grown_kws_run(root, 20, dict(epochs=10, growth_every=2.0, growth_end=0.3, score_batches=1,
                                             fast_steps=5, batch_size=32, restart=False))
    return folder, root


@pytest.fixture(scope="module")
def extended(grown):
    run, root = grown
    result = extend(run, NEW, root / "extended", cache_dir=root / "cache", progress=False, config=QUICK,
                    formats="onnx,tflite,tflite-int8", log=lambda line: None)
    return result, run, root


def test_the_old_classes_logits_are_the_old_networks_on_every_input(extended):
    result, run, root = extended
    old, _ = load_checkpoint(run / "checkpoint.pt")
    new, _ = load_checkpoint(root / "extended" / "checkpoint.pt")  # as a user loads it again
    data = load_task("kws", root / "data", cache_dir=root / "cache", progress=False,
                     new_classes=NEW, normalization=result_normalization(run)).data
    noise = 3 * torch.randn(200, *data.input_shape, generator=torch.Generator().manual_seed(1))
    for inputs in (data.test.inputs, data.train.inputs, noise):  # the data, and inputs that are no clip at all
        with torch.no_grad():
            before, after = old(inputs), new(inputs)
        assert after.shape[1] == len(CLASS_NAMES) + len(NEW)
        assert (after[:, :len(CLASS_NAMES)] - before).abs().max() <= 1e-5
        assert torch.equal(after[:, :len(CLASS_NAMES)].argmax(1), before.argmax(1))
    assert result.old_output_difference <= 1e-5 and result.old_top1_agreement == 1.0


def result_normalization(run):
    meta = load_checkpoint(run / "checkpoint.pt")[1].meta
    return {key: meta["preprocessing"]["normalization"][key] for key in ("mean", "std")}


def test_every_old_weight_and_statistic_is_held_and_old_neurons_never_read_new_ones(extended):
    result, run, root = extended
    old = load_checkpoint(run / "checkpoint.pt")[0].state_dict()
    new = load_checkpoint(root / "extended" / "checkpoint.pt")[0].state_dict()
    for name, before in old.items():
        after = new[name]
        if before.dim() == 0:
            assert torch.equal(after, before), name
            continue
        rows = after[:before.shape[0]]
        assert torch.equal(rows[tuple(slice(0, size) for size in before.shape)], before), name
        if before.dim() > 1 and after.shape[1] > before.shape[1]:  # the old rows' weights from new inputs
            assert not rows[:, before.shape[1]:].any(), name
    assert any(new[name].shape != old[name].shape for name in old)  # and it did grow


def test_the_new_words_are_learnt_and_the_old_ones_still_recognised(extended):
    result, _, _ = extended
    test = result.test
    assert test.new_examples > 0 and test.new_after >= 0.75  # two tones of their own: easy to tell apart
    assert test.old_after >= test.old_before - 0.05  # a new word may take an old word's clip, rarely
    calibration = result.calibration  # on the validation split, the offset kept the old classes within 0.5 points
    assert calibration["old_accuracy"] >= calibration["old_accuracy_before"] - 0.005


def test_exported_files_give_the_old_classes_the_old_networks_answers(extended):
    result, _, root = extended
    exported = result.exported
    assert set(exported) == {"onnx", "tflite", "tflite-int8"}
    for fmt in ("onnx", "tflite"):
        assert exported[fmt]["old_max_abs_difference"] <= 1e-4 and exported[fmt]["old_top1_agreement"] == 1.0
    assert exported["tflite-int8"]["old_top1_agreement"] >= 0.9
    labels = (root / "extended" / "exported" / "labels.txt").read_text().split()
    assert labels == [*CLASS_NAMES, *NEW]
    summary = json.loads((root / "extended" / "extend.json").read_text())
    assert summary["format"] == "edgegrow-extend/1" and summary["exported"] == exported
    assert summary["new_neurons"] == result.new_neurons


def test_the_extended_checkpoint_exports_and_extends_again(extended, tmp_path):
    result, _, root = extended
    again = export_checkpoint(root / "extended", tmp_path / "exported", formats="onnx", cache_dir=root / "cache",
                              progress=False, log=lambda line: None)  # the data reloads with the new words
    assert again.card["accuracy"]["examples"] == result.test.old_examples + result.test.new_examples
    third = extend(root / "extended", ["dog"], tmp_path / "third", cache_dir=root / "cache", progress=False,
                   config=ExtendConfig(epochs=2, replay_per_class=5), log=lambda line: None)
    assert third.class_names == [*CLASS_NAMES, *NEW, "dog"] and third.old_classes == len(CLASS_NAMES) + 2
    assert third.old_output_difference <= 1e-5


def test_the_extension_is_the_widest_that_fits_a_budget(grown, tmp_path):
    run, root = grown
    old, _ = load_checkpoint(run / "checkpoint.pt")
    before = estimate(old, example_input(old), "host").latency_ms
    budget = Budget({"latency_ms": 1.8 * before})
    result = extend(run, NEW, tmp_path / "ext", budget=budget, cache_dir=root / "cache", progress=False,
                    config=ExtendConfig(epochs=1, replay_per_class=2), log=lambda line: None)
    assert result.predicted["latency_ms"] <= budget.limits["latency_ms"]
    assert all((count + width) % 8 == 0 for count, width in zip(result.new_neurons.values(), widths(old)))
    wider = ExtendConfig(epochs=1, replay_per_class=2, width_increase=result.width_increase + 0.3)
    with pytest.raises(ValueError, match="over the budget"):
        extend(run, NEW, tmp_path / "wider", budget=budget, cache_dir=root / "cache", progress=False, config=wider,
               log=lambda line: None)
    with pytest.raises(ValueError, match="leaves no room for new neurons"):
        extend(run, NEW, tmp_path / "tight", budget=Budget({"latency_ms": before}), cache_dir=root / "cache",
               progress=False, config=ExtendConfig(epochs=1), log=lambda line: None)
    assert not (tmp_path / "wider").exists() and not (tmp_path / "tight").exists()


def widths(model):
    from edgegrow.growth import find_channel_groups, growable_groups

    return [group.width_at_discovery for group in growable_groups(find_channel_groups(model, example_input(model)))]


@pytest.mark.parametrize("width, share, multiple, expected", [
    (40, 0.25, 8, 16), (40, 0.25, 1, 10), (32, 0.01, 8, 8), (32, 1e-9, 1, 1), (30, 0.1, 8, 10), (30, 0.05, 8, 2), (8, 1.0, 8, 8)])
def test_new_neurons_round_the_new_width_to_the_channel_multiple(width, share, multiple, expected):
    assert new_neurons(width, share, multiple) == expected


def test_new_words_leave_unknown_and_the_inputs_keep_the_old_statistics(grown):
    _, root = grown
    old = load_speech_commands(root / "data", cache_dir=root / "cache", progress=False)
    fixed = old.preprocessing["normalization"]
    new = load_speech_commands(root / "data", KwsConfig(extra_keywords=tuple(NEW), normalization=fixed),
                               cache_dir=root / "cache", progress=False)
    assert new.class_names == [*CLASS_NAMES, *NEW]
    assert new.preprocessing["normalization"]["mean"] == fixed["mean"]
    # the keywords' clips are the same examples with the same inputs; bed and cat have classes of their own
    keyword = old.test.labels < 10
    assert torch.equal(new.test.inputs[new.test.labels < 10], old.test.inputs[keyword])
    assert (new.test.labels >= len(CLASS_NAMES)).sum() > 0


@pytest.mark.parametrize("words, message", [
    (["yes"], "'yes' is already one of the network's classes"),
    (["_silence_"], "already one of the network's classes"),
    (["zebra"], "no folder for the keyword(s) zebra"),
    ([], "name at least one new word"),
])
def test_bad_words_are_refused_before_anything_is_written(grown, tmp_path, words, message):
    run, root = grown
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        extend(run, words, tmp_path / "out", cache_dir=root / "cache", progress=False, config=QUICK,
               log=lambda line: None)
    assert not (tmp_path / "out").exists()


def test_cli_errors_are_one_line_and_the_cli_extends(grown, tmp_path, capsys):
    run, root = grown
    assert main(["extend", str(run), "--classes", "yes", "--out", str(tmp_path / "x"), "--cache-dir",
                 str(root / "cache"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "already one of the network's classes" in error
    assert main(["extend", str(run), "--classes", "bed", "--out", str(tmp_path / "ok"), "--cache-dir",
                 str(root / "cache"), "--epochs", "2", "--replay", "3", "--format", "none"]) == 0
    printed = capsys.readouterr().out
    assert "extended from 12 to 13 classes" in printed and "old classes' logits changed by at most" in printed
    assert (tmp_path / "ok" / "checkpoint.pt").is_file() and not (tmp_path / "ok" / "exported").exists()
    config = json.loads((tmp_path / "ok" / "extend.json").read_text())["config"]
    assert config["replay_per_class"] == 3 and config["replay_whole"] is None
    for flags, wrong in ((["--replay", "some"], "expected a number of clips"), (["--replay", "-1"], "or 'all'"),
                         (["--replay-whole", ","], "expected class names"),
                         (["--replay-whole", "_noise_"], "'_noise_' is not one of the network's classes")):
        assert main(["extend", str(run), "--classes", "bed", "--out", str(tmp_path / "bad"), "--cache-dir",
                     str(root / "cache"), "--quiet", *flags]) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and wrong in error, error
    assert not (tmp_path / "bad").exists()


def test_replay_options_parse_from_the_command_line():
    from edgegrow.cli import _class_list, _replay_count

    assert _replay_count("all") is None and _replay_count("ALL") is None and _replay_count("0") == 0
    assert _class_list("none") == () and _class_list("_unknown_, yes") == ("_unknown_", "yes")


def test_a_folder_with_results_is_refused(extended):
    result, run, root = extended
    with pytest.raises(ValueError, match="already holds files"):
        extend(run, NEW, root / "extended", cache_dir=root / "cache", progress=False, config=QUICK,
               log=lambda line: None)


def test_the_replay_keeps_every_new_clip_and_a_few_of_each_old_class():
    from edgegrow.data.task_data import Split
    from edgegrow.extend import _replay_split

    labels = torch.tensor([0] * 30 + [1] * 30 + [2] * 7 + [3] * 5)
    split = Split(torch.arange(len(labels)).float().view(-1, 1), labels)
    kept = _replay_split(split, old_classes=2, per_class=4, seed=0)
    counts = np.bincount(kept.labels.numpy(), minlength=4)
    assert counts.tolist() == [4, 4, 7, 5]
    indices = kept.inputs.view(-1).long()
    assert torch.equal(labels[indices], kept.labels) and len(set(indices.tolist())) == len(indices)
    # the old classes named whole keep every clip; None keeps every clip of every old class
    assert np.bincount(_replay_split(split, 2, 4, 0, whole=[1]).labels.numpy(), minlength=4).tolist() == [4, 30, 7, 5]
    assert np.bincount(_replay_split(split, 2, None, 0).labels.numpy(), minlength=4).tolist() == [30, 30, 7, 5]
    # the clips drawn of a class do not depend on which classes before it are kept whole (runs compare like
    # with like)
    other = _replay_split(split, 2, 4, 0, whole=[0])
    assert torch.equal(kept.inputs[kept.labels == 1], other.inputs[other.labels == 1])


@pytest.mark.parametrize("bad", [dict(learning_rate=-1.0), dict(learning_rate=float("nan")), dict(channel_multiple=0),
                                 dict(weight_decay=-1.0), dict(max_old_drop=-1.0), dict(width_increase=0.0),
                                 dict(max_width_increase=0.0), dict(warmup_epochs=-1.0), dict(epochs=0),
                                 dict(replay_per_class=-1), dict(replay_whole=5), dict(replay_whole="_unknown_"),
                                 dict(replay_whole=iter(["_unknown_"]))])
def test_bad_settings_are_refused_when_the_config_is_made(bad):
    with pytest.raises(ValueError):
        ExtendConfig(**bad)


def test_extend_trains_on_the_replay_it_reports(grown, tmp_path):
    """The run replays what its config asks (here 3 clips of each keyword, the generic classes whole) and
    says so in extend.json."""
    run, root = grown
    data = load_speech_commands(root / "data", KwsConfig(extra_keywords=tuple(NEW[:1])), cache_dir=root / "cache",
                                progress=False)
    counts = torch.bincount(data.train.labels, minlength=len(data.class_names))
    names = list(CLASS_NAMES)
    whole = [names.index("_unknown_"), names.index("_silence_")]
    expected = sum(int(counts[i]) if i in whole else min(3, int(counts[i])) for i in range(len(names)))
    result = extend(run, NEW[:1], tmp_path / "out", cache_dir=root / "cache", progress=False,
                    config=ExtendConfig(epochs=1, replay_per_class=3), log=lambda line: None)
    replayed = json.loads((tmp_path / "out" / "extend.json").read_text())["replayed"]
    assert replayed == result.replayed
    assert replayed["whole"] == ["_unknown_", "_silence_"] and replayed["per_class"] == 3
    assert replayed["old_clips"] == expected and replayed["old_training_clips"] == int(counts[:len(names)].sum())
    assert replayed["new_clips"] == int(counts[len(names):].sum())
    assert "_unknown_ and _silence_ whole" in result.describe()


def test_the_generic_classes_are_replayed_whole_by_default_and_named_classes_must_exist():
    names = list(CLASS_NAMES)
    assert ExtendConfig().whole_classes(names) == [names.index("_unknown_"), names.index("_silence_")]
    assert ExtendConfig().whole_classes(["yes", "no"]) == []  # a network without them
    assert ExtendConfig(replay_whole=("yes",)).whole_classes(names) == [names.index("yes")]
    assert ExtendConfig(replay_whole=()).whole_classes(names) == []
    with pytest.raises(ValueError, match="'maybe' is not one of the network's classes"):
        ExtendConfig(replay_whole=("maybe",)).whole_classes(names)
    with pytest.raises(ValueError, match="must be a list of class names"):
        ExtendConfig(replay_whole="_unknown_")


def test_a_failure_after_training_leaves_no_folder_that_looks_finished(grown, tmp_path, monkeypatch):
    import edgegrow.extend as extend_module

    run, root = grown

    def broken_export(*args, **kwargs):
        raise RuntimeError("the exporter failed")

    monkeypatch.setattr(extend_module, "_export_and_check", broken_export)
    with pytest.raises(RuntimeError, match="the exporter failed"):
        extend(run, NEW, tmp_path / "out", cache_dir=root / "cache", progress=False,
               config=ExtendConfig(epochs=1, replay_per_class=2), formats="onnx", log=lambda line: None)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its staging copy


def test_the_new_logits_offset_keeps_the_old_classes_within_the_allowed_drop_and_recognises_the_most_new():
    """A head that passes its inputs through (identity weights), so each input is the logits: 2 old
    classes, 1 new. Old examples whose margin over the new logit is small would be lost to the new
    class; the offset gives up the fewest new examples that keeps the old accuracy within the drop."""
    from edgegrow.data.task_data import Split
    from edgegrow.extend import calibrate_new_logits

    head = torch.nn.Linear(3, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3))
        head.bias.zero_()
    model = torch.nn.Sequential(head)
    # old examples: right among the old, with margins 4, 3, 2, 1 over the new logit (max old − new)
    old = [[5.0, 0.0, 1.0], [4.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 2.0, 1.0]]
    # new examples: their new logit behind the best old one by 0.5, 1.5 and 2.5
    new = [[2.0, 0.0, 1.5], [2.0, 0.0, 0.5], [2.0, 0.0, -0.5]]
    split = Split(torch.tensor(old + new), torch.tensor([0, 0, 1, 1, 2, 2, 2]))
    strict = calibrate_new_logits(model, "0", split, old_classes=2, max_old_drop=0.0)
    # every old example kept: the offset stays under the smallest old margin (1), past the first new switch (0.5)
    assert strict["old_accuracy"] == 1.0 and strict["new_accuracy"] == pytest.approx(1 / 3)
    assert 0.5 < strict["offset"] < 1.0
    with torch.no_grad():
        head.bias.zero_()
    one_lost = calibrate_new_logits(model, "0", split, old_classes=2, max_old_drop=0.25)  # one old example of 4
    assert one_lost["old_accuracy"] == 0.75 and one_lost["new_accuracy"] == pytest.approx(2 / 3)
    assert 1.5 < one_lost["offset"] < 2.0  # the third new example (2.5) would cost a second old one (margin 2)
    assert head.bias[:2].tolist() == [0.0, 0.0] and head.bias[2].item() == pytest.approx(one_lost["offset"])


def test_the_frozen_blocks_follow_the_network_when_its_tensors_are_swapped(grown):
    """Training moves the network to its device, which swaps every parameter's data (here to float64, as
    a move to a GPU would): the old blocks are still the ones written back."""
    from edgegrow.extend import _FrozenBlocks, _extended, _output_producer

    run, _ = grown
    old, _ = load_checkpoint(run / "checkpoint.pt")
    example = example_input(old)
    model, _ = _extended(old, example, 2, _output_producer(old, example), 0.25, 8, torch.Generator().manual_seed(0))
    frozen = _FrozenBlocks(model, old)
    model.double()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(1)
    frozen.restore()
    for name, before in old.state_dict().items():
        after = model.state_dict()[name]
        rows = after if before.dim() == 0 else after[:before.shape[0]][tuple(slice(0, n) for n in before.shape)]
        assert torch.equal(rows, before.to(after.dtype)), name


def test_without_validation_clips_of_the_new_words_no_offset_is_applied():
    """A word folder of one's own often has no clips in validation_list.txt: nothing to trade, so the
    new logits keep their bias (an offset picked from old clips alone would be arbitrary)."""
    from edgegrow.data.task_data import Split
    from edgegrow.extend import calibrate_new_logits

    head = torch.nn.Linear(3, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3))
        head.bias.zero_()
    split = Split(torch.tensor([[5.0, 0.0, -5.0], [0.0, 12.0, -10.0]]), torch.tensor([0, 1]))
    calibration = calibrate_new_logits(torch.nn.Sequential(head), "0", split, old_classes=2, max_old_drop=0.005)
    assert calibration["offset"] == 0.0 and "no clips of the new words" in calibration["skipped"]
    assert head.bias.tolist() == [0.0, 0.0, 0.0]


def test_a_bad_format_or_an_out_that_is_a_file_is_refused_before_training(grown, tmp_path, monkeypatch):
    import edgegrow.extend as extend_module

    run, root = grown
    monkeypatch.setattr(extend_module, "_replay_split", lambda *args: pytest.fail("trained before refusing"))
    with pytest.raises(ValueError, match="unknown export format 'tflit'"):
        extend(run, NEW, tmp_path / "out", cache_dir=root / "cache", progress=False, formats="onnx,tflit",
               log=lambda line: None)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ValueError, match="already holds files"):
        extend(run, NEW, tmp_path / "file", cache_dir=root / "cache", progress=False, log=lambda line: None)
    assert (tmp_path / "file").read_text() == "mine" and not (tmp_path / "out").exists()
