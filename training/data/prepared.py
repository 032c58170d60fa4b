# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Reader of the project's prepared parquet (written by ``scripts/prepare_refcoco.py``), from a local folder or
a Hub dataset id, into the project's row format.

A local folder is read with the ``parquet`` builder and its files named, so that the cache is keyed by their
paths and times: ``load_dataset(folder, config)`` keys it by the folder's base name, so that after
``a/refcoco-parquet``, ``b/refcoco-parquet`` would give a's rows, and a folder prepared again its old rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, HfFileSystem

from .image_table import IMAGES_CONFIG, PREPARE_AGAIN, join_images, stream_images
from .refer import FEATURES, SENT_COLUMN
from .views import stream_num_rows


def load_prepared(source: str | Path, name: str | None, split: str, sentence_field: str, streaming: bool,
                  load_kwargs: dict[str, Any]) -> datasets.Dataset | datasets.IterableDataset:
    """One split of prepared parquet, ``sentences`` the ``sentence_field`` texts, ``image`` joined.

    Raises:
        ValueError: naming the folder or Hub id, configuration and split: an unknown configuration or split,
            missing files, no rows, a ref without sentences (its ref id and file), no image table, an object
            whose image is not in it (its ref id and image id).
    """
    path = Path(source)
    if path.is_dir():
        name = _config_name(path, name)
        files = split_files(path, name, split)
        where = f"{path} ({name}, split {split})"
        num_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        if not num_rows:  # `datasets` would only say "no data"
            raise ValueError(f"{where} has no rows; {PREPARE_AGAIN}")
        has_table = any(c["config_name"] == IMAGES_CONFIG for c in _card_configs(path))
        loaded = datasets.load_dataset("parquet", data_files={split: [str(f) for f in files]}, split=split,
                                       streaming=streaming, **load_kwargs)
    else:
        source, files = str(source), None
        available = datasets.get_dataset_split_names(source, name, **load_kwargs)
        if split not in available:
            raise ValueError(f"split {split!r} does not exist in {source} ({name}); available splits: {available}")
        where = f"{source} ({name}, split {split})"
        loaded = datasets.load_dataset(source, name, split=split, streaming=streaming, **load_kwargs)
        num_rows = _hub_num_rows(loaded, source, name, split, load_kwargs) if streaming else None
        has_table = IMAGES_CONFIG in datasets.get_dataset_config_names(source, **load_kwargs)
    if not has_table:
        raise ValueError(f"{where} has no image table (configuration {IMAGES_CONFIG!r}, images/*.parquet); upload "
                         f"or copy the whole prepared folder, or {PREPARE_AGAIN}")
    loaded = select_sentences(loaded, sentence_field)
    images = _image_table(path if files else source, where, load_kwargs)
    if not streaming:
        check_rows(loaded, where, files)
        return join_images(loaded, images, where)
    loaded = stream_images(loaded, images, where)
    if num_rows:  # what a streamed training run needs to know its schedule (views.stream_num_rows reads it)
        loaded.info.splits = datasets.SplitDict({split: datasets.SplitInfo(name=split, num_examples=num_rows)})
    return loaded


def _hub_num_rows(stream: datasets.IterableDataset, source: str, name: str | None, split: str,
                  load_kwargs: dict[str, Any]) -> int | None:
    """The rows of a streamed Hub split: from its split info where the card records it, else from the footers
    of its parquet files (a few KiB each, no rows read); None when neither can be read."""
    if recorded := stream_num_rows(stream):
        return recorded
    try:
        builder = datasets.load_dataset_builder(source, name, **load_kwargs)
        files = builder.config.data_files[split]
        hub = HfFileSystem(token=load_kwargs.get("token"))
        total = 0
        for file in files:  # hf://datasets/<id>@<revision>/<path>
            with hub.open(str(file), "rb") as stream:
                total += pq.ParquetFile(stream).metadata.num_rows
        return total
    except (OSError, KeyError, ValueError, TypeError, AttributeError):
        return None


def _image_table(source: str | Path, where: str, load_kwargs: dict[str, Any]) -> datasets.Dataset:
    """The image table (map-style: looked up by image_id) of a prepared folder or Hub id."""
    if isinstance(source, Path):
        try:
            files = split_files(source, IMAGES_CONFIG, "train")
        except ValueError as error:
            raise ValueError(f"the image table of {where} is missing ({error})") from error
        images = datasets.load_dataset("parquet", data_files={"train": [str(f) for f in files]}, split="train",
                                       **load_kwargs)
    else:
        images = datasets.load_dataset(source, IMAGES_CONFIG, split="train", **load_kwargs)
    if not {"image_id", "image"} <= set(images.column_names):
        raise ValueError(f"the image table of {where} has columns {images.column_names}, not image_id and image; "
                         f"{PREPARE_AGAIN}")
    return images


def _card_configs(folder: Path) -> list[dict]:
    readme = folder / "README.md"
    configs = DatasetCard.load(readme).data.configs if readme.is_file() else None
    if not configs:
        raise ValueError(f"{folder} is not a prepared dataset folder (no README.md whose metadata maps "
                         "configurations to data files); make one with lavt-prepare-refcoco, or, for a dataset of "
                         "one's own, name its columns (--image_column, --mask_column, --text_column)")
    return configs


def _config_name(folder: Path, name: str | None) -> str:
    """The configuration asked for, or the only one the folder has (the image table is not one)."""
    names = [c["config_name"] for c in _card_configs(folder) if c["config_name"] != IMAGES_CONFIG]
    if name is None and len(names) == 1:
        return names[0]
    if name not in names:
        raise ValueError(f"{folder} has configurations {names}: pass one of them as config_name "
                         f"(--dataset_config){'' if name is None else f', not {name!r}'}")
    return name


def split_files(folder: Path, name: str, split: str) -> list[Path]:
    """The parquet files of one split of one configuration, as the folder's dataset card maps them."""
    config = next(c for c in _card_configs(folder) if c["config_name"] == name)
    data_files = config.get("data_files") or []
    if isinstance(data_files, str):
        data_files = [{"split": "train", "path": data_files}]
    patterns = {entry["split"]: entry["path"] for entry in data_files}
    if split not in patterns:
        raise ValueError(f"split {split!r} does not exist in {folder} ({name}); available splits: {list(patterns)}")
    wanted = [patterns[split]] if isinstance(patterns[split], str) else list(patterns[split])
    files = sorted({f for pattern in wanted for f in folder.glob(pattern)})
    if not files:
        raise ValueError(f"split {split!r} of {folder} ({name}) has no data files (none match {wanted}); the "
                         f"folder is incomplete: {PREPARE_AGAIN}")
    return files


def select_sentences(dataset: datasets.Dataset | datasets.IterableDataset, sentence_field: str
                     ) -> datasets.Dataset | datasets.IterableDataset:
    """The row format: ``sentences`` holds the ``sentence_field`` texts (stored: raw in ``sentences``, the
    normalised ones in ``sentences_sent``)."""
    columns = dataset.column_names or list(dataset.features or {})
    kept = [c for c in FEATURES if c in columns]  # the rows point at the image table: no `image` yet
    if sentence_field == "raw":
        return dataset.select_columns(kept)
    return dataset.remove_columns("sentences").rename_column(SENT_COLUMN, "sentences").select_columns(kept)


def check_rows(dataset: datasets.Dataset, where: str, files: list[Path] | None) -> None:
    """A split without rows, or a ref without sentences, fails here instead of deep in training or evaluation."""
    if len(dataset) == 0:
        raise ValueError(f"{where} has no rows; {PREPARE_AGAIN}")
    counts = pc.fill_null(pc.list_value_length(dataset.data.column("sentences")), 0)
    empty = pc.indices_nonzero(pc.equal(counts, 0)).to_pylist()
    if empty:
        first, file = empty[0], ""
        ref_id = dataset.data.column("ref_id")[first].as_py()
        if files:  # the file holding that row
            ends = np.cumsum([pq.ParquetFile(f).metadata.num_rows for f in files])
            file = f" (file {files[int(np.searchsorted(ends, first, side='right'))]})"
        raise ValueError(f"{len(empty)} object(s) of {where} have no sentences, first ref_id {ref_id}{file}; "
                         f"every object needs an expression: fix the source and {PREPARE_AGAIN}")
