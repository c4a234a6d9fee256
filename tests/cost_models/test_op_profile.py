"""Reading benchmark_model's op profile and pairing it with edgegrow's kernels.

The sample outputs are written the way tensorflow/lite/profiling and tsl/util/stats_calculator.cc write
them: the default format is tab-separated right-aligned fields ("\\t" + setw), the CSV format ", "-separated
with the name's commas turned into tabs; some releases have a [start] column, some do not.
"""
from pathlib import Path

import pytest
import torch
from torch import nn

from cost_models.kernel_shape import KernelShape
from cost_models.kernels import fused_kernels
from cost_models.op_profile import KIND_OF_NODE_TYPE, OpTime, entries_from_op_profile, parse_op_profile
from edgegrow.models import ds_cnn

# (node type, start ms, first ms, avg ms, times called, name): DS-CNN-S as TFLite runs it, its PAD folded
# into the first CONV_2D, a RESHAPE before the classifier and a SOFTMAX at the end.
DS_CNN_OPS = [
    ("CONV_2D", 0.000, 0.512, 0.431, 1, "[ds_cnn/features.0/conv;ds_cnn/features.0/relu]:0"),
    ("DEPTHWISE_CONV_2D", 0.433, 0.071, 0.062, 1, "[ds_cnn/features.1/dw]:1"),
    ("CONV_2D", 0.497, 0.140, 0.118, 1, "[ds_cnn/features.1/pw, ds_cnn/features.1/pw_out]:2"),
    ("DEPTHWISE_CONV_2D", 0.617, 0.066, 0.061, 1, "[ds_cnn/features.2/dw]:3"),
    ("CONV_2D", 0.680, 0.125, 0.117, 1, "[ds_cnn/features.2/pw]:4"),
    ("DEPTHWISE_CONV_2D", 0.799, 0.064, 0.060, 1, "[ds_cnn/features.3/dw]:5"),
    ("CONV_2D", 0.861, 0.121, 0.119, 1, "[ds_cnn/features.3/pw]:6"),
    ("DEPTHWISE_CONV_2D", 0.982, 0.063, 0.059, 1, "[ds_cnn/features.4/dw]:7"),
    ("CONV_2D", 1.043, 0.122, 0.116, 1, "[ds_cnn/features.4/pw]:8"),
    ("MEAN", 1.161, 0.015, 0.012, 1, "[ds_cnn/pool]:9"),
    ("RESHAPE", 1.175, 0.004, 0.003, 1, "[ds_cnn/flatten]:10"),
    ("FULLY_CONNECTED", 1.180, 0.009, 0.007, 1, "[ds_cnn/classifier/MatMul]:11"),
    ("SOFTMAX", 1.189, 0.006, 0.005, 1, "[Identity]:12"),
]
INIT_OPS = [
    ("ModifyGraphWithDelegate", 0.000, 3.180, 3.180, 1, "ModifyGraphWithDelegate/0"),
    ("AllocateTensors", 3.181, 0.291, 0.150, 2, "AllocateTensors/0"),
]
DELEGATE_OPS = [
    ("TfLiteXNNPackDelegate", 0.000, 0.910, 0.870, 1, "[Identity]:13"),
    ("Convolution (NHWC, F32) IGEMM", 0.001, 0.400, 0.380, 1, "Delegate/Convolution (NHWC, F32) IGEMM:0"),
]


# --- sample outputs, written as stats_calculator.cc writes them -----------------------------------
def _field(value, width: int) -> str:
    return "\t" + (f"{value:>{width}.3f}" if isinstance(value, float) else f"{value:>{width}}")


def _table(title: str, ops, csv: bool, start: bool) -> str:
    total = sum(op[3] * op[4] for op in ops)
    if csv:
        header = "node type, " + ("start, " if start else "") + "first, avg_ms, %, cdf%, mem KB, times called, name"
    else:
        header = _field("[node type]", 24) + (_field("[start]", 17) if start else "") + _field("[first]", 9) \
            + _field("[avg ms]", 9) + _field("[%]", 8) + _field("[cdf%]", 8) + _field("[mem KB]", 10) \
            + _field("[times called]", 9) + "\t[Name]"
    lines = [f"============================== {title} ==============================", header]
    cumulative = 0.0
    for node_type, start_ms, first_ms, average_ms, times_called, name in ops:
        share = average_ms * times_called * 100 / total
        cumulative += share
        if csv:
            starts = f"{start_ms:g}, " if start else ""
            lines.append(f"{node_type}, {starts}{first_ms:g}, {average_ms:g}, {share:g}%, {cumulative:g}%, 0, "
                         f"{times_called}, {name.replace(',', chr(9))}")
        else:
            lines.append(_field(node_type, 24) + (_field(start_ms, 17) if start else "") + _field(first_ms, 9)
                         + _field(average_ms, 9) + _field(share, 7) + "%" + _field(cumulative, 7) + "%"
                         + _field(0.0, 10) + _field(times_called, 9) + "\t" + name)
    return "\n".join(lines) + "\n\n"


def _stats(ops, csv: bool, start: bool) -> str:
    """One StatsCalculator's output: Run Order, Top by Computation Time, Summary by node type."""
    by_time = sorted(ops, key=lambda op: -op[3])
    return (_table("Run Order", ops, csv, start) + _table("Top by Computation Time", by_time[:10], csv, start)
            + f"Number of nodes executed: {len(ops)}\n"
            "============================== Summary by node type ==============================\n"
            + ("node type, count, avg_ms, avg %, cdf %, mem KB, times called\n" if csv else
               "\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]"
               "\t[times called]\n")
            + ("CONV_2D, 5, 0.901, 70%, 70%, 0, 5\n" if csv else
               "\t                 CONV_2D\t        5\t     0.901\t    70.000%\t    70.000%\t     0.000"
               "\t        5\n")
            + "\nTimings (microseconds): count=50 first=1322 curr=1190 min=1150 max=1400 avg=1210 std=40\n"
            "Memory (bytes): count=0\n" + f"{len(ops)} nodes observed\n\n")


def benchmark_output(ops=DS_CNN_OPS, csv: bool = False, start: bool = True) -> str:
    """benchmark_model's output with op profiling: the run log, the init block, the regular-runs block."""
    return ("STARTING!\nLog parameter values verbosely: [0]\nNum threads: [1]\nGraph: [ds_cnn_s.tflite]\n"
            "Enable op profiling: [1]\nLoaded model ds_cnn_s.tflite\nThe input model file size (MB): 0.0997\n"
            "Initialized session in 3.41ms.\n"
            "Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 "
            "seconds.\ncount=840 first=1322 curr=1190 min=1150 max=1400 avg=1210 std=40\n\n"
            "Inference timings in us: Init: 3410, First inference: 1322, Warmup (avg): 1322, Inference (avg): 1210\n"
            "INFO: Profiling Info for Benchmark Initialization:\n" + _stats(INIT_OPS, csv, start)
            + "\n\nINFO: Operator-wise Profiling Info for Regular Benchmark Runs:\n" + _stats(ops, csv, start))


FORMATS = {"text": (False, True), "text-no-start": (False, False), "csv": (True, True), "csv-no-start": (True, False)}


@pytest.fixture(scope="module")
def ds_cnn_shapes() -> list[KernelShape]:
    return [KernelShape.from_kernel(k) for k in fused_kernels(ds_cnn("S"), torch.zeros(1, 1, 49, 10))]


# --- parsing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", FORMATS)
def test_parser_reads_the_run_order_of_the_regular_runs(form):
    csv, start = FORMATS[form]
    ops = parse_op_profile(benchmark_output(csv=csv, start=start))
    assert [op.node_type for op in ops] == [op[0] for op in DS_CNN_OPS]  # run order, not the init block
    assert ops[0] == OpTime("CONV_2D", 0.512, 0.431, 1, "[ds_cnn/features.0/conv;ds_cnn/features.0/relu]:0")
    assert ops[2].name == "[ds_cnn/features.1/pw, ds_cnn/features.1/pw_out]:2"  # commas and spaces survive
    assert [op.average_ms for op in ops] == pytest.approx([op[3] for op in DS_CNN_OPS])


@pytest.mark.parametrize("form", FORMATS)
def test_parser_reads_node_types_with_spaces_and_commas(form):
    csv, start = FORMATS[form]
    ops = parse_op_profile(benchmark_output(DS_CNN_OPS[:2] + DELEGATE_OPS, csv=csv, start=start))
    assert ops[3] == OpTime("Convolution (NHWC, F32) IGEMM", 0.4, 0.38, 1, "Delegate/Convolution (NHWC, F32) IGEMM:0")
    assert ops[2].node_type == "TfLiteXNNPackDelegate"


def test_parser_reads_the_main_graph_not_a_subgraph_or_the_delegate_internals():
    text = (benchmark_output() + "Subgraph (index: 1) profile:\n" + _stats(INIT_OPS, False, True)
            + "Delegate internal: \n" + _stats(DELEGATE_OPS, False, True))
    assert [op.node_type for op in parse_op_profile(text)] == [op[0] for op in DS_CNN_OPS]


def test_parser_takes_the_last_run_order_when_there_is_no_regular_runs_heading():
    text = _stats(INIT_OPS, False, False) + _stats(DS_CNN_OPS, False, False)
    assert len(parse_op_profile(text)) == len(DS_CNN_OPS)


def test_a_regular_runs_block_cut_off_is_refused_rather_than_read_from_the_init_block():
    text = benchmark_output()
    text = text[:text.index("Regular Benchmark Runs:") + len("Regular Benchmark Runs:\n")]
    with pytest.raises(ValueError, match="Regular Benchmark Runs block at line .* has no Run Order table"):
        parse_op_profile(text)


def test_text_without_a_run_order_table_is_refused_with_the_flag_to_use():
    text = "STARTING!\nGraph: [model.tflite]\nInference timings in us: Init: 3410, Inference (avg): 1210\n"
    with pytest.raises(ValueError, match="no Run Order table.*--enable_op_profiling=true") as error:
        parse_op_profile(text)
    assert "\n" not in str(error.value)


def test_a_damaged_row_is_refused_with_its_line_number():
    text = benchmark_output().replace("\t    0.012\t", "\t      n/a\t")  # MEAN's avg ms
    with pytest.raises(ValueError, match=r"line \d+ is not a Run Order row: 'MEAN"):
        parse_op_profile(text)


# --- pairing --------------------------------------------------------------------------------------
def test_node_types_map_to_kernel_kinds():
    assert KIND_OF_NODE_TYPE["CONV_2D"] == "conv"
    assert KIND_OF_NODE_TYPE["DEPTHWISE_CONV_2D"] == "depthwise"
    assert KIND_OF_NODE_TYPE["MEAN"] == "global_pool"
    assert (KIND_OF_NODE_TYPE["MAX_POOL_2D"], KIND_OF_NODE_TYPE["AVERAGE_POOL_2D"]) == ("pool", "avg_pool")
    assert KIND_OF_NODE_TYPE["REDUCE_MAX"] == "mean"  # a global max pool, as litert-torch writes x.amax((2, 3))
    assert KIND_OF_NODE_TYPE["HARD_SWISH"] == "activation"
    assert all(KIND_OF_NODE_TYPE[name] is None for name in ("RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE", "SOFTMAX"))


def test_ds_cnn_profile_pairs_with_its_kernels(ds_cnn_shapes):
    entries, unmatched_ms = entries_from_op_profile(parse_op_profile(benchmark_output(csv=True)), ds_cnn_shapes)
    assert ds_cnn_shapes[0].kind == "pad"  # fused away by the converter: no entry
    assert [entry["kind"] for entry in entries] == [shape.kind for shape in ds_cnn_shapes[1:]]
    costed = [op for op in DS_CNN_OPS if op[0] not in ("RESHAPE", "SOFTMAX")]
    assert [entry["latency_ms"] for entry in entries] == pytest.approx([op[3] for op in costed])
    assert entries[0] == {**ds_cnn_shapes[1].to_dict(), "latency_ms": pytest.approx(0.431), "layout": "plain"}
    assert entries[2]["kind"] == "pointwise" and entries[2]["kernel"] == [1, 1]  # a CONV_2D, as the kernel says
    assert unmatched_ms == pytest.approx(0.003 + 0.005)  # RESHAPE and SOFTMAX


def test_a_pad_the_runtime_kept_gets_its_own_entry(ds_cnn_shapes):
    ops = [("PAD", 0.0, 0.021, 0.018, 1, "[ds_cnn/features.0/pad]:0")] + DS_CNN_OPS
    entries, _ = entries_from_op_profile(parse_op_profile(benchmark_output(ops)), ds_cnn_shapes)
    assert len(entries) == len(ds_cnn_shapes)
    assert entries[0]["kind"] == "pad" and entries[0]["latency_ms"] == pytest.approx(0.018)


def test_a_profile_of_another_model_is_refused_naming_the_op(ds_cnn_shapes):
    ops = DS_CNN_OPS[:1] + DS_CNN_OPS[2:]  # the first depthwise conv is missing
    with pytest.raises(ValueError, match=r"op 1 '\[ds_cnn/features.1/pw, ds_cnn/features.1/pw_out\]:2' is CONV_2D "
                                         r"but kernel 2 is depthwise: was the profile made from this model\?"):
        entries_from_op_profile(parse_op_profile(benchmark_output(ops)), ds_cnn_shapes)


def test_a_profile_with_too_few_or_too_many_ops_is_refused(ds_cnn_shapes):
    short = [op for op in DS_CNN_OPS if op[0] != "FULLY_CONNECTED"]
    with pytest.raises(ValueError, match="kernel 11 is fully_connected but the profile has no op left"):
        entries_from_op_profile(parse_op_profile(benchmark_output(short)), ds_cnn_shapes)
    extra = DS_CNN_OPS + [("ADD", 1.2, 0.002, 0.002, 1, "[ds_cnn/extra_add]:13")]
    with pytest.raises(ValueError, match=r"op 13 '\[ds_cnn/extra_add\]:13' is ADD but the model has no kernel left"):
        entries_from_op_profile(parse_op_profile(benchmark_output(extra)), ds_cnn_shapes)


def test_a_delegated_profile_is_refused_with_the_flag_to_use(ds_cnn_shapes):
    ops = parse_op_profile(benchmark_output(DELEGATE_OPS[:1]))
    with pytest.raises(ValueError, match="TfLiteXNNPackDelegate.*--use_xnnpack=false"):
        entries_from_op_profile(ops, ds_cnn_shapes)


def test_an_op_profile_becomes_a_profile_and_extends_an_existing_one(tmp_path):
    from cost_models import estimate
    from cost_models.profiler import profile_from_op_profile
    from cost_models.target import load_target
    from edgegrow.models import example_input

    ops = tmp_path / "ops.txt"
    ops.write_text(benchmark_output())
    model = ds_cnn("S").eval()
    out = tmp_path / "phone.json"
    profile_from_op_profile("phone", ops, model, example_input(model), out)
    phone = load_target(str(out))
    assert phone.runtime == "tflite" and len(phone.entries) == 5  # stem, dw, pw (4 blocks alike), pool, fc
    report = estimate(model, example_input(model), phone)
    kernel_ms = {row.name: row.latency_ms for row in report.kernels}
    assert kernel_ms["features.1.0.0"] == pytest.approx(0.0605)  # the median of the four alike blocks
    assert phone.model_overhead_ms.value == pytest.approx(0.003 + 0.005)  # RESHAPE + SOFTMAX
    faster = [(*op[:3], op[3] / 2, *op[4:]) for op in DS_CNN_OPS]
    ops.write_text(benchmark_output(faster))
    profile_from_op_profile("phone", ops, model, example_input(model), out)  # same kernels: replaced
    again = load_target(str(out))
    fc = [e.latency_ms for e in again.entries if e.shape.kind == "fully_connected"]
    assert len(again.entries) == 5 and fc[0] < 0.005  # 0.007 ms halved (printed to 3 decimals) replaced it


# --- a real benchmark_model output -----------------------------------------------------------------
CAPTURED = Path(__file__).parent / "data" / "benchmark_model_mobilenet_v1_op_profiling.txt"


def test_parser_reads_a_captured_benchmark_model_output():
    """The parser on output benchmark_model itself printed, not this file's writer: MobileNetV1 1.0/224
    float, 4 threads on a RISC-V QEMU, `--enable_op_profiling=true`, as published in
    NobuoTsukamoto/meta-tensorflow-lite, doc/tensorflow-lite-benchmark.md (commit 0e1bd90, MIT licence),
    lines 58-155 of that page kept byte for byte. Checked against the tool's own tables: the run order's
    31 nodes, and per node type the sums equal to the "Summary by node type" block of the same run."""
    text = CAPTURED.read_text()
    ops = parse_op_profile(text)
    assert len(ops) == 31 and "31 nodes observed" in text  # the regular runs, not the one-node init block
    assert ops[0] == OpTime("CONV_2D", 87.754, 60.957, 1, "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0")
    assert [op.node_type for op in ops[-4:]] == ["AVERAGE_POOL_2D", "CONV_2D", "SQUEEZE", "SOFTMAX"]
    summary = {"CONV_2D": (15, 2651.853), "DEPTHWISE_CONV_2D": (13, 296.919), "AVERAGE_POOL_2D": (1, 0.869),
               "SOFTMAX": (1, 0.232), "SQUEEZE": (1, 0.016)}  # the tool's "Summary by node type" rows
    for node_type, (count, total_ms) in summary.items():
        of_type = [op for op in ops if op.node_type == node_type]
        assert len(of_type) == count
        assert sum(op.average_ms for op in of_type) == pytest.approx(total_ms, abs=0.01)
    assert sum(op.average_ms for op in ops) == pytest.approx(2949.9, abs=0.1)  # "avg=2.9499e+06" us


def test_the_pad_a_converter_writes_before_a_padded_pooling_is_part_of_that_poolings_entry():
    # F.max_pool2d(x, 3, 2, 1) on an even map is a PADV2 and a MAX_POOL_2D (F.avg_pool2d's padding a PAD): the kernel
    # list has no pad kernel there, and such a profile was refused as "op 1 is PADV2 but kernel 1 is pool"
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 8, 1),
                          nn.AvgPool2d(3, 2, 1)).eval()
    shapes = [KernelShape.from_kernel(k) for k in fused_kernels(model, torch.zeros(1, 1, 16, 16))]
    assert [shape.kind for shape in shapes] == ["conv", "pool", "pointwise", "avg_pool"]
    ops = [("CONV_2D", 0.0, 0.02, 0.020, 1, "[conv]:0"), ("PADV2", 0.02, 0.004, 0.004, 1, "[pad]:1"),
           ("MAX_POOL_2D", 0.03, 0.006, 0.006, 1, "[pool]:2"), ("CONV_2D", 0.04, 0.01, 0.010, 1, "[pw]:3"),
           ("PAD", 0.05, 0.003, 0.003, 1, "[pad2]:4"), ("AVERAGE_POOL_2D", 0.06, 0.002, 0.002, 1, "[avg]:5")]
    entries, unmatched_ms = entries_from_op_profile(parse_op_profile(benchmark_output(ops)), shapes)
    assert [entry["kind"] for entry in entries] == ["conv", "pool", "pointwise", "avg_pool"]
    assert [entry["latency_ms"] for entry in entries] == pytest.approx([0.020, 0.010, 0.010, 0.005])
    assert unmatched_ms == 0
