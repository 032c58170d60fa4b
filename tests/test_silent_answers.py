# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Inputs that used to give a silent wrong answer, a traceback or an exhausted machine: each is refused where it
enters, with a message naming it (one line and exit status 2 for a command)."""

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from datasets import Dataset

from lavt_hf.scripts import prepare_refcoco
from lavt_hf.training.data import FEATURES, ReferTrainDataset, community, load_refer_dataset, refer
from lavt_hf.training.data.refer import check_segmentation, load_refs
from lavt_hf.training.data.synthetic import generate_synthetic_refer

INSTANCES = Path("refer") / "refcoco" / "instances.json"


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """A tiny synthetic refer dataset: `refer/`, `images/`."""
    root = tmp_path_factory.mktemp("silent")
    generate_synthetic_refer(root / "refer", root / "images", num_images=4, seed=8, image_size=(48, 40))
    return root


@pytest.fixture
def data(clean, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(clean, root)
    return root


@pytest.fixture
def no_huge_rasterising(monkeypatch):
    """Fail the test, instead of filling the memory, if a huge polygon ever reaches the rasteriser."""
    real = refer.segmentation_mask

    def guarded(segmentation, height, width, mask_rule="original"):
        if isinstance(segmentation, list) and not all(abs(v) < 1e4 for p in segmentation for v in p):
            raise AssertionError(f"rasterising {str(segmentation)[:80]}")
        return real(segmentation, height, width, mask_rule)

    monkeypatch.setattr(refer, "segmentation_mask", guarded)


def referred_polygon_annotation(root: Path) -> tuple[dict, dict]:
    """The instances of `root` and one referred annotation made of polygons."""
    instances = json.loads((root / INSTANCES).read_text())
    referred = {r["ann_id"] for r in load_refs(root / "refer" / "refcoco" / "refs(unc).p")}
    annotation = next(a for a in instances["annotations"] if a["id"] in referred and isinstance(a["segmentation"], list))
    return instances, annotation


def set_coordinate(root: Path, value: float) -> tuple[dict, dict]:
    """Write `value` as the first x of a referred annotation's polygon; returns it and its image record."""
    instances, annotation = referred_polygon_annotation(root)
    annotation["segmentation"][0][0] = value
    (root / INSTANCES).write_text(json.dumps(instances))  # NaN is written as JSON's common extension
    image = next(i for i in instances["images"] if i["id"] == annotation["image_id"])
    return annotation, image


BAD_COORDINATES = {"huge": (1e9, r"point \(x, y\) = \(1e\+09, [\d.]+\) outside its 48x40 image"),
                   "nan": (math.nan, "coordinate that is not finite")}


@pytest.mark.parametrize("kind", BAD_COORDINATES)
def test_bad_polygon_is_refused_by_the_loader(kind, data, no_huge_rasterising):
    value, problem = BAD_COORDINATES[kind]
    annotation, image = set_coordinate(data, value)
    with pytest.raises(ValueError, match=rf"ann_id {annotation['id']} \(ref_id \d+\) of image_id {image['id']} "
                                         rf"\({image['file_name']}\) in .*instances\.json has a polygon {problem}"):
        load_refer_dataset(data / "refer", "refcoco_unc", "train", images_root=data / "images")


@pytest.mark.parametrize("kind", BAD_COORDINATES)
def test_bad_polygon_ends_prepare_with_one_line(kind, data, capsys, no_huge_rasterising):
    value, problem = BAD_COORDINATES[kind]
    annotation, image = set_coordinate(data, value)
    with pytest.raises(SystemExit) as exit_info:
        prepare_refcoco.main(["--refer_root", str(data / "refer"), "--images_root", str(data / "images"),
                              "--output_dir", str(data / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"lavt-prepare-refcoco: error: ann_id {annotation['id']} ")
    assert image["file_name"] in err and "has a polygon" in err
    assert not (data / "out").exists()


def test_bad_polygon_is_refused_in_community_parquet(data, no_huge_rasterising):
    instances, annotation = referred_polygon_annotation(data)
    annotation["segmentation"] = [[1e9, 0.0, 10.0, 0.0, 10.0, 10.0]]
    image = next(i for i in instances["images"] if i["id"] == annotation["image_id"])
    record = {"ref_id": 7, "ann_id": annotation["id"], "image_id": image["id"], "category_id": 1, "split": "val",
              "sentences": json.dumps([{"raw": "the shape", "sent": "the shape"}]),
              "raw_anns": json.dumps(annotation), "raw_image_info": json.dumps(image)}
    rows = community.community_rows(pa.Table.from_pylist([record]), data / "images" / "train2014",
                                    source="c.parquet")
    with pytest.raises(ValueError, match=rf"ann_id {annotation['id']} \(ref_id 7\) of image_id {image['id']} "
                                         rf"\({image['file_name']}\) in c\.parquet has a polygon point \(x, y\) = \(1e\+09"):
        list(rows)


@pytest.mark.parametrize("segmentation, problem", [
    ([[0, 0, 10, 0, 10, "ten"]], "a polygon coordinate that is not a number"),
    ([[0, 0, 10, 0, 10, None]], "a polygon coordinate that is not finite"),
    ([[0, 0, 10, 0, 10, -3]], r"a polygon point \(x, y\) = \(10, -3\) outside its 48x40 image"),
    ([[0, 0, 50.5, 0, 10, 10]], r"a polygon point \(x, y\) = \(50.5, 0\) outside"),
    ({"size": [40, 47], "counts": "abc"}, r"an RLE of size \[40, 47\] \(height, width\) for an image of \[40, 48\]"),
    ({"size": [40, 48], "counts": [10, 20]}, r"RLE counts covering 30 pixels, not the image's 40 x 48 = 1920"),
    ({"size": [40, 48], "counts": [-1, 1921]}, "RLE counts that are not a compressed string or non-negative"),
])
def test_segmentation_that_does_not_fit_its_image(segmentation, problem):
    with pytest.raises(ValueError, match=rf"^ann_id 3 of image 9 has {problem}.*; fix the segmentation or leave"):
        check_segmentation(segmentation, 40, 48, "ann_id 3 of image 9")


def test_segmentation_on_the_image_edge_is_accepted():
    """COCO puts edge points on the last pixel's far edge, and some a little past it."""
    check_segmentation([[0, 0, 48, 0, 48, 40, 49.5, 41.5, -1.5, 40]], 40, 48, "x")
    check_segmentation({"size": [40, 48], "counts": [100, 1820]}, 40, 48, "x")
    with pytest.raises(ValueError, match="an image size 0 x 48 .* not two positive integers"):
        check_segmentation([[0, 0, 1, 0, 1, 1]], 0, 48, "x")


def test_compressed_rle_beyond_its_size_names_the_annotation(data):
    instances, annotation = referred_polygon_annotation(data)
    image = next(i for i in instances["images"] if i["id"] == annotation["image_id"])
    too_long = refer.encode_mask(np.ones((41, 48), np.uint8))["counts"]  # counts of one row more than 40 x 48
    ref = {"ref_id": 1, "ann_id": annotation["id"], "image_id": image["id"], "category_id": 1, "split": "val"}
    annotation["segmentation"] = {"size": [40, 48], "counts": too_long}
    with pytest.raises(ValueError, match=rf"ann_id {annotation['id']} .* its RLE segmentation does not decode"):
        refer.make_row(ref, annotation, image, "x.jpg", ["it"], "original", "instances.json")


def test_stored_mask_of_another_size_is_refused_before_decoding(data):
    rows = load_refer_dataset(data / "refer", "refcoco_unc", "train", images_root=data / "images").to_list()
    rows[0]["mask"] = {"size": [100000, 100000], "counts": rows[0]["mask"]["counts"]}
    view = ReferTrainDataset(Dataset.from_list(rows, features=FEATURES), None)
    with pytest.raises(ValueError, match=r"is 48x40 \(width x height\) but its mask is 100000x100000"):
        view[0]


# --- refs pickles written by Python 2 ---------------------------------------------------------------------------

def test_python2_utf8_byte_strings_are_read_as_utf8(tmp_path):
    # [{'ann_id': 1, 'sent': 'café sign'}] as Python 2 pickles a UTF-8 byte string (SHORT_BINSTRING), protocol 2.
    path = tmp_path / "refs(unc).p"
    text = "caf\u00e9 sign".encode("utf-8")
    path.write_bytes(b"\x80\x02](}U\x06ann_idK\x01sU\x04sentU" + bytes([len(text)]) + text + b"se.")
    assert load_refs(path) == [{"ann_id": 1, "sent": "caf\u00e9 sign"}]


def test_python2_byte_strings_that_are_not_utf8_stay_latin1(tmp_path):
    # One ref with a latin-1 sentence and one with a UTF-8 sentence: each byte string is decoded on its own.
    path = tmp_path / "refs(unc).p"
    utf8 = "na\u00efve".encode("utf-8")
    path.write_bytes(b"\x80\x02](}U\x06ann_idK\x01sU\x04sentU\x04caf\xe9s}U\x06ann_idK\x02sU\x04sentU"
                     + bytes([len(utf8)]) + utf8 + b"se.")
    assert load_refs(path) == [{"ann_id": 1, "sent": "caf\u00e9"}, {"ann_id": 2, "sent": "na\u00efve"}]


# --- tokenizer sides ----------------------------------------------------------------------------------------------

SHORT = "the man on the left"
LONG = "the man on the left wearing a very long striped shirt and holding an umbrella near the red car parked outside"


@pytest.mark.parametrize("mode", ["original", "keep_sep"])
def test_tokenizer_saved_with_left_sides_still_gives_right_padded_ids(mode, bert_vocab_dir, tmp_path):
    from transformers import AutoTokenizer

    from modeling_lavt.image_processing_lavt import LavtImageProcessor
    from modeling_lavt.processing_lavt import LavtProcessor

    image_processor = LavtImageProcessor(size={"height": 32, "width": 32})
    expected = LavtProcessor(image_processor, AutoTokenizer.from_pretrained(bert_vocab_dir), truncation_mode=mode)
    left = AutoTokenizer.from_pretrained(bert_vocab_dir, padding_side="left", truncation_side="left")
    left.save_pretrained(tmp_path / "left")
    with pytest.warns(UserWarning) as warned:
        processor = LavtProcessor(image_processor, AutoTokenizer.from_pretrained(tmp_path / "left"),
                                  truncation_mode=mode)
    messages = [str(w.message) for w in warned]
    assert any("padding_side='left' is not used" in m for m in messages), messages
    assert any("truncation_side='left' is not used" in m for m in messages), messages
    with pytest.warns(UserWarning, match="truncated"):
        got, want = processor(text=[SHORT, LONG]), expected(text=[SHORT, LONG])
    np.testing.assert_array_equal(got["input_ids"], want["input_ids"])
    np.testing.assert_array_equal(got["attention_mask"], want["attention_mask"])
    assert got["attention_mask"][0, 0] == 1  # padded on the right

    processor.tokenizer.padding_side = "left"  # set after loading: set back at the call
    with pytest.warns(UserWarning, match="padding_side='left' is not used"):
        again = processor(text=[SHORT, "it"], padding="longest")
    np.testing.assert_array_equal(again["input_ids"], expected(text=[SHORT, "it"], padding="longest")["input_ids"])


# --- mapping options on the command line -----------------------------------------------------------------------

@pytest.fixture
def recipe(synthetic_data, bert_vocab_dir, tmp_path) -> Path:
    from tests.conftest import tiny_train_recipe

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_train_recipe(synthetic_data, bert_vocab_dir, output_dir=str(tmp_path / "run"),
                                                     loss={"dice_weight": 1.0})))
    return path


def help_examples() -> list[tuple[str, str]]:
    """(option, example) for every mapping option whose --help shows an example value."""
    from lavt_hf.training.arguments import MERGED_OPTIONS, field_names

    found = []
    for name, cls in field_names().items():
        text = next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get("help", "")
        match = re.search(r"e\.g\. (\{.*\})", text)
        if name in MERGED_OPTIONS and match:
            found.append((name, match.group(1)))
    return found


@pytest.mark.parametrize("name, example", help_examples())
def test_mapping_option_takes_the_form_its_help_shows(name, example, recipe):
    from lavt_hf.training.arguments import parse_arguments

    arguments = parse_arguments(["--config", str(recipe), f"--{name}", example])
    value = next(getattr(a, name) for a in arguments if hasattr(a, name))
    assert value.items() >= yaml.safe_load(example).items()


@pytest.mark.parametrize("argv", [
    ["--loss", "{perceptual_weight: 1.0, perceptual_softmax: true}"],  # YAML, as --help shows it
    ["--loss", '{"perceptual_weight": 1.0, "perceptual_softmax": true}'],  # JSON
    ["--loss.perceptual_weight", "1.0", "--loss.perceptual_softmax", "true"],  # one key at a time
    ["--loss.perceptual_weight=1.0", "--loss={perceptual_softmax: true}"],
], ids=["yaml", "json", "dotted", "equals"])
def test_loss_on_the_command_line_merges_over_the_recipe(argv, recipe):
    from lavt_hf.training.arguments import parse_arguments

    _, _, train_args = parse_arguments(["--config", str(recipe), *argv])
    assert train_args.loss == {"dice_weight": 1.0, "perceptual_weight": 1.0, "perceptual_softmax": True}


def test_dotted_key_over_a_mapping_and_the_model_overrides(recipe):
    from lavt_hf.training.arguments import parse_arguments

    model_args, _, train_args = parse_arguments(["--config", str(recipe), "--loss", "{dice_weight: 2.0}",
                                                 "--loss.dice_weight", "3", "--model_overrides.depths", "[1, 1, 1, 2]"])
    assert train_args.loss == {"dice_weight": 3}
    assert model_args.model_overrides["depths"] == [1, 1, 1, 2] and model_args.model_overrides["embed_dim"] == 8


@pytest.mark.parametrize("argv, words", [
    (["--loss", "[1, 2]"], ["argument --loss: expected a YAML or JSON mapping", "got '[1, 2]'"]),
    (["--loss", "{a: [}"], ["argument --loss: expected a YAML or JSON mapping"]),
    (["--loss.dice_weight"], ["--loss.dice_weight: expected a value"]),
    (["--loss.dice_weight", "--num_epochs", "2"], ["--loss.dice_weight: expected a value"]),
    (["--loss.dice_weight", "[1"], ["--loss.dice_weight [1: not a valid YAML value"]),
    (["--loss.no_such_field", "1"], ["loss names unknown LavtConfig field(s) ['no_such_field']"]),
    (["--learning_rte", "0.1"], ["unrecognized arguments: --learning_rte 0.1; did you mean --learning_rate?"]),
    (["--lss.dice_weight", "1", "--num_epohcs", "2"],
     ["unrecognized arguments: --lss.dice_weight 1 --num_epohcs 2; did you mean --loss.dice_weight (for "
      "--lss.dice_weight), --num_epochs (for --num_epohcs)?"]),
])
def test_bad_command_line_ends_lavt_train_with_one_line(argv, words, recipe, capsys):
    from lavt_hf.training import train

    with pytest.raises(SystemExit) as exit_info:
        train.main(["--config", str(recipe), *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("lavt-train: error: ") and all(word in line for word in words), err


def test_misspelt_option_of_lavt_evaluate_names_the_right_one(capsys):
    from lavt_hf.training import evaluation

    with pytest.raises(SystemExit) as exit_info:
        evaluation.main(["--model", "m", "--dataset", "d", "--max_smaples", "3"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.strip().splitlines() == [
        "lavt-evaluate: error: unrecognized arguments: --max_smaples 3; did you mean --max_samples?"], err


def test_batch_larger_than_the_training_set_ends_with_one_line(recipe, capsys):
    from lavt_hf.training import train

    with pytest.raises(SystemExit) as exit_info:
        train.main(["--config", str(recipe), "--per_device_batch_size", "100"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err, err
    assert re.search(r"^lavt-train: error: --per_device_batch_size 100: the \d+ training objects do not fill one "
                     r"batch per process \(1 processes\); give a smaller batch size", err.strip().splitlines()[-1])


def test_decompression_bomb_ends_lavt_predict_with_one_line(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from lavt_hf.scripts import predict

    Image.new("L", (64, 64)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4096 pixels is a bomb past twice the limit
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--model", str(tmp_path), "--image", str(tmp_path / "bomb.png"), "--text", "it",
                      "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"lavt-predict: error: --image: Cannot read image file {tmp_path / 'bomb.png'}: "
                           "Image size (4096 pixels) exceeds limit"), err
    assert "MAX_IMAGE_PIXELS only for a file you trust" in line


# --- a folder prepared again in place, loaded the documented way --------------------------------------------------

def test_load_dataset_of_a_folder_prepared_again_gives_the_new_masks(synthetic_data, tmp_path, monkeypatch):
    """`datasets.load_dataset(folder, config)` (docs/data.md) with one cache across both preparations."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    output = tmp_path / "prepared"
    args = ["--refer_root", str(synthetic_data / "refer"), "--images_root", str(synthetic_data / "images"),
            "--output_dir", str(output)]
    prepare_refcoco.main(args)
    before = datasets.load_dataset(str(output), "refcoco_unc", split="train")["mask"][:]
    prepare_refcoco.main([*args, "--overwrite", "--mask_rule", "union"])
    after = datasets.load_dataset(str(output), "refcoco_unc", split="train")["mask"][:]
    union = load_refer_dataset(synthetic_data / "refer", "refcoco_unc", "train",
                               images_root=synthetic_data / "images", mask_rule="union")["mask"][:]
    assert after == union != before
