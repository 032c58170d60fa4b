# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Adapter for a dataset of one's own: any ``datasets`` dataset with an image, a mask and a text column, or a
folder made by hand (``images/``, ``masks/`` and ``expressions.jsonl``), mapped onto the project's row format.

A mask is a one-channel image (0/1 or 0/255), a COCO RLE or COCO polygons (with the refer reader's
``mask_rule``); the text one string or a list. ``no_target`` (default False) marks an expression naming
nothing: its mask, and only its, is empty. Ids the data lacks are made: ``ref_id`` the row's index in its
split (a folder's: the line number), ``ann_id`` the ``ref_id``, ``image_id`` from the image file's bytes
(equal images share it), ``category_id`` 0, ``bbox`` the mask's box.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets import Features, List, Value
from datasets import Image as ImageFeature
from datasets.exceptions import DatasetGenerationError
from huggingface_hub import DatasetCard
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

from .refer import FEATURES, SENT_COLUMN, check_segmentation, encode_mask, ordered_splits, segmentation_mask

EXPRESSIONS_FILE = "expressions.jsonl"
# The column names looked for when the user names none (the project's own).
DEFAULT_COLUMNS = {"image_column": "image", "mask_column": "mask", "text_column": "sentences"}
COLUMN_HELP = {
    "image_column": "a dataset of one's own: its image column (default: image)",
    "mask_column": "a dataset of one's own: its mask column, of images, COCO RLE or COCO polygons (default: mask)",
    "text_column": "a dataset of one's own: its expression column, a string or a list (default: sentences)",
}
NO_TARGET_COLUMN = "no_target"
# Ids and fields kept from the data when it has them; synthesised otherwise (see the module docstring).
ID_COLUMNS = ("ref_id", "ann_id", "image_id", "category_id")
FOLDER_LAYOUT = (
    f"expected a folder with images/, masks/ and {EXPRESSIONS_FILE} holding one JSON object per line: "
    '{"image": "<file in images/>", "mask": "<file in masks/>", "sentences": ["..."], "split": "train"} '
    '(optional "no_target": true for an expression that names nothing, with an empty mask)'
)


def add_column_arguments(parser: argparse.ArgumentParser) -> None:
    """--image_column, --mask_column, --text_column on a command line."""
    for option, help_text in COLUMN_HELP.items():
        parser.add_argument(f"--{option}", default=None, help=help_text)


def is_expressions_folder(source: str | Path) -> bool:
    return (Path(source) / EXPRESSIONS_FILE).is_file()


def is_user_dataset(source: str | Path) -> bool:
    """Whether a folder or Hub id (not raw refer or community) is a dataset of one's own rather than prepared
    parquet: an ``expressions.jsonl`` folder, or a card without the ``mask_rule`` lavt-prepare-refcoco writes.
    A local folder without a card stays prepared parquet (and is refused with that reason)."""
    path = Path(source)
    if path.is_dir():
        if is_expressions_folder(path):
            return True
        readme = path / "README.md"
        return readme.is_file() and "mask_rule" not in DatasetCard.load(readme).data.to_dict()
    try:
        card = DatasetCard.load(str(source), repo_type="dataset")
    except EntryNotFoundError as error:  # no card: not pushed by lavt-prepare-refcoco; offline, not cached:
        return not isinstance(error, LocalEntryNotFoundError)  # leave it to the prepared reader's messages
    except OSError:
        return False
    return "mask_rule" not in card.data.to_dict()


def load_user_dataset(
    source: str | Path, config_name: str | None = None, split: str = "train", *, image_column: str | None = None,
    mask_column: str | None = None, text_column: str | None = None, mask_rule: str = "original",
    streaming: bool = False, **load_kwargs: Any,
) -> datasets.Dataset | datasets.IterableDataset:
    """One split of a dataset of one's own, in the project's row format: a folder holding
    ``expressions.jsonl`` (its lines of that ``split``), or anything ``datasets.load_dataset`` loads (with
    ``config_name`` and ``load_kwargs``); the columns and ``mask_rule`` as for :func:`load_refer_dataset`.
    Streamed rows are checked as they are read (a folder's first).

    Raises:
        ValueError: naming the row, before any work on a map-style dataset: a missing column, a mask of
            another size than its image, not binary, empty but not ``no_target`` (or not empty but
            ``no_target``), an empty expression, an unknown split (with the splits there are).
        FileNotFoundError: an image or mask file an ``expressions.jsonl`` line names is missing.
    """
    if is_expressions_folder(source):
        columns = {"image_column": image_column, "mask_column": mask_column, "text_column": text_column}
        given = {k: v for k, v in columns.items() if v not in (None, DEFAULT_COLUMNS[k])}
        if given:
            raise ValueError(f"{source} is an {EXPRESSIONS_FILE} folder, whose columns are fixed "
                             f"(image, mask, sentences); drop {sorted(given)}")
        rows = rows_from_dataset(*_read_expressions(Path(source), split), split=split, mask_rule=mask_rule)
        if not streaming:
            return rows
        stream = rows.to_iterable_dataset()
        stream.info.splits = datasets.SplitDict({split: datasets.SplitInfo(name=split, num_examples=len(rows))})
        return stream
    available = datasets.get_dataset_split_names(str(source), config_name, **load_kwargs)
    if split not in available:
        raise ValueError(f"split {split!r} does not exist in {source}; available splits: {available}")
    try:
        loaded = datasets.load_dataset(str(source), config_name, split=split, streaming=streaming, **load_kwargs)
    except DatasetGenerationError as error:  # its message hides the cause: files of one dataset that disagree
        raise ValueError(f"{source} could not be read as a dataset ({error.__cause__ or error}); every file of "
                         "a dataset needs the same columns and types") from error
    where = f"{source} (split {split})"
    if Path(source).is_dir():  # a folder of one's own most likely lacks (or misnames) its expressions file
        where += f", a folder without {EXPRESSIONS_FILE},"
    return rows_from_dataset(loaded, where, split=split, image_column=image_column,
                             mask_column=mask_column, text_column=text_column, mask_rule=mask_rule)


def rows_from_dataset(
    dataset: datasets.Dataset | datasets.IterableDataset, where: str = "the dataset",
    name_row: Callable[[int, dict], str] | None = None, *, split: str = "train", image_column: str | None = None,
    mask_column: str | None = None, text_column: str | None = None, mask_rule: str = "original",
) -> datasets.Dataset | datasets.IterableDataset:
    """The rows (``FEATURES``) of a dataset with an image, a mask and a text column; ``where`` names it and
    ``name_row(index, record)`` a row in the errors, those of :func:`load_user_dataset`."""
    given = {"image_column": image_column, "mask_column": mask_column, "text_column": text_column}
    columns = {option: given[option] or default for option, default in DEFAULT_COLUMNS.items()}
    image_column, mask_column, text_column = columns.values()
    features = dataset.features or {}
    for option, column in columns.items():
        if column not in features:
            raise ValueError(f"{where} has no column {column!r} (its columns: {sorted(features)}); name the "
                             f"{option.removesuffix('_column')} column with --{option} ({option}=...)")
    if not isinstance(features[image_column], ImageFeature):
        raise ValueError(f"column {image_column!r} of {where} holds {features[image_column]}, not images; cast it "
                         f"(dataset.cast_column({image_column!r}, datasets.Image())) or name the image column")
    for column in {image_column, mask_column}:
        if isinstance(features[column], ImageFeature):  # bytes or paths: decoded here, once
            dataset = dataset.cast_column(column, ImageFeature(decode=False))
    name_row = name_row or (lambda index, record: f"row {index} of {where}")

    def convert(record: dict, index: int) -> dict:
        return _row(record, index, split, name_row(index, record), image_column, mask_column, text_column,
                    mask_rule)

    return dataset.map(convert, with_indices=True, features=FEATURES, remove_columns=list(features))


def _row(record: dict, index: int, split: str, name: str, image_column: str, mask_column: str,
         text_column: str, mask_rule: str) -> dict:
    image = record[image_column]
    data = _file_bytes(image)
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
    except (OSError, SyntaxError, ValueError) as error:
        raise _unreadable("image", name, image, error) from error
    mask = _mask(record[mask_column], height, width, name, mask_rule)
    no_target = _no_target(record.get(NO_TARGET_COLUMN), name)
    if no_target and mask.any():
        raise ValueError(f"{name} is marked no_target but its mask has {int(mask.sum())} pixels; an expression "
                         "that names nothing has an empty mask")
    if not no_target and not mask.any():
        raise ValueError(f"{name} has an empty mask (no pixels); mark the expression no_target if it names "
                         "nothing, else fix the mask")
    ids = {key: int(record[key]) if record.get(key) is not None else None for key in ID_COLUMNS}
    ref_id = index if ids["ref_id"] is None else ids["ref_id"]
    return {
        "image": image, "mask": encode_mask(mask), "sentences": _texts(record[text_column], name),
        "bbox": [float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask)))],
        "ref_id": ref_id, "ann_id": ref_id if ids["ann_id"] is None else ids["ann_id"],
        "image_id": image_number(data) if ids["image_id"] is None else ids["image_id"],
        "category_id": ids["category_id"] or 0, "split": split, NO_TARGET_COLUMN: no_target,
    }


def _file_bytes(value: dict) -> bytes:
    """The file of an undecoded ``datasets.Image`` value: its bytes, or read from its path."""
    return value["bytes"] if value.get("bytes") is not None else Path(value["path"]).read_bytes()


def _unreadable(what: str, name: str, value: dict, error: Exception) -> ValueError:
    reason = "not an image file PIL can read" if isinstance(error, UnidentifiedImageError) else str(error)
    return ValueError(f"the {what} of {name} does not open ({value.get('path') or 'its bytes'}: {reason})")


def image_number(data: bytes) -> int:
    """A stable id of an image file's bytes (56 bits of their SHA-256: int64, and equal files share it)."""
    return int.from_bytes(hashlib.sha256(data).digest()[:7], "big")


def _mask(value: Any, height: int, width: int, name: str, mask_rule: str) -> np.ndarray:
    """The (height, width) uint8 0/1 mask of a mask value: an undecoded image, a COCO RLE or COCO polygons."""
    if isinstance(value, dict) and {"size", "counts"} <= value.keys() or isinstance(value, list) and value:
        check_segmentation(value, height, width, f"the mask of {name}")
        return segmentation_mask(value, height, width, mask_rule)
    if isinstance(value, dict):
        try:
            with Image.open(io.BytesIO(_file_bytes(value))) as image:
                mode, pixels = image.mode, np.asarray(image)
        except (OSError, SyntaxError, ValueError) as error:
            raise _unreadable("mask", name, value, error) from error
        if pixels.ndim != 2:
            raise ValueError(f"the mask of {name} is an image of mode {mode} with {pixels.shape[2]} channels; a mask is "
                             "one channel (values 0/1 or 0/255)")
        if pixels.shape != (height, width):
            raise ValueError(f"the mask of {name} is {pixels.shape[1]}x{pixels.shape[0]} (width x height) but its "
                             f"image is {width}x{height}; the mask must be made on the image as stored")
        values = np.unique(pixels)
        if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
            raise ValueError(f"the mask of {name} is not binary (values {values[:8].tolist()}"
                             f"{' ...' if len(values) > 8 else ''}); save it with 0 for background and 1 or "
                             "255 for the object")
        return (pixels > 0).astype(np.uint8)
    if isinstance(value, list):  # no polygon at all: an empty mask, allowed only for no_target
        return np.zeros((height, width), np.uint8)
    raise ValueError(f"the mask of {name} is {str(value)[:80]!r}: give an image, a COCO RLE {{size, counts}} or "
                     "COCO polygons")


def _no_target(value: Any, name: str) -> bool:
    """The no_target flag: true, false, 1, 0 or absent (false); a string such as "false" would read as true."""
    if value is None or (type(value) in (bool, int) and value in (0, 1)):
        return bool(value)
    raise ValueError(f"{name} has no_target {value!r}; it must be true or false (or 1 or 0)")


def _texts(value: Any, name: str) -> list[str]:
    """One string or a list of them, none empty."""
    texts = [value] if isinstance(value, str) else value or []
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{name} has expressions that are not text ({str(value)[:80]!r}); the text column holds "
                         "one string or a list of strings")
    if not texts or not all(t.strip() for t in texts):
        raise ValueError(f"{name} has an empty expression or none ({str(value)[:80]!r}); every object needs at "
                         "least one non-empty expression")
    return texts


def _expression_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, entry) of each non-blank line of an ``expressions.jsonl``, each checked for its keys."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"line {number} of {path} is not valid JSON ({error.msg}); {FOLDER_LAYOUT}") from error
        missing = [key for key in ("image", "mask", "sentences", "split") if not isinstance(entry, dict)
                   or key not in entry]
        if missing:
            raise ValueError(f"line {number} of {path} lacks {missing}; {FOLDER_LAYOUT}")
        yield number, entry


def _read_expressions(folder: Path, split: str) -> tuple[datasets.Dataset, str, Callable[[int, dict], str]]:
    """The lines of one split of an ``expressions.jsonl`` folder as a dataset of images and masks by path,
    with its description and how to name its rows (by line)."""
    path = folder / EXPRESSIONS_FILE
    records, splits = [], set()
    for number, entry in _expression_lines(path):
        splits.add(entry["split"])
        if entry["split"] != split:
            continue
        files = {"image": folder / "images" / entry["image"], "mask": folder / "masks" / entry["mask"]}
        for key, file in files.items():
            if not file.is_file():
                raise FileNotFoundError(f"the {key} {file} of line {number} of {path} not found; {FOLDER_LAYOUT}")
        records.append({"image": str(files["image"]), "mask": str(files["mask"]),
                        "sentences": _texts(entry["sentences"], f"line {number} of {path}"),
                        NO_TARGET_COLUMN: _no_target(entry.get(NO_TARGET_COLUMN), f"line {number} of {path}"),
                        "ref_id": number})
    if not records:
        raise ValueError(f"split {split!r} not found in {path}; available splits: {ordered_splits(splits)}")
    features = Features({"image": ImageFeature(), "mask": ImageFeature(), "sentences": List(Value("string")),
                         NO_TARGET_COLUMN: Value("bool"), "ref_id": Value("int64")})
    dataset = datasets.Dataset.from_list(records, features=features, split=split)
    return dataset, str(path), lambda index, record: f"line {record['ref_id']} of {path}"


class UserSource:
    """Every split of a dataset of one's own, loaded and checked, with what lavt-prepare-refcoco reads of a
    :class:`RawRefer`."""

    def __init__(self, source: str | Path, mask_rule: str = "original", **columns: str | None) -> None:
        if is_expressions_folder(source):
            names = {entry["split"] for _, entry in _expression_lines(Path(source) / EXPRESSIONS_FILE)}
            if not names:
                raise ValueError(f"{Path(source) / EXPRESSIONS_FILE} holds no expressions; {FOLDER_LAYOUT}")
        else:
            names = datasets.get_dataset_split_names(str(source))
        loaded = {split: load_user_dataset(source, None, split, mask_rule=mask_rule, **columns)
                  for split in ordered_splits(names)}
        undecoded = ImageFeature(decode=False)  # stored as the files are
        self.rows = {split: rows.cast_column("image", undecoded) for split, rows in loaded.items()}
        self.refs = [{"image_id": i} for rows in self.rows.values() for i in rows["image_id"]]
        self._first = {}  # image_id -> (split, index) of its first row
        for split, rows in self.rows.items():
            for index, image_id in enumerate(rows["image_id"]):
                self._first.setdefault(image_id, (split, index))

    @property
    def splits(self) -> list[str]:
        return list(self.rows)

    def refs_of(self, split: str) -> datasets.Dataset:
        return self.rows[split]

    def stored_rows(self, split: str, mask_rule: str = "original") -> Iterator[dict]:
        """Rows of ``STORED_FEATURES`` (the mask rule was applied when the rows were loaded)."""
        for row in self.rows[split].remove_columns("image"):
            yield {**row, SENT_COLUMN: row["sentences"]}

    def stored_image(self, image_id: int) -> dict:
        """The image table's row of one image: its file's bytes, as they are."""
        split, index = self._first[image_id]
        value = self.rows[split][index]["image"]
        return {"image_id": int(image_id), "image": {"bytes": _file_bytes(value),
                                                     "path": Path(value.get("path") or "").name}}
