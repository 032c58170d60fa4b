# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""`data-format`: the prepared format's size against the bytes of the distinct images it holds, and the training
data path (decode, mask, resize to 480x480, normalise, tokenize; one torch thread: samples per second per core)
read from it, map-style and streamed, against the raw image files, on synthetic refer data. Presets: `demo` is
the demo's data; `refcoco-like` has RefCOCO's 2.5 objects per image and three configurations over the same
640x480 images, as the real family shares COCO's. `embedded_format_bytes`: each object's image in its row."""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from lavt_hf.cli import positive_int

from .common import default_processor, hardware_record, time_workloads

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {"num_images": 1000, "image_size": (160, 120), "objects_per_image": (3, 5),
             "configs": [("refcoco", "unc")]},
    "refcoco-like": {"num_images": 300, "image_size": (640, 480), "objects_per_image": (2, 3),
                     "configs": [("refcoco", "unc"), ("refcoco+", "unc"), ("refcocog", "umd")]},
}


def add_data_format_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="synthetic data (demo)")
    parser.add_argument("--num_images", type=positive_int, default=None, help="override the preset's number of images")
    parser.add_argument("--samples", type=positive_int, default=100, help="samples per timed pass of the data path")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed passes; the median is reported (3)")


def run_data_format(args: argparse.Namespace) -> dict[str, Any]:
    """Prepared parquet: its size against its distinct images, and the data path read from it.

    Generates and prepares the data, then measures sizes (bytes) and the data path (samples/s per core)."""
    preset = {**PRESETS[args.preset], **({"num_images": args.num_images} if args.num_images else {})}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            sizes = _prepare(Path(scratch), preset)
            path_rates = _data_path(Path(scratch), preset, args.samples, args.repeats)
    finally:
        torch.set_num_threads(threads)
    return {
        "benchmark": "data-format", "preset": args.preset, "num_images": preset["num_images"],
        "image_size": list(preset["image_size"]), "objects_per_image": list(preset["objects_per_image"]),
        "configs": [f"{d}_{s}" for d, s in preset["configs"]], **sizes, **path_rates,
        "samples": args.samples, "repeats": args.repeats, "torch_threads": 1,
        **hardware_record(torch.device("cpu")),
    }


def _prepare(scratch: Path, preset: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from lavt_hf.scripts.prepare_refcoco import prepare_refcoco
    from lavt_hf.training.data.synthetic import generate_synthetic_refer

    for dataset, split_by in preset["configs"]:  # one seed: every configuration over the same image files
        generate_synthetic_refer(scratch / "refer", scratch / "images", num_images=preset["num_images"], seed=0,
                                 image_size=preset["image_size"], dataset=dataset, split_by=split_by,
                                 objects_per_image=preset["objects_per_image"])
    prepared = prepare_refcoco(scratch / "refer", scratch / "images", scratch / "prepared")
    images = pq.read_table(prepared / "images").to_pydict()  # the image files' bytes, each image once
    sizes = dict(zip(images["image_id"], (len(image["bytes"]) for image in images["image"])))
    object_images = pq.read_table(prepared / "data", columns=["image_id"])["image_id"].to_pylist()
    image_bytes = sum(sizes[image_id] for image_id in set(object_images))
    per_object_image_bytes = sum(sizes[image_id] for image_id in object_images)
    annotation_bytes = sum(p.stat().st_size for p in (prepared / "data").rglob("*.parquet"))
    total = sum(p.stat().st_size for p in prepared.rglob("*") if p.is_file())
    return {
        "objects": len(object_images), "distinct_images": len(set(object_images)),
        "distinct_image_bytes": image_bytes,
        "prepared_bytes": total, "annotation_bytes": annotation_bytes, "size_ratio": round(total / image_bytes, 4),
        "image_table_bytes": sum(p.stat().st_size for p in (prepared / "images").glob("*.parquet")),
        "embedded_format_bytes": annotation_bytes + per_object_image_bytes,
        "embedded_format_ratio": round((annotation_bytes + per_object_image_bytes) / image_bytes, 4),
    }


def _data_path(scratch: Path, preset: dict[str, Any], samples: int, repeats: int) -> dict[str, Any]:
    """The data path from the prepared folder (map-style and streamed) and, as baseline, the raw files."""
    from lavt_hf.training.data import load_refer_dataset
    from lavt_hf.training.data.views import ReferTrainDataset, ReferTrainStream

    processor = default_processor()
    name = "_".join(preset["configs"][0])
    map_style = ReferTrainDataset(load_refer_dataset(scratch / "prepared", name, "train"), processor, seed=0)
    raw_files = ReferTrainDataset(load_refer_dataset(scratch / "refer", name, "train", images_root=scratch / "images"),
                                  processor, seed=0)
    stream = load_refer_dataset(scratch / "prepared", name, "train", streaming=True)
    streamed = ReferTrainStream(stream, processor)
    count = min(samples, len(map_style))

    for index in range(min(8, count)):  # warm-up: tokenizer caches, allocator
        map_style[index]
    seconds = time_workloads({"raw_files": lambda: [raw_files[i] for i in range(count)],
                              "map_style": lambda: [map_style[i] for i in range(count)],
                              "streaming": lambda: list(itertools.islice(streamed, count))},
                             repeats, 0, torch.device("cpu"))  # passes interleaved: a busy machine slows each alike
    median = {key: count / statistics.median(values) for key, values in seconds.items()}
    return {
        "data_path_config": name,
        **{f"{key}_samples_per_s_per_core": round(rate, 1) for key, rate in median.items()},
        "map_style_over_raw_files": round(median["map_style"] / median["raw_files"], 3),
        "streaming_over_raw_files": round(median["streaming"] / median["raw_files"], 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
