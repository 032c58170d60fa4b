# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""``onnx-accuracy``: the CPU inference paths with a trained model over a refer split (IoU, mask agreement with
eager float32), and the low-precision accuracy targets judged on them."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modeling_lavt.precision import autocast

from .models import hardware_record
from .onnx_paths import CPU_PATHS, cpu_path_models, export_all

MIN_PIXEL_AGREEMENT = 0.99  # share of mask pixels equal to eager float32's, demo val split
MAX_MEAN_IOU_DROP = 1.0  # mean IoU points below eager float32's, demo val split


def _calibration_folder(text: str) -> Path:
    """A calibration folder whose samples can be read (checked before the minutes of export)."""
    from modeling_lavt.onnx.calibration import folder_samples

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
                        help="calibration folder of the static INT8 path (images and expressions.json; keep it "
                        "apart from --split); default: generated images")


def run_onnx_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """Every CPU path over a refer split with a trained model: mean / overall IoU (model-input protocol) and the
    share of mask pixels equal to eager float32's; the low-precision targets judged on them."""
    from torch.utils.data import DataLoader, Subset

    from lavt_hf.training.data import ReferEvalDataset, collate, load_refer_dataset
    from lavt_hf.training.evaluation import foreground_masks
    from lavt_hf.training.metrics import compute_refer_metrics, intersection_and_union
    from modeling_lavt import LavtForReferringSegmentation, LavtProcessor
    from modeling_lavt.onnx.export import processor_settings

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    model = LavtForReferringSegmentation.from_pretrained(args.model).eval()
    processor = LavtProcessor.from_pretrained(args.model)
    view = ReferEvalDataset(load_refer_dataset(args.dataset, args.dataset_config, args.split,
                                               images_root=args.images_root), processor)
    samples = view if args.max_samples is None else Subset(view, range(min(args.max_samples, len(view))))
    loader = DataLoader(samples, batch_size=args.batch_size, collate_fn=collate)
    counts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in CPU_PATHS}
    equal_pixels, total_pixels, ort_fp32_difference = dict.fromkeys(CPU_PATHS, 0), 0, 0.0
    with tempfile.TemporaryDirectory() as scratch:
        export = export_all(model, processor, Path(scratch), args.calibration)
        paths = cpu_path_models(model, Path(scratch), args.threads)
        for batch in loader:
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
    metrics = {name: compute_refer_metrics(np.concatenate([c[0] for c in parts]), np.concatenate([c[1] for c in parts]))
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
        "torch": torch.__version__, **hardware_record(device), "threads": args.threads, **export, "paths": records,
    }
