# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Referring-segmentation data: readers of the raw refer layout, the project's parquet format, the
community parquet layout and datasets of one's own, and the training / evaluation views.
:func:`load_refer_dataset` is the one entry point: whatever the source, it returns rows of the same format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from modeling_lavt.validation import is_hub_repo_id

from .community import is_community_layout, load_community_refer
from .prepared import load_prepared
from .refer import (
    FEATURES,
    SENTENCE_FIELDS,
    RawRefer,
    available_configs,
    check_sentence_field,
    decode_mask,
    encode_mask,
    parse_config_name,
    segmentation_mask,
)
from .user import is_user_dataset, load_user_dataset, rows_from_dataset
from .views import (
    ReferEvalDataset,
    ReferEvalStream,
    ReferTrainDataset,
    ReferTrainStream,
    collate,
    stream_num_rows,
)

LAYOUTS: tuple[str, ...] = ("auto", "refer", "parquet", "community", "user")


def detect_layout(source: str | Path, columns_named: bool = False) -> str:
    """``refer`` for a folder with ``<dataset>/refs(...).p`` or ``grefs(...).json``, ``community`` for parquet
    with ``raw_anns`` columns, ``user`` for a dataset of one's own (``columns_named``, an
    ``expressions.jsonl`` folder, or a card without prepared parquet's ``mask_rule``), else ``parquet``."""
    path = Path(source)
    if not path.exists() and not is_hub_repo_id(str(source)):
        raise FileNotFoundError(f"{source} is neither an existing local path nor a Hub dataset id")
    if path.is_dir() and available_configs(path):
        return "refer"
    if path.exists() and is_community_layout(path):
        return "community"
    return "user" if columns_named or is_user_dataset(source) else "parquet"


def streaming_problem(source: str | Path) -> str | None:
    """Why ``source`` cannot be streamed, or None: the raw refer and community layouts are read whole into
    memory first, so a stream of them would only hide that cost."""
    layout = detect_layout(source)
    if layout in ("parquet", "user"):
        return None
    what = "a raw refer folder" if layout == "refer" else "community parquet"
    return (f"{source} is {what}, which is read whole into memory and cannot stream; drop --streaming, or "
            "prepare it with lavt-prepare-refcoco and stream the prepared folder")


def load_refer_dataset(
    source: str | Path, config_name: str | None = None, split: str = "train", *,
    images_root: str | Path | None = None, layout: str = "auto", mask_rule: str | None = None,
    sentence_field: str = "raw", streaming: bool = False, image_column: str | None = None,
    mask_column: str | None = None, text_column: str | None = None, **load_kwargs: Any,
) -> datasets.Dataset | datasets.IterableDataset:
    """One split of a referring-segmentation dataset, in the project's row format.

    Args:
        source: a raw refer root (``<source>/refcoco/refs(unc).p`` ..., gRefCOCO's
            ``<source>/grefcoco/grefs(unc).json``), a folder or Hub id of prepared parquet
            (``scripts/prepare_refcoco.py``), community parquet (a file or folder, e.g. ``jxu124/refcoco``),
            or a dataset of one's own: a Hub id or folder that ``datasets`` loads, or a folder with
            ``images/``, ``masks/`` and ``expressions.jsonl`` (docs/data.md, "Your own data").
        config_name: ``<dataset>_<split_by>`` such as ``refcoco_unc`` or ``grefcoco_unc``, optional when the
            source has one; ignored for community parquet; for one's own data, its ``datasets`` configuration.
        split: ``train``, ``val``, ``testA``, ``testB`` or ``test``, as the source has them.
        images_root: the COCO folder holding ``train2014/`` (raw refer and community layouts only).
        layout: ``auto`` detects it; or ``refer``, ``parquet``, ``community``, ``user``.
        mask_rule: ``original`` (default; pixels covered by exactly one polygon) or ``union``; prepared
            parquet has its masks made at preparation time.
        sentence_field: ``raw`` (default: what the annotator typed, which the original tokenizes) or ``sent``
            (the refer toolkit's normalised text); a dataset of one's own has only ``raw``.
        streaming: return an ``IterableDataset`` instead of a ``Dataset``.
        image_column, mask_column, text_column: the columns of a dataset of one's own (default ``image``,
            ``mask``, ``sentences``); naming one reads the source as one's own.
        load_kwargs: passed to ``datasets.load_dataset`` for the parquet and user layouts (``revision``, ...).

    Raises:
        ValueError: naming the ref id and file, for data that would fail later or give wrong numbers: a ref
            without sentences, an incomplete ``instances.json``, an empty segmentation, a split without rows,
            prepared parquet without the sentence text or whose image table lacks an object's image; for a
            dataset of one's own, the row and problem (``load_user_dataset``).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {LAYOUTS}")
    check_sentence_field(sentence_field)
    columns = {"image_column": image_column, "mask_column": mask_column, "text_column": text_column}
    named = sorted(k for k, v in columns.items() if v is not None)
    layout = detect_layout(source, bool(named)) if layout == "auto" else layout
    if named and layout != "user":
        raise ValueError(f"{named} name the columns of a dataset of one's own; {source} is in the {layout} layout, "
                         "whose columns are fixed: drop them")
    if layout == "user":
        if images_root is not None:
            raise ValueError(f"{source} is a dataset of one's own, which names its images: drop images_root "
                             "(--images_root), which is for the raw refer and community layouts")
        if sentence_field != "raw":
            raise ValueError(f"{source} is a dataset of one's own, with one text per expression (read as 'raw'); "
                             f"sentence_field {sentence_field!r} applies to the refer datasets")
        return load_user_dataset(source, config_name, split, mask_rule=mask_rule or "original",
                                 streaming=streaming, **columns, **load_kwargs)
    if layout == "parquet":
        if mask_rule not in (None, "original"):
            raise ValueError("prepared parquet stores masks made at preparation time; re-run the preparation "
                             "with --mask_rule to change the rule")
        return load_prepared(source, config_name, split, sentence_field, streaming, load_kwargs)
    if images_root is None:
        raise ValueError(f"the {layout} layout has no images: give images_root (the folder holding train2014/)")
    rule = mask_rule or "original"
    if layout == "refer":
        found = available_configs(source)
        if config_name is None and len(found) != 1:
            raise ValueError(f"{source} has configurations {found}: pass config_name")
        dataset, split_by = parse_config_name(config_name or found[0])
        refer = RawRefer(source, images_root, dataset, split_by)
        loaded = datasets.Dataset.from_list(list(refer.rows(split, rule, sentence_field)), features=FEATURES)
    else:
        loaded = load_community_refer(source, images_root, split, rule, sentence_field)
    return loaded.to_iterable_dataset() if streaming else loaded


__all__ = [
    "FEATURES", "SENTENCE_FIELDS", "ReferEvalDataset", "ReferEvalStream", "ReferTrainDataset",
    "ReferTrainStream", "available_configs", "collate", "decode_mask", "detect_layout", "encode_mask",
    "load_refer_dataset", "rows_from_dataset", "segmentation_mask", "stream_num_rows", "streaming_problem",
]
