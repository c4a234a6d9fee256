"""Device profiles: one JSON file per target device, read and checked here.

A profile is plain data (never a pickle): what the device is, the runtime and threads it was
profiled with, its limits, and the numbers latency and energy are predicted from — each number
with the source it came from (``"measured here ..."`` or the public figure it was derived from).
The format is described field by field in ``targets/README.md``.

``load_target("host")`` looks a name up in, in order: the folders of ``$EDGEGROW_TARGETS``
(separated by the path separator), ``~/.edgegrow/targets`` (where ``edgegrow profile`` writes), then
the profiles shipped with edgegrow. A path to a .json file is read directly.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from .kernel_shape import ACTIVATIONS, KINDS, KernelShape

SCHEMA = "edgegrow-target/1"
TARGET_KINDS = ("cpu", "mcu", "gpu")
# what a layout change's time is linear in (``latency.layout_change_terms``), by name in a profile's layout block
LAYOUT_CHANGE_TERMS = ("ms_per_call", "ms_per_element", "ms_per_partial_block_element",
                       "ms_per_element_on_aliased_planes",
                       "ms_per_partial_block_element_past_l1_ways_on_aliased_planes")
DTYPES = {"float32": 4, "float16": 2, "int8": 1}
LAYOUT_RULES = ("none", "onnxruntime-nchwc")


def shipped_targets_folder() -> Path:
    """Where the shipped profiles are: ``cost_models/targets`` once installed, ``targets/`` in a checkout."""
    installed = Path(__file__).with_name("targets")
    return installed if installed.is_dir() else Path(__file__).resolve().parent.parent / "targets"


@dataclass(frozen=True)
class Sourced:
    """A number and where it comes from. ``value`` None means "no limit" / "not known"."""

    value: float | None
    source: str


@dataclass(frozen=True)
class TableEntry:
    shape: KernelShape
    latency_ms: float
    p10_ms: float | None = None
    p90_ms: float | None = None
    layout: str = "plain"


@dataclass(frozen=True)
class AnalyticLatency:
    """Latency without a table: padded MACs at a per-kind MAC rate plus a per-kernel overhead."""

    macs_per_s: dict[str, float]
    per_kernel_overhead_ms: float
    channel_step: int
    bytes_per_s_elementwise: float  # for kernels without MACs (pooling, adds)


@dataclass(frozen=True)
class Target:
    name: str
    kind: str
    description: str
    runtime: str
    runtime_version: str
    threads: int
    dtype: str
    peak_macs_per_s: Sourced
    memory_bandwidth_bytes_per_s: Sourced
    sram_bytes: Sourced
    flash_bytes: Sourced
    active_power_mw: Sourced
    model_overhead_ms: Sourced
    model_overhead_flash_bytes: Sourced
    latency_source: str
    entries: tuple[TableEntry, ...] = ()
    analytic: AnalyticLatency | None = None
    layout_rule: str = "none"
    layout_block_channels: int = 1
    reorder_ms_per_call: float = 0.0
    reorder_ms_per_element: float = 0.0
    # a layout change's cost by direction ("to_plain", "to_blocked"): ms per each of LAYOUT_CHANGE_TERMS;
    # empty in profiles measured before 2026-12-06 night, which price every change by the two numbers above
    layout_change_ms: dict[str, tuple[float, ...]] = field(default_factory=dict)
    l1_cache_geometry: tuple[int, int] = (4096, 8)  # (set stride in bytes, ways) of the profiled machine's L1d cache
    # the run of one node the table's times leave out (``profiler.without_profiler``): 0 in profiles before
    # 2026-12-06 night, whose blocked kernels kept two thirds of one
    table_node_run_ms: float = 0.0
    calibration_scale: float = 1.0  # whole-model calibration of a measured table (see cost_models.calibration)
    calibration_per_kernel_ms: float = 0.0  # per node (kernel or layout change) if calibration_per_node, else kernel
    calibration_per_node: bool = False  # profiles written before layout changes counted as nodes say nothing
    # the calibration networks' times (ms) when the profile was made, in ``calibration.random_chains`` order
    # (``speed_reference.calibration_networks``); empty in profiles that keep none
    calibration_measured_ms: tuple[float, ...] = ()
    # ``calibration.chains_digest`` of those networks as the profiler built them; None in profiles from before
    # 2026-12-07 night, whose networks cannot be checked
    calibration_networks_sha256: str | None = None
    # the times a profiler run's calibration compared with where it stayed off them in every try
    # (``calibration.steady_timing``: ``latency.calibration.drift.kept_ms``), the next run's to compare with; empty else
    calibration_kept_ms: tuple[float, ...] = ()
    # what a fused activation adds to a conv's time, ms per output element, by layout then activation
    # (``latency.activations``); empty in profiles measured before it: there activations cost nothing
    activation_ms_per_element: dict[str, dict[str, float]] = field(default_factory=dict)
    # kernels timed while the profile was made, with their times (ms): how fast the machine ran then
    # (``cost_models.speed_reference``); empty in profiles made before it or elsewhere
    speed_reference: tuple[tuple[KernelShape, float], ...] = ()
    energy_pj_per_mac: Sourced | None = None
    energy_pj_per_byte: Sourced | None = None
    path: str = ""
    extra: dict = field(default_factory=dict)

    def without_calibration(self) -> Target:
        """This target with its table as measured: no whole-model calibration (scale 1, no offset)."""
        return replace(self, calibration_scale=1.0, calibration_per_kernel_ms=0.0)

    @property
    def channel_step(self) -> int:
        """Channels per vector block of the runtime (NCHWc block, SIMD lanes): widths that are multiples
        of it use the vector units fully, so growth widens channel groups in steps of it."""
        if self.layout_block_channels > 1:
            return self.layout_block_channels
        return self.analytic.channel_step if self.analytic is not None else 1

    @property
    def bytes_per_element(self) -> int:
        return DTYPES[self.dtype]

    @property
    def measured(self) -> bool:
        return bool(self.entries)


# --- reading ------------------------------------------------------------------------------------
class _Reader:
    """Field access that names the field and the file in every error."""

    def __init__(self, data: dict, path: str, prefix: str = ""):
        self.data, self.path, self.prefix = data, path, prefix

    def fail(self, name: str, problem: str) -> ValueError:
        return ValueError(f"{self.path}: field '{self.prefix}{name}' {problem}")

    def get(self, name: str, kind: type | tuple, default=...):
        node = self.data
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is not ...:
                    return default
                raise self.fail(name, "is missing")
            node = node[part]
        if node is None and default is not ... and default is None:
            return None
        if kind in (int, float, (int, float)) and isinstance(node, bool) or not isinstance(node, kind):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(name, f"must be {expected}, got {node!r}")
        return node

    def number(self, name: str, positive: bool = True, default=...) -> float:
        value = self.get(name, (int, float), default)
        if value is None:
            return None
        if not math.isfinite(value) or (positive and value <= 0) or value < 0:
            sign = "positive" if positive else "non-negative"
            raise self.fail(name, f"must be a {sign} finite number, got {value!r}")
        return float(value)

    def sourced(self, name: str, nullable: bool = False, optional: bool = False) -> Sourced | None:
        if optional and self.get(name, (dict, type(None)), None) is None:
            return None
        self.get(name, dict)
        value = self.number(f"{name}.value", positive=False, default=None) if nullable else \
            self.number(f"{name}.value", positive=False)
        source = self.get(f"{name}.source", str)
        if not source.strip():
            raise self.fail(f"{name}.source", "must say where the number comes from")
        return Sourced(value, source)


def parse_target(data: dict, path: str = "<profile>") -> Target:
    """Check a profile's fields and build a ``Target``.

    Raises:
        ValueError: a field is missing or malformed; the message names the field and the file.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a target profile must be a JSON object")
    read = _Reader(data, path)
    if read.get("schema", str) != SCHEMA:
        raise read.fail("schema", f"must be {SCHEMA!r}, got {data['schema']!r}")
    kind = read.get("kind", str)
    if kind not in TARGET_KINDS:
        raise read.fail("kind", f"must be one of {', '.join(TARGET_KINDS)}, got {kind!r}")
    dtype = read.get("dtype", str)
    if dtype not in DTYPES:
        raise read.fail("dtype", f"must be one of {', '.join(DTYPES)}, got {dtype!r}")
    threads = read.get("threads", int)
    if threads < 1:
        raise read.fail("threads", f"must be at least 1, got {threads}")
    latency_source = read.get("latency.source", str)
    entries = []
    for index, raw in enumerate(read.get("latency.entries", list, [])):
        where = f"latency.entries[{index}]"
        if not isinstance(raw, dict):
            raise read.fail(where, "must be an object")
        entry = _Reader(raw, path, prefix=where + ".")
        try:
            shape = KernelShape.from_dict(raw)
        except KeyError as missing:
            raise entry.fail(missing.args[0], "is missing") from None
        except (ValueError, TypeError) as error:
            raise read.fail(where, f"is malformed: {error}") from None
        if shape.kind not in KINDS:
            raise entry.fail("kind", f"must be one of {', '.join(KINDS)}, got {shape.kind!r}")
        entries.append(TableEntry(shape, entry.number("latency_ms"), entry.number("p10_ms", default=None),
                                  entry.number("p90_ms", default=None), entry.get("layout", str, "plain")))
    analytic = None
    if read.get("latency.analytic", (dict, type(None)), None) is not None:
        rates = read.get("latency.analytic.macs_per_s", dict)
        for name in rates:
            read.number(f"latency.analytic.macs_per_s.{name}")
        analytic = AnalyticLatency(
            {name: float(rate) for name, rate in rates.items()},
            read.number("latency.analytic.per_kernel_overhead_ms", positive=False),
            int(read.number("latency.analytic.channel_step")),
            read.number("latency.analytic.bytes_per_s_elementwise"))
    if not entries and analytic is None:
        raise read.fail("latency", "needs 'entries' (a measured table) or 'analytic' (rates), and has neither")
    layout_rule = read.get("latency.layout.rule", str, "none")
    if layout_rule not in LAYOUT_RULES:
        raise read.fail("latency.layout.rule", f"must be one of {', '.join(LAYOUT_RULES)}, got {layout_rule!r}")
    return Target(
        name=read.get("name", str), kind=kind, description=read.get("description", str, ""),
        runtime=read.get("runtime.name", str), runtime_version=read.get("runtime.version", str),
        threads=threads, dtype=dtype,
        peak_macs_per_s=read.sourced("peak_macs_per_s"),
        memory_bandwidth_bytes_per_s=read.sourced("memory_bandwidth_bytes_per_s"),
        sram_bytes=read.sourced("sram_bytes", nullable=True),
        flash_bytes=read.sourced("flash_bytes", nullable=True),
        active_power_mw=read.sourced("active_power_mw", nullable=True),
        model_overhead_ms=read.sourced("model_overhead_ms"),
        model_overhead_flash_bytes=read.sourced("model_overhead_flash_bytes"),
        latency_source=latency_source, entries=tuple(entries), analytic=analytic,
        layout_rule=layout_rule,
        layout_block_channels=int(read.number("latency.layout.block_channels", default=1.0)),
        reorder_ms_per_call=read.number("latency.layout.reorder_ms_per_call", positive=False, default=0.0),
        reorder_ms_per_element=read.number("latency.layout.reorder_ms_per_element", positive=False, default=0.0),
        layout_change_ms=_layout_changes(read),
        l1_cache_geometry=(int(read.number("latency.layout.l1_set_stride_bytes", default=4096.0)),
                           int(read.number("latency.layout.l1_ways", default=8.0))),
        table_node_run_ms=read.number("latency.node_runs_left_out_ms", positive=False, default=0.0),
        calibration_scale=read.number("latency.calibration.scale", default=1.0),
        calibration_per_kernel_ms=_signed(read, "latency.calibration.per_kernel_ms"),
        calibration_per_node=_counted_over_nodes(read),
        calibration_measured_ms=_calibration_times(read),
        calibration_kept_ms=_calibration_times(read, "latency.calibration.drift.kept_ms"),
        calibration_networks_sha256=_digest(read, "latency.calibration.networks_sha256"),
        activation_ms_per_element=_activation_costs(read),
        speed_reference=_speed_reference(read),
        energy_pj_per_mac=read.sourced("energy_pj_per_mac", optional=True),
        energy_pj_per_byte=read.sourced("energy_pj_per_byte", optional=True),
        path=path, extra={key: data[key] for key in ("calibration", "notes", "whole_model_calibration") if key in data},
    )


def _environment_folders() -> list[Path]:
    return [Path(part) for part in os.environ.get("EDGEGROW_TARGETS", "").split(os.pathsep) if part]


def user_targets_folder() -> Path:
    """Where new profiles go: the first folder of ``$EDGEGROW_TARGETS``, else ``~/.edgegrow/targets``."""
    folders = _environment_folders()
    return folders[0] if folders else Path.home() / ".edgegrow" / "targets"


def _counted_over_nodes(read: _Reader) -> bool:
    """Whether the calibration's offset is per node (``counted_over: "nodes"``: kernels and layout
    changes) or, as profiles before it say by saying nothing, per kernel."""
    counted = read.get("latency.calibration.counted_over", str, "kernels")
    if counted not in ("kernels", "nodes"):
        raise read.fail("latency.calibration.counted_over", f"must be 'kernels' or 'nodes', got {counted!r}")
    return counted == "nodes"


def _layout_changes(read: _Reader) -> dict[str, tuple[float, ...]]:
    """``latency.layout.changes``: {"to_plain" | "to_blocked": {term: ms}} over every one of
    ``LAYOUT_CHANGE_TERMS``."""
    if read.get("latency.layout.changes", (dict, type(None)), None) is None:
        return {}
    changes = {}
    for direction in read.get("latency.layout.changes", dict):
        if direction not in ("to_plain", "to_blocked"):
            raise read.fail(f"latency.layout.changes.{direction}", "is not a direction: 'to_plain' or 'to_blocked'")
        read.get(f"latency.layout.changes.{direction}", dict)
        changes[direction] = tuple(read.number(f"latency.layout.changes.{direction}.{term}", positive=False)
                                   for term in LAYOUT_CHANGE_TERMS)
    return changes


def _activation_costs(read: _Reader) -> dict[str, dict[str, float]]:
    """``latency.activations.ms_per_element``: {layout: {activation: ms per output element}}, with a source."""
    if read.get("latency.activations", (dict, type(None)), None) is None:
        return {}
    source = read.get("latency.activations.source", str)
    if not source.strip():
        raise read.fail("latency.activations.source", "must say where the numbers come from")
    costs = {}
    for layout, per_activation in read.get("latency.activations.ms_per_element", dict).items():
        if layout not in ("plain", "blocked"):
            raise read.fail(f"latency.activations.ms_per_element.{layout}", "is not a layout: 'plain' or 'blocked'")
        read.get(f"latency.activations.ms_per_element.{layout}", dict)
        costs[layout] = {}
        for activation in per_activation:
            if activation not in ACTIVATIONS:
                raise read.fail(f"latency.activations.ms_per_element.{layout}.{activation}",
                                f"is not an activation: one of {', '.join(ACTIVATIONS)}")
            costs[layout][activation] = read.number(f"latency.activations.ms_per_element.{layout}.{activation}",
                                                    positive=False)
    return costs


def _speed_reference(read: _Reader) -> tuple[tuple[KernelShape, float], ...]:
    """``speed_reference``: {"kernels": [shapes], "ms": [their times], "source"}."""
    if read.get("speed_reference", (dict, type(None)), None) is None:
        return ()
    read.get("speed_reference.source", str)
    kernels, times = read.get("speed_reference.kernels", list), read.get("speed_reference.ms", list)
    if not kernels or len(kernels) != len(times):
        raise read.fail("speed_reference", "needs as many 'ms' as 'kernels', and at least one")
    pairs = []
    for index, raw in enumerate(kernels):
        try:
            shape = KernelShape.from_dict(raw)
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            raise read.fail(f"speed_reference.kernels[{index}]", f"is malformed: {error}") from None
        pairs.append((shape, _positive(read, times, index)))
    return tuple(pairs)


def _calibration_times(read: _Reader, name: str = "latency.calibration.measured_ms") -> tuple[float, ...]:
    """``name``: calibration networks' times (ms), each positive, or none."""
    times = read.get(name, (list, type(None)), None) or []
    return tuple(_positive(read, times, index, name) for index in range(len(times)))


def _digest(read: _Reader, name: str) -> str | None:
    """An optional digest of 16 hex digits (``calibration.chains_digest``)."""
    value = read.get(name, str, None)
    if value is not None and not re.fullmatch(r"[0-9a-f]{16}", value):
        raise read.fail(name, f"must be 16 hex digits, got {value!r}")
    return value


def _positive(read: _Reader, values: list, index: int, name: str = "speed_reference.ms") -> float:
    value = values[index]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise read.fail(f"{name}[{index}]", f"must be a positive finite number, got {value!r}")
    return float(value)


def _signed(read: _Reader, name: str) -> float:
    value = read.get(name, (int, float), 0.0)
    if not math.isfinite(value):
        raise read.fail(name, f"must be a finite number, got {value!r}")
    return float(value)


def _search_folders() -> list[Path]:
    return list(dict.fromkeys(_environment_folders() + [user_targets_folder(), shipped_targets_folder()]))


def known_targets() -> dict[str, Path]:
    """Target name → profile file, earlier folders winning over later ones."""
    found: dict[str, Path] = {}
    for folder in reversed(_search_folders()):
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                found[path.stem] = path
    return dict(sorted(found.items()))


def load_known_targets() -> tuple[dict[str, Target], dict[str, str]]:
    """Every known profile (``known_targets``) loaded: ``(targets by name, why each unreadable one could not
    be read)``, both in name order. Callers decide what an unreadable profile means to them (a row saying
    so in ``edgegrow targets`` and the reports, nothing in an export's card); none of them stops on it."""
    targets: dict[str, Target] = {}
    unreadable: dict[str, str] = {}
    for name, path in known_targets().items():
        try:
            targets[name] = load_target(str(path))
        except ValueError as error:
            unreadable[name] = str(error)
    return targets, unreadable


def load_target(name_or_path: str | Path) -> Target:
    """A profile by name (see ``known_targets``) or by the path of its JSON file.

    Raises:
        ValueError: unknown name (the message lists the known ones), unreadable JSON, or a bad field.
    """
    text = str(name_or_path)
    if text.endswith(".json") or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"target profile {path} not found")
    else:
        known = known_targets()
        if text not in known:
            raise ValueError(f"unknown target {text!r}; known targets: {', '.join(known) or 'none'} "
                             "(or give the path of a profile .json)")
        path = known[text]
    try:
        with open(path) as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not valid JSON (not UTF-8 text)") from None
    target = parse_target(data, str(path))
    if target.name != path.stem:
        raise ValueError(f"{path}: field 'name' is {target.name!r} but the file is named {path.stem!r}; "
                         "make them the same")
    return target
