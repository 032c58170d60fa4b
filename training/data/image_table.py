# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The image table of prepared parquet (each image stored once, the objects pointing at it by ``image_id``)
and its join back into the project's row format. The join copies no image bytes: an object's ``image`` is a
zero-copy slice of the table's memory-mapped column, so a split loads in about the time and memory of its
annotations.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetInfo, IterableDataset
from datasets.table import InMemoryTable

from .refer import FEATURES

IMAGES_CONFIG = "images"  # the image table's configuration in the dataset card (a refer one always has a "_")
PREPARE_AGAIN = "prepare it again with lavt-prepare-refcoco --overwrite"


def image_rows(images: Dataset, where: str) -> dict[int, int]:
    """image_id -> row of the image table; an id stored twice is an error (which copy would be right?)."""
    ids = images.data.column("image_id").to_numpy()
    rows = {int(image_id): row for row, image_id in enumerate(ids)}
    if len(rows) != len(ids):
        counts = np.unique(ids, return_counts=True)
        raise ValueError(f"the image table of {where} holds image_id {int(counts[0][counts[1] > 1][0])} more than "
                         f"once; {PREPARE_AGAIN}")
    return rows


def _image_row_of_objects(image_ids: list[int], ref_ids: list[int], rows: dict[int, int], where: str) -> list[int]:
    """The image table's row of each object; an object whose image is not there is an error naming it."""
    missing = [(ref_id, image_id) for ref_id, image_id in zip(ref_ids, image_ids) if image_id not in rows]
    if missing:
        raise ValueError(f"{len(missing)} object(s) of {where} point at images the image table does not hold, first "
                         f"ref_id {missing[0][0]} (image_id {missing[0][1]}); the image table belongs to another "
                         f"preparation: {PREPARE_AGAIN}")
    return [rows[image_id] for image_id in image_ids]


def join_images(objects: Dataset, images: Dataset, where: str) -> Dataset:
    """The objects (a split's rows without images) with their ``image`` (``FEATURES`` order), sliced from
    the image table ``images`` without a copy.

    Raises:
        ValueError: naming ``where``, the ref_id and the image_id of the first object whose image is missing.
    """
    rows = image_rows(images, where)
    wanted = _image_row_of_objects(objects.data.column("image_id").to_pylist(),
                                   objects.data.column("ref_id").to_pylist(), rows, where)
    column = images.data.column("image")
    # One slice per object over the shared buffers; consecutive image rows become one slice.
    starts = np.asarray(wanted, dtype=np.int64)
    runs = np.split(starts, np.flatnonzero(np.diff(starts) != 1) + 1) if len(starts) else []
    chunks = [chunk for run in runs for chunk in column.slice(int(run[0]), len(run)).chunks]
    joined = pa.chunked_array(chunks, type=column.type)
    table = objects.data.table.append_column("image", joined).select(list(FEATURES))
    # A fingerprint from the inputs': hashing the table would read every image once per object.
    fingerprint = f"{objects._fingerprint}-{images._fingerprint}-joined"[:64]
    return Dataset(InMemoryTable(table), info=DatasetInfo(features=FEATURES), fingerprint=fingerprint)


def stream_images(objects: IterableDataset, images: Dataset, where: str) -> IterableDataset:
    """Streamed objects with their images looked up in the (local, memory-mapped) image table, each object once
    and in order; an object whose image is missing is the error :func:`join_images` gives, when it comes."""
    rows = image_rows(images, where)
    undecoded = images.select_columns(["image"]).cast_column("image", images.features["image"].__class__(decode=False))

    def add_image(batch: dict) -> dict:
        found = _image_row_of_objects(batch["image_id"], batch["ref_id"], rows, where)
        return {"image": [undecoded[row]["image"] for row in found]}

    return objects.map(add_image, batched=True, features=FEATURES).select_columns(list(FEATURES))

