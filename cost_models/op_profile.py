"""Per-op latencies from TensorFlow Lite's ``benchmark_model``: build or calibrate a latency table
from a real device.

Make the input on the device (a phone through ``adb shell``, a board over ssh)::

    benchmark_model --graph=model.tflite --num_threads=1 --enable_op_profiling=true > profile.txt

``--use_xnnpack=false`` makes TFLite run (and time) each op itself: with the XNNPack delegate
(the default in recent releases) a whole model runs as one ``TfLiteXNNPackDelegate`` op, which says
nothing about its kernels. ``--op_profiling_output_mode=csv --op_profiling_output_file=profile.csv``
writes the same tables comma-separated; both forms are read here.

Then pair the profile with the model's kernels::

    shapes = [KernelShape.from_kernel(k) for k in fused_kernels(model, example_input)]
    entries, unmatched_ms = entries_from_op_profile(parse_op_profile(text), shapes)

``entries`` are latency table entries (see ``cost_models.target``); ``unmatched_ms`` is the time of
the ops that are no edgegrow kernel (RESHAPE, SOFTMAX, QUANTIZE...), which belongs to the per-model
overhead. Positions in error messages count from 0: op N is row N of the Run Order table, kernel N
is ``shapes[N]``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kernel_shape imports torch; this module needs only the shapes' attributes
    from .kernel_shape import KernelShape

__all__ = ["KIND_OF_NODE_TYPE", "OpTime", "entries_from_op_profile", "parse_op_profile"]

_FIX = "run benchmark_model with --enable_op_profiling=true"
_RUN_ORDER_TITLE = re.compile(r"=+ Run Order =+")
_REGULAR_RUNS = "Regular Benchmark Runs"
# Headings benchmark_model writes before the Run Order of something other than the main graph.
_SECONDARY_HEADINGS = ("Subgraph (index:", "Delegate internal")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_PERCENT = rf"(?:{_NUMBER})%"
_REQUIRED_COLUMNS = ("node type", "first", "avg ms", "times called", "name")


@dataclass(frozen=True)
class OpTime:
    """One row of the Run Order table: an op's node type, its first and average time per
    invocation (ms), how many times one run calls it, and its name (``[output tensors]:node index``)."""

    node_type: str
    first_ms: float
    average_ms: float
    times_called: int
    name: str


# TFLite builtin op → edgegrow kernel kind (None: not a costed kernel). CONV_2D is "conv" or
# "pointwise", the pooling ops and MEAN "pool", "avg_pool", "global_pool", "mean" or "mean_nhwc": within those families
# the kernel list decides.
KIND_OF_NODE_TYPE: dict[str, str | None] = {
    "CONV_2D": "conv",
    "DEPTHWISE_CONV_2D": "depthwise",
    "FULLY_CONNECTED": "fully_connected",
    "AVERAGE_POOL_2D": "avg_pool",
    "MAX_POOL_2D": "pool",
    "MEAN": "global_pool",
    "REDUCE_MAX": "mean",
    "ADD": "add",
    "MUL": "mul",
    "CONCATENATION": "concat",
    "PAD": "pad",
    "PADV2": "pad",
    "RELU": "activation",
    "RELU6": "activation",
    "LEAKY_RELU": "activation",
    "LOGISTIC": "activation",
    "TANH": "activation",
    "HARD_SWISH": "activation",
    "GELU": "activation",
    "RESHAPE": None,
    "SQUEEZE": None,
    "QUANTIZE": None,
    "DEQUANTIZE": None,
    "SOFTMAX": None,
}

_FAMILY = {"pointwise": "conv", "avg_pool": "pool", "global_pool": "pool", "mean": "pool", "mean_nhwc": "pool"}


# --- parsing -------------------------------------------------------------------------------------
def parse_op_profile(text: str) -> list[OpTime]:
    """The ops of the Run Order table of ``benchmark_model --enable_op_profiling=true`` output, in
    run order, from the regular benchmark runs (not the initialization block, not the "Top by
    Computation Time" or "Summary by node type" tables). Reads the default text format and
    ``--op_profiling_output_mode=csv``, with or without the ``[start]`` column of some releases.

    Raises:
        ValueError: no Run Order table, or one this function cannot read.
    """
    lines = [line.rstrip() for line in text.splitlines()]
    title = _run_order_title_line(lines)
    header_at = _next_non_empty(lines, title + 1)
    if header_at is None:
        raise ValueError(f"the Run Order table at line {title + 1} has no column header; {_FIX}")
    columns, is_csv = _columns(lines[header_at], header_at)
    ops = []
    for number in range(header_at + 1, len(lines)):
        line = lines[number]
        if not line.strip():
            break
        ops.append(_csv_row(line, columns, number) if is_csv else _text_row(line, columns, number))
    if not ops:
        raise ValueError(f"the Run Order table at line {title + 1} lists no ops; {_FIX} on a model that has some")
    return ops


def _run_order_title_line(lines: list[str]) -> int:
    """Index of the title line of the Run Order table to read: the main graph's, in the last block of
    regular runs (after the initialization block); the last main-graph table when there are no blocks."""
    titles = [number for number, line in enumerate(lines) if _RUN_ORDER_TITLE.search(line)]
    if not titles:
        raise ValueError(f"no Run Order table in the profile; {_FIX}")
    markers = [number for number, line in enumerate(lines) if _REGULAR_RUNS in line]
    if markers:
        titles = [number for number in titles if number > markers[-1]]
        if not titles:
            raise ValueError(f"the {_REGULAR_RUNS} block at line {markers[-1] + 1} has no Run Order table; {_FIX}")
    main_graph = [number for number in titles if not _is_secondary(lines, number)]
    return main_graph[-1] if main_graph else titles[0]


def _is_secondary(lines: list[str], title: int) -> bool:
    """Whether the table at ``title`` belongs to a subgraph or to a delegate's internals."""
    for number in range(title - 1, -1, -1):
        if lines[number].strip():
            return lines[number].strip().startswith(_SECONDARY_HEADINGS)
    return False


def _next_non_empty(lines: list[str], start: int) -> int | None:
    return next((number for number in range(start, len(lines)) if lines[number].strip()), None)


def _columns(header: str, number: int) -> tuple[list[str], bool]:
    """Column names (lower case, '_' as ' ') and whether the table is CSV."""
    is_csv = "[" not in header
    raw = header.split(",") if is_csv else re.findall(r"\[([^\]]*)\]", header)
    columns = [column.strip().lower().replace("_", " ") for column in raw]
    missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
    if missing or columns[0] != "node type" or columns[-1] != "name":
        problem = f"lacks {', '.join(missing)}" if missing else "does not start with node type and end with name"
        raise ValueError(f"the Run Order column header at line {number + 1} {problem}: {header.strip()!r}; "
                         "pass benchmark_model's output unedited")
    return columns, is_csv


def _text_row(line: str, columns: list[str], number: int) -> OpTime:
    """A row of the default format: tab-separated, right-aligned fields. The node type (which may hold
    spaces, e.g. 'Convolution (NHWC, F32) IGEMM') is whatever precedes the run of numeric columns."""
    middle = columns[1:-1]
    numbers = r"\s+".join(f"(?P<c{i}>{_PERCENT if '%' in name else _NUMBER})" for i, name in enumerate(middle))
    match = re.fullmatch(rf"\s*(?P<type>\S.*?)\s+{numbers}\s+(?P<name>\S.*)", line)
    if match is None:
        raise _bad_row(line, number)
    values = {name: match.group(f"c{i}") for i, name in enumerate(middle)}
    return _op_time(match.group("type"), values, match.group("name"), line, number)


def _csv_row(line: str, columns: list[str], number: int) -> OpTime:
    """A CSV row. The name is the last field (benchmark_model writes its commas as tabs); the node type,
    which may hold commas, is everything before the numeric fields."""
    fields = line.split(",")
    count = len(columns) - 2
    if len(fields) < len(columns):
        raise _bad_row(line, number)
    node_type = ",".join(fields[:-1 - count]).strip()
    values = {name: field.strip() for name, field in zip(columns[1:-1], fields[-1 - count:-1])}
    for name, value in values.items():
        if not re.fullmatch(_PERCENT if "%" in name else _NUMBER, value):
            raise _bad_row(line, number)
    return _op_time(node_type, values, fields[-1].strip().replace("\t", ","), line, number)


def _op_time(node_type: str, values: dict[str, str], name: str, line: str, number: int) -> OpTime:
    if not node_type or not name:
        raise _bad_row(line, number)
    return OpTime(node_type=node_type, first_ms=float(values["first"]), average_ms=float(values["avg ms"]),
                  times_called=int(float(values["times called"])), name=name)


def _bad_row(line: str, number: int) -> ValueError:
    return ValueError(f"line {number + 1} is not a Run Order row: {line.strip()!r}; pass benchmark_model's output "
                      "unedited")


# --- pairing with edgegrow's kernels ------------------------------------------------------------
def entries_from_op_profile(op_times: list[OpTime], shapes: list[KernelShape]) -> tuple[list[dict], float]:
    """Latency table entries for ``shapes`` (a model's kernels in execution order) from the profile
    of that model, and the summed average ms of the profiled ops that are no kernel.

    Ops that map to a kind (``KIND_OF_NODE_TYPE``) pair with the kernels in order, by family: CONV_2D
    with conv or pointwise, pooling and MEAN with pool, avg_pool, global_pool, mean or mean_nhwc; the entry takes the
    kernel's shape and kind and the op's average ms. A pad kernel with no PAD op next was fused away by the
    converter and is skipped; a PAD or PADV2 op the converter wrote before a pooling (its padding, which
    TFLite's SAME cannot express) is part of that pooling's entry.

    Raises:
        ValueError: an op ran inside a delegate, or the ops and the kernels do not pair.
    """
    for position, op in enumerate(op_times):
        if "delegate" in op.node_type.lower() or op.name.startswith("Delegate/"):
            raise ValueError(f"op {position} {op.name!r} is {op.node_type}: a delegate hides the time of each kernel; "
                             "run benchmark_model with --use_xnnpack=false and no other delegate")
    costed = [(position, op) for position, op in enumerate(op_times) if _kind_of(op) is not None]
    unmatched_ms = sum(op.average_ms for op in op_times if _kind_of(op) is None)
    entries: list[dict] = []
    next_op = 0
    for index, shape in enumerate(shapes):
        padding_ms = 0.0  # a PAD or PADV2 the converter wrote before a padded pooling: part of that pooling's time
        while (next_op + 1 < len(costed) and _kind_of(costed[next_op][1]) == "pad" and _family(shape.kind) == "pool"
               and _family(_kind_of(costed[next_op + 1][1])) == "pool"):
            padding_ms += costed[next_op][1].average_ms
            next_op += 1
        if next_op < len(costed) and _family(_kind_of(costed[next_op][1])) == _family(shape.kind):
            op = costed[next_op][1]
            entries.append({**shape.to_dict(), "latency_ms": op.average_ms + padding_ms, "layout": "plain"})
            next_op += 1
        elif shape.kind == "pad":
            continue  # the converter folded the padding into the next op
        elif next_op < len(costed):
            position, op = costed[next_op]
            raise ValueError(f"op {position} {op.name!r} is {op.node_type} but kernel {index} is {shape.kind}: "
                             "was the profile made from this model?")
        else:
            raise ValueError(f"kernel {index} is {shape.kind} but the profile has no op left for it: "
                             "was the profile made from this model?")
    if next_op < len(costed):
        position, op = costed[next_op]
        raise ValueError(f"op {position} {op.name!r} is {op.node_type} but the model has no kernel left for it: "
                         "was the profile made from this model?")
    return entries, unmatched_ms


def _kind_of(op: OpTime) -> str | None:
    """The kernel kind of an op; a node type such as 'CONV_2D/description' counts as its builtin."""
    return KIND_OF_NODE_TYPE.get(op.node_type.split("/", 1)[0].strip())


def _family(kind: str | None) -> str | None:
    return _FAMILY.get(kind, kind)
