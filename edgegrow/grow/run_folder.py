"""The run folder of a grow run: the only place that knows its file names and its record format.

Format ``edgegrow-run/2``:

- ``run.json`` (``RunRecord``): what reproduces the run — versions, seed, the whole config, family and
  seed options, target and the SHA-256 of its profile, budget, task and data;
- ``log.jsonl``: one typed row per line, in order: ``EpochRow`` (``"row": "epoch"``) after every epoch of
  growing or retraining, ``GrowthRow`` (``"row": "growth"``) for the seed (event 0) and every growth
  event;
- ``epochs.csv`` and ``growth.csv``: the same rows as CSV for spreadsheets and plotting scripts, written
  with ``log.jsonl`` (one column per field; the predicted costs as ``predicted_<metric>``, the budget's
  usage as ``usage_<metric>``, widths and chosen kinds as ``name=value`` pairs separated by spaces);
- ``summary.json`` (``Summary``): the kept model's cost, usage and accuracy, why growth stopped, the
  training compute, and with ``retrain`` both candidates' validation and test accuracy;
- ``checkpoint.pt``: the kept model (what ``edgegrow export`` reads), with ``RunMeta`` as its meta;
  ``grown.pt`` and ``retrained.pt``: both models when the run retrained;
- ``state.pt``: while the run trains, everything continuing needs (model, optimizer, step, random state,
  the log so far), written after every epoch; ``before_growth.pt``: the same, from just before the latest
  growth event, what a numerical fault rolls back to. Both are removed when the run is done.

Every file is written to a temporary name and renamed (``write_atomically``, ``save_checkpoint``).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..atomic import write_atomically
from ..training import EpochRecord

FORMAT = "edgegrow-run/2"
RUN, LOG, SUMMARY = "run.json", "log.jsonl", "summary.json"
EPOCHS_CSV, GROWTH_CSV = "epochs.csv", "growth.csv"
CHECKPOINT, GROWN, RETRAINED = "checkpoint.pt", "grown.pt", "retrained.pt"
STATE, BEFORE_GROWTH = "state.pt", "before_growth.pt"
REPORT = "report.html"
PREDICTED_METRICS = ("latency_ms", "energy_mj", "macs", "params", "sram_kb", "flash_kb")


def _from_dict(cls, values: dict, where: str):
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{key: value for key, value in values.items() if key in known})
    except TypeError as error:
        raise ValueError(f"{where}: a {cls.__name__} record is missing a field ({error})") from None


@dataclass
class EpochRow(EpochRecord):
    """One finished epoch (the training's ``EpochRecord``) of a phase: ``grow`` (the run with growth
    inside it) or ``retrain`` (the found architecture from scratch); ``step``: optimizer steps done;
    ``macs``: the model's MACs per example at the epoch's end; ``mac_epochs``: the run's training
    compute so far, Σ over optimizer steps of MACs × examples / training-set size."""

    phase: str
    step: int
    macs: int
    mac_epochs: float
    predicted: dict = field(default_factory=dict)  # the model's cost at the epoch's end, PREDICTED_METRICS
    row: str = "epoch"


@dataclass
class GrowthRow:
    """The seed (``event`` 0) or a growth event before optimizer step ``step`` (``epoch``: where in the
    run, in epochs). ``widths`` and the costs are after the event; ``chosen`` counts candidates by kind;
    ``stopped_by`` says why growth ends here, if it does."""

    event: int
    step: int
    epoch: float
    widths: dict
    depth: int
    predicted: dict
    usage: dict
    usage_cap: float | None = None
    candidates: int = 0
    chosen: dict = field(default_factory=dict)
    predicted_decrease: float = 0.0
    growth_seconds: float = 0.0
    stopped_by: str | None = None
    row: str = "growth"


@dataclass
class RunLog:
    """The rows of ``log.jsonl`` in the order they happened."""

    rows: list = field(default_factory=list)  # EpochRow and GrowthRow

    @property
    def epochs(self) -> list[EpochRow]:
        return [row for row in self.rows if isinstance(row, EpochRow)]

    @property
    def growth(self) -> list[GrowthRow]:
        return [row for row in self.rows if isinstance(row, GrowthRow)]

    def phase(self, phase: str) -> list[EpochRow]:
        return [row for row in self.epochs if row.phase == phase]

    def to_dicts(self) -> list[dict]:
        return [asdict(row) for row in self.rows]

    @classmethod
    def from_dicts(cls, rows: list[dict], where: str = LOG) -> RunLog:
        kinds = {"epoch": EpochRow, "growth": GrowthRow}
        log = cls()
        for row in rows:
            if not isinstance(row, dict) or row.get("row") not in kinds:
                raise ValueError(f"{where}: a row of unknown kind {row.get('row') if isinstance(row, dict) else row!r}")
            log.rows.append(_from_dict(kinds[row["row"]], row, where))
        return log


@dataclass
class Outcome:
    """One trained candidate of a run (the grown network, or it retrained from scratch)."""

    validation_accuracy: float | None
    test_accuracy: float | None
    epochs: int
    training_seconds: float
    mac_epochs: float


@dataclass
class Summary:
    """What a finished run gives: the kept model and how it was made."""

    method: str
    target: str
    budget: dict
    stopped_by: str  # why growth stopped
    events: int  # growth events that changed the network
    usage: dict
    binding: str
    predicted: dict
    widths: dict
    depth: int
    test_accuracy: float | None
    validation_accuracy: float | None
    numerical_faults: list
    growth_seconds: float
    training_seconds: float
    mac_epochs: float  # training compute of the whole run: growing, plus retraining if it retrained (EpochRow)
    kept: str = "grown"  # or "retrained"
    grown: Outcome | None = None
    retrained: Outcome | None = None
    format: str = FORMAT

    def describe(self) -> str:
        """One line: why growth stopped, the budget used, the kept network's test accuracy and, when the
        found architecture was also trained afresh, which network was kept."""
        usage = ", ".join(f"{metric} {share:.0%}" for metric, share in self.usage.items())
        accuracy = "n/a" if self.test_accuracy is None else f"{self.test_accuracy:.1%}"
        kept = f"; kept the {self.kept} network (validation)" if self.retrained is not None else ""
        return f"growth: {self.stopped_by}; budget used: {usage}; test accuracy {accuracy}{kept}"

    @classmethod
    def from_dict(cls, values: dict, where: str = SUMMARY) -> Summary:
        summary = _from_dict(cls, values, where)
        summary.grown = _from_dict(Outcome, summary.grown, where) if isinstance(summary.grown, dict) else None
        summary.retrained = (_from_dict(Outcome, summary.retrained, where)
                             if isinstance(summary.retrained, dict) else None)
        return summary


@dataclass
class RunMeta:
    """What the checkpoints of a run record about it (a checkpoint's ``meta``): enough for ``edgegrow
    export`` and the report to reload its data and describe it."""

    task: str
    class_names: list
    input_shape: list
    preprocessing: dict
    task_source: dict
    target: str
    budget: dict
    method: str
    config: dict
    model: str = "grown"  # which network the file holds: "grown" or "retrained"
    stopped_by: str | None = None
    events: int = 0

    @classmethod
    def from_dict(cls, values: dict, where: str = "checkpoint") -> RunMeta:
        return _from_dict(cls, values, where)


@dataclass
class RunFolder:
    """The files of one run (see the module docstring)."""

    path: Path

    def __post_init__(self):
        self.path = Path(self.path)

    def file(self, name: str) -> Path:
        return self.path / name

    def holds_run(self) -> bool:
        return any(self.file(name).exists() for name in (CHECKPOINT, STATE, BEFORE_GROWTH))

    def finished(self) -> bool:
        return self.file(SUMMARY).is_file() and self.file(CHECKPOINT).is_file() and not self.file(STATE).exists()

    # run.json
    def write_record(self, record: dict) -> None:
        write_atomically(self.file(RUN), json.dumps({"format": FORMAT, **record}, indent=1) + "\n")

    def read_record(self) -> dict | None:
        try:
            return json.loads(self.file(RUN).read_text())
        except (OSError, ValueError):
            return None

    # log.jsonl, epochs.csv, growth.csv
    def write_log(self, log: RunLog) -> None:
        write_atomically(self.file(LOG), "".join(json.dumps(row) + "\n" for row in log.to_dicts()))
        write_atomically(self.file(EPOCHS_CSV), _csv([_flat(row) for row in log.epochs], EpochRow))
        write_atomically(self.file(GROWTH_CSV), _csv([_flat(row) for row in log.growth], GrowthRow))

    def read_log(self) -> RunLog:
        path = self.file(LOG)
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except OSError:
            raise ValueError(f"{self.path} has no {LOG}; the run may not have started") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is damaged ({error})") from None
        return RunLog.from_dicts(rows, str(path))

    # summary.json
    def write_summary(self, summary: Summary) -> None:
        write_atomically(self.file(SUMMARY), json.dumps(asdict(summary), indent=1) + "\n")

    def read_summary(self) -> Summary:
        path = self.file(SUMMARY)
        try:
            return Summary.from_dict(json.loads(path.read_text()), str(path))
        except OSError:
            raise ValueError(f"{self.path} has no {SUMMARY}; the run may not have finished (continue it with "
                             "`edgegrow grow --resume RUN_DIR`)") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is damaged ({error})") from None


def _flat(row) -> dict:
    """One CSV row of an EpochRow or GrowthRow: dicts of costs become columns, dicts of names a cell."""
    flat = {}
    for key, value in asdict(row).items():
        if key == "row":
            continue
        if key == "predicted":
            flat.update({f"predicted_{metric}": value.get(metric) for metric in (*PREDICTED_METRICS, *value)})
        elif key == "usage":  # the budget's metrics
            flat.update({f"usage_{metric}": share for metric, share in value.items()})
        elif isinstance(value, dict):
            flat[key] = " ".join(f"{name}={count}" for name, count in value.items())
        else:
            flat[key] = value
    return flat


def _csv(rows: list[dict], kind) -> str:
    columns = [f.name for f in fields(kind) if f.name not in ("row", "predicted", "usage")]
    for row in rows:  # the cost columns in the order they first appear
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_run(path: str | Path) -> tuple[RunLog, Summary]:
    """The log and summary of a finished run folder; ValueError naming what is missing or damaged."""
    folder = RunFolder(path)
    if not folder.path.is_dir():
        raise ValueError(f"run folder {folder.path} does not exist")
    missing = [name for name in (LOG, SUMMARY, CHECKPOINT) if not folder.file(name).is_file()]
    if missing:
        raise ValueError(f"{folder.path} has no {' or '.join(missing)}; the run may not have finished "
                         "(continue it with `edgegrow grow --resume RUN_DIR`)")
    log = folder.read_log()
    if not log.epochs:
        raise ValueError(f"{folder.file(LOG)} has no epoch; the run may not have finished")
    return log, folder.read_summary()
