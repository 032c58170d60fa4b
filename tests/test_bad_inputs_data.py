# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Bad data, one case per row: every problem surfaces when the data is loaded (or when an image is first read),
before any step, with the ref id and the file named; preparation refuses before it writes anything."""

import json
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset
from datasets import Image as ImageFeature

from lavt_hf.scripts.prepare_refcoco import prepare_refcoco
from lavt_hf.training import evaluation as lavt_evaluate
from lavt_hf.training.data import ReferEvalDataset, ReferTrainDataset, load_refer_dataset
from lavt_hf.training.data.synthetic import generate_synthetic_refer

REFS = Path("refer") / "refcoco" / "refs(unc).p"
INSTANCES = Path("refer") / "refcoco" / "instances.json"
SHARDS = Path("prepared") / "data" / "refcoco_unc"
IMAGE_TABLE = Path("prepared") / "images"


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """A tiny synthetic refer dataset (`refer/`, `images/`) and its prepared parquet (`prepared/`)."""
    root = tmp_path_factory.mktemp("clean")
    generate_synthetic_refer(root / "refer", root / "images", num_images=10, seed=6, image_size=(48, 40))
    prepare_refcoco(root / "refer", root / "images", root / "prepared")
    return root


def read_refs(root: Path) -> list[dict]:
    with open(root / REFS, "rb") as f:
        return pickle.load(f)


def write_refs(root: Path, refs: list[dict]) -> None:
    with open(root / REFS, "wb") as f:
        pickle.dump(refs, f, protocol=2)


def first_val_ref(root: Path) -> dict:
    return next(r for r in read_refs(root) if r["split"] == "val")


def edit_ref(root: Path, change: Callable[[dict], None]) -> dict:
    """Apply `change` to the first val ref in the pickle; returns the changed ref."""
    refs = read_refs(root)
    ref = next(r for r in refs if r["split"] == "val")
    change(ref)
    write_refs(root, refs)
    return ref


def edit_instances(root: Path, change: Callable[[dict], None]) -> None:
    instances = json.loads((root / INSTANCES).read_text())
    change(instances)
    (root / INSTANCES).write_text(json.dumps(instances))


def annotation_of(instances: dict, ann_id: int) -> dict:
    return next(a for a in instances["annotations"] if a["id"] == ann_id)


def image_file(root: Path, ref: dict) -> Path:
    instances = json.loads((root / INSTANCES).read_text())
    name = next(i["file_name"] for i in instances["images"] if i["id"] == ref["image_id"])
    return root / "images" / "train2014" / name


def load_raw(root: Path, split: str = "val", **kwargs):
    return load_refer_dataset(root / "refer", "refcoco_unc", split, images_root=root / "images", **kwargs)


def load_prepared(root: Path, split: str = "val", config: str | None = "refcoco_unc"):
    return load_refer_dataset(root / "prepared", config, split, cache_dir=str(root / "cache"))


def rewrite_shard(root: Path, split: str, change: Callable[[list[dict]], list[dict]], features=None) -> Path:
    """Rewrite the (single) parquet file of a prepared split with `change` applied to its rows."""
    return rewrite_parquet(root, next((root / SHARDS).glob(f"{split}-*.parquet")), change, features)


def rewrite_parquet(root: Path, path: Path, change: Callable[[list[dict]], list[dict]], features=None) -> Path:
    """Rewrite a parquet file with `change` applied to its rows (images as bytes), stored with `features`."""
    dataset = Dataset.from_parquet(str(path), cache_dir=str(root / "cache-rewrite"))
    if "image" in dataset.column_names:
        dataset = dataset.cast_column("image", ImageFeature(decode=False))
    rows = change(dataset.to_list())
    changed = Dataset.from_list(rows, features=features or dataset.features) if rows else dataset.select([])
    changed.to_parquet(path)
    return path


def image_table_rows(root: Path) -> dict[int, dict]:
    """image_id -> image (bytes, path) of the prepared folder's image table."""
    table = pq.read_table(sorted((root / IMAGE_TABLE).glob("*.parquet")))
    return {row["image_id"]: row["image"] for row in table.to_pylist()}


def edit_image_table(root: Path, change: Callable[[list[dict]], list[dict]]) -> None:
    for path in sorted((root / IMAGE_TABLE).glob("*.parquet")):
        rewrite_parquet(root, path, change)


def prepare_into(root: Path):
    return prepare_refcoco(root / "refer", root / "images", root / "out")


# --- raw refer layout ------------------------------------------------------------------------------------------

def ref_without_sentences(root):
    ref = edit_ref(root, lambda r: r.update(sentences=[], sent_ids=[]))
    return lambda: load_raw(root), rf"ref_id {ref['ref_id']} .*refs\(unc\)\.p has no sentences"


def sentence_without_raw_text(root):
    ref = edit_ref(root, lambda r: r["sentences"][0].pop("raw"))
    return lambda: load_raw(root), rf"ref_id {ref['ref_id']} in .*refs\(unc\)\.p: a sentence has no 'raw' text"


def sentence_with_empty_text(root):
    ref = edit_ref(root, lambda r: r["sentences"][0].update(sent="  "))
    return (lambda: load_raw(root, sentence_field="sent"),
            rf"ref_id {ref['ref_id']} in .*refs\(unc\)\.p: a sentence has no 'sent' text")


def refs_pickle_without_refs(root):
    write_refs(root, [])
    return lambda: load_raw(root), r"refs\(unc\)\.p holds no refs"


def instances_truncated(root):
    text = (root / INSTANCES).read_text()
    (root / INSTANCES).write_text(text[: len(text) // 2])
    return lambda: load_raw(root), r"instances\.json is not valid JSON \(.* line 1, column \d+\).*truncated"


def instances_without_annotations(root):
    edit_instances(root, lambda i: i.pop("annotations"))
    return lambda: load_raw(root), r"instances\.json has no 'annotations' list \(keys: \['categories', 'images', .*\]\)"


def instances_without_images(root):
    edit_instances(root, lambda i: i.pop("images"))
    return lambda: load_raw(root), r"instances\.json has no 'images' list"


def annotation_without_segmentation(root):
    edit_instances(root, lambda i: i["annotations"][0].pop("segmentation"))
    return lambda: load_raw(root), r"instances\.json: an entry of 'annotations' lacks \['segmentation'\]"


def empty_segmentation(root):
    ref = first_val_ref(root)
    edit_instances(root, lambda i: annotation_of(i, ref["ann_id"]).update(segmentation=[]))
    return (lambda: load_raw(root, "train"),  # any split: the instances file itself is broken
            rf"ann_id {ref['ann_id']} \(ref_id {ref['ref_id']}\) of image_id {ref['image_id']} \(.*\.jpg\) in "
            r".*instances\.json has an empty segmentation")


def polygon_of_two_points(root):
    ref = first_val_ref(root)
    edit_instances(root, lambda i: annotation_of(i, ref["ann_id"]).update(segmentation=[[1.0, 2.0, 5.0, 6.0]]))
    return lambda: load_raw(root), rf"ann_id {ref['ann_id']} .*instances\.json has a polygon that is not 3 or more"


def image_that_does_not_decode(root):
    ref = first_val_ref(root)
    path = image_file(root, ref)
    path.write_bytes(path.read_bytes()[:200])
    rows = load_raw(root)
    index = rows["ref_id"][:].index(ref["ref_id"])
    return (lambda: ReferTrainDataset(rows, None)[index],
            rf"the image of ref_id {ref['ref_id']} \(.*{path.name}\) does not decode")


def image_of_another_size(root):
    from PIL import Image

    ref = first_val_ref(root)
    path = image_file(root, ref)
    Image.new("RGB", (30, 20)).save(path)
    return (lambda: ReferEvalDataset(load_raw(root), None)[0],
            rf"the image of ref_id {ref['ref_id']} \(.*{path.name}\) is 30x20 .*but its mask is 48x40")


# --- lavt-prepare-refcoco: refuses before writing anything ------------------------------------------------------

def prepare_ref_without_sentences(root):
    ref = edit_ref(root, lambda r: r.update(sentences=[], sent_ids=[]))
    return lambda: prepare_into(root), rf"ref_id {ref['ref_id']} .*refs\(unc\)\.p has no sentences"


def prepare_image_that_does_not_decode(root):
    ref = first_val_ref(root)
    path = image_file(root, ref)
    path.write_bytes(path.read_bytes()[:300])
    return lambda: prepare_into(root), rf"image .*{path.name} of ref_id \d+ \(image_id {ref['image_id']}\) does not decode"


def prepare_image_of_another_size(root):
    from PIL import Image

    ref = first_val_ref(root)
    path = image_file(root, ref)
    Image.new("RGB", (50, 40)).save(path)
    return (lambda: prepare_into(root),
            rf"image .*{path.name} of ref_id \d+ \(image_id {ref['image_id']}\) is 50x40 .*instances\.json says 48x40")


def prepare_size_differs_in_the_second_dataset(root):
    """refcoco+ over the images refcoco was checked with: its own instances.json entry is still compared."""
    shutil.copytree(root / "refer" / "refcoco", root / "refer" / "refcoco+")
    plus = root / "refer" / "refcoco+" / "instances.json"
    instances = json.loads(plus.read_text())
    instances["images"][0]["width"] = 47
    plus.write_text(json.dumps(instances))
    # The entry's crowd RLE no longer fits it either: whichever check speaks first names the entry.
    return (lambda: prepare_into(root),
            r"refcoco\+/instances\.json (says 47x40|has an RLE of size \[40, 48\] .* for an image of \[40, 47\])")


# --- prepared parquet --------------------------------------------------------------------------------------------

def prepared_image_that_does_not_decode(root):
    victim = pq.read_table(next((root / SHARDS).glob("val-*.parquet"))).to_pylist()[0]
    name = image_table_rows(root)[victim["image_id"]]["path"]

    def corrupt(rows):
        return [dict(row, image={"bytes": row["image"]["bytes"][:100], "path": name})
                if row["image_id"] == victim["image_id"] else row for row in rows]

    edit_image_table(root, corrupt)
    return (lambda: ReferEvalDataset(load_prepared(root), None)[0],
            rf"the image of ref_id {victim['ref_id']} \({name}\) does not decode")


def prepared_object_without_its_image(root):
    victim = pq.read_table(next((root / SHARDS).glob("val-*.parquet"))).to_pylist()[0]
    edit_image_table(root, lambda rows: [row for row in rows if row["image_id"] != victim["image_id"]])
    return (lambda: load_prepared(root),
            rf"\d+ object\(s\) of .*prepared \(refcoco_unc, split val\) point at images the image table does "
            rf"not hold, first ref_id {victim['ref_id']} \(image_id {victim['image_id']}\)")


def prepared_without_image_table(root):
    shutil.rmtree(root / IMAGE_TABLE)
    return (lambda: load_prepared(root),
            r"the image table of .*prepared \(refcoco_unc, split val\) is missing .*prepare it again")


def prepared_card_without_image_table(root):
    card = root / "prepared" / "README.md"
    card.write_text(re.sub(r"- config_name: images\n(  .*\n)+", "", card.read_text()))
    return (lambda: load_prepared(root),
            r"prepared \(refcoco_unc, split val\) has no image table.*prepare it again")


def prepared_split_without_rows(root):
    rewrite_shard(root, "val", lambda rows: [])
    return lambda: load_prepared(root), r"prepared \(refcoco_unc, split val\) has no rows; prepare it again"


def prepared_split_files_missing(root):
    for path in (root / SHARDS).glob("val-*.parquet"):
        path.unlink()
    return lambda: load_prepared(root), r"split 'val' of .*prepared \(refcoco_unc\) has no data files.*incomplete"


def prepared_ref_without_sentences(root):
    victim = {}

    def drop(rows):
        victim.update(rows[1])
        rows[1]["sentences"] = []
        return rows

    path = rewrite_shard(root, "val", drop)
    return (lambda: load_prepared(root),
            rf"1 object\(s\) of .*prepared \(refcoco_unc, split val\) have no sentences, first ref_id "
            rf"{victim['ref_id']} \(file .*{path.name}\)")


def prepared_folder_without_card(root):
    (root / "prepared" / "README.md").unlink()
    return lambda: load_prepared(root), r"prepared is not a prepared dataset folder.*lavt-prepare-refcoco"


def prepared_unknown_config(root):
    return (lambda: load_prepared(root, config="refcocog_umd"),
            r"prepared has configurations \['refcoco_unc'\].*not 'refcocog_umd'")


# --- community parquet -------------------------------------------------------------------------------------------

def write_community(root: Path, change: Callable[[dict], None]) -> tuple[Path, dict]:
    """The jxu124/refcoco columns for the val refs, `change` applied to the first record."""
    instances = json.loads((root / INSTANCES).read_text())
    records = [{"ref_id": r["ref_id"], "ann_id": r["ann_id"], "image_id": r["image_id"], "split": r["split"],
                "category_id": r["category_id"], "sentences": r["sentences"],
                "raw_anns": json.dumps(annotation_of(instances, r["ann_id"]))}
               for r in read_refs(root) if r["split"] == "val"]
    change(records[0])
    path = root / "community.parquet"
    pq.write_table(pa.Table.from_pylist(records), path)
    return path, records[0]


def community_ref_without_sentences(root):
    path, record = write_community(root, lambda r: r.update(sentences=[]))
    return (lambda: load_refer_dataset(path, split="val", images_root=root / "images"),
            rf"ref_id {record['ref_id']} .*community\.parquet has no sentences")


def community_empty_segmentation(root):
    def empty(record):
        record["raw_anns"] = json.dumps({**json.loads(record["raw_anns"]), "segmentation": []})

    path, record = write_community(root, empty)
    return (lambda: load_refer_dataset(path, split="val", images_root=root / "images"),
            rf"ann_id {record['ann_id']} \(ref_id {record['ref_id']}\) of image_id {record['image_id']} \(.*\) in "
            r".*community\.parquet has an empty segmentation")


# --- the commands: lavt-evaluate and lavt-train stop at loading ---------------------------------------------------

def evaluate_ref_without_sentences(root):
    ref = edit_ref(root, lambda r: r.update(sentences=[], sent_ids=[]))

    def run():  # the data is read before the model: the model folder is never looked at
        lavt_evaluate.main(["--model", str(root / "no-model-needed"), "--dataset", str(root / "refer"),
                            "--images_root", str(root / "images"), "--output_dir", str(root / "eval")])

    return run, rf"lavt-evaluate: error: --dataset .*: ref_id {ref['ref_id']} .*refs\(unc\)\.p has no sentences"


def train_ref_without_sentences(root):
    from lavt_hf.training import train
    from lavt_hf.training.arguments import DataArguments, TrainingArguments

    refs = read_refs(root)
    ref = next(r for r in refs if r["split"] == "train")
    ref["sentences"] = []
    write_refs(root, refs)
    data_args = DataArguments(dataset=str(root / "refer"), images_root=str(root / "images"), num_workers=0)
    return (lambda: train.build_dataloaders(data_args, TrainingArguments(), None),
            rf"ref_id {ref['ref_id']} .*refs\(unc\)\.p has no sentences")


CASES = [
    ref_without_sentences, sentence_without_raw_text, sentence_with_empty_text, refs_pickle_without_refs,
    instances_truncated, instances_without_annotations, instances_without_images, annotation_without_segmentation,
    empty_segmentation, polygon_of_two_points, image_that_does_not_decode, image_of_another_size,
    prepare_ref_without_sentences, prepare_image_that_does_not_decode, prepare_image_of_another_size,
    prepare_size_differs_in_the_second_dataset,
    prepared_image_that_does_not_decode, prepared_split_without_rows, prepared_split_files_missing,
    prepared_ref_without_sentences, prepared_folder_without_card, prepared_unknown_config,
    prepared_object_without_its_image, prepared_without_image_table, prepared_card_without_image_table,
    community_ref_without_sentences, community_empty_segmentation, evaluate_ref_without_sentences,
    train_ref_without_sentences,
]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_bad_data_is_named(case, clean, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(clean, root, ignore=shutil.ignore_patterns("cache*"))
    action, message = case(root)
    try:
        action()
    except SystemExit as exit_info:  # a command: one line on stderr, no traceback
        assert exit_info.code != 0
        text = capsys.readouterr().err
        assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    except (ValueError, FileNotFoundError) as error:
        text = str(error)
    else:
        pytest.fail(f"{case.__name__} was accepted")
    assert re.search(message, text), text
    if case.__name__.startswith("prepare_"):  # refused before anything was written
        assert not (root / "out").exists() and not list(root.glob(".out.partial-*"))
    assert not (root / "eval").exists()


def test_clean_data_loads(clean):
    """The cases above break this data; unbroken, every path loads it."""
    assert len(load_raw(clean)) == len(load_prepared(clean)) > 0
