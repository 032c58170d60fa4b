# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""``onnx``: the CPU inference paths side by side (eager float32; eager bf16 autocast with float32 weights, and
with the linear and convolution weights stored in bf16 as lavt-predict runs it (the same outputs); ONNX Runtime
float32, INT8 dynamic and INT8 static (calibrated on generated images)), timed interleaved on the same inputs, at
Swin-B 480 batch 1 and Swin-T 224 batch 2 on 2 threads, with export and quantization times, ONNX file sizes and
each path's peak RSS (``onnx-memory``, one fresh subprocess per path)."""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from modeling_lavt.precision import store_weights_for_autocast

from .inference import inference_workload
from .memory import memory_record, peak_memory_mb, record_in_fresh_process
from .models import build_model, default_processor, hardware_record, model_config, random_inputs
from .timing import median_ratio, time_workloads, timing_record

CPU_PATHS = ("eager-fp32", "eager-bf16", "eager-bf16-stored", "ort-fp32", "ort-int8", "ort-int8-static")
LOW_PRECISION_PATHS = ("eager-bf16", "eager-bf16-stored", "ort-int8", "ort-int8-static")
# The ONNX Runtime paths' export folders, named after the path: ort-<folder>
ORT_FOLDERS = ("fp32", "int8", "int8-static")
ORT_FP32_MIN_SPEEDUP = 1.3  # eager float32 time / ONNX Runtime float32 time, Swin-B 480 batch 1
LOW_PRECISION_MIN_SPEEDUP = 3.0  # eager float32 time / the fastest low-precision path's time


def _setting(text: str) -> tuple[str, int, int]:
    """"PRESET:SIZE:BATCH" -> (preset, image side, batch)."""
    try:
        preset, size, batch = text.split(":")
        return preset, int(size), int(batch)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PRESET:SIZE:BATCH, e.g. swin-tiny-window7:224:2, got {text!r}"
                                         ) from None


def add_onnx_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", nargs="+", type=_setting,
                        default=[("swin-base-window12", 480, 1), ("swin-tiny-window7", 224, 2)],
                        metavar="PRESET:SIZE:BATCH",
                        help="model presets (random weights), square input side and batch to time "
                        "(swin-base-window12:480:1 swin-tiny-window7:224:2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations per path; medians (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations per path first (1)")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads (2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (0)")
    parser.add_argument("--no-memory", "--no_memory", dest="memory", action="store_false",
                        help="skip the peak-RSS subprocesses (one per path)")
    parser.add_argument("--paths", nargs="+", choices=CPU_PATHS, default=list(CPU_PATHS),
                        help="the paths to time (default: all); eager-fp32, the baseline, is always timed. Without "
                        "ONNX Runtime paths nothing is exported, and the eager paths are timed without ONNX Runtime "
                        "sessions in the process (their thread pools and memory slow the eager paths beside them)")


def ort_model(folder: Path, threads: int) -> Any:
    from modeling_lavt.onnx.runtime import LavtOnnxForReferringSegmentation

    return LavtOnnxForReferringSegmentation.from_pretrained(folder, num_threads=threads)


def export_all(model: torch.nn.Module, processor: Any, folder: Path, calibration: Path | None = None
               ) -> dict[str, Any]:
    """float32, dynamic INT8 and static INT8 exports into `folder`/{fp32,int8,int8-static}: times, file sizes
    and the static calibration set (`calibration`: a folder of samples; None: generated images)."""
    from modeling_lavt.onnx.export import export_onnx, quantize_export, read_export_info

    start = time.perf_counter()
    export_onnx(model, processor, folder / "fp32")
    export_s = time.perf_counter() - start
    start = time.perf_counter()
    quantize_export(folder / "fp32", folder / "int8")
    quantize_s = time.perf_counter() - start
    start = time.perf_counter()
    quantize_export(folder / "fp32", folder / "int8-static", method="static", calibration=calibration)
    quantize_static_s = time.perf_counter() - start
    sizes = {name: round(sum(f.stat().st_size for f in (folder / name).glob("model.onnx*")) / 2**20, 1)
             for name in ORT_FOLDERS}
    return {"export_s": round(export_s, 1), "quantize_s": round(quantize_s, 1),
            "quantize_static_s": round(quantize_static_s, 1), "onnx_file_mb": sizes,
            "static_calibration": read_export_info(folder / "int8-static")["quantization"]["calibration"]}


def cpu_path_models(model: torch.nn.Module, folder: Path, threads: int, names: Sequence[str] = CPU_PATHS
                    ) -> dict[str, tuple[Any, str]]:
    """Each CPU path of `names` (in CPU_PATHS order): the callable model and the autocast dtype it runs under."""
    builders = {
        "eager-fp32": lambda: (model, "fp32"), "eager-bf16": lambda: (model, "bf16"),
        "eager-bf16-stored": lambda: (store_weights_for_autocast(copy.deepcopy(model), "bf16"), "bf16"),
        **{f"ort-{name}": (lambda name=name: (ort_model(folder / name, threads), "fp32")) for name in ORT_FOLDERS},
    }
    return {name: builders[name]() for name in CPU_PATHS if name in names}


def memory_in_subprocess(path: str, folder: Path, image_size: int, batch: int, threads: int, seed: int
                         ) -> dict[str, Any]:
    """The `onnx-memory` record of one path from a fresh process (its peak RSS is that path's alone)."""
    return record_in_fresh_process(["onnx-memory", "--path", path, "--folder", str(folder), "--image-size",
                                    str(image_size), "--batch-size", str(batch), "--threads", str(threads),
                                    "--seed", str(seed)])


def measure_onnx_setting(args: argparse.Namespace, preset: str, image_size: int, batch: int) -> dict[str, Any]:
    """Export, then time the CPU paths interleaved on the same inputs; masks compared with eager float32."""
    device = torch.device("cpu")
    config = model_config(argparse.Namespace(preset=preset, config_json=None))
    model = build_model(config, device, args.seed).eval()
    processor = default_processor(None)
    processor.image_processor.size = {"height": image_size, "width": image_size}
    inputs = random_inputs(config, batch, image_size, device, args.seed)
    names = [name for name in CPU_PATHS if name == "eager-fp32" or name in args.paths]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        export = export_all(model, processor, folder) if any(name.startswith("ort-") for name in names) else {}
        paths = cpu_path_models(model, folder, args.threads, names)
        workloads = [inference_workload(name, path_model, inputs, dtype, device)
                     for name, (path_model, dtype) in paths.items()]
        masks = {workload.name: workload.step() for workload in workloads}
        seconds = time_workloads(workloads, args.repeats, args.warmup, device)
        memory_records = {}
        if args.memory:
            del paths, workloads
            model.save_pretrained(folder / "torch")
            memory_records = {name: memory_in_subprocess(name, folder, image_size, batch, args.threads, args.seed)
                              for name in names}
    speedups = {name: median_ratio(seconds, "eager-fp32", name) for name in names}
    targets = {}
    low_precision = [name for name in LOW_PRECISION_PATHS if name in names]
    if low_precision:
        fastest = max(low_precision, key=speedups.__getitem__)
        targets["fastest_low_precision"] = {
            "path": fastest, "speedup_vs_eager_fp32": speedups[fastest],
            "target": f">= {LOW_PRECISION_MIN_SPEEDUP}x (at Swin-B 480 batch 1)",
            "met": speedups[fastest] >= LOW_PRECISION_MIN_SPEEDUP}
    if "ort-fp32" in names:
        targets["ort_fp32_speedup_target"] = {"target": f">= {ORT_FP32_MIN_SPEEDUP}x (at Swin-B 480 batch 1)",
                                              "met": speedups["ort-fp32"] >= ORT_FP32_MIN_SPEEDUP}
    return {
        "preset": preset, "image_size": image_size, "batch_size": batch, **export, **targets,
        "paths": {name: {**timing_record(seconds[name], batch), "speedup_vs_eager_fp32": speedups[name],
                         "mask_pixels_equal_to_eager_fp32": round((masks[name] == masks["eager-fp32"]).float()
                                                                  .mean().item(), 5),
                         **({"peak_memory_mb": memory_records[name]["peak_memory_mb"],
                             "setup_peak_memory_mb": memory_records[name]["setup_peak_memory_mb"]}
                            if memory_records else {})}
                  for name in names},
    }


def run_onnx(args: argparse.Namespace) -> dict[str, Any]:
    """Time eager float32, eager bf16 autocast, ONNX Runtime float32 and INT8 at each setting, in this run."""
    import onnxruntime

    from modeling_lavt.precision import cpu_has_native_bf16

    torch.set_num_threads(args.threads)
    records = [measure_onnx_setting(args, *setting) for setting in args.settings]
    return {
        "benchmark": "onnx", "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        **hardware_record(torch.device("cpu")), "cpu_native_bf16": cpu_has_native_bf16(),
        "logical_cpus": os.cpu_count(), "threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
        "timing": "forward + mask post-processing, random weights and inputs, median seconds per batch",
        "memory_kind": "process peak RSS (VmHWM) of one subprocess per path: load, 2 inferences",
        "settings": records,
    }


def add_onnx_memory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", required=True, choices=CPU_PATHS, help="the inference path")
    parser.add_argument("--folder", required=True, type=Path,
                        help="folder with torch/ (saved model) and fp32/, int8/, int8-static/ (ONNX exports)")
    parser.add_argument("--image-size", "--image_size", type=int, required=True, help="square input side")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=1, help="batch (1)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")


def run_onnx_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Load one path's model, run two inferences; this process's peak RSS is the path's."""
    from modeling_lavt import LavtForReferringSegmentation

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    if args.path.startswith("eager"):
        model = LavtForReferringSegmentation.from_pretrained(args.folder / "torch").eval()
        if args.path == "eager-bf16-stored":
            store_weights_for_autocast(model, "bf16")
        config = model.config
    else:
        model = ort_model(args.folder / args.path.removeprefix("ort-"), args.threads)
        config = model.config
    dtype = "bf16" if args.path.startswith("eager-bf16") else "fp32"
    workload = inference_workload(args.path, model, random_inputs(config, args.batch_size, args.image_size, device,
                                                                  args.seed), dtype, device)
    setup_peak = peak_memory_mb(device)
    for _ in range(2):
        workload.step()
    return {"benchmark": "onnx-memory", "path": args.path, **memory_record(device, setup_peak)}
