# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Bad inputs per command-line tool, tried as a user would: each ends the command before any work with exit
status 2 and one line `<prog>: error: ...` that names the problem (what, where, what to do), never a traceback."""

from pathlib import Path

import pytest
import yaml

from lavt_hf.cli import (
    NotFoundError,
    UsageError,
    check_writable_dir,
    dataset_errors,
    unwritable_reason,
)
from lavt_hf.scripts import benchmark, convert_lavt_original_to_hf, predict, prepare_refcoco
from lavt_hf.training import evaluation as lavt_evaluate
from lavt_hf.training import train
from lavt_hf.training.data.synthetic import generate_synthetic_refer

pytestmark = pytest.mark.usefixtures("fresh_accelerator_state")

READ_ONLY = "/proc/self/lavt-output"  # no file can be created in /proc, not even by root




@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A 4-image synthetic refer dataset, a file where a folder is expected, and a valid training recipe
    (nothing of it is trained: every case fails before)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    generate_synthetic_refer(root / "refer", root / "images", num_images=4, seed=0, image_size=32)
    (root / "a_file").write_text("not a folder")
    (root / "image.png").write_bytes(b"not an image")
    (root / "prepared").mkdir()  # parquet as far as the layout check looks (nothing is read)
    recipe = {"dataset": str(root / "refer"), "images_root": str(root / "images"), "dataset_config": "refcoco_unc",
              "output_dir": str(root / "run"), "report_to": "none", "num_workers": 0}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return root


def assert_usage_error(capsys, main, argv: list[str], prog: str, *words: str) -> None:
    """`main(argv)` exits with status 2; the last line on stderr is `<prog>: error: ...` with every word."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"{prog}: error: "), err
    for word in words:
        assert word in line, line


def fill(argv: list[str], root: Path) -> list[str]:
    return [arg.replace("{root}", str(root)) for arg in argv]


# (argv after --config recipe.yaml, words the error line must hold)
TRAIN_CASES = {
    "num_epochs_0": (["--num_epochs", "0"], ["--num_epochs 0", ">= 1"]),
    "max_steps_negative": (["--max_steps", "-5"], ["--max_steps -5", ">= 1"]),
    "gradient_accumulation_0": (["--gradient_accumulation_steps", "0"], ["--gradient_accumulation_steps 0", ">= 1"]),
    "poly_power_negative": (["--poly_power", "-2"], ["--poly_power -2", ">= 0"]),
    "batch_size_0": (["--per_device_batch_size", "0"], ["--per_device_batch_size 0", ">= 1"]),
    "eval_batch_size_negative": (["--eval_batch_size", "-1"], ["--eval_batch_size -1", ">= 1"]),
    "learning_rate_negative": (["--learning_rate", "-0.001"], ["--learning_rate -0.001", ">= 0"]),
    "learning_rate_nan": (["--learning_rate", "nan"], ["--learning_rate nan", "finite"]),
    "weight_decay_negative": (["--weight_decay", "-0.1"], ["--weight_decay", ">= 0"]),
    "max_grad_norm_0": (["--max_grad_norm", "0"], ["--max_grad_norm 0", "> 0"]),
    "image_size_0": (["--image_size", "0"], ["--image_size 0", ">= 1"]),
    "num_workers_negative": (["--num_workers", "-1"], ["--num_workers -1", ">= 0"]),
    "checkpointing_steps_0": (["--checkpointing_steps", "0"], ["--checkpointing_steps 0", ">= 1"]),
    "checkpoints_total_limit_0": (["--checkpoints_total_limit", "0"], ["--checkpoints_total_limit 0", ">= 1"]),
    "eval_every_steps_0": (["--eval_every_steps", "0"], ["--eval_every_steps 0", ">= 1"]),
    "seed_negative": (["--seed", "-1"], ["--seed -1", ">= 0"]),
    "num_epochs_not_a_number": (["--num_epochs", "ten"], ["--num_epochs", "invalid int value: 'ten'"]),
    "unknown_tracker": (["--report_to", "tensorbored"], ["unknown tracker", "tensorbored"]),
    "unknown_optimizer": (["--optimizer", "sgd"], ["optimizer", "'sgd'"]),
    "dataset_missing_relative": (["--dataset", "no_such_dir/data/refer"], ["--dataset no_such_dir/data/refer",
                                                                          "not found"]),
    "dataset_missing_dot": (["--dataset", "./refer-typo"], ["--dataset ./refer-typo", "not found"]),
    "images_root_missing": (["--images_root", "{root}/no-images"], ["--images_root", "no such folder"]),
    "output_dir_under_a_file": (["--output_dir", "{root}/a_file/run"], ["--output_dir", "a_file is a file"]),
    "output_dir_is_a_file": (["--output_dir", "{root}/a_file"], ["--output_dir", "it is a file"]),
    "output_dir_read_only": (["--output_dir", READ_ONLY], ["--output_dir", "cannot write into /proc/self"]),
    "resume_missing_folder": (["--resume_from_checkpoint", "{root}/run/checkpoints/checkpoint-9"],
                              ["--resume_from_checkpoint", "no such checkpoint folder"]),
    "push_without_repo": (["--push_to_hub", "true"], ["--push_to_hub needs --hub_model_id"]),
    "tokenizer_missing": (["--tokenizer", "./bert-vocab"], ["--tokenizer ./bert-vocab", "not found"]),
    "swin_weights_missing": (["--swin_weights", "{root}/swin.pth"], ["--swin_weights", "swin.pth: not found"]),
    "no_tokenizer": ([], ["no tokenizer", "set `tokenizer`"]),
    "streaming_raw_refer": (["--streaming"], ["--streaming", "is a raw refer folder", "cannot stream",
                                              "drop --streaming", "lavt-prepare-refcoco"]),
    "shuffle_buffer_0": (["--shuffle_buffer", "0"], ["--shuffle_buffer 0", ">= 1"]),
    "streaming_first_objects_with_workers": (
        ["--dataset", "{root}/prepared", "--streaming", "--max_train_objects", "5", "--num_workers", "2"],
        ["--max_train_objects 5 with --streaming", "set --num_workers 0 (not 2)", "or drop --max_train_objects"]),
}


@pytest.mark.parametrize("argv,words", TRAIN_CASES.values(), ids=TRAIN_CASES.keys())
def test_lavt_train(data, capsys, argv, words):
    assert_usage_error(capsys, train.main, ["--config", str(data / "recipe.yaml"), *fill(argv, data)], "lavt-train",
                       *words)
    assert not (data / "run").exists()


# (recipe text, words the error line must hold)
RECIPE_CASES = {
    "yaml_syntax": ("dataset: x\nnum_epochs: [1\nseed: 2\n", ["bad.yaml, line", "not valid YAML"]),
    "yaml_tab_indent": ("loss:\n\tce_weight: 1\n", ["bad.yaml, line 2", "not valid YAML"]),
    "not_a_mapping": ("- a\n- b\n", ["bad.yaml must hold a mapping"]),
    "unknown_option": ("learning_rte: 0.1\n", ["bad.yaml", "unknown option", "learning_rte"]),
    "wrong_type": ("num_epochs: [1, 2]\n", ["--num_epochs [1, 2]", "must be an integer"]),
    "float_for_int": ("per_device_batch_size: 2.5\n", ["--per_device_batch_size 2.5", "must be an integer"]),
    "missing_base": ("base: nowhere.yaml\n", ["nowhere.yaml does not exist"]),
}


@pytest.mark.parametrize("text,words", RECIPE_CASES.values(), ids=RECIPE_CASES.keys())
def test_lavt_train_recipe(data, tmp_path, capsys, text, words):
    bad = tmp_path / "bad.yaml"
    if text.startswith(("num_epochs", "per_device")):  # a valid recipe but for this one value
        text = (data / "recipe.yaml").read_text() + text
    bad.write_text(text)
    assert_usage_error(capsys, train.main, ["--config", str(bad)], "lavt-train", *words)


def test_lavt_train_missing_recipe(tmp_path, capsys):
    assert_usage_error(capsys, train.main, ["--config", str(tmp_path / "recipe.yml")], "lavt-train",
                       "recipe.yml does not exist")


EVALUATE_CASES = {
    "batch_size_0": (["--batch_size", "0"], ["--batch_size", "must be >= 1, got 0"]),
    "num_workers_negative": (["--num_workers", "-2"], ["--num_workers", "must be >= 0, got -2"]),
    "image_size_0": (["--image_size", "0"], ["--image_size", "must be >= 1"]),
    "max_samples_0": (["--max_samples", "0"], ["--max_samples", "must be >= 1"]),
    "protocol_unknown": (["--protocol", "resized"], ["--protocol", "invalid choice"]),
    "output_dir_under_a_file": (["--output_dir", "{root}/a_file/eval"], ["--output_dir", "a_file is a file"]),
    "output_dir_read_only": (["--output_dir", READ_ONLY], ["--output_dir", "cannot write into /proc/self"]),
    "dataset_missing_relative": (["--dataset", "no_such_dir/data/refer"], ["--dataset no_such_dir/data/refer",
                                                                          "not found"]),
    "split_missing": (["--split", "testZ"], ["--dataset", "testZ"]),
    "model_missing": (["--model", "{root}/no/such/model"], ["--model", "no such model folder"]),
    "streaming_raw_refer": (["--streaming"], ["--streaming", "is a raw refer folder", "cannot stream",
                                              "drop --streaming", "lavt-prepare-refcoco"]),
}


@pytest.mark.parametrize("argv,words", EVALUATE_CASES.values(), ids=EVALUATE_CASES.keys())
def test_lavt_evaluate(data, capsys, argv, words):
    base = ["--model", str(data / "no-model"), "--dataset", str(data / "refer"), "--dataset_config", "refcoco_unc",
            "--images_root", str(data / "images"), "--num_workers", "0", "--output_dir", str(data / "eval")]
    assert_usage_error(capsys, lavt_evaluate.main, base + fill(argv, data), "lavt-evaluate", *words)
    assert not (data / "eval").exists()


def test_lavt_evaluate_hub_id_that_is_nowhere(data, capsys, monkeypatch):
    """A relative path of the form owner/name goes to the Hub; when that fails the message says not found."""
    def unreachable(source, *args, **kwargs):
        raise ConnectionError(f"Couldn't reach '{source}' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(lavt_evaluate, "load_refer_dataset", unreachable)
    assert_usage_error(capsys, lavt_evaluate.main, ["--model", "m", "--dataset", "refcoco/refer",
                                                    "--output_dir", str(data / "eval")],
                       "lavt-evaluate", "--dataset refcoco/refer: not found", "no such local folder",
                       "Couldn't reach", "check the path")


PREDICT_CASES = {
    "output_dir_under_a_file": (["--output-dir", "{root}/a_file/out"], ["--output-dir", "a_file is a file"]),
    "output_dir_read_only": (["--output-dir", READ_ONLY], ["--output-dir", "cannot write into /proc/self"]),
    "threshold_above_1": (["--threshold", "2"], ["--threshold must lie in [0, 1], got 2.0"]),
    "image_missing": (["--image", "{root}/no.png"], ["--image", "no.png"]),
    "image_not_decodable": (["--image", "{root}/image.png"], ["--image", "image.png"]),
    "text_empty": (["--text", " "], ["--text", "empty"]),
    "pairing": (["--image", "{root}/image.png", "{root}/image.png", "--text", "a", "b", "c"],
                ["Cannot pair 2 images with 3 referring expressions"]),
}


@pytest.mark.parametrize("argv,words", PREDICT_CASES.values(), ids=PREDICT_CASES.keys())
def test_lavt_predict(data, capsys, argv, words):
    images = sorted((data / "images").rglob("*.jpg"))
    base = ["--model", str(data / "no-model"), "--image", str(images[0]), "--text", "the square",
            "--output-dir", str(data / "predictions")]
    assert_usage_error(capsys, predict.main, base + fill(argv, data), "lavt-predict", *words)
    assert not (data / "predictions").exists()


CONVERT_CASES = {
    "output_dir_under_a_file": (["--output_dir", "{root}/a_file/model"], ["--output_dir", "a_file is a file"]),
    "output_dir_read_only": (["--output_dir", READ_ONLY], ["--output_dir", "cannot write into /proc/self"]),
    "fusion_heads_count": (["--output_dir", "{root}/model", "--fusion_num_heads", "1", "2"],
                           ["--fusion_num_heads", "expected 4 arguments"]),
    "no_output_dir": ([], ["--output_dir"]),
}


@pytest.mark.parametrize("argv,words", CONVERT_CASES.values(), ids=CONVERT_CASES.keys())
def test_lavt_convert(data, capsys, argv, words):
    base = ["--checkpoint", str(data / "no-checkpoint.pth")]
    assert_usage_error(capsys, convert_lavt_original_to_hf.main, base + fill(argv, data), "lavt-convert", *words)


PREPARE_CASES = {
    "output_dir_under_a_file": (["--output_dir", "{root}/a_file/parquet"], ["--output_dir", "a_file is a file"]),
    "output_dir_read_only": (["--output_dir", READ_ONLY], ["--output_dir", "cannot write into /proc/self"]),
    "refer_root_missing": (["--refer_root", "{root}/no-refer"], ["no refs(<split_by>).p files", "no-refer"]),
    "config_unknown": (["--configs", "refcoco_google"], ["'refcoco_google' not found", "refcoco_unc"]),
    "output_exists": (["--output_dir", "{root}/images"], ["images exists", "--overwrite"]),
    "mask_rule_unknown": (["--mask_rule", "any"], ["--mask_rule", "invalid choice"]),
}


@pytest.mark.parametrize("argv,words", PREPARE_CASES.values(), ids=PREPARE_CASES.keys())
def test_lavt_prepare_refcoco(data, capsys, argv, words):
    base = ["--refer_root", str(data / "refer"), "--images_root", str(data / "images"),
            "--output_dir", str(data / "parquet")]
    assert_usage_error(capsys, prepare_refcoco.main, base + fill(argv, data), "lavt-prepare-refcoco", *words)
    assert not (data / "parquet").exists()


BENCHMARK_CASES = {
    "inference_image_size_0": (["inference", "--image-size", "0"], ["--image-size", "must be >= 1, got 0"]),
    "inference_batch_size_0": (["inference", "--batch-size", "0"], ["--batch-size", "must be >= 1"]),
    "inference_repeats_0": (["inference", "--repeats", "0"], ["--repeats", "must be >= 1"]),
    "inference_warmup_negative": (["inference", "--warmup", "-1"], ["--warmup", "must be >= 0"]),
    "inference_threads_0": (["inference", "--threads", "0"], ["--threads", "must be >= 1"]),
    "data_format_samples_0": (["data-format", "--samples", "0"], ["--samples", "must be >= 1"]),
    "targets_max_batch_0": (["targets", "--max-batch-size", "0"], ["--max-batch-size", "must be >= 1"]),
}


@pytest.mark.parametrize("argv,words", BENCHMARK_CASES.values(), ids=BENCHMARK_CASES.keys())
def test_lavt_benchmark(capsys, argv, words):
    assert_usage_error(capsys, benchmark.main, argv, f"lavt-benchmark {argv[0]}", *words)


def test_writable_check_tries_a_real_file(tmp_path, monkeypatch):
    """Root ignores permission bits: the check creates (and removes) a file instead of reading them."""
    assert unwritable_reason(tmp_path / "new" / "deeper") is None
    assert list(tmp_path.iterdir()) == []  # nothing left behind, no folder created

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("tempfile.TemporaryFile", read_only)
    with pytest.raises(UsageError, match=r"--out .*cannot write into .*\(Read-only file system\); choose another"):
        check_writable_dir(tmp_path / "out", "--out")


def test_dataset_errors_name_the_source(tmp_path):
    with pytest.raises(NotFoundError, match="--dataset ../typo: not found"):
        with dataset_errors("../typo"):
            pass
    (tmp_path / "refer").mkdir()
    with pytest.raises(UsageError, match=f"--dataset {tmp_path / 'refer'}: split 'x' does not exist"):
        with dataset_errors(str(tmp_path / "refer")):
            raise ValueError("split 'x' does not exist")
