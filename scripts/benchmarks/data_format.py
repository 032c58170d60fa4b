# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""``lavt-benchmark data-format``: the prepared format's size against the bytes of the distinct images it holds,
and the training data path read from it (map-style through ``ReferTrainDataset``, and streamed), on synthetic
refer data.

Presets: ``demo`` is the embedded demo's data (1,000 images of 160x120, 3 to 5 objects per image, refcoco_unc);
``refcoco-like`` has RefCOCO's 2.5 objects per image (2 or 3) and three configurations over the same images
(refcoco_unc, refcoco+_unc, refcocog_umd), as the real family shares COCO's. The format before the image table
stored each object's image in its row: ``embedded_format_bytes`` estimates that size (the annotations plus one
copy of the image per object).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .models import default_processor

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {"num_images": 1000, "image_size": (160, 120), "objects_per_image": (3, 5),
             "configs": [("refcoco", "unc")]},
    "refcoco-like": {"num_images": 300, "image_size": (640, 480), "objects_per_image": (2, 3),
                     "configs": [("refcoco", "unc"), ("refcoco+", "unc"), ("refcocog", "umd")]},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="synthetic data (default demo)")
    parser.add_argument("--num_images", type=int, default=None, help="override the preset's number of images")
    parser.add_argument("--samples", type=int, default=100, help="samples per timed pass of the data path")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the median is reported")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, prepare, measure; one torch thread for the data path (samples per second per core)."""
    preset = dict(PRESETS[args.preset])
    if args.num_images is not None:
        preset["num_images"] = args.num_images
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            prepared, sizes = _prepare(Path(scratch), preset)
            rates = _data_path(Path(scratch), preset, default_processor(None), args.samples, args.repeats)
    finally:
        torch.set_num_threads(threads)
    return {
        "benchmark": "data-format", "preset": args.preset, "num_images": preset["num_images"],
        "image_size": list(preset["image_size"]), "objects_per_image": list(preset["objects_per_image"]),
        "configs": [f"{d}_{s}" for d, s in preset["configs"]], **sizes, **rates,
        "samples": args.samples, "repeats": args.repeats, "torch_threads": 1,
        "cpu": platform.processor() or platform.machine(),
    }


def _prepare(scratch: Path, preset: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    from lavt_hf.scripts.prepare_refcoco import prepare_refcoco
    from lavt_hf.training.data import load_refer_dataset
    from lavt_hf.training.data.synthetic import generate_synthetic_refer

    for dataset, split_by in preset["configs"]:  # one seed: every configuration over the same image files
        generate_synthetic_refer(scratch / "refer", scratch / "images", num_images=preset["num_images"], seed=0,
                                 image_size=preset["image_size"], dataset=dataset, split_by=split_by,
                                 objects_per_image=preset["objects_per_image"])
    prepared = prepare_refcoco(scratch / "refer", scratch / "images", scratch / "prepared")
    image_dir = scratch / "images" / "train2014"
    objects, used = 0, set()
    per_object_image_bytes = 0
    for dataset, split_by in preset["configs"]:
        for split in ("train", "val", "testA", "testB", "test"):
            try:
                rows = load_refer_dataset(scratch / "refer", f"{dataset}_{split_by}", split, images_root=image_dir)
            except ValueError:  # a split the scheme does not have
                continue
            for image in rows.cast_column("image", rows.features["image"].__class__(decode=False))["image"]:
                objects += 1
                used.add(image["path"])
                per_object_image_bytes += Path(image["path"]).stat().st_size
    image_bytes = sum(Path(path).stat().st_size for path in used)
    table_bytes = sum(p.stat().st_size for p in (prepared / "images").glob("*.parquet"))
    annotation_bytes = sum(p.stat().st_size for p in (prepared / "data").rglob("*.parquet"))
    total = sum(p.stat().st_size for p in prepared.rglob("*") if p.is_file())
    return prepared, {
        "objects": objects, "distinct_images": len(used), "distinct_image_bytes": image_bytes,
        "prepared_bytes": total, "image_table_bytes": table_bytes, "annotation_bytes": annotation_bytes,
        "size_ratio": round(total / image_bytes, 4),
        "embedded_format_bytes": annotation_bytes + per_object_image_bytes,
        "embedded_format_ratio": round((annotation_bytes + per_object_image_bytes) / image_bytes, 4),
    }


def _data_path(scratch: Path, preset: dict[str, Any], processor: Any, samples: int, repeats: int
               ) -> dict[str, Any]:
    """Samples per second of decode + mask + resize + normalise + tokenize, read from the prepared folder
    (map-style and streamed) and, as the baseline measured in the same run, from the raw image files; the
    passes alternate so that a busy machine slows each alike."""
    from datasets import Image as ImageFeature

    from lavt_hf.training.data import (
        ReferTrainDataset,
        choose_sentence_index,
        decode_mask,
        load_refer_dataset,
    )
    from lavt_hf.training.data.views import open_rgb

    dataset, split_by = preset["configs"][0]
    name = f"{dataset}_{split_by}"
    map_style = ReferTrainDataset(load_refer_dataset(scratch / "prepared", name, "train"), processor, seed=0)
    raw_files = ReferTrainDataset(load_refer_dataset(scratch / "refer", name, "train", images_root=scratch / "images"),
                                  processor, seed=0)
    streamed = load_refer_dataset(scratch / "prepared", name, "train", streaming=True).cast_column(
        "image", ImageFeature(decode=False))
    count = min(samples, len(map_style))
    kwargs = {"apply_exif_orientation": False, "input_data_format": "channels_last", "return_tensors": "pt"}

    def streaming_pass() -> None:
        for index, row in enumerate(streamed.take(count)):
            sentence = row["sentences"][choose_sentence_index(0, 0, index, len(row["sentences"]))]
            processor(images=[open_rgb(row["image"])], text=[sentence], masks=[decode_mask(row["mask"])],
                      **kwargs)

    passes = {
        "raw_files": lambda: [raw_files[i] for i in range(count)],
        "map_style": lambda: [map_style[i] for i in range(count)],
        "streaming": streaming_pass,
    }
    for index in range(min(8, count)):  # warm-up: tokenizer caches, allocator
        map_style[index]
    rates: dict[str, list[float]] = {key: [] for key in passes}
    for _ in range(repeats):
        for key, one_pass in passes.items():
            start = time.perf_counter()
            one_pass()
            rates[key].append(count / (time.perf_counter() - start))
    median = {key: statistics.median(values) for key, values in rates.items()}
    return {
        "data_path_config": name,
        **{f"{key}_samples_per_s_per_core": round(rate, 1) for key, rate in median.items()},
        "map_style_over_raw_files": round(median["map_style"] / median["raw_files"], 3),
        "streaming_over_raw_files": round(median["streaming"] / median["raw_files"], 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
