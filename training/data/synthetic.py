# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""A synthetic dataset in the exact raw refer layout (docs/data.md), for tests and the embedded demo.

Each image holds several coloured shapes (circle, square, triangle; big or small), each referred to by at
least two expressions naming its colour, shape, size, position or a relation to another shape. Every object
of an image is a target, so the task is learnable only through the expression.

Files: ``<root>/<dataset>/refs(<split_by>).p`` (pickle protocol 2, as Python 2 wrote them),
``<root>/<dataset>/instances.json`` (COCO polygons; one square made of two overlapping polygons; crowd "dots"
as uncompressed RLE) and ``<images_root>/train2014/COCO_train2014_%012d.jpg``. With ``generalized``, the
gRefCOCO layout instead (``<root>/grefcoco/grefs(<split_by>).json``, every ``ann_id`` a list): the same refs
plus, per image, one naming an absent shape ("the purple star", ``ann_id`` [-1], ``no_target`` true) and one
per group of two or more shapes of one colour or kind ("both red shapes"), targeting their union.
"""

from __future__ import annotations

import itertools
import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from lavt_hf.cli import ArgumentParser, positive_int

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38), "green": (34, 160, 60), "blue": (40, 80, 215), "yellow": (235, 200, 30),
    "purple": (135, 55, 175),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# Kinds of shape never drawn: what the no-target expressions of generalized data name, besides absent pairs.
ABSENT_SHAPES: tuple[str, ...] = ("star", "heart", "hexagon")
CATEGORIES: list[dict] = [{"id": i, "name": name, "supercategory": "crowd" if name == "dots" else "shape"}
                          for i, name in enumerate((*SHAPES, "dots"), 1)]
CATEGORY_IDS: dict[str, int] = {c["name"]: c["id"] for c in CATEGORIES}
# The split names of each refer split scheme and the share of images each one gets.
SPLIT_FRACTIONS: dict[str, dict[str, float]] = {
    "unc": {"train": 0.7, "val": 0.1, "testA": 0.1, "testB": 0.1},
    "umd": {"train": 0.8, "val": 0.1, "test": 0.1},
    "google": {"train": 0.85, "val": 0.15},
}
IMAGE_FILE_PATTERN = "COCO_train2014_{:012d}.jpg"
_SIZE_RADIUS = {"big": 0.16, "small": 0.09}  # radius as a share of min(width, height)


@dataclass
class _Shape:
    """One drawn object: what it is, where it is, and how many pixels it spans."""

    shape: str
    colour: str
    size: str
    cx: float = 0.0
    cy: float = 0.0
    radius: float = 0.0
    split_polygons: bool = False

    @property
    def is_dots(self) -> bool:
        return self.shape == "dots"


@dataclass
class SyntheticRefer:
    """What a generated dataset holds."""

    dataset: str
    num_images: int
    num_refs: int
    num_sentences: int


def generate_synthetic_refer(
    root: str | Path, images_root: str | Path, num_images: int = 200, seed: int = 0,
    image_size: int | tuple[int, int] = (160, 120), dataset: str | None = None,
    split_by: str | Sequence[str] = "unc", objects_per_image: tuple[int, int] = (3, 5),
    typed_raw: bool = False, generalized: bool = False,
) -> SyntheticRefer:
    """Write a synthetic refer dataset; the same arguments always give byte-identical files.

    ``image_size`` is ``(width, height)`` in pixels, or one int. Image 1 has a square of two overlapping
    polygons (where the original sum==1 mask rule differs from the union); every tenth image from it, a crowd
    of dots. Images are named by image id like COCO's: other arguments need other ``images_root`` folders.
    ``typed_raw`` writes each ``raw`` text as typed (:func:`typed_text`), not equal to its ``sent``.
    ``generalized`` writes the gRefCOCO layout (``dataset`` default ``grefcoco``): the same refs plus
    no-target and multi-target ones.

    Raises:
        ValueError: an unknown ``split_by``, ``objects_per_image`` outside 2 <= low <= high <= 15, or an image
            too small to place two shapes in.
    """
    dataset = dataset or ("grefcoco" if generalized else "refcoco")
    width, height = (image_size, image_size) if isinstance(image_size, int) else image_size
    schemes = (split_by,) if isinstance(split_by, str) else tuple(split_by)
    for scheme in schemes:
        if scheme not in SPLIT_FRACTIONS:
            raise ValueError(f"unknown split_by {scheme!r}; choose from {sorted(SPLIT_FRACTIONS)}")
    low, high = objects_per_image
    if not 2 <= low <= high <= len(COLOURS) * len(SHAPES):
        raise ValueError(f"objects_per_image must satisfy 2 <= low <= high, got {objects_per_image}")
    rng = np.random.default_rng(seed)
    group_rng = np.random.default_rng([seed, 1])  # its own stream: the classic refs are the same either way
    dataset_dir = Path(root) / dataset
    image_dir = Path(images_root) / "train2014"
    dataset_dir.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations, refs = [], [], []
    for image_id in range(1, num_images + 1):
        shapes = _sample_shapes(rng, width, height, int(rng.integers(low, high + 1)), image_id % 10 == 1)
        if image_id == 1:  # the sum==1 rule's corner case: one square built from two overlapping polygons
            squares = [s for s in shapes if s.shape == "square"]
            target = squares[0] if squares else next(s for s in shapes if not s.is_dots)
            target.shape, target.split_polygons = "square", True
        else:
            for s in shapes:
                s.split_polygons = s.shape == "square" and rng.random() < 0.1
        file_name = IMAGE_FILE_PATTERN.format(image_id)
        segmentations = _draw_image(rng, shapes, width, height, image_dir / file_name)
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        ann_ids = {id(s): 100 * image_id + number for number, s in enumerate(shapes)}
        for s, segmentation in zip(shapes, segmentations):
            annotations.append(_annotation(ann_ids[id(s)], image_id, s, segmentation, height, width))
            _add_ref(refs, rng, ann_ids[id(s)], image_id, CATEGORY_IDS[s.shape],
                     referring_expressions(s, shapes), typed_raw)
        if generalized:
            for members, expressions in [([], absent_expressions(shapes)), *group_expressions(shapes)]:
                _add_ref(refs, group_rng, [ann_ids[id(m)] for m in members] or [-1], image_id,
                         [CATEGORY_IDS[m.shape] for m in members] or -1, expressions, typed_raw,
                         no_target=not members)

    instances = {"info": {"description": "lavt-hf synthetic shapes (refer layout)"}, "licenses": [],
                 "images": images, "annotations": annotations, "categories": CATEGORIES}
    (dataset_dir / "instances.json").write_text(json.dumps(instances))
    for scheme in schemes:
        split_of_image = _assign_splits(np.random.default_rng([seed, *scheme.encode()]), num_images, scheme)
        scheme_refs = [dict(r, split=split_of_image[r["image_id"] - 1]) for r in refs]
        if generalized:
            scheme_refs = [r if isinstance(r["ann_id"], list) else dict(r, ann_id=[r["ann_id"]], no_target=False)
                           for r in scheme_refs]
            (dataset_dir / f"grefs({scheme}).json").write_text(json.dumps(scheme_refs))
        else:
            with open(dataset_dir / f"refs({scheme}).p", "wb") as f:
                pickle.dump(scheme_refs, f, protocol=2)
    return SyntheticRefer(dataset, num_images, len(refs), sum(len(r["sentences"]) for r in refs))


def _sample_shapes(rng: np.random.Generator, width: int, height: int, count: int, with_crowd: bool
                   ) -> list[_Shape]:
    """Distinct (colour, shape) pairs placed without overlap, so each object is fully visible."""
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    candidates = [_Shape(shape, colour, str(rng.choice(["big", "small"])))
                  for colour, shape in (pairs[i] for i in rng.permutation(len(pairs))[:count])]
    if with_crowd:
        candidates.insert(0, _Shape("dots", "gray", "small"))
    placed: list[_Shape] = []
    for shape in candidates:
        r = shape.radius = _SIZE_RADIUS[shape.size] * min(width, height)
        for _ in range(200):  # rejection sampling: a disc clear of the border and of every placed disc
            cx, cy = rng.uniform(r + 1, width - r - 1), rng.uniform(r + 1, height - r - 1)
            if all(np.hypot(cx - o.cx, cy - o.cy) > r + o.radius + 2 for o in placed):
                shape.cx, shape.cy = float(cx), float(cy)
                placed.append(shape)
                break
    if sum(not s.is_dots for s in placed) < 2:
        raise ValueError(f"could not place two shapes in a {width}x{height} image; use a larger image_size")
    return placed


def _polygons(s: _Shape) -> list[list[float]]:
    """COCO polygons [x1, y1, x2, y2, ...] of a shape; a split square is two rectangles sharing a strip."""
    r = s.radius
    if s.shape == "circle":
        angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        points = np.stack([s.cx + r * np.cos(angles), s.cy + r * np.sin(angles)], axis=1)
        return [np.round(points, 2).ravel().tolist()]
    if s.shape == "triangle":
        points = [(s.cx, s.cy - r), (s.cx + 0.866 * r, s.cy + 0.5 * r), (s.cx - 0.866 * r, s.cy + 0.5 * r)]
        return [np.round(np.asarray(points), 2).ravel().tolist()]
    half = 0.8 * r
    overlap = max(2.0, 0.25 * half)
    spans = [(-half, overlap), (-overlap, half)] if s.split_polygons else [(-half, half)]
    y0, y1 = s.cy - half, s.cy + half
    return [[round(v, 2) for v in (s.cx + a, y0, s.cx + b, y0, s.cx + b, y1, s.cx + a, y1)] for a, b in spans]


def _dots_mask(rng: np.random.Generator, s: _Shape, width: int, height: int) -> np.ndarray:
    """A crowd of small dots inside the shape's disc, as a binary mask (crowd annotations are masks)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    dot = max(1.0, s.radius / 5)
    for _ in range(7):
        angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(0, s.radius - dot)
        x, y = s.cx + distance * np.cos(angle), s.cy + distance * np.sin(angle)
        draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=1)
    return np.asarray(canvas, dtype=np.uint8)


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's crowd format: column-major run lengths starting with a run of zeros."""
    flat = mask.ravel(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return {"counts": [0, *counts] if flat[0] else counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _draw_image(rng: np.random.Generator, shapes: list[_Shape], width: int, height: int, path: Path) -> list:
    """Draw a noisy background and every shape; return each shape's COCO segmentation."""
    background = rng.integers(170, 240, size=3)
    noise = rng.normal(0.0, 6.0, size=(height, width, 1))
    image = Image.fromarray(np.clip(background[None, None, :] + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    segmentations = []
    for s in shapes:
        if s.is_dots:
            mask = _dots_mask(rng, s, width, height)
            image.paste((70, 70, 70), mask=Image.fromarray(mask * 255, "L"))
            segmentations.append(_uncompressed_rle(mask))
            continue
        polygons = _polygons(s)
        for polygon in polygons:
            draw.polygon(polygon, fill=COLOURS[s.colour])
        segmentations.append(polygons)
    image.save(path, format="JPEG", quality=90)
    return segmentations


def _annotation(ann_id: int, image_id: int, s: _Shape, segmentation: list | dict, height: int, width: int) -> dict:
    """A COCO annotation whose area and bbox are those of the union of its parts (as COCO stores them)."""
    rle = mask_utils.frPyObjects(segmentation, height, width)
    rle = rle if isinstance(segmentation, dict) else mask_utils.merge(rle)
    x, y, w, h = (round(float(v), 2) for v in mask_utils.toBbox(rle))
    return {
        "id": ann_id, "image_id": image_id, "category_id": CATEGORY_IDS[s.shape], "segmentation": segmentation,
        "area": float(mask_utils.area(rle)), "bbox": [x, y, w, h], "iscrowd": int(s.is_dots),
    }


def _add_ref(refs: list[dict], rng: np.random.Generator, ann_id: int | list[int], image_id: int,
             category_id: int | list[int], expressions: list[str], typed_raw: bool, **extra: bool) -> None:
    """Append a ref in the refs pickle format with two or three distinct expressions (``ann_id`` a list: a
    gRefCOCO ref, [-1] for no target)."""
    ref_id = len(refs) + 1
    suffix = ref_id if isinstance(ann_id, list) else ann_id
    count = int(rng.integers(2, 4))
    picked = [expressions[i] for i in sorted(rng.permutation(len(expressions))[:count])]
    sentences = [{"raw": typed_text(text) if typed_raw else text, "sent": text, "tokens": text.split(),
                  "sent_id": 100 * ref_id + k} for k, text in enumerate(picked)]
    refs.append({
        "ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "category_id": category_id,
        "split": "train", "file_name": f"COCO_train2014_{image_id:012d}_{suffix}.jpg",
        "sent_ids": [x["sent_id"] for x in sentences], "sentences": sentences, **extra,
    })


def absent_expressions(shapes: list[_Shape]) -> list[str]:
    """Expressions that name no shape of the image: a kind never drawn ("the purple star"), a colour and kind
    that do not meet in it, a colour it lacks."""
    drawn = [s for s in shapes if not s.is_dots]
    pairs = {(s.colour, s.shape) for s in drawn}
    found = [f"the {colour} {kind}" for colour in COLOURS for kind in ABSENT_SHAPES]
    found += [f"the {colour} {kind}" for colour in COLOURS for kind in SHAPES if (colour, kind) not in pairs]
    found += [f"the {colour} one" for colour in COLOURS if all(s.colour != colour for s in drawn)]
    return found


def group_expressions(shapes: list[_Shape]) -> list[tuple[list[_Shape], list[str]]]:
    """(members, expressions) of every group of two or more shapes sharing a colour or a kind."""
    drawn = [s for s in shapes if not s.is_dots]
    found = []
    for attribute, values, noun in (("colour", COLOURS, "{} shapes"), ("shape", SHAPES, "{}s")):
        for value in values:
            members = [s for s in drawn if getattr(s, attribute) == value]
            if len(members) < 2:
                continue
            plural = noun.format(value)
            count = "both" if len(members) == 2 else f"the {len(members)}"
            found.append((members, [f"all the {plural}", f"the {plural}", f"{count} {plural}"]))
    return found


def typed_text(sent: str) -> str:
    """A normalised expression as typed: first letter capitalised, a comma after the second word of longer
    expressions, a final period ("the big red circle" -> "The big, red circle.")."""
    words = sent.split()
    if len(words) > 3:
        words[1] += ","
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def referring_expressions(target: _Shape, shapes: list[_Shape]) -> list[str]:
    """Every template that picks out ``target`` alone among ``shapes`` (always at least two)."""
    if target.is_dots:
        return ["the cluster of dots", "the group of small gray dots", "the dots"]
    others = [s for s in shapes if s is not target and not s.is_dots]
    t = target
    found = [f"the {t.size} {t.colour} {t.shape}", f"the {t.colour} {t.shape}"]
    if all(o.colour != t.colour for o in others):
        found.append(f"the {t.colour} one")
    if all(o.shape != t.shape for o in others):
        found.append(f"the {t.shape}")
    if all((o.shape, o.size) != (t.shape, t.size) for o in others):
        found.append(f"the {t.size} {t.shape}")
    found += _position_expressions(t, others, min(s.radius for s in shapes))
    return found


_EXTREMES = {"on the left": (-1, 0), "on the right": (1, 0), "at the top": (0, -1), "at the bottom": (0, 1)}
_RELATIONS = {"left of": (-1, 0), "right of": (1, 0), "above": (0, -1), "below": (0, 1)}


def _beyond(a: _Shape, b: _Shape, direction: tuple[int, int], margin: float) -> bool:
    """Whether ``a`` lies more than ``margin`` pixels past ``b`` along an axis direction."""
    dx, dy = direction
    return (a.cx - b.cx) * dx + (a.cy - b.cy) * dy > margin


def _position_expressions(t: _Shape, others: list[_Shape], margin: float) -> list[str]:
    """Extremes and relations that hold for the target with a visible margin and for no rival at all."""
    found = []
    same_shape = [o for o in others if o.shape == t.shape]
    for words, direction in _EXTREMES.items():
        if same_shape and all(_beyond(t, o, direction, margin) for o in same_shape):
            found.append(f"the {t.shape} {words}")
        if others and all(_beyond(t, o, direction, margin) for o in others):
            found.append(f"the shape {words}")
    for anchor in others:
        if anchor.colour == t.colour or any(o.colour == anchor.colour for o in others if o is not anchor):
            continue  # "the blue one" must name a single shape
        rivals = [o for o in same_shape if o is not anchor]
        for words, direction in _RELATIONS.items():
            clear = not any(_beyond(o, anchor, direction, 0) for o in rivals)
            if clear and _beyond(t, anchor, direction, margin):
                found.append(f"the {t.shape} {words} the {anchor.colour} one")
    return found


def _assign_splits(rng: np.random.Generator, num_images: int, scheme: str) -> list[str]:
    """Split by image (as refer does); every split gets at least one image when there are enough."""
    fractions = SPLIT_FRACTIONS[scheme]
    order = iter(rng.permutation(num_images))
    split_of_image = ["train"] * num_images
    for name in list(fractions)[1:]:
        count = int(round(fractions[name] * num_images))
        for i in itertools.islice(order, max(1, count) if num_images >= len(fractions) else count):
            split_of_image[i] = name
    return split_of_image


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m lavt_hf.training.data.synthetic", description="Write a "
                                     "synthetic referring-segmentation dataset in the raw refer layout "
                                     "(<root>/<dataset>/refs(<split_by>).p, instances.json; "
                                     "<images_root>/train2014/*.jpg).")
    parser.add_argument("root", help="refer root to write <dataset>/refs(...).p and instances.json into")
    parser.add_argument("images_root", help="folder that receives train2014/COCO_train2014_%%012d.jpg")
    parser.add_argument("--num_images", type=positive_int, default=200, help="number of images (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files")
    parser.add_argument("--width", type=positive_int, default=160, help="image width in pixels")
    parser.add_argument("--height", type=positive_int, default=120, help="image height in pixels")
    parser.add_argument("--generalized", action="store_true", help="the gRefCOCO layout "
                        "(grefcoco/grefs(<split_by>).json), with expressions naming no shape or several")
    args = parser.parse_args(argv)
    result = generate_synthetic_refer(args.root, args.images_root, num_images=args.num_images, seed=args.seed,
                                      image_size=(args.width, args.height), generalized=args.generalized)
    print(f"wrote {result.num_images} images, {result.num_refs} objects, {result.num_sentences} expressions "
          f"to {Path(args.root) / result.dataset} and {Path(args.images_root) / 'train2014'}")


if __name__ == "__main__":
    main()
