# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The CPU inference paths: eager float32; eager bf16 autocast, with float32 weights or (as lavt-predict) bf16
ones; ONNX Runtime float32, INT8 dynamic and INT8 static. `onnx` times them on random weights and inputs
(`onnx-memory`: one path's peak RSS, in a fresh process); `onnx-accuracy` runs them with a trained model."""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from modeling_lavt import LavtForReferringSegmentation, LavtProcessor
from modeling_lavt.onnx.calibration import folder_samples
from modeling_lavt.onnx.export import export_onnx, processor_settings, quantize_export, read_export_info
from modeling_lavt.onnx.runtime import LavtOnnxForReferringSegmentation
from modeling_lavt.precision import autocast, cpu_has_native_bf16, store_weights_for_autocast

from . import common
from .model import inference_step

CPU_PATHS = ("eager-fp32", "eager-bf16", "eager-bf16-stored", "ort-fp32", "ort-int8", "ort-int8-static")
ORT_FOLDERS = ("fp32", "int8", "int8-static")  # the export folder of path ort-<folder>
ORT_FP32_MIN_SPEEDUP = 1.3  # eager float32 time / ONNX Runtime float32 time, Swin-B 480 batch 1
LOW_PRECISION_MIN_SPEEDUP = 3.0  # eager float32 time / the fastest low-precision path's time
MIN_PIXEL_AGREEMENT = 0.99  # share of mask pixels equal to eager float32's, demo val split
MAX_MEAN_IOU_DROP = 1.0  # mean IoU points below eager float32's, demo val split


def _setting(text: str) -> tuple[str, int, int]:
    """"PRESET:SIZE:BATCH" -> (preset, image side, batch)."""
    try:
        preset, size, batch = text.split(":")
        return preset, int(size), int(batch)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PRESET:SIZE:BATCH, e.g. swin-tiny-window7:224:2, got {text!r}"
                                         ) from None


def add_onnx_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", nargs="+", type=_setting, metavar="PRESET:SIZE:BATCH",
                        default=[("swin-base-window12", 480, 1), ("swin-tiny-window7", 224, 2)],
                        help="model preset, square input side and batch (swin-base-window12:480:1 swin-tiny-window7:224:2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations per path; medians (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations per path first (1)")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads (2)")
    parser.add_argument("--no-memory", "--no_memory", dest="memory", action="store_false",
                        help="skip the peak-RSS subprocesses (one per path)")
    parser.add_argument("--paths", nargs="+", choices=CPU_PATHS, default=list(CPU_PATHS),  # no ort-*: no export
                        help="the paths to time (default: all; eager-fp32, the baseline, always)")


def export_all(model: torch.nn.Module, processor: Any, folder: Path, calibration: Path | None = None
               ) -> dict[str, Any]:
    """float32, dynamic INT8 and static INT8 exports into `folder`/{fp32,int8,int8-static}: times (s), file sizes
    (MiB) and the static calibration set (`calibration`: a folder of samples; None: generated images)."""
    steps = {"export_s": lambda: export_onnx(model, processor, folder / "fp32"),
             "quantize_s": lambda: quantize_export(folder / "fp32", folder / "int8"),
             "quantize_static_s": lambda: quantize_export(folder / "fp32", folder / "int8-static",
                                                          method="static", calibration=calibration)}
    # One pass, in this order: the quantizations read the float32 export.
    seconds = common.time_workloads(steps, repeats=1, warmup=0, device=torch.device("cpu"))
    sizes = {name: round(sum(f.stat().st_size for f in (folder / name).glob("model.onnx*")) / 2**20, 1)
             for name in ORT_FOLDERS}
    return {**{key: round(values[0], 1) for key, values in seconds.items()}, "onnx_file_mb": sizes,
            "static_calibration": read_export_info(folder / "int8-static")["quantization"]["calibration"]}


def cpu_path_models(model: torch.nn.Module, folder: Path, threads: int, names: Sequence[str] = CPU_PATHS
                    ) -> dict[str, tuple[Any, str]]:
    """Each CPU path of `names` (in CPU_PATHS order): the callable model and the autocast dtype it runs under."""
    ort = LavtOnnxForReferringSegmentation.from_pretrained
    builders = {
        "eager-fp32": lambda: (model, "fp32"), "eager-bf16": lambda: (model, "bf16"),
        "eager-bf16-stored": lambda: (store_weights_for_autocast(copy.deepcopy(model), "bf16"), "bf16"),
        **{f"ort-{name}": lambda name=name: (ort(folder / name, num_threads=threads), "fp32")
           for name in ORT_FOLDERS},
    }
    return {name: builders[name]() for name in CPU_PATHS if name in names}


def measure_onnx_setting(args: argparse.Namespace, preset: str, image_size: int, batch: int) -> dict[str, Any]:
    """Export, then time the CPU paths interleaved on the same inputs; masks compared with eager float32."""
    device = torch.device("cpu")
    config, model = common.random_model(preset, device)
    inputs = common.random_inputs(config, batch, image_size, device)
    names = [name for name in CPU_PATHS if name == "eager-fp32" or name in args.paths]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        export = (export_all(model, common.default_processor(image_size), folder)
                  if any(name.startswith("ort-") for name in names) else {})
        steps = {name: inference_step(path_model, inputs, dtype, device)
                 for name, (path_model, dtype) in cpu_path_models(model, folder, args.threads, names).items()}
        masks = {name: step() for name, step in steps.items()}
        seconds = common.time_workloads(steps, args.repeats, args.warmup, device)
        peaks = {}
        if args.memory:
            del steps
            model.save_pretrained(folder / "torch")
            peaks = {name: common.record_in_fresh_process([
                "onnx-memory", "--path", name, "--folder", str(folder), "--image-size", str(image_size),
                "--batch-size", str(batch), "--threads", str(args.threads)]) for name in names}
    speedups = {name: common.median_ratio(seconds, "eager-fp32", name) for name in names}
    targets = {}
    low_precision = [name for name in names if not name.endswith("fp32")]
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
        "paths": {name: {**common.timing_record(seconds[name], batch), "speedup_vs_eager_fp32": speedups[name],
                         "mask_pixels_equal_to_eager_fp32": round(
                             (masks[name] == masks["eager-fp32"]).float().mean().item(), 5),
                         **{key: peaks[name][key] for key in ("peak_memory_mb", "setup_peak_memory_mb")
                            if name in peaks}}
                  for name in names},
    }


def run_onnx(args: argparse.Namespace) -> dict[str, Any]:
    """CPU inference paths side by side: eager fp32 and bf16, ONNX Runtime fp32 and INT8."""
    import onnxruntime

    torch.set_num_threads(args.threads)
    return {
        "benchmark": "onnx", "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        **common.hardware_record(torch.device("cpu")), "cpu_native_bf16": cpu_has_native_bf16(),
        "logical_cpus": os.cpu_count(), "threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
        "timing": "forward + mask post-processing, random weights and inputs, median seconds per batch",
        "memory_kind": "process peak RSS (VmHWM) of one subprocess per path: load, 2 inferences",
        "settings": [measure_onnx_setting(args, *setting) for setting in args.settings],
    }


def add_onnx_memory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", required=True, choices=CPU_PATHS)
    parser.add_argument("--folder", required=True, type=Path, help="torch/ (the saved model) and ONNX exports")
    for option in ("--image-size", "--batch-size", "--threads"):
        parser.add_argument(option, type=int, required=True)


def run_onnx_memory(args: argparse.Namespace) -> dict[str, Any]:
    """(used by onnx) peak RSS of one CPU inference path in this process.

    Loads one path's model and runs two inferences; this process's peak RSS is the path's."""
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    if args.path.startswith("eager"):
        model = LavtForReferringSegmentation.from_pretrained(args.folder / "torch").eval()
        if args.path == "eager-bf16-stored":
            store_weights_for_autocast(model, "bf16")
    else:
        model = LavtOnnxForReferringSegmentation.from_pretrained(args.folder / args.path.removeprefix("ort-"),
                                                                  num_threads=args.threads)
    dtype = "bf16" if args.path.startswith("eager-bf16") else "fp32"
    inputs = common.random_inputs(model.config, args.batch_size, args.image_size, device)
    step = inference_step(model, inputs, dtype, device)
    setup_peak = common.peak_memory_mb(device)
    for _ in range(2):
        step()
    return {"benchmark": "onnx-memory", "path": args.path, **common.memory_record(device, setup_peak)}


def _calibration_folder(text: str) -> Path:
    """A calibration folder whose samples can be read (checked before the minutes of export)."""
    try:
        folder_samples(text)
    except (OSError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return Path(text)


def add_onnx_accuracy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a trained model folder (weights + processor)")
    parser.add_argument("--dataset", required=True, help="refer dataset (raw refer root or prepared folder)")
    parser.add_argument("--dataset-config", "--dataset_config", default="refcoco_unc", help="(refcoco_unc)")
    parser.add_argument("--split", default="val", help="split to evaluate (val)")
    parser.add_argument("--images-root", "--images_root", default=None, help="COCO-style image folder")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=8, help="pairs per batch (8)")
    parser.add_argument("--max-samples", "--max_samples", type=int, default=None, help="first N pairs only")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads (2)")
    parser.add_argument("--calibration", type=_calibration_folder, default=None,
                        help="calibration folder of the static INT8 path (default: generated images)")


def run_onnx_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """The CPU inference paths with a trained model over a refer split: IoU, agreement.

    Per path: mean / overall IoU (model-input protocol) and the share of mask pixels equal to eager float32's;
    the low-precision accuracy targets judged on them."""
    from lavt_hf.training.data import ReferEvalDataset, collate, load_refer_dataset
    from lavt_hf.training.evaluation import foreground_masks
    from lavt_hf.training.metrics import compute_refer_metrics, intersection_and_union

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    model = LavtForReferringSegmentation.from_pretrained(args.model).eval()
    processor = LavtProcessor.from_pretrained(args.model)
    view = ReferEvalDataset(load_refer_dataset(args.dataset, args.dataset_config, args.split,
                                               images_root=args.images_root), processor)
    samples = view if args.max_samples is None else Subset(view, range(min(args.max_samples, len(view))))
    counts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in CPU_PATHS}
    equal_pixels, total_pixels, ort_fp32_difference = dict.fromkeys(CPU_PATHS, 0), 0, 0.0
    with tempfile.TemporaryDirectory() as scratch:
        export = export_all(model, processor, Path(scratch), args.calibration)
        paths = cpu_path_models(model, Path(scratch), args.threads)
        for batch in DataLoader(samples, batch_size=args.batch_size, collate_fn=collate):
            inputs = {name: batch[name] for name in ("pixel_values", "input_ids", "attention_mask")}
            logits, masks = {}, {}
            for name, (path_model, dtype) in paths.items():
                with torch.inference_mode(), autocast(device, dtype):
                    logits[name] = path_model(**inputs).logits
                masks[name] = foreground_masks(logits[name], batch["labels"].shape[-2:])
                counts[name].append(intersection_and_union(masks[name], batch["labels"]))
                equal_pixels[name] += int((masks[name] == masks["eager-fp32"]).sum())
            total_pixels += masks["eager-fp32"].numel()
            ort_fp32_difference = max(ort_fp32_difference,
                                      (logits["ort-fp32"] - logits["eager-fp32"]).abs().max().item())
    metrics = {name: compute_refer_metrics(*(np.concatenate(part) for part in zip(*parts)))
               for name, parts in counts.items()}
    records = {}
    for name in CPU_PATHS:
        agreement = equal_pixels[name] / total_pixels
        drop = metrics["eager-fp32"]["mean_iou"] - metrics[name]["mean_iou"]
        records[name] = {"mean_iou": round(metrics[name]["mean_iou"], 3),
                         "overall_iou": round(metrics[name]["overall_iou"], 3),
                         "mask_pixels_equal_to_eager_fp32": round(agreement, 5), "mean_iou_drop": round(drop, 3),
                         "accuracy_target_met": agreement >= MIN_PIXEL_AGREEMENT and drop <= MAX_MEAN_IOU_DROP}
    return {
        "benchmark": "onnx-accuracy", "model": args.model, "dataset": args.dataset, "split": args.split,
        "samples": len(samples), **processor_settings(processor), "protocol": "model_input",
        "target": f">= {MIN_PIXEL_AGREEMENT:.0%} of mask pixels equal to eager float32, mean IoU within "
                  f"{MAX_MEAN_IOU_DROP} point", "ort_fp32_max_logit_difference": ort_fp32_difference,
        "torch": torch.__version__, **common.hardware_record(device), "threads": args.threads, **export,
        "paths": records,
    }
