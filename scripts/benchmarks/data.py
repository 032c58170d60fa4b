# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The data benchmarks, on one torch thread (samples per second per core) over synthetic refer data.

`data`: the training transform (row read, JPEG decode, RLE decode, resize to 480x480, normalise, tokenize), end to
end and stage by stage. `data-format`: the prepared format's size against the bytes of the distinct images it
holds, and the data path read from it (map-style and streamed) against the raw image files. Its presets: `demo` is
the embedded demo's data; `refcoco-like` has RefCOCO's 2.5 objects per image and three configurations over the same
images, as the real family shares COCO's. `embedded_format_bytes` estimates the format before the image table,
which stored each object's image in its row (the annotations plus one copy of the image per object).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from lavt_hf.cli import positive_int

from .common import default_processor, time_workloads

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {"num_images": 1000, "image_size": (160, 120), "objects_per_image": (3, 5),
             "configs": [("refcoco", "unc")]},
    "refcoco-like": {"num_images": 300, "image_size": (640, 480), "objects_per_image": (2, 3),
                     "configs": [("refcoco", "unc"), ("refcoco+", "unc"), ("refcocog", "umd")]},
}
# The processor's options for an image decoded as an array (data-loader views pass these too).
IMAGE_KWARGS = {"apply_exif_orientation": False, "input_data_format": "channels_last", "return_tensors": "pt"}


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def rates(passes: dict[str, Callable[[], object]], count: int, repeats: int) -> dict[str, float]:
    """Samples per second of each pass over `count` samples: the median of `repeats`, passes interleaved."""
    seconds = time_workloads(passes, repeats, 0, torch.device("cpu"))
    return {name: count / statistics.median(times) for name, times in seconds.items()}


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num_images", type=positive_int, default=24, help="synthetic images to generate (24)")
    parser.add_argument("--image_width", type=positive_int, default=640, help="synthetic image width (COCO-like 640)")
    parser.add_argument("--image_height", type=positive_int, default=480, help="synthetic image height (COCO-like 480)")
    parser.add_argument("--samples", type=positive_int, default=100, help="samples per timed pass (100)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed passes; the median is reported (5)")


def run_data(args: argparse.Namespace) -> dict[str, Any]:
    """The training transform end to end (samples/s) and each of its stages (ms per sample)."""
    from lavt_hf.training.data import ReferTrainDataset, decode_mask, load_refer_dataset
    from lavt_hf.training.data.synthetic import generate_synthetic_refer
    from lavt_hf.training.data.views import open_image

    processor = default_processor()
    with one_torch_thread(), tempfile.TemporaryDirectory() as scratch:
        root, images_root = Path(scratch) / "refer", Path(scratch) / "images"
        generate_synthetic_refer(root, images_root, num_images=args.num_images, seed=0,
                                 image_size=(args.image_width, args.image_height))
        view = ReferTrainDataset(load_refer_dataset(root, "refcoco_unc", "train", images_root=images_root),
                                 processor, seed=0)
        count = min(args.samples, len(view))
        rows = [view.rows[i] for i in range(count)]
        images = [open_image(row["image"]) for row in rows]
        masks = [decode_mask(row["mask"]) for row in rows]
        for index in range(min(8, count)):  # warm-up: tokenizer caches, allocator
            view[index]
        stages = {
            "read_row": lambda i: view.rows[i],
            "decode_jpeg": lambda i: open_image(rows[i]["image"]),
            "decode_rle": lambda i: decode_mask(rows[i]["mask"]),
            "resize_normalize_image_and_mask": lambda i: processor(images=[images[i]], masks=[masks[i]],
                                                                   **IMAGE_KWARGS),
            "tokenize": lambda i: processor(text=[rows[i]["sentences"][0]], return_tensors="pt"),
        }
        measured = rates({"transform": lambda: [view[i] for i in range(count)],
                          **{name: (lambda stage=stage: [stage(i) for i in range(count)])
                             for name, stage in stages.items()}}, count, args.repeats)
        output_size = [int(v) for v in view[0]["pixel_values"].shape[1:]]
        threads = torch.get_num_threads()
    return {
        "benchmark": "data", "samples_per_s_per_core": round(measured["transform"], 1),
        "ms_per_sample": round(1e3 / measured["transform"], 3),
        "stage_ms": {name: round(1e3 / measured[name], 3) for name in stages},
        "input_size": [int(v) for v in images[0].shape[:2]], "output_size": output_size, "samples": count,
        "repeats": args.repeats, "torch_threads": threads, "source": "synthetic",
        "cpu": platform.processor() or platform.machine(),
    }


def add_data_format_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="synthetic data (demo)")
    parser.add_argument("--num_images", type=positive_int, default=None, help="override the preset's number of images")
    parser.add_argument("--samples", type=positive_int, default=100, help="samples per timed pass of the data path")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed passes; the median is reported (3)")


def run_data_format(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, prepare, measure sizes (bytes) and the data path (samples/s per core)."""
    preset = {**PRESETS[args.preset], **({"num_images": args.num_images} if args.num_images else {})}
    with one_torch_thread(), tempfile.TemporaryDirectory() as scratch:
        sizes = _prepare(Path(scratch), preset)
        path_rates = _data_path(Path(scratch), preset, args.samples, args.repeats)
    return {
        "benchmark": "data-format", "preset": args.preset, "num_images": preset["num_images"],
        "image_size": list(preset["image_size"]), "objects_per_image": list(preset["objects_per_image"]),
        "configs": [f"{d}_{s}" for d, s in preset["configs"]], **sizes, **path_rates,
        "samples": args.samples, "repeats": args.repeats, "torch_threads": 1,
        "cpu": platform.processor() or platform.machine(),
    }


def _prepare(scratch: Path, preset: dict[str, Any]) -> dict[str, Any]:
    from lavt_hf.scripts.prepare_refcoco import prepare_refcoco
    from lavt_hf.training.data import load_refer_dataset
    from lavt_hf.training.data.synthetic import generate_synthetic_refer

    for dataset, split_by in preset["configs"]:  # one seed: every configuration over the same image files
        generate_synthetic_refer(scratch / "refer", scratch / "images", num_images=preset["num_images"], seed=0,
                                 image_size=preset["image_size"], dataset=dataset, split_by=split_by,
                                 objects_per_image=preset["objects_per_image"])
    prepared = prepare_refcoco(scratch / "refer", scratch / "images", scratch / "prepared")
    image_dir = scratch / "images" / "train2014"
    objects, used, per_object_image_bytes = 0, set(), 0
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
    annotation_bytes = sum(p.stat().st_size for p in (prepared / "data").rglob("*.parquet"))
    total = sum(p.stat().st_size for p in prepared.rglob("*") if p.is_file())
    return {
        "objects": objects, "distinct_images": len(used), "distinct_image_bytes": image_bytes,
        "prepared_bytes": total, "annotation_bytes": annotation_bytes, "size_ratio": round(total / image_bytes, 4),
        "image_table_bytes": sum(p.stat().st_size for p in (prepared / "images").glob("*.parquet")),
        "embedded_format_bytes": annotation_bytes + per_object_image_bytes,
        "embedded_format_ratio": round((annotation_bytes + per_object_image_bytes) / image_bytes, 4),
    }


def _data_path(scratch: Path, preset: dict[str, Any], samples: int, repeats: int) -> dict[str, Any]:
    """Decode + mask + resize + normalise + tokenize read from the prepared folder (map-style and streamed) and,
    as the baseline in the same run, from the raw image files."""
    from datasets import Image as ImageFeature

    from lavt_hf.training.data import (
        ReferTrainDataset,
        choose_sentence_index,
        decode_mask,
        load_refer_dataset,
    )
    from lavt_hf.training.data.views import open_rgb

    processor = default_processor()
    dataset, split_by = preset["configs"][0]
    name = f"{dataset}_{split_by}"
    map_style = ReferTrainDataset(load_refer_dataset(scratch / "prepared", name, "train"), processor, seed=0)
    raw_files = ReferTrainDataset(load_refer_dataset(scratch / "refer", name, "train", images_root=scratch / "images"),
                                  processor, seed=0)
    streamed = load_refer_dataset(scratch / "prepared", name, "train", streaming=True).cast_column(
        "image", ImageFeature(decode=False))
    count = min(samples, len(map_style))

    def streaming_pass() -> None:
        for index, row in enumerate(streamed.take(count)):
            sentence = row["sentences"][choose_sentence_index(0, 0, index, len(row["sentences"]))]
            processor(images=[open_rgb(row["image"])], text=[sentence], masks=[decode_mask(row["mask"])],
                      **IMAGE_KWARGS)

    for index in range(min(8, count)):  # warm-up: tokenizer caches, allocator
        map_style[index]
    median = rates({"raw_files": lambda: [raw_files[i] for i in range(count)],
                    "map_style": lambda: [map_style[i] for i in range(count)], "streaming": streaming_pass},
                   count, repeats)
    return {
        "data_path_config": name,
        **{f"{key}_samples_per_s_per_core": round(rate, 1) for key, rate in median.items()},
        "map_style_over_raw_files": round(median["map_style"] / median["raw_files"], 3),
        "streaming_over_raw_files": round(median["streaming"] / median["raw_files"], 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
