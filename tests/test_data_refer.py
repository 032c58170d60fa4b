# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The raw refer reader and the community parquet adapter give exactly what the files define."""

import json
import pickle
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Image as ImageFeature
from pycocotools import mask as mask_utils

from lavt_hf.training.data import decode_mask, load_refer_dataset
from lavt_hf.training.data.refer import RawRefer, load_refs
from lavt_hf.training.data.synthetic import generate_synthetic_refer
from tests.conftest import refs_texts

SPLITS = ("train", "val", "testA", "testB")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    generate_synthetic_refer(root / "refer", root / "images", num_images=40, seed=5, image_size=(96, 72))
    return root


@pytest.fixture
def raw_copy(raw, tmp_path):
    """A private copy to break."""
    shutil.copytree(raw, tmp_path / "copy")
    return tmp_path / "copy"


def _expected(root):
    """What the layout defines, read with the standard library only."""
    refs = pickle.load(open(root / "refer" / "refcoco" / "refs(unc).p", "rb"))
    instances = json.loads((root / "refer" / "refcoco" / "instances.json").read_text())
    return refs, {a["id"]: a for a in instances["annotations"]}, {i["id"]: i for i in instances["images"]}


def _runs_to_mask(counts, height, width):
    """COCO uncompressed RLE decoded by hand: alternating runs of 0 and 1 in column-major order."""
    flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
    return flat.reshape(width, height).T


def _expected_mask(annotation, image, rule):
    """Each polygon rasterised on its own with pycocotools, combined with numpy."""
    h, w = image["height"], image["width"]
    segmentation = annotation["segmentation"]
    if isinstance(segmentation, dict):
        return _runs_to_mask(segmentation["counts"], h, w)
    parts = [mask_utils.decode(mask_utils.frPyObjects([polygon], h, w))[:, :, 0] for polygon in segmentation]
    total = np.sum(parts, axis=0)
    return (total == 1).astype(np.uint8) if rule == "original" else (total > 0).astype(np.uint8)


def _load(root, split, **kwargs):
    return load_refer_dataset(root / "refer", "refcoco_unc", split, images_root=root / "images", **kwargs)


@pytest.mark.parametrize("rule", ["original", "union"])
def test_rows_equal_the_layout(raw, rule):
    refs, annotations, images = _expected(raw)
    for split in SPLITS:
        dataset = _load(raw, split, mask_rule=rule).cast_column("image", ImageFeature(decode=False))
        expected = [r for r in refs if r["split"] == split]
        assert len(dataset) == len(expected) > 0
        for row, ref in zip(dataset, expected):
            ann, image = annotations[ref["ann_id"]], images[ref["image_id"]]
            assert (row["ref_id"], row["ann_id"], row["image_id"]) == (ref["ref_id"], ref["ann_id"], ref["image_id"])
            assert (row["category_id"], row["split"]) == (ref["category_id"], split)
            assert row["sentences"] == [s["raw"] for s in ref["sentences"]]
            assert row["bbox"] == ann["bbox"]
            assert row["image"]["path"] == str(raw / "images" / "train2014" / image["file_name"])
            assert row["mask"]["size"] == [image["height"], image["width"]]
            np.testing.assert_array_equal(decode_mask(row["mask"]), _expected_mask(ann, image, rule))


def test_overlapping_polygons_follow_the_rule(raw):
    refs, annotations, images = _expected(raw)
    overlapping = [r for r in refs if len(annotations[r["ann_id"]]["segmentation"]) == 2
                   and not annotations[r["ann_id"]]["iscrowd"]]
    assert overlapping
    ref = overlapping[0]
    ann, image = annotations[ref["ann_id"]], images[ref["image_id"]]
    rows = {rule: next(r for r in _load(raw, ref["split"], mask_rule=rule) if r["ann_id"] == ref["ann_id"])
            for rule in ("original", "union")}
    original, union = decode_mask(rows["original"]["mask"]), decode_mask(rows["union"]["mask"])
    both = np.sum([_expected_mask({"segmentation": [p]}, image, "union") for p in ann["segmentation"]], axis=0) == 2
    assert both.any()
    np.testing.assert_array_equal(union.astype(bool) & ~original.astype(bool), both)


def test_crowd_rle_is_decoded(raw):
    refs, annotations, images = _expected(raw)
    ref = next(r for r in refs if annotations[r["ann_id"]]["iscrowd"])
    row = next(r for r in _load(raw, ref["split"]) if r["ann_id"] == ref["ann_id"])
    expected = _runs_to_mask(annotations[ref["ann_id"]]["segmentation"]["counts"], 72, 96)
    assert expected.sum() > 0
    np.testing.assert_array_equal(decode_mask(row["mask"]), expected)


def test_streaming_and_single_config_detection(raw):
    dataset = load_refer_dataset(raw / "refer", split="val", images_root=raw / "images")  # only one config
    streamed = list(_load(raw, "val", streaming=True).take(3))
    assert [r["ref_id"] for r in streamed] == dataset["ref_id"][:3]


def test_unknown_split_names_the_real_ones(raw):
    with pytest.raises(ValueError, match=r"'test'.*\['train', 'val', 'testA', 'testB'\]"):
        _load(raw, "test")


def test_wrong_root_names_path_and_layout(raw, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*expected layout"):
        RawRefer(tmp_path / "nowhere", raw / "images")
    with pytest.raises(FileNotFoundError, match="neither an existing local path"):
        load_refer_dataset(tmp_path / "nowhere", "refcoco_unc", images_root=raw / "images")
    with pytest.raises(FileNotFoundError, match=r"refcoco\+.*refcoco_unc.*expected layout"):
        RawRefer(raw / "refer", raw / "images", dataset="refcoco+")
    with pytest.raises(FileNotFoundError, match=r"refs\(umd\)\.p not found.*expected layout"):
        RawRefer(raw / "refer", raw / "images", split_by="umd")
    with pytest.raises(FileNotFoundError, match="images root .*expected layout"):
        RawRefer(raw / "refer", tmp_path / "no_images")


def test_missing_instances(raw_copy):
    (raw_copy / "refer" / "refcoco" / "instances.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"instances\.json not found.*expected layout"):
        _load(raw_copy, "train")


def test_refs_of_another_dataset(raw_copy, tmp_path):
    generate_synthetic_refer(tmp_path / "other", tmp_path / "other_images", num_images=60, seed=9)
    shutil.copy(tmp_path / "other" / "refcoco" / "refs(unc).p", raw_copy / "refer" / "refcoco" / "refs(unc).p")
    with pytest.raises(ValueError, match=r"refs\(unc\)\.p point at annotations.*instances\.json.*same dataset"):
        _load(raw_copy, "train")


def test_missing_image_names_it(raw_copy):
    refs, _, images = _expected(raw_copy)
    victim = next(r for r in refs if r["split"] == "val")
    path = raw_copy / "images" / "train2014" / images[victim["image_id"]]["file_name"]
    path.unlink()
    with pytest.raises(FileNotFoundError, match=f"{path.name}.*expected layout"):
        _load(raw_copy, "val")
    if not any(r["image_id"] == victim["image_id"] for r in refs if r["split"] == "train"):
        assert len(_load(raw_copy, "train")) > 0  # other splits do not need the image


def test_refs_pickle_is_data_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([Evil()], protocol=2))
    with pytest.raises(ValueError, match="not a readable refs pickle"):
        load_refs(path)
    path.write_bytes(pickle.dumps({"not": "a list"}, protocol=2))
    with pytest.raises(ValueError, match="not a refs pickle"):
        load_refs(path)


def test_python2_byte_strings_fall_back_to_latin1(tmp_path):
    # [{'ann_id': 1, 'sent': 'caf\xe9'}] as Python 2 pickles it: byte strings (SHORT_BINSTRING), protocol 2.
    path = tmp_path / "refs(unc).p"
    path.write_bytes(b"\x80\x02](}U\x06ann_idK\x01sU\x04sentU\x04caf\xe9se.")
    assert load_refs(path) == [{"ann_id": 1, "sent": "caf\u00e9"}]


def _write_community_parquet(root, path, with_sentences=True):
    """The jxu124/refcoco column layout, built from the synthetic refer files."""
    refs, annotations, images = _expected(root)
    records = []
    for r in refs:
        image = images[r["image_id"]]
        record = {
            "sent_ids": r["sent_ids"], "file_name": r["file_name"], "ann_id": r["ann_id"], "ref_id": r["ref_id"],
            "image_id": r["image_id"], "split": r["split"], "category_id": r["category_id"],
            "raw_anns": json.dumps(annotations[r["ann_id"]]),
            "raw_image_info": json.dumps({k: image[k] for k in ("file_name", "height", "width", "id")}),
            "raw_sentences": json.dumps(r["sentences"]),
            "image_path": f"coco/train2014/{image['file_name']}", "bbox": annotations[r["ann_id"]]["bbox"],
            "captions": [s["raw"] for s in r["sentences"]], "global_image_id": f"coco.{r['image_id']}",
            "anns_id": str(r["ann_id"]),
        }
        if with_sentences:
            record["sentences"] = r["sentences"]
        records.append(record)
    pq.write_table(pa.Table.from_pylist(records), path)


def test_community_layout_maps_to_the_same_rows(raw, tmp_path):
    _write_community_parquet(raw, tmp_path / "refcoco-val.parquet")
    community = load_refer_dataset(tmp_path / "refcoco-val.parquet", split="val", images_root=raw / "images")
    assert community.to_list() == _load(raw, "val").to_list()
    with pytest.raises(ValueError, match=r"'test'.*\['train', 'val', 'testA', 'testB'\]"):
        load_refer_dataset(tmp_path, split="test", images_root=raw / "images")


def test_community_captions_when_no_sentences(raw, tmp_path):
    _write_community_parquet(raw, tmp_path / "c.parquet", with_sentences=False)
    rows = load_refer_dataset(tmp_path, split="testA", images_root=raw / "images", layout="community")
    refs, _, _ = _expected(raw)
    expected = [[s["raw"] for s in r["sentences"]] for r in refs if r["split"] == "testA"]
    assert rows["sentences"][:] == expected


def test_community_missing_image(raw_copy, tmp_path):
    _write_community_parquet(raw_copy, tmp_path / "c.parquet")
    shutil.rmtree(raw_copy / "images" / "train2014")
    (raw_copy / "images" / "train2014").mkdir()
    with pytest.raises(FileNotFoundError, match="COCO_train2014_.*expected"):
        load_refer_dataset(tmp_path / "c.parquet", split="val", images_root=raw_copy / "images")


@pytest.mark.parametrize("field", ["raw", "sent"])
def test_sentence_field_of_refer_and_community_layouts(typed_data, tmp_path, field):
    """raw (the default: what the original tokenizes) keeps the annotator's capitals and punctuation."""
    expected = refs_texts(typed_data / "refer", "train", field)
    kwargs = {} if field == "raw" else {"sentence_field": "sent"}
    assert _load(typed_data, "train", **kwargs)["sentences"][:] == expected
    _write_community_parquet(typed_data, tmp_path / "c.parquet")
    community = load_refer_dataset(tmp_path / "c.parquet", split="train", images_root=typed_data / "images", **kwargs)
    assert community["sentences"][:] == expected
    texts = [t for texts in expected for t in texts]
    typed = [t for t in texts if t.endswith(".") and "," in t and t[0].isupper()]
    assert (len(typed) > 0) == (field == "raw")


def test_unknown_sentence_field(typed_data):
    with pytest.raises(ValueError, match="unknown sentence_field 'tokens'.*'raw'.*'sent'"):
        _load(typed_data, "train", sentence_field="tokens")


def test_community_captions_have_no_sent_text(raw, tmp_path):
    _write_community_parquet(raw, tmp_path / "c.parquet", with_sentences=False)
    with pytest.raises(ValueError, match=r"c\.parquet has captions.*no 'sentences'.*ref_id \d+.*sentence_field='raw'"):
        load_refer_dataset(tmp_path, split="val", images_root=raw / "images", sentence_field="sent")
