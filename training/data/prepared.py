# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Reader of the project's prepared parquet (written by ``scripts/prepare_refcoco.py``), from a local folder or
a Hub dataset id, into the project's row format.

A local folder is read with the ``parquet`` builder of ``datasets`` and its files named explicitly, so the
cache is keyed by the files' paths and modification times and a folder always loads what is on disk now.
(``load_dataset(folder, config)`` keys its cache by the folder's base name and the configuration only: after
``a/refcoco-parquet``, ``b/refcoco-parquet`` would give a's rows, and a folder prepared again in place its old
rows.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Image as ImageFeature
from huggingface_hub import DatasetCard

from .refer import FEATURES, SENT_COLUMN

PREPARE_AGAIN = "prepare it again with lavt-prepare-refcoco --overwrite"


def load_prepared(
    source: str | Path, name: str | None, split: str, sentence_field: str, streaming: bool,
    load_kwargs: dict[str, Any],
) -> datasets.Dataset | datasets.IterableDataset:
    """One split of prepared parquet with ``sentences`` holding the ``sentence_field`` texts.

    Raises ValueError naming the folder (or Hub id), configuration and split for: an unknown configuration or
    split, a split whose files are missing or hold no rows, a ref without sentences (with its ref id and file),
    and a folder prepared before the raw texts were stored when ``sentence_field`` is ``raw``.
    """
    path = Path(source)
    if path.is_dir():
        name = _config_name(path, name)
        files = split_files(path, name, split)
        where = f"{path} ({name}, split {split})"
        if not sum(pq.ParquetFile(f).metadata.num_rows for f in files):  # `datasets` would only say "no data"
            raise ValueError(f"{where} has no rows; {PREPARE_AGAIN}")
        loaded = datasets.load_dataset("parquet", data_files={split: [str(f) for f in files]}, split=split,
                                       streaming=streaming, **load_kwargs)
    else:
        source, files = str(source), None
        available = datasets.get_dataset_split_names(source, name, **load_kwargs)
        if split not in available:
            raise ValueError(f"split {split!r} does not exist in {source} ({name}); available splits: {available}")
        where = f"{source} ({name}, split {split})"
        loaded = datasets.load_dataset(source, name, split=split, streaming=streaming, **load_kwargs)
    loaded = select_sentences(loaded, sentence_field, where)
    if not streaming:
        check_rows(loaded, where, files)
    return loaded


def _card_configs(folder: Path) -> list[dict]:
    readme = folder / "README.md"
    configs = DatasetCard.load(readme).data.configs if readme.is_file() else None
    if not configs:
        raise ValueError(f"{folder} is not a prepared dataset folder (no README.md whose metadata maps "
                         "configurations to data files); make one with lavt-prepare-refcoco")
    return configs


def _config_name(folder: Path, name: str | None) -> str:
    """The configuration asked for, or the only one the folder has."""
    names = [c["config_name"] for c in _card_configs(folder)]
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


def select_sentences(
    dataset: datasets.Dataset | datasets.IterableDataset, sentence_field: str, where: str
) -> datasets.Dataset | datasets.IterableDataset:
    """The row format: ``sentences`` holds the ``sentence_field`` texts (stored: raw in ``sentences``, the
    normalised ones in ``sentences_sent``)."""
    columns = dataset.column_names or list(dataset.features or {})
    if SENT_COLUMN not in columns:
        if sentence_field == "raw":
            raise ValueError(
                f"{where} was prepared before the raw texts were stored: its sentences are the normalised 'sent' "
                "texts, but the original reads what the annotators typed "
                "(docs/data.md, section 'The text of a sentence: raw or sent'). Prepare it again "
                "(lavt-prepare-refcoco --refer_root ... --images_root ... --output_dir ... --overwrite), or read "
                "the normalised texts knowingly with sentence_field='sent' (--sentence_field sent)"
            )
        return dataset
    if sentence_field == "raw":
        return dataset.select_columns(list(FEATURES))
    if isinstance(dataset, datasets.Dataset):
        return dataset.remove_columns("sentences").rename_column(SENT_COLUMN, "sentences").select_columns(list(FEATURES))
    # A streamed rename is a map, which would decode every image and encode it again (other bytes): rename with
    # the images left undecoded.
    image = dataset.features["image"]
    renamed = (dataset.cast_column("image", ImageFeature(decode=False)).select_columns(
        [c for c in columns if c != "sentences"]).rename_column(SENT_COLUMN, "sentences"))
    return renamed.cast_column("image", image).select_columns(list(FEATURES))


def check_rows(dataset: datasets.Dataset, where: str, files: list[Path] | None) -> None:
    """A split without rows, or a ref without sentences, fails here instead of deep in training or evaluation."""
    if len(dataset) == 0:
        raise ValueError(f"{where} has no rows; {PREPARE_AGAIN}")
    counts = pc.fill_null(pc.list_value_length(dataset.data.column("sentences")), 0)
    empty = pc.indices_nonzero(pc.equal(counts, 0)).to_pylist()
    if empty:
        first = empty[0]
        ref_id = dataset.data.column("ref_id")[first].as_py()
        file = f" (file {_file_of_row(files, first)})" if files else ""
        raise ValueError(f"{len(empty)} object(s) of {where} have no sentences, first ref_id {ref_id}{file}; "
                         f"every object needs an expression: fix the source and {PREPARE_AGAIN}")


def _file_of_row(files: list[Path], index: int) -> Path:
    """The file holding row ``index`` of the concatenation of ``files``."""
    for path in files:
        rows = pq.ParquetFile(path).metadata.num_rows
        if index < rows:
            return path
        index -= rows
    raise IndexError(index)
