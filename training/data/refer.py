# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Reader of the raw refer layout (docs/data.md) into this project's row format (``FEATURES``): one row per
ref, ``mask`` a COCO RLE ``{size: [h, w], counts: str}``, ``bbox`` xywh. gRefCOCO's refs (``grefs(...).json``)
may name several objects (their masks' union, ``ann_id`` -1) or none (an empty mask, ``no_target``).
Masks follow the original rule by default: pixels covered by exactly one polygon of the object (where two
overlap, background); ``mask_rule="union"`` keeps every covered pixel.
"""

from __future__ import annotations

import json
import numbers
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from datasets import Features, List, Value
from datasets import Image as ImageFeature
from PIL import Image
from pycocotools import mask as mask_utils

MASK_RULES: tuple[str, ...] = ("original", "union")
# Which text of a sentence is read (docs/data.md): what the annotator typed (the original's choice) or the
# refer toolkit's normalised form (lower case, no punctuation), which other methods read.
SENTENCE_FIELDS: tuple[str, ...] = ("raw", "sent")
# Prepared parquet stores the raw texts in `sentences` and the normalised ones beside them in this column.
SENT_COLUMN = "sentences_sent"
# Canonical order of split names; a refer scheme has a subset of them.
SPLIT_ORDER: tuple[str, ...] = ("train", "val", "testA", "testB", "test")
FEATURES = Features({
    "image": ImageFeature(), "mask": {"size": List(Value("int32")), "counts": Value("string")},
    "sentences": List(Value("string")), "bbox": List(Value("float64")), "ref_id": Value("int64"),
    "ann_id": Value("int64"), "image_id": Value("int64"), "category_id": Value("int64"),
    "split": Value("string"), "no_target": Value("bool"),
})
# Prepared parquet stores each image once per repository, in an image table that the objects point at by
# `image_id`: the objects' rows hold everything else.
STORED_FEATURES = Features({**{k: v for k, v in FEATURES.items() if k != "image"}, SENT_COLUMN: List(Value("string"))})
IMAGE_TABLE_FEATURES = Features({"image_id": Value("int64"), "image": ImageFeature()})
EXPECTED_LAYOUT = (
    "expected layout: <refer_root>/<dataset>/instances.json and <refer_root>/<dataset>/refs(<split_by>).p "
    "(dataset refcoco, refcoco+ or refcocog; split_by unc, umd or google) or, for gRefCOCO, "
    "<refer_root>/grefcoco/grefs(unc).json, images in <images_root>/train2014/COCO_train2014_%012d.jpg"
)
# The refs file names of a split scheme, in the order they are looked for (the first names a missing one):
# the refer pickle, then gRefCOCO's JSON and its pickle.
REFS_FILE_PATTERNS: tuple[str, ...] = ("refs({}).p", "grefs({}).json", "grefs({}).p")


def parse_config_name(name: str) -> tuple[str, str]:
    """``"refcocog_umd"`` -> ``("refcocog", "umd")``."""
    dataset, sep, split_by = name.rpartition("_")
    if not sep or not dataset or not split_by:
        raise ValueError(f"config name {name!r} is not of the form <dataset>_<split_by>, e.g. refcoco_unc")
    return dataset, split_by


def ordered_splits(names: Iterable[str]) -> list[str]:
    """Split names in the usual order (train, val, testA, testB, test), unknown names last."""
    names = set(names)
    return [s for s in SPLIT_ORDER if s in names] + sorted(names - set(SPLIT_ORDER))


class _PlainDataUnpickler(pickle.Unpickler):
    """Refs pickles hold only lists, dicts, strings and numbers: refuse anything that would run code."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refs pickle refers to {module}.{name}; only plain data is allowed")


def load_refs(path: str | Path) -> list[dict]:
    """Load a refs file: a Python 2 pickle (byte strings read as UTF-8, else latin-1) or JSON (``.json``, or a
    gRefCOCO pickle that does not unpickle, as the gRefCOCO reader does)."""
    path = Path(path)
    what = "JSON refs file" if path.suffix == ".json" else "refs pickle"
    try:
        if path.suffix == ".json":
            refs = json.loads(path.read_text(encoding="utf-8"))
        else:
            try:
                with open(path, "rb") as f:
                    refs = _as_text(_PlainDataUnpickler(f, encoding="bytes").load())
            except (pickle.UnpicklingError, EOFError):
                if not path.name.startswith("grefs"):
                    raise
                refs = json.loads(path.read_text(encoding="utf-8"))
    except (pickle.UnpicklingError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable {what} ({error}); {EXPECTED_LAYOUT}") from error
    if not isinstance(refs, list) or not all(isinstance(r, dict) and "ann_id" in r for r in refs):
        raise ValueError(f"{path} is not a {what} (a list of refs with ann_id); {EXPECTED_LAYOUT}")
    return refs


def _as_text(value: object) -> object:
    """`value` with every byte string (keys included) decoded: UTF-8, else latin-1 (which decodes any bytes)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return type(value)(_as_text(v) for v in value)
    if isinstance(value, dict):
        return {_as_text(k): _as_text(v) for k, v in value.items()}
    return value


def check_sentence_field(sentence_field: str) -> None:
    if sentence_field not in SENTENCE_FIELDS:
        raise ValueError(f"unknown sentence_field {sentence_field!r}; choose 'raw' (what the annotator typed, as "
                         "the original reads it) or 'sent' (the normalised text)")


def sentence_texts(ref: dict, sentence_field: str, source: str | Path) -> list[str]:
    """The ``sentence_field`` text of every sentence of a refs-pickle ref; a ref without sentences, or a
    sentence without that field, is an error naming the ref and the file (it would fail deep in training)."""
    sentences = ref.get("sentences") or []
    if not sentences:
        raise ValueError(f"ref_id {ref.get('ref_id')} (ann_id {ref.get('ann_id')}) in {source} has no sentences; "
                         "every referred object needs at least one expression: fix or drop the ref")
    texts = [s.get(sentence_field) if isinstance(s, dict) else None for s in sentences]
    if not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError(f"ref_id {ref.get('ref_id')} in {source}: a sentence has no {sentence_field!r} text "
                         f"(sentences: {sentences!r}); fix the ref or choose the other sentence_field")
    return texts


# How far outside the image a polygon point may lie: COCO's points sit on pixel corners (an edge at x = width)
# and some round past it. Further out is broken, and a huge coordinate makes the rasteriser fill the memory.
POLYGON_MARGIN = 2.0


def check_segmentation(segmentation: object, height: int, width: int, where: str) -> None:
    """Refuse a COCO segmentation that cannot be rasterised into a (height, width) mask: polygons
    (``[[x1, y1, ...], ...]``, pixels) need 3 or more finite points within ``POLYGON_MARGIN`` pixels of the
    image; an RLE needs ``size`` ``[height, width]`` and, uncompressed, non-negative counts covering the
    image.

    Raises:
        ValueError: ``"<where> has <problem>; ..."``; ``where`` names the object, its image and its file.
    """
    problem = _segmentation_problem(segmentation, height, width)
    if problem:
        raise ValueError(f"{where} has {problem}; fix the segmentation or leave the object out")


def _segmentation_problem(segmentation: object, height: int, width: int) -> str | None:
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in (height, width)):
        return f"an image size {height!r} x {width!r} (height x width) that is not two positive integers"
    if isinstance(segmentation, dict):
        return _rle_problem(segmentation, height, width)
    if not isinstance(segmentation, list) or not segmentation:
        return f"an empty segmentation ({str(segmentation)[:80]})"
    for polygon in segmentation:
        if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
            return f"a polygon that is not 3 or more (x, y) points ({str(polygon)[:80]})"
        try:
            points = np.asarray(polygon, dtype=np.float64)
        except (TypeError, ValueError):
            points = None
        if points is None or points.ndim != 1:
            return f"a polygon coordinate that is not a number ({str(polygon)[:80]})"
        if not np.isfinite(points).all():
            return f"a polygon coordinate that is not finite ({str(polygon)[:80]})"
        points = points.reshape(-1, 2)
        outside = ((points < -POLYGON_MARGIN) | (points > np.array([width, height]) + POLYGON_MARGIN)).any(axis=1)
        if outside.any():
            x, y = points[outside.argmax()]
            return (f"a polygon point (x, y) = ({x:g}, {y:g}) outside its {width}x{height} image (width x height; "
                    f"at most {POLYGON_MARGIN:g} pixels outside are accepted)")
    return None


def _rle_problem(rle: dict, height: int, width: int) -> str | None:
    if not {"size", "counts"} <= rle.keys():
        return "an RLE segmentation without size / counts"
    size, counts = rle["size"], rle["counts"]
    if not isinstance(size, (list, tuple)) or list(size) != [height, width]:
        return f"an RLE of size {size!r} (height, width) for an image of {[height, width]}"
    if isinstance(counts, (str, bytes)):
        return None  # compressed: pycocotools refuses counts beyond the size when decoding
    if not isinstance(counts, list) or not all(isinstance(c, numbers.Integral) and c >= 0 for c in counts):
        return f"RLE counts that are not a compressed string or non-negative integers ({str(counts)[:80]})"
    if sum(counts) != height * width:
        return f"RLE counts covering {sum(counts)} pixels, not the image's {height} x {width} = {height * width}"
    return None


def segmentation_mask(segmentation: list | dict, height: int, width: int, mask_rule: str = "original"
                      ) -> np.ndarray:
    """Binary (height, width) uint8 mask of a COCO segmentation (polygons, or RLE for crowds)."""
    if mask_rule not in MASK_RULES:
        raise ValueError(f"unknown mask_rule {mask_rule!r}; choose from {MASK_RULES}")
    if isinstance(segmentation, dict):
        counts = segmentation["counts"]
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = {"size": segmentation["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
        return mask_utils.decode(rle)
    decoded = mask_utils.decode(mask_utils.frPyObjects(segmentation, height, width))
    if mask_rule == "union":
        return decoded.max(axis=2)
    return (decoded.sum(axis=2) == 1).astype(np.uint8)


def encode_mask(mask: np.ndarray) -> dict:
    """COCO compressed RLE with a text ``counts``, the form stored in the ``mask`` column."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: dict) -> np.ndarray:
    """The (height, width) uint8 mask of a ``mask`` column value."""
    return mask_utils.decode({"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")})


def annotation_where(ref: dict, image_info: dict, source: str | Path) -> str:
    """How errors name a ref's annotation: its ids, its image and the file it came from."""
    return (f"ann_id {ref['ann_id']} (ref_id {ref['ref_id']}) of image_id {ref['image_id']} "
            f"({image_info.get('file_name', 'no file name')}) in {source}")


def make_row(ref: dict, annotation: dict, image_info: dict, image: str | dict, sentences: list[str],
             mask_rule: str, source: str | Path) -> dict:
    """One row from a ref, its COCO annotation and image record; a segmentation that cannot be rasterised
    (`check_segmentation`) is an error naming the annotation, its image and ``source`` (its file)."""
    where = annotation_where(ref, image_info, source)
    height, width = image_info["height"], image_info["width"]
    check_segmentation(annotation.get("segmentation"), height, width, where)
    try:
        mask = segmentation_mask(annotation["segmentation"], height, width, mask_rule)
    except ValueError as error:  # pycocotools' words for compressed counts that do not fit the size
        raise ValueError(f"{where}: its RLE segmentation does not decode ({error}); fix the segmentation or "
                         "leave the object out") from error
    return {
        "image": image, "mask": encode_mask(mask), "sentences": sentences,
        "bbox": [float(v) for v in annotation["bbox"]], "ref_id": int(ref["ref_id"]),
        "ann_id": int(ref["ann_id"]), "image_id": int(ref["image_id"]),
        "category_id": int(ref["category_id"]), "split": str(ref["split"]), "no_target": False,
    }


def target_ann_ids(ref: dict, source: str | Path) -> list[int]:
    """The annotation ids a ref names (none for ``ann_id`` [-1]); a ref mixing -1 with ids, or marked
    ``no_target`` while naming ids, is an error naming it and ``source``."""
    value = ref["ann_id"]
    ids = [int(i) for i in value] if isinstance(value, (list, tuple)) else [int(value)]
    if ids == [-1]:
        return []
    if not ids or -1 in ids or ref.get("no_target"):
        raise ValueError(f"ref_id {ref.get('ref_id')} in {source} has ann_id {value!r} and no_target "
                         f"{ref.get('no_target')!r}: a ref names its annotation ids, or none with ann_id [-1]; "
                         "fix the ref")
    return ids


def target_segmentations(annotations: list[dict], height: int, width: int) -> list[list | dict]:
    """The segmentations a ref's mask is the union of. A single target's is taken as it is (and must be
    rasterisable); in a multi-target ref, crowd annotations are skipped and polygons of fewer than 3 points or
    an odd number of values dropped, as the gRefCOCO reader does."""
    if len(annotations) == 1:
        return [annotations[0]["segmentation"]]
    found = []  # none for a no-target ref
    for annotation in annotations:
        segmentation = annotation.get("segmentation")
        if annotation.get("iscrowd"):
            continue
        if isinstance(segmentation, list):
            segmentation = [p for p in segmentation if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
        if segmentation and _segmentation_problem(segmentation, height, width) is None:
            found.append(segmentation)
    return found


def target_problem(annotations: list[dict], height: int, width: int) -> str | None:
    """Why the targets of a ref cannot be drawn in a (height, width) image (see :func:`target_segmentations`),
    or None."""
    if len(annotations) == 1:
        return _segmentation_problem(annotations[0].get("segmentation"), height, width)
    if annotations and not target_segmentations(annotations, height, width):
        return "no drawable target (only crowd annotations or degenerate polygons)"
    return None


def make_generalized_row(ref: dict, annotations: list[dict], image_info: dict, image: str | dict,
                         sentences: list[str], mask_rule: str, source: str | Path) -> dict:
    """One row from a gRefCOCO ref and the annotations it names (none: ``no_target``): their masks' union,
    ``bbox`` its box, ``ann_id`` and ``category_id`` the one id or category, else -1. Targets that cannot be
    rasterised, or a union left empty, are an error naming the ref and ``source``."""
    height, width = image_info["height"], image_info["width"]
    ids = [int(a["id"]) for a in annotations]
    problem = target_problem(annotations, height, width)
    if problem:
        raise ValueError(f"ref_id {ref['ref_id']} (ann_id {ids}) in {source} has {problem}; fix the annotations "
                         "or drop the ref")
    mask = np.zeros((height, width), dtype=np.uint8)
    for segmentation in target_segmentations(annotations, height, width):
        mask |= segmentation_mask(segmentation, height, width, mask_rule)
    if annotations and not mask.any():
        raise ValueError(f"ref_id {ref['ref_id']} (ann_id {ids}) in {source} names targets whose mask is empty; "
                         "fix the annotations or drop the ref")
    rle = encode_mask(mask)
    categories = {int(a["category_id"]) for a in annotations}
    return {
        "image": image, "mask": rle, "sentences": sentences,
        "bbox": [float(v) for v in mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode()})],
        "ref_id": int(ref["ref_id"]), "ann_id": ids[0] if len(ids) == 1 else -1,
        "image_id": int(ref["image_id"]), "category_id": categories.pop() if len(categories) == 1 else -1,
        "split": str(ref["split"]), "no_target": not annotations,
    }


def resolve_image_dir(images_root: str | Path) -> Path:
    """``<images_root>/train2014`` when it exists, else ``images_root`` itself (the train2014 folder given)."""
    images_root = Path(images_root)
    if not images_root.is_dir():
        raise FileNotFoundError(f"images root {images_root} does not exist; {EXPECTED_LAYOUT}")
    nested = images_root / "train2014"
    return nested if nested.is_dir() else images_root


class RawRefer:
    """A validated raw refer dataset: refs of one split scheme, their annotations and image records. A wrong
    root, or refs of another dataset, fails at construction with the path and the expected layout."""

    def __init__(self, refer_root: str | Path, images_root: str | Path, dataset: str = "refcoco",
                 split_by: str = "unc") -> None:
        refer_root = Path(refer_root)
        if not refer_root.is_dir():
            raise FileNotFoundError(f"refer root {refer_root} does not exist; {EXPECTED_LAYOUT}")
        dataset_dir = refer_root / dataset
        if not dataset_dir.is_dir():
            raise FileNotFoundError(f"{dataset_dir} not found (configurations found under {refer_root}: "
                                    f"{available_configs(refer_root)}); {EXPECTED_LAYOUT}")
        candidates = [dataset_dir / pattern.format(split_by) for pattern in REFS_FILE_PATTERNS]
        self.refs_path = next((path for path in candidates if path.is_file()), candidates[0])
        self.generalized = self.refs_path.name.startswith("grefs")
        self.instances_path = dataset_dir / "instances.json"
        for path in (self.refs_path, self.instances_path):
            if not path.is_file():
                present = sorted(p.name for p in dataset_dir.iterdir())
                raise FileNotFoundError(f"{path} not found (folder holds {present}); {EXPECTED_LAYOUT}")
        self.image_dir = resolve_image_dir(images_root)
        self.refs = load_refs(self.refs_path)
        if not self.refs:
            raise ValueError(f"{self.refs_path} holds no refs; {EXPECTED_LAYOUT}")
        self.annotations, self.images = read_instances(self.instances_path)
        # Every ref must point at annotations of its own image; otherwise the files are mismatched.
        bad = [r["ref_id"] for r in self.refs if r["image_id"] not in self.images or any(
            i not in self.annotations or self.annotations[i]["image_id"] != r["image_id"]
            for i in target_ann_ids(r, self.refs_path))]
        if bad:
            raise ValueError(f"{len(bad)} of {len(self.refs)} refs in {self.refs_path} point at annotations "
                             f"or images that {self.instances_path} does not have (first ref_ids: "
                             f"{bad[:5]}); are the refs pickle and instances.json from the same dataset? "
                             f"{EXPECTED_LAYOUT}")
        # Every target must be rasterisable before any work: pycocotools fails without a word of which, or
        # fills the memory on a huge coordinate.
        for ref in self.refs:
            info = self.images[ref["image_id"]]
            annotations = [self.annotations[i] for i in target_ann_ids(ref, self.refs_path)]
            problem = target_problem(annotations, info["height"], info["width"])
            if problem:
                raise ValueError(f"{annotation_where(ref, info, self.instances_path)} has {problem}; fix the "
                                 "segmentation or leave the object out")

    def check_sentences(self, refs: Iterable[dict], fields: Iterable[str] = SENTENCE_FIELDS) -> None:
        """Fail before any work if a ref has no sentences or a sentence lacks one of ``fields``."""
        for ref in refs:
            for field_name in fields:
                sentence_texts(ref, field_name, self.refs_path)

    @property
    def splits(self) -> list[str]:
        return ordered_splits(r["split"] for r in self.refs)

    def refs_of(self, split: str) -> list[dict]:
        """The refs of one split, in pickle order; a clear error names the splits that exist."""
        if split not in self.splits:
            raise ValueError(f"split {split!r} does not exist in {self.refs_path}; available splits: "
                             f"{self.splits}")
        return [r for r in self.refs if r["split"] == split]

    def image_path(self, image_id: int) -> Path:
        return self.image_dir / self.images[image_id]["file_name"]

    def check_images(self, refs: Iterable[dict], decode: bool = False,
                     sizes: dict[Path, tuple[int, int]] | None = None) -> None:
        """Fail if an image a ref needs is missing; with ``decode``, also if it does not decode or its size
        differs from ``instances.json``'s. ``sizes`` (path -> (width, height)) keeps those decoded."""
        sizes = {} if sizes is None else sizes
        for ref in refs:
            path, info = self.image_path(ref["image_id"]), self.images[ref["image_id"]]
            if not path.is_file():
                raise FileNotFoundError(f"image {path} of image_id {ref['image_id']} (ann_id "
                                        f"{ref['ann_id']}) not found; {EXPECTED_LAYOUT}")
            if decode and path not in sizes:
                try:  # at 1/8 scale: reads every compressed byte (a truncated JPEG fails) at half the cost
                    with Image.open(path) as image:
                        sizes[path] = image.size
                        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                        image.load()
                except (OSError, SyntaxError, ValueError) as error:
                    raise ValueError(f"image {path} of ref_id {ref['ref_id']} (image_id {ref['image_id']}) "
                                     f"does not decode ({error}); replace the file with the COCO "
                                     "original") from error
            if decode and sizes[path] != (info["width"], info["height"]):
                width, height = sizes[path]
                raise ValueError(f"image {path} of ref_id {ref['ref_id']} (image_id {ref['image_id']}) is "
                                 f"{width}x{height} (width x height) but {self.instances_path} says "
                                 f"{info['width']}x{info['height']}; its masks would not fit the image: use "
                                 "the COCO train2014 original of this image")

    def rows(self, split: str, mask_rule: str = "original", sentence_field: str = "raw") -> Iterator[dict]:
        """Rows of one split, images by path (``sentence_field`` checked by the caller)."""
        refs = self.refs_of(split)
        self.check_images(refs)
        for ref in refs:
            yield self._row(ref, mask_rule, sentence_field)

    def stored_rows(self, split: str, mask_rule: str = "original") -> Iterator[dict]:
        """Rows of prepared parquet (``STORED_FEATURES``): no image (see :meth:`stored_image`), raw texts in
        ``sentences`` and the normalised ones in ``sentences_sent``."""
        for ref, row in zip(self.refs_of(split), self.rows(split, mask_rule)):
            del row["image"]
            row[SENT_COLUMN] = sentence_texts(ref, "sent", self.refs_path)
            yield row

    def stored_image(self, image_id: int) -> dict:
        """The image table's row (``IMAGE_TABLE_FEATURES``) of one image: its file's bytes, as they are."""
        path = self.image_path(image_id)
        return {"image_id": int(image_id), "image": {"bytes": path.read_bytes(), "path": path.name}}

    def _row(self, ref: dict, mask_rule: str, sentence_field: str) -> dict:
        image, info = str(self.image_path(ref["image_id"])), self.images[ref["image_id"]]
        sentences = sentence_texts(ref, sentence_field, self.refs_path)
        if self.generalized:
            targets = [self.annotations[i] for i in target_ann_ids(ref, self.refs_path)]
            return make_generalized_row(ref, targets, info, image, sentences, mask_rule, self.instances_path)
        annotation = self.annotations[ref["ann_id"]]
        return make_row(ref, annotation, info, image, sentences, mask_rule, self.instances_path)


def read_instances(path: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """Annotations and images of an ``instances.json`` by id; a truncated file or one without the COCO keys is
    an error naming the file."""
    try:
        instances = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
                         "the file may be truncated: download it again") from error
    if not isinstance(instances, dict):
        raise ValueError(f"{path} must hold a COCO mapping with 'images' and 'annotations'; {EXPECTED_LAYOUT}")
    required = {"annotations": ("id", "image_id", "segmentation", "bbox"),
                "images": ("id", "file_name", "height", "width")}
    for key, fields in required.items():
        entries = instances.get(key)
        if not isinstance(entries, list):
            raise ValueError(f"{path} has no {key!r} list (keys: {sorted(instances)}); is it a COCO instances "
                             f"file? {EXPECTED_LAYOUT}")
        for entry in entries:
            missing = [name for name in fields if name not in entry]
            if missing:
                raise ValueError(f"{path}: an entry of {key!r} lacks {missing} ({str(entry)[:120]}); "
                                 f"{EXPECTED_LAYOUT}")
    return {a["id"]: a for a in instances["annotations"]}, {i["id"]: i for i in instances["images"]}


def available_configs(refer_root: str | Path) -> list[str]:
    """Configuration names (``<dataset>_<split_by>``) of every refs file under a refer root (refer pickles,
    gRefCOCO's ``grefs(<split_by>).json`` or ``.p``)."""
    found = set()
    for pattern in REFS_FILE_PATTERNS:
        prefix, suffix = pattern.split("{}")
        for refs_path in Path(refer_root).glob(f"*/{prefix}*{suffix}"):
            found.add((refs_path.parent.name, refs_path.name[len(prefix):-len(suffix)]))
    return [f"{dataset}_{split_by}" for dataset, split_by in sorted(found)]
