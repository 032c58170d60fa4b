# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Datasets of one's own (image, mask, expressions): a hand-made expressions.jsonl folder and any `datasets`
dataset with named columns become rows of the project's format, checked at the door, and train and evaluate."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from datasets import Dataset, Features, List, Value, load_dataset
from datasets import Image as ImageFeature
from huggingface_hub import DatasetCard
from PIL import Image

from lavt_hf.cli import UsageError
from lavt_hf.scripts import prepare_refcoco
from lavt_hf.training import evaluation as lavt_evaluate
from lavt_hf.training import train
from lavt_hf.training.data import (
    FEATURES,
    ReferTrainStream,
    decode_mask,
    detect_layout,
    encode_mask,
    load_refer_dataset,
    rows_from_dataset,
    stream_num_rows,
)
from lavt_hf.training.data.user import image_number
from tests.conftest import REPO_ROOT, tiny_train_recipe
from tests.local_hub import local_hub as local_hub_fixture
from tests.local_hub import run_client

pytestmark = pytest.mark.usefixtures("fresh_accelerator_state")

local_hub = local_hub_fixture
SIZE = (40, 30)  # (width, height) of the images
SPLITS = {"train": 8, "val": 4}


def box_mask(index: int) -> np.ndarray:
    """A box that moves with the object's index, so that every object has its own mask."""
    mask = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    mask[2 + index % 5: 14 + index % 5, 3 + 2 * (index % 6): 20 + 2 * (index % 6)] = 1
    return mask


def image_of(index: int) -> Image.Image:
    rng = np.random.default_rng(index)
    return Image.fromarray(rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8))


def objects() -> list[dict]:
    """Every object: its split, image index (two objects per image), mask and expressions."""
    found = []
    for split, count in SPLITS.items():
        for _ in range(count):
            index = len(found)
            found.append({"split": split, "image": index // 2, "mask": box_mask(index),
                          "sentences": [f"the box number {index}", f"object {index}"] if index % 3 else
                          f"box {index}"})
    return found


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The hand-made layout: images/, masks/ (PNG, 0/255) and expressions.jsonl."""
    root = tmp_path_factory.mktemp("own") / "my-data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    lines = []
    for index, item in enumerate(objects()):
        image_of(item["image"]).save(root / "images" / f"photo{item['image']}.jpg", quality=95)
        Image.fromarray(item["mask"] * 255).save(root / "masks" / f"object{index}.png")
        lines.append(json.dumps({"image": f"photo{item['image']}.jpg", "mask": f"object{index}.png",
                                 "sentences": item["sentences"], "split": item["split"]}))
    (root / "expressions.jsonl").write_text("\n".join(lines) + "\n")
    return root


def own_dataset(split: str, mask_kind: str = "image") -> Dataset:
    """The same objects as a `datasets` dataset with the user's own column names."""
    items = [item for item in objects() if item["split"] == split]
    masks = {"image": [Image.fromarray(item["mask"]) for item in items],
             "rle": [encode_mask(item["mask"]) for item in items],
             "polygons": [[box_polygon(item["mask"])] for item in items]}[mask_kind]
    mask_feature = {"image": ImageFeature(), "rle": {"size": List(Value("int32")), "counts": Value("string")},
                    "polygons": List(List(Value("float64")))}[mask_kind]
    features = Features({"photo": ImageFeature(), "segmentation": mask_feature, "caption": List(Value("string"))})
    return Dataset.from_dict({
        "photo": [image_of(item["image"]) for item in items], "segmentation": masks,
        "caption": [[s] if isinstance(s, str) else s for s in (item["sentences"] for item in items)],
    }, features=features)


def box_polygon(mask: np.ndarray) -> list[float]:
    """The outline of a box mask as a COCO polygon (pixel edges)."""
    rows, cols = np.nonzero(mask)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]


COLUMNS = {"image_column": "photo", "mask_column": "segmentation", "text_column": "caption"}


def test_folder_gives_rows_of_the_project_format(folder):
    rows = load_refer_dataset(folder, split="val")
    assert set(FEATURES) <= set(rows.features) and rows.features["no_target"] == Value("bool")
    expected = [(number, item) for number, item in enumerate(objects(), 1) if item["split"] == "val"]
    assert rows["ref_id"] == [number for number, _ in expected]  # the line numbers of expressions.jsonl
    images = [(folder / "images" / f"photo{item['image']}.jpg").read_bytes() for _, item in expected]
    assert rows["image_id"] == [image_number(data) for data in images]  # equal images share their id
    assert rows["image_id"][0] == rows["image_id"][1] != rows["image_id"][2]
    assert rows["sentences"] == [[s] if isinstance(s, str) else s for s in (i["sentences"] for _, i in expected)]
    for row, (_, item) in zip(rows, expected):
        np.testing.assert_array_equal(decode_mask(row["mask"]), item["mask"])
        rows_, cols = np.nonzero(item["mask"])
        assert row["bbox"] == [cols.min(), rows_.min(), cols.max() - cols.min() + 1, rows_.max() - rows_.min() + 1]
        assert row["image"].size == SIZE and row["split"] == "val" and row["no_target"] is False
    streamed = load_refer_dataset(folder, split="val", streaming=True)
    assert stream_num_rows(streamed) == len(rows)
    assert [r["ref_id"] for r in streamed] == rows["ref_id"]
    assert detect_layout(folder) == "user"


@pytest.mark.parametrize("mask_kind", ["image", "rle", "polygons"])
def test_named_columns_of_a_local_datasets_folder(folder, tmp_path, mask_kind):
    """A folder `datasets` loads (parquet files named by split), with the user's column names and any of the
    three mask kinds, gives the folder's masks and texts; synthesised ids are the row indices."""
    local = tmp_path / "parquet-data"
    own_dataset("val", mask_kind).to_parquet(local / "data" / "validation.parquet")
    rows = load_refer_dataset(local, split="validation", cache_dir=str(tmp_path / "cache"), **COLUMNS)
    reference = load_refer_dataset(folder, split="val")
    assert rows["sentences"] == reference["sentences"] and rows["ref_id"] == [0, 1, 2, 3]
    assert [r["counts"] for r in rows["mask"]] == [r["counts"] for r in reference["mask"]]
    assert rows["bbox"] == reference["bbox"]


def test_a_stream_of_named_columns_trains(folder, tmp_path, bert_vocab_dir):
    from transformers import AutoTokenizer

    from modeling_lavt.image_processing_lavt import LavtImageProcessor
    from modeling_lavt.processing_lavt import LavtProcessor

    local = tmp_path / "parquet-data"
    own_dataset("train").to_parquet(local / "data" / "train.parquet")
    streamed = load_refer_dataset(local, split="train", streaming=True, **COLUMNS)
    processor = LavtProcessor(LavtImageProcessor(size=32), AutoTokenizer.from_pretrained(bert_vocab_dir))
    items = list(ReferTrainStream(streamed, processor))
    assert len(items) == SPLITS["train"] and items[0]["labels"].shape == (32, 32)


def undecoded(rows) -> list[dict]:
    """Rows with the image as its file's bytes and without `no_target` (not in the prepared format)."""
    found = []
    for row in rows.cast_column("image", ImageFeature(decode=False)):
        image = row.pop("image")
        row.pop("no_target", None)
        found.append({**row, "image": image["bytes"] or Path(image["path"]).read_bytes()})
    return found


def test_prepared_folder_holds_the_same_rows_and_streams(folder, tmp_path, capsys):
    output = tmp_path / "prepared"
    prepare_refcoco.main(["--dataset", str(folder), "--output_dir", str(output)])
    assert f"wrote {output}" in capsys.readouterr().out
    card = DatasetCard.load(output / "README.md")
    assert card.data.mask_rule == "original" and f"a dataset of one's own (`{folder}`" in card.text
    assert "my-data (lavt-hf format)" in card.text
    for split in SPLITS:
        expected = undecoded(load_refer_dataset(folder, split=split))
        assert undecoded(load_refer_dataset(output, split=split, cache_dir=str(tmp_path / "cache"))) == expected
        assert undecoded(load_refer_dataset(output, split=split, streaming=True)) == expected
    # Two objects per image: each image once in the image table.
    assert len(load_dataset(str(output), "images", split="train")) == sum(SPLITS.values()) // 2


@pytest.mark.parametrize("argv, message", [
    (["--refer_root", "{folder}"], "--refer_root needs --images_root"),
    (["--dataset", "{folder}", "--configs", "refcoco_unc"], "--images_root and --configs apply to --refer_root"),
    (["--dataset", "{folder}", "--mask_column", "seg"], "expressions.jsonl folder, whose columns are fixed"),
])
def test_prepare_refuses_mixed_options_in_one_line(folder, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        prepare_refcoco.main([a.format(folder=folder) for a in argv] + ["--output_dir", str(tmp_path / "out")])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lavt-prepare-refcoco: error: ") and message in err[-1]
    assert not (tmp_path / "out").exists()


# --- checked at the door -----------------------------------------------------------------------------------------

def one_row(**changes) -> Dataset:
    """One object in the dataset's own columns: image, mask (image), sentences; `changes` replace values."""
    row = {"image": image_of(0), "mask": Image.fromarray(box_mask(0) * 255), "sentences": ["the box"], **changes}
    features = Features({"image": ImageFeature(), "mask": ImageFeature(), "sentences": List(Value("string")),
                         **({"no_target": Value("bool")} if "no_target" in row else {})})
    return Dataset.from_dict({key: [value] for key, value in row.items()}, features=features)


@pytest.mark.parametrize("changes, message", [
    ({"mask": Image.fromarray(np.zeros((SIZE[1], SIZE[0] + 1), np.uint8))},
     r"the mask of row 0 of mine is 41x30 \(width x height\) but its image is 40x30"),
    ({"mask": Image.fromarray((box_mask(0) * 128).astype(np.uint8) + 1)},
     r"the mask of row 0 of mine is not binary \(values \[1, 129\]\)"),
    ({"mask": Image.fromarray(np.stack([box_mask(0) * 255] * 3, axis=2))},
     r"the mask of row 0 of mine is an image of mode RGB with 3 channels"),
    ({"mask": Image.fromarray(np.zeros((SIZE[1], SIZE[0]), np.uint8))},
     r"row 0 of mine has an empty mask \(no pixels\); mark the expression no_target"),
    ({"no_target": True}, r"row 0 of mine is marked no_target but its mask has 204 pixels"),
    ({"sentences": ["the box", " "]}, r"row 0 of mine has an empty expression or none"),
    ({"sentences": []}, r"row 0 of mine has an empty expression or none"),
])
def test_bad_rows_are_errors_naming_the_row(changes, message):
    with pytest.raises(ValueError, match=message):
        rows_from_dataset(one_row(**changes), "mine")


def test_an_empty_mask_is_allowed_where_the_expression_names_nothing():
    rows = rows_from_dataset(one_row(mask=Image.fromarray(np.zeros((SIZE[1], SIZE[0]), np.uint8)), no_target=True))
    assert rows[0]["no_target"] is True and rows[0]["bbox"] == [0.0, 0.0, 0.0, 0.0]
    assert not decode_mask(rows[0]["mask"]).any()


def test_rle_of_another_size_and_missing_columns_are_named():
    mask = np.zeros((SIZE[1] + 2, SIZE[0]), np.uint8)
    mask[:3, :3] = 1
    rle = Dataset.from_dict({"image": [image_of(0)], "mask": [encode_mask(mask)], "sentences": ["a"]},
                            features=Features({"image": ImageFeature(), "mask": FEATURES["mask"],
                                               "sentences": Value("string")}))
    with pytest.raises(ValueError, match=r"the mask of row 0 of mine has an RLE of size \[32, 40\] \(height, width\) "
                                         r"for an image of \[30, 40\]"):
        rows_from_dataset(rle, "mine")
    polygons = Dataset.from_dict({"image": [image_of(0)], "mask": [[[1.0, 2.0, 5.0, 6.0]]], "sentences": ["a"]},
                                 features=Features({"image": ImageFeature(), "mask": List(List(Value("float64"))),
                                                    "sentences": Value("string")}))
    with pytest.raises(ValueError, match=r"the mask of row 0 of mine has a polygon that is not 3 or more"):
        rows_from_dataset(polygons, "mine")
    with pytest.raises(ValueError, match=r"mine has no column 'seg' \(its columns: \['image', 'mask', "
                                         r"'sentences'\]\); name the mask column with --mask_column"):
        rows_from_dataset(rle, "mine", mask_column="seg")


def test_folder_lines_are_named_in_errors(folder, synthetic_data, tmp_path):
    refer_root = synthetic_data / "refer"
    broken = tmp_path / "broken"
    (broken / "images").mkdir(parents=True)
    (broken / "masks").mkdir()
    image_of(0).save(broken / "images" / "a.jpg")
    Image.fromarray(np.zeros((SIZE[1], SIZE[0]), np.uint8)).save(broken / "masks" / "a.png")
    line = {"image": "a.jpg", "mask": "a.png", "sentences": ["the box"], "split": "train"}
    (broken / "expressions.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(ValueError, match=rf"line 1 of {broken}/expressions.jsonl has an empty mask"):
        load_refer_dataset(broken)
    with pytest.raises(ValueError, match=r"split 'val' not found in .*expressions.jsonl; available splits: "
                                         r"\['train'\]"):
        load_refer_dataset(broken, split="val")
    (broken / "expressions.jsonl").write_text(json.dumps({**line, "mask": "b.png"}) + "\n")
    with pytest.raises(FileNotFoundError, match=r"the mask .*b.png of line 1 of .*expressions.jsonl not found"):
        load_refer_dataset(broken)
    (broken / "expressions.jsonl").write_text(json.dumps({**line, "sentences": [""]}) + "\n")
    with pytest.raises(ValueError, match=r"line 1 of .*expressions.jsonl has an empty expression"):
        load_refer_dataset(broken)
    (broken / "expressions.jsonl").write_text(json.dumps({"image": "a.jpg"}) + "\n")
    with pytest.raises(ValueError, match=r"line 1 of .*expressions.jsonl lacks \['mask', 'sentences', 'split'\]"):
        load_refer_dataset(broken)
    with pytest.raises(ValueError, match=r"expressions.jsonl folder, whose columns are fixed"):
        load_refer_dataset(folder, image_column="photo")
    with pytest.raises(ValueError, match=r"one text per expression.*sentence_field 'sent'"):
        load_refer_dataset(folder, sentence_field="sent")
    with pytest.raises(ValueError, match=r"names its images: drop images_root"):
        load_refer_dataset(folder, images_root=folder)
    with pytest.raises(ValueError, match=r"\['mask_column'\] name the columns of a dataset of one's own; .* is in "
                                         r"the refer layout"):
        load_refer_dataset(refer_root, mask_column="seg")


# --- training and evaluation -------------------------------------------------------------------------------------



def train_and_evaluate(dataset: str, output: Path, bert_vocab_dir: Path, *column_args: str,
                       eval_split: str = "val") -> dict:
    """An epoch of a few steps of training, then lavt-evaluate on the trained model: its summary."""
    recipe = tiny_train_recipe(output, bert_vocab_dir, dataset=dataset, images_root=None, dataset_config=None,
                               output_dir=str(output / "run"), num_epochs=1, per_device_batch_size=2,
                               eval_split=eval_split)
    path = output / "recipe.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in recipe.items() if v is not None}))
    result = train.run(["--config", str(path), *column_args])
    assert lavt_evaluate.main(["--model", result["final_dir"], "--dataset", dataset, "--split", eval_split,
                               "--num_workers", "0", "--output_dir", str(output / "eval"), "--num_overlays", "1",
                               *column_args]) == 0
    assert len(list((output / "eval" / "overlays").glob("*.png"))) == 2  # the best and the worst sample
    return json.loads((output / "eval" / "eval_results.json").read_text())


def test_folder_trains_and_evaluates(folder, tmp_path, bert_vocab_dir):
    summary = train_and_evaluate(str(folder), tmp_path, bert_vocab_dir)
    assert summary["num_samples"] == sum(len(s) if isinstance(s, list) else 1
                                         for s in (i["sentences"] for i in objects() if i["split"] == "val"))


def test_cli_reports_a_bad_row_in_one_line(tmp_path, bert_vocab_dir, capsys):
    local = tmp_path / "data"
    one_row(sentences=[""]).to_parquet(local / "data" / "val.parquet")
    with pytest.raises(SystemExit) as exited:
        lavt_evaluate.main(["--model", str(tmp_path), "--dataset", str(local), "--split", "validation",
                            "--image_column", "image", "--output_dir", str(tmp_path / "out")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("lavt-evaluate: error: --dataset")
    assert "row 0 of" in err and "has an empty expression" in err


@pytest.mark.parametrize("message", [
    "the mask of row 1 of mine is not binary (values [1, 129])",
    "Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n  File ..."
    "\nValueError: the mask of row 1 of mine is not binary (values [1, 129])",
])
def test_a_bad_row_found_while_training_is_one_line_naming_the_data(message):
    """A stream's rows are checked as they are read: the training loop reports a bad one as the loaders' errors
    are reported (one line, exit 2), also when a DataLoader worker found it."""
    def batches():
        yield {"pixel_values": 1}
        raise ValueError(message)

    read = train.data_batches(batches(), "mine")
    assert next(read) == {"pixel_values": 1}
    with pytest.raises(UsageError) as error:
        next(read)
    assert str(error.value) == "--dataset mine: the mask of row 1 of mine is not binary (values [1, 129])"


@pytest.mark.slow
def test_dataset_pushed_to_the_hub_trains_and_evaluates(local_hub, tmp_path, bert_vocab_dir):
    """A user's own `datasets` dataset, pushed with `push_to_hub`, read by Hub id with its column names."""
    env = {"PYTHONPATH": str(REPO_ROOT)}
    run_client("""
        from datasets import DatasetDict
        from tests.test_user_datasets import own_dataset
        DatasetDict({"train": own_dataset("train"), "validation": own_dataset("val")}).push_to_hub(
            "someone/boxes")
        own_dataset("val").rename_columns({"photo": "image", "segmentation": "mask", "caption": "sentences"}
                                          ).push_to_hub("someone/plain")
        """, local_hub, tmp_path / "producer", extra_env=env)
    process = run_client(f"""
        import json
        from pathlib import Path
        from tests.test_user_datasets import train_and_evaluate
        summary = train_and_evaluate("someone/boxes", Path({str(tmp_path / "consumer")!r}),
                                     Path({str(bert_vocab_dir)!r}), "--image_column", "photo", "--mask_column",
                                     "segmentation", "--text_column", "caption", eval_split="validation")
        from lavt_hf.training.data import detect_layout, load_refer_dataset
        # The project's column names need no option: a Hub id whose card lacks a mask_rule is one's own.
        summary["plain"] = [detect_layout("someone/plain"), len(load_refer_dataset("someone/plain"))]
        from lavt_hf.training.data import stream_num_rows
        streamed = load_refer_dataset("someone/boxes", split="train", streaming=True, image_column="photo",
                                      mask_column="segmentation", text_column="caption")
        summary["streamed"] = [stream_num_rows(streamed), sum(1 for _ in streamed)]
        print(json.dumps(summary))
        """, local_hub, tmp_path / "consumer", extra_env=env, timeout=300)
    summary = json.loads(process.stdout.strip().splitlines()[-1])
    assert summary["dataset"] == "someone/boxes" and summary["num_samples"] == sum(
        len(s) if isinstance(s, list) else 1 for s in (i["sentences"] for i in objects() if i["split"] == "val"))
    assert summary["plain"] == ["user", SPLITS["val"]]
    assert summary["streamed"] == [SPLITS["train"]] * 2  # a streamed schedule knows its length


def test_a_local_folder_is_read_as_ones_own_by_its_card(tmp_path):
    """A local folder with a card that records no mask_rule is one's own; without a card it is taken for a
    prepared folder that lost its card, and the error says how to read it as one's own."""
    local = tmp_path / "mine"
    one_row().to_parquet(local / "data" / "train.parquet")
    with pytest.raises(ValueError, match=r"not a prepared dataset folder.*name its columns \(--image_column"):
        load_refer_dataset(local, cache_dir=str(tmp_path / "cache"))
    assert len(load_refer_dataset(local, image_column="image", cache_dir=str(tmp_path / "cache"))) == 1
    (local / "README.md").write_text("---\nlicense: mit\n---\n# Mine\n")
    assert detect_layout(local) == "user"
    assert load_refer_dataset(local, cache_dir=str(tmp_path / "cache"))["sentences"] == [["the box"]]


def test_prepare_names_a_malformed_expressions_line(folder, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    with (broken / "expressions.jsonl").open("a") as file:
        file.write('{"image": "a.png",\n')
    with pytest.raises(SystemExit) as exited:
        prepare_refcoco.main(["--dataset", str(broken), "--output_dir", str(tmp_path / "out")])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lavt-prepare-refcoco: error: ")
    assert f"of {broken}/expressions.jsonl is not valid JSON" in err[-1]
    assert not (tmp_path / "out").exists()


def test_prepare_refuses_an_empty_expressions_file(folder, tmp_path, capsys):
    empty = tmp_path / "empty"
    shutil.copytree(folder, empty)
    (empty / "expressions.jsonl").write_text("\n")
    with pytest.raises(SystemExit) as exited:
        prepare_refcoco.main(["--dataset", str(empty), "--output_dir", str(tmp_path / "out")])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"lavt-prepare-refcoco: error: {empty}/expressions.jsonl holds no expressions")


def test_own_folder_errors_name_the_file(folder, tmp_path, capsys):
    no_file = tmp_path / "no_file"
    shutil.copytree(folder, no_file)
    (no_file / "expressions.jsonl").rename(no_file / "expression.jsonl")
    with pytest.raises(SystemExit):
        prepare_refcoco.main(["--dataset", str(no_file), "--output_dir", str(tmp_path / "out")])
    assert "a folder without expressions.jsonl, has no column 'mask'" in capsys.readouterr().err
    not_image = tmp_path / "not_image"
    shutil.copytree(folder, not_image)
    first = json.loads((not_image / "expressions.jsonl").read_text().splitlines()[0])
    (not_image / "images" / first["image"]).write_text("not an image")
    with pytest.raises(ValueError, match=rf"the image of line 1 of .* does not open \({not_image}/images/"
                                         rf"{first['image']}: not an image file PIL can read\)"):
        load_refer_dataset(not_image, split=first["split"])
