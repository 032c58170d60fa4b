# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Mistakes a new user made with their own data and the generalized evaluation, each reported in one line
naming the problem."""

import json

import numpy as np
import pytest
from datasets import Dataset, Features, List, Value
from datasets import Image as ImageFeature
from PIL import Image

from lavt_hf.scripts import prepare_refcoco
from lavt_hf.training import evaluation as lavt_evaluate
from lavt_hf.training import train
from lavt_hf.training.data import load_refer_dataset, rows_from_dataset

MASK = np.zeros((12, 16), np.uint8)
MASK[2:8, 3:9] = 255


def one_row(no_target, feature) -> Dataset:
    features = Features({"image": ImageFeature(), "mask": ImageFeature(), "sentences": List(Value("string")),
                         "no_target": feature})
    row = {"image": Image.new("RGB", (16, 12)), "mask": Image.fromarray(MASK), "sentences": ["the box"],
           "no_target": no_target}
    return Dataset.from_dict({key: [value] for key, value in row.items()}, features=features)


@pytest.mark.parametrize("no_target, feature", [("no", Value("string")), (2, Value("int64"))])
def test_a_no_target_value_that_is_not_a_flag_is_refused(no_target, feature):
    with pytest.raises(ValueError, match=rf"row 0 of mine has no_target {no_target!r}; it must be true or false"):
        rows_from_dataset(one_row(no_target, feature), "mine")


def test_a_no_target_column_of_0_and_1_is_read_as_flags():
    assert rows_from_dataset(one_row(0, Value("int64")), "mine")[0]["no_target"] is False


def test_a_folder_line_with_no_target_as_a_string_is_refused(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.new("RGB", (16, 12)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.zeros_like(MASK)).save(tmp_path / "masks" / "a.png")
    line = {"image": "a.png", "mask": "a.png", "sentences": ["nothing"], "split": "train", "no_target": "false"}
    (tmp_path / "expressions.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(ValueError, match=r"line 1 of .*expressions.jsonl has no_target 'false'; it must be true"):
        load_refer_dataset(str(tmp_path), split="train")


def test_files_of_one_dataset_that_disagree_are_an_error_not_a_traceback(tmp_path):
    (tmp_path / "data").mkdir()
    row = {"image": [Image.new("RGB", (16, 12))], "mask": [Image.fromarray(MASK)]}
    image_features = {"image": ImageFeature(), "mask": ImageFeature()}
    Dataset.from_dict({**row, "caption": [3]}, features=Features(
        {**image_features, "caption": Value("int64")})).to_parquet(tmp_path / "data" / "train-0.parquet")
    Dataset.from_dict({**row, "caption": ["the box"]}, features=Features(
        {**image_features, "caption": Value("string")})).to_parquet(tmp_path / "data" / "validation-0.parquet")
    with pytest.raises(ValueError, match=r"could not be read as a dataset \(.*\); every file of a dataset needs "
                                         r"the same columns and types"):
        load_refer_dataset(str(tmp_path), split="train", text_column="caption")


def test_a_presence_threshold_that_is_not_a_number_names_the_type(capsys):
    with pytest.raises(SystemExit) as exit_info:
        lavt_evaluate.main(["--model", "m", "--dataset", "d", "--presence_threshold", "abc"])
    assert exit_info.value.code == 2
    assert "argument --presence_threshold: invalid float value: 'abc'" in capsys.readouterr().err


@pytest.mark.parametrize("main, argv, message", [
    (lavt_evaluate.main, ["--model", "m", "--dataset", "d", "--presence_threshold", "1.5"],
     "lavt-evaluate: error: argument --presence_threshold: must be <= 1 (a probability), got 1.5"),
    (train.main, ["--max_steps", "abc"], "lavt-train: error: argument --max_steps/--max-steps: invalid int value: 'abc'"),
    (prepare_refcoco.main, ["--dataset", "d"], "lavt-prepare-refcoco: error: the following arguments are required: "
                                               "--output_dir"),
])
def test_a_bad_option_value_is_one_line_without_the_usage(main, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == message + "\n"


@pytest.mark.parametrize("sentences, feature", [
    ([{"raw": "the box", "sent": "the box"}], List({"raw": Value("string"), "sent": Value("string")})),
    (5, Value("int64")),
])
def test_expressions_that_are_not_text_are_named_so(sentences, feature):
    features = Features({"image": ImageFeature(), "mask": ImageFeature(), "sentences": feature})
    rows = Dataset.from_dict({"image": [Image.new("RGB", (16, 12))], "mask": [Image.fromarray(MASK)],
                              "sentences": [sentences]}, features=features)
    with pytest.raises(ValueError, match=r"row 0 of mine has expressions that are not text \(.*\); the text column "
                                         r"holds one string or a list of strings"):
        rows_from_dataset(rows, "mine")


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_an_option_prefix_is_not_taken_for_the_option(command, capsys):
    """`--image_colum` is a misspelling of `--image_column`, not an abbreviation of it."""
    main = {"train": train.main, "evaluate": lavt_evaluate.main}[command]
    with pytest.raises(SystemExit) as exit_info:
        main([*({"train": [], "evaluate": ["--model", "m"]}[command]), "--dataset", "d", "--image_colum", "photo"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--image_colum" in err[0] and "--image_column" in err[0], err
