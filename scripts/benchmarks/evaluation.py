# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""``eval``: ``lavt_hf.training.evaluation.evaluate_model`` over a synthetic refer split (decode, resize, tokenize
in the data loader, batched forward, IoU counts, metrics): evaluated samples per second."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from lavt_hf.cli import non_negative_int, positive_int
from modeling_lavt.precision import autocast

from .memory import memory_record, peak_memory_mb
from .models import (
    add_model_arguments,
    base_record,
    build_model,
    default_processor,
    model_config,
    prepare_device,
)
from .timing import Workload, time_workloads, timing_record


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, default_repeats=3)
    parser.add_argument("--samples", type=positive_int, default=32, help="(object, sentence) pairs per pass (32)")
    parser.add_argument("--num-workers", "--num_workers", type=non_negative_int, default=2,
                        help="data loader worker processes (2)")
    parser.add_argument("--num-images", "--num_images", type=positive_int, default=16,
                        help="synthetic images to generate (16; each has several objects and sentences)")
    parser.add_argument("--source-size", "--source_size", type=positive_int, nargs=2, default=(640, 480),
                        metavar=("WIDTH", "HEIGHT"),
                        help="synthetic image size before resizing (COCO-like 640 480)")


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    """Time ``evaluate_model`` passes over a synthetic split, data loading and metrics included."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader, Subset

    from lavt_hf.training.data import ReferEvalDataset, collate, load_refer_dataset
    from lavt_hf.training.data.synthetic import generate_synthetic_refer
    from lavt_hf.training.evaluation import evaluate_model

    accelerator = Accelerator(cpu=prepare_device(args).type == "cpu")
    device = accelerator.device
    config = model_config(args)
    model = build_model(config, device, args.seed).eval()
    processor = default_processor(None)
    processor.image_processor.size = {"height": args.image_size, "width": args.image_size}
    with tempfile.TemporaryDirectory() as scratch:
        root, images = Path(scratch) / "refer", Path(scratch) / "images"
        generate_synthetic_refer(root, images, num_images=args.num_images, seed=args.seed,
                                 image_size=tuple(args.source_size))
        view = ReferEvalDataset(load_refer_dataset(root, "refcoco_unc", "train", images_root=images), processor)
        samples = Subset(view, range(min(args.samples, len(view))))
        loader = accelerator.prepare(DataLoader(samples, batch_size=args.batch_size, collate_fn=collate,
                                                num_workers=args.num_workers, pin_memory=device.type == "cuda"))
        setup_peak = peak_memory_mb(device)

        def evaluate_pass() -> dict:
            with autocast(device, args.dtype):
                return evaluate_model(model, loader, accelerator, description="benchmark")

        seconds = time_workloads([Workload("eval", evaluate_pass)], args.repeats, args.warmup, device)["eval"]
    return {
        **base_record("eval", args, config, model, device), "samples": len(samples),
        "num_workers": args.num_workers, **timing_record(seconds, len(samples)), **memory_record(device, setup_peak),
    }
