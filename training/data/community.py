# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Adapter for the community parquet layout of RefCOCO (as in ``jxu124/refcoco``): refs and their COCO
annotations in columns (``raw_anns``, ``raw_image_info`` as JSON, ``sentences`` as ``{raw, sent, tokens,
sent_id}``) but no images, read with the COCO train2014 images and the raw reader's mask rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Dataset
from PIL import Image

from .refer import FEATURES, make_row, ordered_splits, resolve_image_dir, sentence_texts

# The community columns this adapter reads.
COMMUNITY_COLUMNS: tuple[str, ...] = (
    "ref_id", "ann_id", "image_id", "category_id", "split", "sentences", "captions", "raw_anns",
    "raw_image_info", "image_path", "bbox",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("ref_id", "ann_id", "image_id", "split", "raw_anns")
EXPECTED_COMMUNITY_LAYOUT = (
    "expected parquet files with columns ref_id, ann_id, image_id, split, raw_anns (COCO annotation as "
    "JSON), sentences or captions, and raw_image_info or image_path; images in "
    "<images_root>/train2014/COCO_train2014_%012d.jpg"
)


def community_parquet_files(source: str | Path) -> list[Path]:
    """The parquet files of a community source: one file, or every parquet file below a folder."""
    source = Path(source)
    if source.is_file():
        return [source]
    files = sorted(source.rglob("*.parquet")) if source.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no parquet files at {source}; {EXPECTED_COMMUNITY_LAYOUT}")
    return files


def is_community_layout(source: str | Path) -> bool:
    """Whether a local path holds community-style parquet (recognised by its ``raw_anns`` column)."""
    try:
        first = community_parquet_files(source)[0]
    except FileNotFoundError:
        return False
    return first.suffix == ".parquet" and "raw_anns" in pq.read_schema(first).names


def _read_split(files: list[Path], split: str) -> list[tuple[Path, pa.Table]]:
    """(file, its rows of ``split``) of every file holding some, so that errors can name the file; an unknown
    split is an error naming the splits there are."""
    names = set(pq.read_schema(files[0]).names)
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing or not {"sentences", "captions"} & names:
        raise ValueError(f"{files[0]} lacks columns {missing or ['sentences/captions']}; {EXPECTED_COMMUNITY_LAYOUT}")
    tables = [(f, pq.read_table(f, columns=[c for c in COMMUNITY_COLUMNS if c in names])) for f in files]
    selected = [(f, table.filter(pc.equal(table["split"], split))) for f, table in tables]
    selected = [(f, table) for f, table in selected if table.num_rows]
    if not selected:
        available = ordered_splits({s for _, table in tables for s in pc.unique(table["split"]).to_pylist()})
        raise ValueError(f"split {split!r} not found in {files[0].parent}; available splits: {available}")
    return selected


def _json(value: object) -> object:
    """Community columns hold either JSON text or the already-parsed value."""
    return json.loads(value) if isinstance(value, str) else value


def _sentences(record: dict, sentence_field: str, source: Path) -> list[str]:
    """Each expression's ``sentence_field`` text, else the captions (what the annotators typed: ``raw`` only)."""
    sentences = _json(record.get("sentences"))
    if sentences or not record.get("captions"):
        return sentence_texts({**record, "sentences": sentences}, sentence_field, source)
    if sentence_field != "raw":
        raise ValueError(f"{source} has captions (the raw texts) but no 'sentences' with the normalised "
                         f"{sentence_field!r} text (ref_id {record['ref_id']}); use sentence_field='raw'")
    return [str(c) for c in record["captions"]]


def _image_info(record: dict, image_dir: Path) -> dict:
    """``{file_name, height, width}`` from ``raw_image_info``, else from ``image_path`` and the file header."""
    info = _json(record.get("raw_image_info")) or {}
    file_name = info.get("file_name") or PurePosixPath(record.get("image_path") or "").name
    file_name = file_name or f"COCO_train2014_{int(record['image_id']):012d}.jpg"
    path = image_dir / file_name
    if not path.is_file():
        raise FileNotFoundError(f"image {path} of image_id {record['image_id']} (ann_id {record['ann_id']}) "
                                f"not found; {EXPECTED_COMMUNITY_LAYOUT}")
    if "height" not in info or "width" not in info:
        with Image.open(path) as image:
            info["width"], info["height"] = image.size
    return {"file_name": file_name, "height": int(info["height"]), "width": int(info["width"]), "path": path}


def community_rows(table: pa.Table, image_dir: Path, mask_rule: str = "original", sentence_field: str = "raw",
                   source: Path | str = "community parquet") -> Iterator[dict]:
    """Rows of the project's format (images by path) from a table of community records read from ``source``."""
    for record in table.to_pylist():
        annotation = dict(_json(record["raw_anns"]))
        if "bbox" not in annotation and record.get("bbox") is not None:
            annotation["bbox"] = record["bbox"]
        ref = {key: record[key] for key in ("ref_id", "ann_id", "image_id", "split")}
        ref["category_id"] = record.get("category_id") or annotation["category_id"]
        info = _image_info(record, image_dir)
        sentences = _sentences(record, sentence_field, Path(source))
        yield make_row(ref, annotation, info, str(info["path"]), sentences, mask_rule, source)


def load_community_refer(source: str | Path, images_root: str | Path, split: str = "train",
                         mask_rule: str = "original", sentence_field: str = "raw") -> Dataset:
    """One split of a community parquet source as a ``datasets.Dataset`` of the project's row format."""
    image_dir = resolve_image_dir(images_root)
    rows = [row for path, table in _read_split(community_parquet_files(source), split)
            for row in community_rows(table, image_dir, mask_rule, sentence_field, path)]
    return Dataset.from_list(rows, features=FEATURES)
