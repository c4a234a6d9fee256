"""Target profiles: loading, validation errors that name the field and the file, lookup by name."""
import copy
import json

import pytest
from profiles import analytic_profile, table_profile

from cost_models.target import known_targets, load_target, parse_target


def test_a_valid_profile_parses_with_its_sources():
    target = parse_target(table_profile(), "t.json")
    assert target.kind == "cpu" and target.measured and len(target.entries) == 9
    assert target.peak_macs_per_s.value == 5e10 and target.peak_macs_per_s.source == "test"
    assert target.sram_bytes.value is None  # null: no limit
    assert parse_target(analytic_profile(), "a.json").analytic.channel_step == 4


@pytest.mark.parametrize("path, edit, message", [
    ("peak_macs_per_s", lambda p: p.pop("peak_macs_per_s"), "field 'peak_macs_per_s' is missing"),
    ("peak_macs_per_s.value", lambda p: p["peak_macs_per_s"].update(value="fast"), "'peak_macs_per_s.value' must be"),
    ("peak_macs_per_s.source", lambda p: p["peak_macs_per_s"].update(source=" "),
     "'peak_macs_per_s.source' must say where"),
    ("kind", lambda p: p.update(kind="toaster"), "field 'kind' must be one of cpu, mcu, gpu"),
    ("dtype", lambda p: p.update(dtype="int4"), "field 'dtype' must be one of"),
    ("threads", lambda p: p.update(threads=0), "field 'threads' must be at least 1"),
    ("entry kind", lambda p: p["latency"]["entries"][0].update(kind="fft"), "latency.entries[0].kind' must be one of"),
    ("entry latency", lambda p: p["latency"]["entries"][1].update(latency_ms=-1),
     "field 'latency.entries[1].latency_ms' must be a positive"),
    ("entry shape", lambda p: p["latency"]["entries"][2].update(input=[64, 28]), "latency.entries[2]' is malformed"),
    ("no latency", lambda p: p["latency"].pop("entries"), "field 'latency' needs 'entries'"),
    ("layout rule", lambda p: p["latency"]["layout"].update(rule="zigzag"), "field 'latency.layout.rule' must be"),
])
def test_a_bad_field_is_named_with_the_file(path, edit, message):
    profile = copy.deepcopy(table_profile())
    edit(profile)
    with pytest.raises(ValueError) as error:
        parse_target(profile, "targets/broken.json")
    assert str(error.value).startswith("targets/broken.json: field '"), str(error.value)
    assert message in str(error.value)


def test_unknown_target_lists_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEGROW_TARGETS", str(tmp_path))
    (tmp_path / "test-cpu.json").write_text(json.dumps(table_profile()))
    assert load_target("test-cpu").name == "test-cpu"
    with pytest.raises(ValueError, match=r"unknown target 'pixel99'; known targets: .*host.*test-cpu"):
        load_target("pixel99")


def test_a_profile_whose_name_differs_from_its_file_is_refused(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(table_profile()))
    with pytest.raises(ValueError, match="field 'name' is 'test-cpu' but the file is named 'other'"):
        load_target(str(path))


def test_broken_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"schema": "edgegrow-target/1",\n "name": }')
    with pytest.raises(ValueError, match=r"bad.json: not valid JSON .* line 2"):
        load_target(str(path))


def test_user_folder_profiles_win_over_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEGROW_TARGETS", str(tmp_path))
    replacement = table_profile(name="host")
    (tmp_path / "host.json").write_text(json.dumps(replacement))
    assert known_targets()["host"] == tmp_path / "host.json"
    assert load_target("host").description == "test"


def test_every_known_profile_loads_in_one_call_and_the_unreadable_say_why(tmp_path, monkeypatch):
    from cost_models import load_known_targets

    monkeypatch.setenv("EDGEGROW_TARGETS", str(tmp_path))
    (tmp_path / "test-cpu.json").write_text(json.dumps(table_profile()))
    (tmp_path / "broken.json").write_text("{ not json")
    targets, unreadable = load_known_targets()
    assert targets["test-cpu"].name == "test-cpu" and "cortex-m4f-120mhz" in targets  # shipped ones too
    assert list(unreadable) == ["broken"] and "broken.json" in unreadable["broken"]
    assert list(targets) == sorted(targets) and "broken" not in targets


def test_shipped_host_profile_loads_and_is_measured():
    host = load_target("host")
    assert host.measured and host.runtime == "onnxruntime" and host.threads == 1
    assert len(host.entries) >= 500
    assert "measured here" in host.latency_source
