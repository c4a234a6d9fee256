"""Build the analytic device profiles (targets/<name>.json) from public figures.

    python targets/calibrate_analytic.py            # fit, write the four profiles, print the tables
    python targets/calibrate_analytic.py --check    # fit and print, write nothing

No device is measured here. Each profile starts from a small spec below: device facts, each with
the source it comes from (or "assumption: ..." where no public figure was found), and the published
latencies ("anchors") its MAC rates are calibrated against. The latency form is the one
``cost_models.latency.LatencyModel`` uses for analytic profiles: a kernel costs its MACs, with
channels rounded up to ``channel_step``, at its kind's MAC rate, plus ``per_kernel_overhead_ms``;
kernels without MACs cost traffic bytes / ``bytes_per_s_elementwise`` plus the overhead.

That form is linear in the inverse rates and the overhead, so the few free parameters of each
profile are fitted by (weighted linear) least squares on relative error; the recorded
``predicted_ms`` of every anchor is then recomputed with ``cost_models.estimate`` on the profile as
written, so the file and the tests agree with what edgegrow will actually predict.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from cost_models.estimate import estimate  # noqa: E402
from cost_models.kernel_shape import WEIGHTED_KINDS, KernelShape  # noqa: E402
from cost_models.kernels import fused_kernels  # noqa: E402
from cost_models.latency import padded_shape  # noqa: E402
from cost_models.profiler import write_json_atomically  # noqa: E402
from cost_models.target import parse_target  # noqa: E402
from edgegrow.models import ds_cnn, example_input, mobilenet_v1, mobilenet_v2, resnet8  # noqa: E402
from edgegrow.models.layers import PooledClassifier, conv_bn_act  # noqa: E402

TARGETS = Path(__file__).resolve().parent
SCHEMA = "edgegrow-target/1"
KINDS = ("conv", "depthwise", "pointwise", "fully_connected")

# --- public sources ---------------------------------------------------------------------------------
MLPERF_TINY = ("MLPerf Tiny v0.5, closed division, reference submission: NUCLEO-L4R5ZI (STM32L4R5ZI Cortex-M4F "
               "120 MHz), TensorFlow Lite Micro v2.3.1, int8; github.com/mlcommons/tiny_results_v0.5 "
               "closed/reference/results/Nucleo-L4R5ZI/{kws,vww,ic}/{performance,energy}/results.txt "
               "(as listed in ../shared/docs/ANCHORS.md)")
L4R5_SYSTEM = ("github.com/mlcommons/tiny_results_v0.5 closed/reference/systems/Nucleo_L4R5ZI_System_Description.json "
               "(STM32L4R5ZIT6: 640KB SRAM, 2MB eFlash, 120 MHz, TFLite Micro v2.3.1); agrees with ST datasheet "
               "DS12023 (STM32L4R5xx: 640 Kbytes SRAM = SRAM1 192K + SRAM2 64K + SRAM3 384K, 2 Mbytes flash) as quoted "
               "at https://x3beche.github.io/stm32l4r5-deck/overview/")
CMSIS_CEILING = "ANCHORS.md 'CMSIS-NN hardware ceiling: 2 x 16-bit MACs per cycle' (Arm: one dual 16-bit SMLAD a cycle)"
CMSIS_STEP = ("ARM-software/CMSIS-NN: Source/ConvolutionFunctions/arm_convolve_wrapper_s8.c takes the fast 1x1 path "
              "only when input_dims->c % 4 == 0, and arm_depthwise_conv_s8_opt.c (DSP path, Cortex-M4/M7) computes "
              "row_count = output_ch / 4, i.e. 4 channels per loop with a scalar tail for the rest")
TINYENGINE = ("github.com/mit-han-lab/tinyengine README.md 'Measured Results' (profiled on STM32H743 with limits of "
              "512 KB peak memory and 2 MB storage, -Ofast): mcunet-vww1 latency TF-Lite Micro 1120 ms, CMSIS-NN 97 ms "
              "(CMSIS-NN @ 011bf32), TinyEngine 51 ms; flash with CMSIS-NN 736 kB")
MCUNET = ("github.com/mit-han-lab/mcunet README.md, VWW model list: mcunet-5fps-vww (net_id mcunet-vww1 in "
          "mcunet/model_zoo.py) 11.6M MACs, 0.43M params")
NN_METER = ("microsoft/nn-Meter tests/integration_test/data/reference_result_onnx_based_torch.txt: output of the "
            "cortexA76cpu_tflite21 predictor for torchvision models at 1x3x224x224 -- a nn-Meter PREDICTION, not a "
            "measurement. nn-Meter's README reports 99.0 % of its 26k-model dataset within +-10 % of latency "
            "measured on a Pixel 4 Cortex-A76 with TFLite v2.1; its runner "
            "(nn_meter/builder/backends/tflite/tflite_runner.py) measures with --num_threads=1 under 'taskset 70' "
            "(cores 4-6, the 2.42 GHz A76 cores of the Snapdragon 855)")
TF_PIXEL4 = ("tensorflow/tensorflow tensorflow/lite/g3doc/performance/benchmarks.md: Pixel 4, Android 10, "
             "CPU 4 threads, Mobilenet_1.0_224(float) 14.0 ms (measured)")
NETSPRESSO = ("Nota-NetsPresso/netspresso-trainer docs/benchmarks/device_matrix/tensorrt.md, 'JetPack 6.0 / Jetson "
              "Orin Nano / FP16': 224x224 input, 3 classes, latency of the model's computation only (no "
              "pre/post-processing)")
ORIN_SPEC = ("Jetson Orin Nano module data sheet (copy at "
             "https://www.scribd.com/document/673174036/Orin-nano-datasheet): 8GB module 1024 CUDA cores, 32 Tensor "
             "Cores, GPU max 625 MHz, 128-bit LPDDR5; 40 TOPS (INT8, sparse) and "
             "68 GB/s for the 8GB module before the JetPack 6.1+ 'Super' clocks, per "
             "https://www.brojogopalsapui.com/ai-foundations/sub_contents/AI_hardware/jetson_orin_nano_light.html and "
             "github.com/hokwangchoi/jetson-orin-nano-benchmarks README")
ORIN_MODES = ("Orin Nano 8GB nvpmodel modes: 15 W (6 CPU cores, GPU 625 MHz) and 7 W (GPU 420 MHz), "
              "https://ai-hpc.github.io/ai-hardware-engineer-roadmap/Phase%204%20-%20Track%20B%20-%20Nvidia%20Jetson/"
              "1.%20Nvidia%20Jetson%20Platform/Orin-Nano-Power-Thermal/Guide")
TRT_STEP = ("github.com/NVIDIA/TensorRT issue #3876: TensorRT's FP16 convolutions run in 'Channel major FP16 format "
            "where channel % 8 == 0', following NVIDIA's 'Optimizing for Tensor Cores' advice (multiples of 8)")


# --- models the anchors were published for ------------------------------------------------------
class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        out = channels * self.expansion
        self.body = nn.Sequential(conv_bn_act(in_channels, channels, 3, stride),
                                  conv_bn_act(channels, out, 3, activation=None))
        self.shortcut = _shortcut(in_channels, out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class _Bottleneck(_BasicBlock):
    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int):
        nn.Module.__init__(self)
        out = channels * self.expansion
        self.body = nn.Sequential(conv_bn_act(in_channels, channels, 1), conv_bn_act(channels, channels, 3, stride),
                                  conv_bn_act(channels, out, 1, activation=None))
        self.shortcut = _shortcut(in_channels, out, stride)
        self.relu = nn.ReLU(inplace=True)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return conv_bn_act(in_channels, out_channels, 1, stride, activation=None)


class ImageNetResNet(PooledClassifier):
    """The torchvision-shaped ImageNet ResNet (v1.5: stride on the 3x3 conv of a bottleneck).

    Not part of the edgegrow zoo: it exists so that anchors published for ResNet-18/34/50 can be
    re-costed with ``estimate`` on the same shapes.
    """

    LAYOUTS = {18: (_BasicBlock, (2, 2, 2, 2)), 34: (_BasicBlock, (3, 4, 6, 3)), 50: (_Bottleneck, (3, 4, 6, 3))}

    def __init__(self, depth: int = 18, num_classes: int = 1000, resolution: int = 224):
        super().__init__()
        block, counts = self.LAYOUTS[depth]
        self.input_shape = (3, resolution, resolution)
        layers: list[nn.Module] = [conv_bn_act(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
        channels = 64
        for stage, count in enumerate(counts):
            width = 64 * 2 ** stage
            for index in range(count):
                layers.append(block(channels, width, 2 if index == 0 and stage > 0 else 1))
                channels = width * block.expansion
        self.features = nn.Sequential(*layers)
        self.add_classifier(channels, num_classes)


BUILDERS = {"ds_cnn": ds_cnn, "mobilenet_v1": mobilenet_v1, "mobilenet_v2": mobilenet_v2, "resnet8": resnet8,
            "imagenet_resnet": ImageNetResNet}


def _flatbuffer_overhead() -> dict:
    """The .tflite file's fixed bytes: beyond the weights and the per-operator and per-tensor records
    that cost_models/runtime_memory.json adds (fitted on edgegrow's own exports)."""
    return fact(704, (
        "fitted 2026-11-29 on the int8 .tflite files edgegrow's exporter wrote for 9 zoo models (python "
        "bench/tflm_arena.py; bench/results/tflm_arena.json): the file is weights + 99 B per operator + 101 B per "
        "tensor (cost_models/runtime_memory.json) + this. Flash here is the model file: the TFLite Micro runtime "
        "code is not included, so leave room for it under flash_bytes. The MLPerf Tiny KWS reference file (about "
        "54 KB, ../shared/docs/ANCHORS.md) is larger than edgegrow's export of the same network: TensorFlow's "
        "converter keeps long tensor names"))


def model_spec(builder: str, *args, **kwargs) -> dict:
    return {"builder": builder, "args": list(args), "kwargs": dict(kwargs)}


def describe(spec: dict) -> str:
    parts = [repr(a) for a in spec["args"]] + [f"{k}={v!r}" for k, v in spec["kwargs"].items()]
    where = "targets/calibrate_analytic.py: " if spec["builder"] == "imagenet_resnet" else "edgegrow.models."
    return f"{where}{spec['builder']}({', '.join(parts)})"


def build_model(spec: dict) -> nn.Module:
    """The model a calibration entry names (``entry["model"]``), in eval mode."""
    if spec["builder"] not in BUILDERS:
        raise ValueError(f"unknown model builder {spec['builder']!r}; known: {', '.join(BUILDERS)}")
    torch.manual_seed(0)
    return BUILDERS[spec["builder"]](*spec["args"], **spec["kwargs"]).eval()


# --- device specs -----------------------------------------------------------------------------------
def fact(value, source: str) -> dict:
    return {"value": value, "source": source}


M4F_POWER_MW = {"kws": 40.835710, "vww": 40.319483, "ic": 41.475447}  # EnergyRunner 'Power', median-energy window

TFLITE_FLATBUFFER_OVERHEAD = _flatbuffer_overhead()

DEVICES: list[dict] = [
    {
        "name": "cortex-m4f-120mhz", "kind": "mcu", "dtype": "int8", "threads": 1,
        "runtime": {"name": "tflite-micro", "version": "2.3.1"},
        "description": ("Arm Cortex-M4F at 120 MHz (STM32L4R5ZI on a NUCLEO-L4R5ZI, the MLPerf Tiny reference board) "
                        "running TensorFlow Lite Micro int8. Analytic: MAC rates calibrated to the MLPerf Tiny v0.5 "
                        "reference results; nothing measured here."),
        "facts": {
            "peak_macs_per_s": fact(2 * 120e6, f"{CMSIS_CEILING} x 120 MHz = 2.4e8 MAC/s"),
            "memory_bandwidth_bytes_per_s": fact(4 * 120e6, "assumption: one 32-bit SRAM access per 120 MHz cycle"),
            "sram_bytes": fact(640 * 1024, L4R5_SYSTEM),
            "flash_bytes": fact(2 * 1024 * 1024, L4R5_SYSTEM),
            "active_power_mw": fact(round(sum(M4F_POWER_MW.values()) / 3, 4), (
                f"{MLPERF_TINY}: mean of the 'Power' the EnergyRunner reported in the median-energy window of KWS "
                "(40.836 mW), VWW (40.319 mW) and IC (41.475 mW) at 1.8 V; equals published energy / latency to 1 % "
                "(7.37 mJ / 181.9 ms = 40.5 mW, 24.3 / 600.5 = 40.5, 29.2 / 704.3 = 41.5)")),
            "model_overhead_ms": fact(0.0, ("assumption: the MLPerf Tiny timer brackets the inference; a fixed "
                                            "interpreter cost cannot be separated from three anchors and is folded "
                                            "into the fitted MAC rates")),
            "model_overhead_flash_bytes": TFLITE_FLATBUFFER_OVERHEAD,
        },
        "analytic": {
            "channel_step": (4, f"{CMSIS_STEP}; the MLPerf reference system description does not say whether "
                                "CMSIS-NN kernels were linked, so the step is an assumption for that build"),
            "per_kernel_overhead_ms": (0.0, "assumption: per-operator interpreter time is not separable from three "
                                            "anchors; folded into the fitted MAC rates"),
            "bytes_per_s_elementwise": (15e6, "assumption: ~8 cycles per byte moved for int8 pooling/add kernels "
                                              "with requantisation at 120 MHz (not calibrated: the anchors cannot "
                                              "separate it; < 1 % of any anchor)"),
        },
        # two free parameters for three anchors: one MAC rate for dense conv / pointwise / fully connected,
        # one for depthwise (9 MACs per requantised output, so slower per MAC)
        "groups": {"conv": "dense", "pointwise": "dense", "fully_connected": "dense", "depthwise": "depthwise"},
        "fit_overhead": False,
        "anchors": [
            {"anchor": "MLPerf Tiny v0.5 KWS, DS-CNN, Cortex-M4F 120 MHz", "published_ms": 181.9,
             "published_mj": 7.37, "model": model_spec("ds_cnn", "mlperf"), "source": MLPERF_TINY},
            {"anchor": "MLPerf Tiny v0.5 VWW, MobileNetV1-0.25 96x96, Cortex-M4F 120 MHz", "published_ms": 600.5,
             "published_mj": 24.3, "model": model_spec("mobilenet_v1", 0.25, 96, 2), "source": MLPERF_TINY},
            {"anchor": "MLPerf Tiny v0.5 IC, ResNet-8 CIFAR-10, Cortex-M4F 120 MHz", "published_ms": 704.3,
             "published_mj": 29.2, "model": model_spec("resnet8"), "source": MLPERF_TINY},
        ],
    },
    {
        "name": "cortex-m7-480mhz", "kind": "mcu", "dtype": "int8", "threads": 1,
        "runtime": {"name": "tflite-micro", "version": "CMSIS-NN 011bf32"},
        "description": ("Arm Cortex-M7 at 480 MHz (STM32H743) running TensorFlow Lite Micro with CMSIS-NN int8 "
                        "kernels. Analytic: the Cortex-M4F profile's per-kind MAC rates scaled by one factor "
                        "calibrated to the TinyEngine README's CMSIS-NN latency of mcunet-vww1; nothing measured "
                        "here."),
        "relative_to": "cortex-m4f-120mhz",
        "facts": {
            "peak_macs_per_s": fact(2 * 480e6, f"{CMSIS_CEILING} x 480 MHz = 9.6e8 MAC/s"),
            "memory_bandwidth_bytes_per_s": fact(8 * 480e6, "assumption: one 64-bit TCM/AXI access per 480 MHz cycle"),
            "sram_bytes": fact(512 * 1024, f"{TINYENGINE} (ANCHORS.md: STM32H743, 512 KB SRAM, 2 MB flash); the "
                                            "chip has more SRAM in several banks, 512 KB is the limit those "
                                            "measurements used"),
            "flash_bytes": fact(2 * 1024 * 1024, f"{TINYENGINE} (ANCHORS.md: 2 MB flash)"),
            "active_power_mw": fact(None, ("not found: no STM32H743 run-mode current at 480 MHz was retrievable "
                                           "through the searched sources (ST datasheet DS12110 tables not indexed); "
                                           "energy is not predicted for this target")),
            "model_overhead_ms": fact(0.0, "assumption: as for cortex-m4f-120mhz, folded into the MAC rates"),
            "model_overhead_flash_bytes": TFLITE_FLATBUFFER_OVERHEAD,
        },
        "analytic": {
            "channel_step": (4, CMSIS_STEP),
            "per_kernel_overhead_ms": (0.0, "assumption: as for cortex-m4f-120mhz"),
            "bytes_per_s_elementwise": (60e6, "assumption: the cortex-m4f-120mhz value x 4 (clock ratio)"),
        },
        "groups": {kind: "all" for kind in KINDS},
        "fit_overhead": False,
        "anchors": [
            {"anchor": "TinyEngine README: mcunet-vww1 on STM32H743, TFLM + CMSIS-NN", "published_ms": 97.0,
             "published_macs": 11.6e6, "model": model_spec("mobilenet_v2", 0.35, 96, 2), "source": TINYENGINE,
             "proxy": ("mcunet-vww1's architecture (a TinyNAS inverted-residual network) is not in the zoo and its "
                       "config is downloaded at run time by mcunet, so mobilenet_v2(0.35, 96, 2), also inverted "
                       "residuals, stands in; the fit target is the published latency scaled by the ratio of MACs "
                       f"(proxy MACs / 11.6M, {MCUNET})")},
        ],
    },
    {
        "name": "cortex-a76", "kind": "cpu", "dtype": "float32", "threads": 1,
        "runtime": {"name": "tflite", "version": "2.1"},
        "description": ("One Arm Cortex-A76 core at 2.42 GHz (Pixel 4 / Snapdragon 855 'gold' core) running TensorFlow "
                        "Lite float32 on 1 thread. Analytic: one MAC rate calibrated to nn-Meter's Cortex-A76 "
                        "predictions for MobileNetV2 and ResNet-18, made for TFLite v2.1's default CPU kernels "
                        "(TFLite's XNNPACK float path is newer and likely faster); nothing measured here."),
        "facts": {
            "peak_macs_per_s": fact(8 * 2.42e9, ("assumption from Arm's description of the Cortex-A76 (two 128-bit "
                                                 "NEON FMA pipes = 8 fp32 MACs per cycle) x 2.42 GHz (the cores "
                                                 "nn-Meter pins with taskset 70); not verified in the searched "
                                                 "sources")),
            "memory_bandwidth_bytes_per_s": fact(34.1e9, ("assumption: Snapdragon 855 LPDDR4X-4266 on a 64-bit bus "
                                                          "(vendor figure, not verified in the searched sources)")),
            "sram_bytes": fact(None, "a phone: no SRAM limit for these models"),
            "flash_bytes": fact(None, "a phone: no flash limit for these models"),
            "active_power_mw": fact(None, ("not found: no public per-core active power of a Snapdragon 855 A76 core "
                                           "in the searched sources; energy is not predicted")),
            "model_overhead_ms": fact(0.0, "assumption: nn-Meter's predictions are sums of kernel latencies, no "
                                           "fixed per-model term"),
            "model_overhead_flash_bytes": TFLITE_FLATBUFFER_OVERHEAD,
        },
        "analytic": {
            "channel_step": (4, ("assumption: 128-bit NEON holds 4 fp32 lanes; XNNPACK's aarch64 f32 GEMM tiles are "
                                 "8 output channels wide, but the cost model pads input and output channels alike and "
                                 "8 would over-charge 3-channel stems")),
            "per_kernel_overhead_ms": (0.005, "assumption: a few microseconds of TFLite operator dispatch"),
            "bytes_per_s_elementwise": (5e9, "assumption: streaming fp32 add/pool on one A76 core"),
        },
        "groups": {kind: "all" for kind in KINDS},
        "fit_overhead": False,
        "anchors": [
            {"anchor": "nn-Meter cortexA76cpu_tflite21: torchvision mobilenet_v2, 224x224 (prediction)",
             "published_ms": 43.9635, "model": model_spec("mobilenet_v2", 1.0, 224, 1000), "source": NN_METER},
            {"anchor": "nn-Meter cortexA76cpu_tflite21: torchvision resnet18, 224x224 (prediction)",
             "published_ms": 216.1971, "model": model_spec("imagenet_resnet", depth=18, num_classes=1000),
             "source": NN_METER},
        ],
        "cross_checks": [
            {"what": "TensorFlow's measured Pixel 4 figure for Mobilenet_1.0_224 float is for 4 threads",
             "published_ms": 14.0, "threads": 4, "model": model_spec("mobilenet_v1", 1.0, 224, 1000),
             "source": TF_PIXEL4},
        ],
    },
    {
        "name": "jetson-orin-nano", "kind": "gpu", "dtype": "float16", "threads": 1,
        "runtime": {"name": "tensorrt", "version": "JetPack 6.0"},
        "description": ("NVIDIA Jetson Orin Nano 8GB (Ampere GPU, 1024 CUDA cores, 625 MHz) running TensorRT FP16 at "
                        "batch 1. Analytic: one MAC rate and a per-kernel launch overhead calibrated to NetsPresso's "
                        "published ResNet-18/34/50 latencies; nothing measured here."),
        "facts": {
            "peak_macs_per_s": fact(5e12, (f"derived: 40 sparse INT8 TOPS ({ORIN_SPEC}) / 2 (dense) / 2 (FP16 "
                                           "tensor rate is half the INT8 rate on Ampere: assumption) / 2 ops per MAC")),
            "memory_bandwidth_bytes_per_s": fact(68e9, ORIN_SPEC),
            "sram_bytes": fact(None, "8 GB LPDDR5 shared by CPU and GPU: not a limit for these models"),
            "flash_bytes": fact(None, "NVMe/SD storage: not a limit for these models"),
            "active_power_mw": fact(15000.0, (f"{ORIN_MODES}: the 15 W mode's module power budget, assumed to be the "
                                              "mode the anchors ran in (the highest before JetPack 6.1; NetsPresso "
                                              "does not say). A budget, not a measured draw: energy = 15 W x latency "
                                              "over-estimates a lightly loaded GPU")),
            "model_overhead_ms": fact(0.0, ("assumption: the anchors time the engine's computation only; launch "
                                            "costs are in the fitted per-kernel overhead")),
            "model_overhead_flash_bytes": fact(0, "not counted: TensorRT ships with JetPack; storage is not limited"),
        },
        "analytic": {
            "channel_step": (8, f"assumption after {TRT_STEP}"),
            "per_kernel_overhead_ms": (None, "fitted"),
            "bytes_per_s_elementwise": (34e9, "assumption: half the 68 GB/s DRAM bandwidth for pooling/add kernels"),
        },
        "groups": {kind: "all" for kind in KINDS},
        "fit_overhead": True,
        "anchors": [
            {"anchor": "NetsPresso: ResNet18 224x224, 3 classes, Jetson Orin Nano, TensorRT FP16, JetPack 6.0",
             "published_ms": 1.99792, "model": model_spec("imagenet_resnet", depth=18, num_classes=3),
             "source": NETSPRESSO},
            {"anchor": "NetsPresso: ResNet34 224x224, 3 classes, Jetson Orin Nano, TensorRT FP16, JetPack 6.0",
             "published_ms": 3.48368, "model": model_spec("imagenet_resnet", depth=34, num_classes=3),
             "source": NETSPRESSO},
            {"anchor": "NetsPresso: ResNet50 224x224, 3 classes, Jetson Orin Nano, TensorRT FP16, JetPack 6.0",
             "published_ms": 4.80201, "model": model_spec("imagenet_resnet", depth=50, num_classes=3),
             "source": NETSPRESSO},
        ],
    },
]


# --- the linear form of the analytic latency --------------------------------------------------------
def kernel_summary(model: nn.Module, step: int, bytes_per_element: int) -> dict:
    """Padded MACs per kind, number of kernels and elementwise traffic, as ``LatencyModel._analytic`` sees them."""
    summary = {"padded_macs": dict.fromkeys(KINDS, 0), "macs": 0, "kernels": 0, "elementwise_bytes": 0}
    for kernel in fused_kernels(model, example_input(model)):
        shape = KernelShape.from_kernel(kernel)
        summary["kernels"] += 1
        if shape.kind in WEIGHTED_KINDS:
            padded = padded_shape(shape, step)
            summary["padded_macs"][shape.kind] += padded.macs
            summary["macs"] += shape.macs
        elif shape.kind == "unknown":
            raise ValueError(f"{kernel.name}: a kernel the analytic form cannot cost")
        else:
            summary["elementwise_bytes"] += shape.traffic_bytes(bytes_per_element)
    return summary


def fit(device: dict, summaries: list[dict], targets: list[float], base_rates: dict[str, float]) -> dict:
    """Least squares on relative error for the device's free parameters.

    Parameters: one inverse rate multiplier per rate group (rate of a kind = base rate x scale of its
    group), plus the per-kernel overhead when ``fit_overhead``. Returns the per-kind rates and overhead.
    """
    analytic = device["analytic"]
    groups = sorted(set(device["groups"].values()))
    fixed_overhead = analytic["per_kernel_overhead_ms"][0] or 0.0
    elementwise_rate = analytic["bytes_per_s_elementwise"][0]
    model_overhead = device["facts"]["model_overhead_ms"]["value"]
    rows, constants = [], []
    for summary in summaries:
        row = [sum(1e3 * summary["padded_macs"][kind] / base_rates[kind]
                   for kind in KINDS if device["groups"][kind] == group) for group in groups]
        constant = model_overhead + 1e3 * summary["elementwise_bytes"] / elementwise_rate
        if device["fit_overhead"]:
            row.append(summary["kernels"])
        else:
            constant += fixed_overhead * summary["kernels"]
        rows.append(row)
        constants.append(constant)
    design, targets_ms, constants = np.array(rows, float), np.array(targets, float), np.array(constants)
    if design.shape[1] > len(targets):
        raise ValueError(f"{device['name']}: {design.shape[1]} free parameters for {len(targets)} anchors")
    weights = 1.0 / targets_ms
    solution = np.linalg.lstsq(design * weights[:, None], (targets_ms - constants) * weights, rcond=None)[0]
    if not (solution > 0).all():
        raise ValueError(f"{device['name']}: the least-squares fit gave a non-positive parameter {solution}")
    scales = {group: 1.0 / solution[index] for index, group in enumerate(groups)}
    rates = {kind: base_rates[kind] * scales[device["groups"][kind]] for kind in KINDS}
    overhead = float(solution[-1]) if device["fit_overhead"] else fixed_overhead
    return {"rates": rates, "overhead_ms": overhead, "scales": scales,
            "linear_ms": list(constants + design @ solution), "free_parameters": design.shape[1]}


# --- building a profile -----------------------------------------------------------------------------
def _bytes_per_element(dtype: str) -> int:
    return {"float32": 4, "float16": 2, "int8": 1}[dtype]


def build_profile(device: dict, built: dict[str, dict]) -> tuple[dict, list[dict]]:
    """The profile dict of ``device`` and one table row per anchor (``built``: profiles made so far)."""
    analytic = device["analytic"]
    step = analytic["channel_step"][0]
    if "relative_to" in device:
        reference = built[device["relative_to"]]["latency"]["analytic"]["macs_per_s"]
        base_rates = {kind: reference[kind] for kind in KINDS}
    else:
        base_rates = dict.fromkeys(KINDS, 1.0)
    anchors = device["anchors"]
    summaries = [kernel_summary(build_model(a["model"]), step, _bytes_per_element(device["dtype"])) for a in anchors]
    targets = []
    for anchor, summary in zip(anchors, summaries):
        scale = summary["macs"] / anchor["published_macs"] if "published_macs" in anchor else 1.0
        targets.append(anchor["published_ms"] * scale)
    result = fit(device, summaries, targets, base_rates)
    rates = result["rates"]
    peak = device["facts"]["peak_macs_per_s"]["value"]
    if max(rates.values()) > peak:
        raise ValueError(f"{device['name']}: a fitted rate {max(rates.values()):.3g} exceeds the peak {peak:.3g}")

    groups = sorted(set(device["groups"].values()))
    free = ", ".join([f"MAC rate of {g} kernels ({', '.join(k for k in KINDS if device['groups'][k] == g)})"
                      for g in groups] + (["per_kernel_overhead_ms"] if device["fit_overhead"] else []))
    relative = (f"; per-kind rates = {device['relative_to']}'s rates x one fitted factor "
                f"{result['scales']['all']:.4g} (its relative depthwise/dense efficiency is kept)"
                if "relative_to" in device else "")
    overhead_source = (f"fitted ({result['overhead_ms']:.4g} ms)" if device["fit_overhead"]
                       else analytic["per_kernel_overhead_ms"][1])
    latency_source = (f"analytic: padded MACs / per-kind MAC rate + per-kernel overhead; {result['free_parameters']} "
                      f"free parameter(s) ({free}) fitted by least squares on relative error to {len(anchors)} "
                      f"anchor(s) (see 'calibration'){relative}. channel_step: {analytic['channel_step'][1]}. "
                      f"per_kernel_overhead_ms: {overhead_source}. bytes_per_s_elementwise: "
                      f"{analytic['bytes_per_s_elementwise'][1]}. Written by targets/calibrate_analytic.py")
    profile = {
        "schema": SCHEMA, "name": device["name"], "kind": device["kind"], "description": device["description"],
        "runtime": device["runtime"], "threads": device["threads"], "dtype": device["dtype"],
        **device["facts"],
        "latency": {
            "source": latency_source,
            "analytic": {
                "macs_per_s": {**{kind: float(f"{rates[kind]:.6g}") for kind in KINDS},
                               "default": float(f"{rates['conv']:.6g}")},
                "per_kernel_overhead_ms": float(f"{result['overhead_ms']:.6g}"),
                "channel_step": step,
                "bytes_per_s_elementwise": analytic["bytes_per_s_elementwise"][0],
            },
        },
    }
    target = parse_target(profile, f"targets/{device['name']}.json")
    calibration, rows = [], []
    for anchor, summary, fit_ms, linear_ms in zip(anchors, summaries, targets, result["linear_ms"]):
        model = build_model(anchor["model"])
        report = estimate(model, example_input(model), target)
        if abs(report.latency_ms - linear_ms) > 1e-4 * linear_ms:  # rates are rounded to 6 digits
            raise ValueError(f"{device['name']}: estimate ({report.latency_ms} ms) disagrees with the linear form "
                             f"({linear_ms} ms) for {anchor['anchor']}; a roofline bound or an unknown kernel?")
        entry = {"anchor": anchor["anchor"], "model": anchor["model"], "model_call": describe(anchor["model"]),
                 "model_macs": summary["macs"], "published_ms": anchor["published_ms"],
                 "predicted_ms": round(report.latency_ms, 4)}
        row = {"anchor": anchor["anchor"], "published_ms": anchor["published_ms"], "predicted_ms": report.latency_ms}
        if "published_macs" in anchor:
            entry.update(published_macs=anchor["published_macs"], fit_target_ms=round(fit_ms, 4),
                         proxy=anchor["proxy"])
            row["fit_target_ms"] = fit_ms
        if "published_mj" in anchor:
            entry.update(published_mj=anchor["published_mj"], predicted_mj=round(report.energy_mj, 4))
            row.update(published_mj=anchor["published_mj"], predicted_mj=report.energy_mj)
        entry["source"] = anchor["source"]
        calibration.append(entry)
        rows.append(row)
    profile["calibration"] = calibration
    profile["notes"] = _notes(device, rows, target)
    parse_target(profile, f"targets/{device['name']}.json")
    return profile, rows


def _residuals(rows: list[dict]) -> str:
    parts = []
    for row in rows:
        reference = row.get("fit_target_ms", row["published_ms"])
        parts.append(f"{row['anchor']}: {round(100 * (row['predicted_ms'] / reference - 1), 1) + 0.0:+.1f} %")
    return "; ".join(parts)


def _notes(device: dict, rows: list[dict], target) -> str:
    name = device["name"]
    common = f"Calibration residuals (predicted vs fit target): {_residuals(rows)}."
    if name == "cortex-m4f-120mhz":
        return (f"{common} Two free parameters for three anchors, so the residuals are real, not zero by "
                "construction. Known limits of the analytic form behind them: (1) the cost model rounds the input "
                "channels of full convolutions up to channel_step, so DS-CNN's 1-channel 10x4 stem is charged as 4 "
                "channels (CMSIS-NN's im2col dot product is 40 long and needs no such padding): KWS is "
                "over-predicted; (2) there is no per-output (requantisation) cost, which dominates layers with few "
                "input channels such as MobileNetV1-0.25's early pointwise layers: VWW is under-predicted. "
                "Energy = active_power_mw x latency.")
    if name == "cortex-m7-480mhz":
        return (f"{common} One anchor, so only one overall factor is calibrated and the fit is exact by "
                "construction; the anchor model is a proxy (see calibration[0].proxy) and the M4F profile's relative "
                "depthwise/dense efficiency is assumed to carry over. Other CMSIS-NN latencies in the same README "
                "(mcunet-vww0 53 ms, vww2 478 ms, in0 51 ms, in1 103 ms) are at a similar 8.0-8.8 ms per million MACs "
                "(vww1: 8.4), "
                "but their architectures are not in the zoo either, so they are not used.")
    if name == "cortex-a76":
        check = device["cross_checks"][0]
        model = build_model(check["model"])
        one_thread = estimate(model, example_input(model), target).latency_ms
        return (f"{common} The anchors are nn-Meter predictions, not measurements: no public single-thread "
                "measurement of a standard MobileNet/ResNet on a Cortex-A76 was found in the searched sources "
                "(TensorFlow's Pixel 4 table is 4 threads; XNNPACK's README covers Pixel, Pixel 2 and Pixel 3a "
                "only). One shared MAC rate (depthwise included) for two anchors. Cross-check, not fitted: this "
                f"profile predicts {one_thread:.1f} ms on 1 thread for {describe(check['model'])}; "
                f"against {check['source']}: that implies a {one_thread / check['published_ms']:.1f}x speed-up from 4 "
                "threads, more than the thread count, so this profile (TFLite 2.1 kernels, through nn-Meter) is "
                "probably slow for a current TFLite with XNNPACK.")
    return (f"{common} Two free parameters (one MAC rate, one per-kernel launch overhead) for three anchors. "
            "Only ResNets anchor it: depthwise kernels, absent from the anchors, get the same rate per MAC and are "
            "more likely bounded by the memory roofline. The anchors use 3-class heads and the 15 W mode is "
            "assumed, not stated.")


# --- output -----------------------------------------------------------------------------------------
def print_table(name: str, rows: list[dict]) -> None:
    print(f"\n{name}")
    print(f"  {'anchor':<92} {'published ms':>12} {'predicted ms':>12} {'error':>8}")
    for row in rows:
        error = round(100 * (row["predicted_ms"] / row["published_ms"] - 1), 1) + 0.0
        print(f"  {row['anchor'][:92]:<92} {row['published_ms']:>12.4g} {row['predicted_ms']:>12.4g} {error:>+7.1f}%")
        if "fit_target_ms" in row:
            error = round(100 * (row["predicted_ms"] / row["fit_target_ms"] - 1), 1) + 0.0
            print(f"  {'  (fit target: published ms x proxy MACs / published MACs)':<92} "
                  f"{row['fit_target_ms']:>12.4g} {row['predicted_ms']:>12.4g} {error:>+7.1f}%")
        if "published_mj" in row:
            error = round(100 * (row["predicted_mj"] / row["published_mj"] - 1), 1) + 0.0
            print(f"  {'  energy (mJ)':<92} {row['published_mj']:>12.4g} {row['predicted_mj']:>12.4g} "
                  f"{error:>+7.1f}%")
    rms = math.sqrt(sum((r["predicted_ms"] / r.get("fit_target_ms", r["published_ms"]) - 1) ** 2 for r in rows)
                    / len(rows))
    print(f"  rms relative error {100 * rms:.1f} %")


def build_all() -> dict[str, tuple[dict, list[dict]]]:
    built: dict[str, dict] = {}
    results = {}
    for device in DEVICES:
        profile, rows = build_profile(device, built)
        built[device["name"]] = profile
        results[device["name"]] = (profile, rows)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fit and print the tables, write nothing")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name, (profile, rows) in build_all().items():
        print_table(name, rows)
        if not args.check:
            write_json_atomically(TARGETS / f"{name}.json", profile)
            print(f"  wrote targets/{name}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
