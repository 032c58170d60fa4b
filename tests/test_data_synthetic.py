# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The synthetic generator writes the exact raw refer layout and a task that needs the text."""

import json
import pickle
import time
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from lavt_hf.training.data.synthetic import COLOURS, SHAPES, generate_synthetic_refer, main


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    result = generate_synthetic_refer(root / "refer", root / "images", num_images=40, seed=3)
    refs = pickle.load(open(root / "refer" / "refcoco" / "refs(unc).p", "rb"))
    instances = json.loads((root / "refer" / "refcoco" / "instances.json").read_text())
    return result, root, refs, instances


def test_layout_and_pickle_protocol(synthetic):
    result, root, refs, instances = synthetic
    refs_path = root / "refer" / "refcoco" / "refs(unc).p"
    assert refs_path.read_bytes()[:2] == b"\x80\x02"  # protocol 2, as Python 2 wrote the originals
    assert result.num_images == len(instances["images"]) == 40
    assert result.num_refs == len(refs)
    for image in instances["images"]:
        path = root / "images" / "train2014" / f"COCO_train2014_{image['id']:012d}.jpg"
        assert image["file_name"] == path.name
        with Image.open(path) as opened:
            assert opened.format == "JPEG" and opened.size == (image["width"], image["height"])
    ref_keys = {"ref_id", "ann_id", "image_id", "category_id", "split", "file_name", "sent_ids", "sentences"}
    assert all(set(r) == ref_keys for r in refs)
    assert all(set(s) == {"raw", "sent", "tokens", "sent_id"} for r in refs for s in r["sentences"])


def test_deterministic_from_seed(tmp_path):
    def files(seed, name):
        generate_synthetic_refer(tmp_path / name / "r", tmp_path / name / "i", num_images=6, seed=seed)
        return [p.read_bytes() for p in sorted((tmp_path / name).rglob("*")) if p.is_file()]

    assert files(1, "a") == files(1, "b")
    assert files(1, "a") != files(2, "c")


def test_splits_like_refcoco_unc_and_by_image(synthetic):
    _, _, refs, _ = synthetic
    assert {r["split"] for r in refs} == {"train", "val", "testA", "testB"}
    split_of_image = defaultdict(set)
    for r in refs:
        split_of_image[r["image_id"]].add(r["split"])
    assert all(len(s) == 1 for s in split_of_image.values())


def test_other_split_schemes(tmp_path):
    generate_synthetic_refer(tmp_path / "r", tmp_path / "i", num_images=10, dataset="refcocog",
                             split_by=["umd", "google"])
    umd = pickle.load(open(tmp_path / "r" / "refcocog" / "refs(umd).p", "rb"))
    google = pickle.load(open(tmp_path / "r" / "refcocog" / "refs(google).p", "rb"))
    assert {r["split"] for r in umd} == {"train", "val", "test"}
    assert {r["split"] for r in google} == {"train", "val"}
    assert [r["ann_id"] for r in umd] == [r["ann_id"] for r in google]


def test_special_annotations_present(synthetic):
    _, _, refs, instances = synthetic
    referred = {r["ann_id"] for r in refs}
    split_squares = [a for a in instances["annotations"] if isinstance(a["segmentation"], list)
                     and len(a["segmentation"]) == 2]
    crowds = [a for a in instances["annotations"] if a["iscrowd"]]
    assert split_squares and crowds
    assert isinstance(crowds[0]["segmentation"]["counts"], list)  # uncompressed RLE, as COCO crowds are
    square = split_squares[0]
    image = next(i for i in instances["images"] if i["id"] == square["image_id"])
    parts = mask_utils.decode(mask_utils.frPyObjects(square["segmentation"], image["height"], image["width"]))
    assert (parts.sum(axis=2) == 2).any(), "the two polygons must overlap"
    assert square["id"] in referred


def test_every_object_referred_unambiguously(synthetic):
    _, _, refs, instances = synthetic
    refs_by_image = defaultdict(list)
    for r in refs:
        refs_by_image[r["image_id"]].append(r)
    assert len(refs_by_image) == len(instances["images"])
    assert all(len(image_refs) >= 2 for image_refs in refs_by_image.values())
    assert len(refs) == len(instances["annotations"])
    for image_refs in refs_by_image.values():
        sentences = [s["sent"] for r in image_refs for s in r["sentences"]]
        assert len(sentences) == len(set(sentences)), "an expression may name one object of its image only"
        assert all(len(r["sentences"]) >= 2 for r in image_refs)
    words = " ".join(s["sent"] for r in refs for s in r["sentences"])
    for needed in ("left", "right", "above", "below", "big", "small", "circle", "square", "triangle", "red"):
        assert needed in words


def test_expressions_match_pixels(synthetic):
    """An expression naming a colour and a shape describes the annotated object: category and pixel colour."""
    _, root, refs, instances = synthetic
    annotations = {a["id"]: a for a in instances["annotations"]}
    categories = {c["id"]: c["name"] for c in instances["categories"]}
    checked = 0
    for r in refs:
        ann = annotations[r["ann_id"]]
        if ann["iscrowd"]:
            continue
        named = [t for t in (s["tokens"] for s in r["sentences"]) if len(t) == 3 and t[1] in COLOURS and t[2] in SHAPES]
        for _, colour, shape in named:
            assert categories[ann["category_id"]] == shape
            image = np.asarray(Image.open(root / "images" / "train2014" / f"COCO_train2014_{r['image_id']:012d}.jpg"))
            rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], *image.shape[:2]))
            inside = image[mask_utils.decode(rle).astype(bool)].astype(float).mean(axis=0)
            assert np.abs(inside - COLOURS[colour]).max() < 40
            checked += 1
    assert checked > 10


def test_two_hundred_images_in_seconds(tmp_path):
    start = time.perf_counter()
    result = generate_synthetic_refer(tmp_path / "r", tmp_path / "i", num_images=200, seed=0)
    assert time.perf_counter() - start < 10
    assert result.num_refs >= 400


def test_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "refs(<split_by>).p" in capsys.readouterr().out
    main([str(tmp_path / "r"), str(tmp_path / "i"), "--num_images", "3", "--width", "64", "--height", "48"])
    assert (tmp_path / "r" / "refcoco" / "refs(unc).p").is_file()
    with Image.open(tmp_path / "i" / "train2014" / "COCO_train2014_000000000003.jpg") as image:
        assert image.size == (64, 48)
