"""Mistakes a new user made with the command-line tools: each is refused before any work with exit status 2 and
one line `<prog>: error: ...` naming it, never a traceback nor a silent success."""

import pytest

from lavt_hf.scripts import benchmark, convert_lavt_original_to_hf, export, predict, prepare_refcoco
from lavt_hf.training import demo
from lavt_hf.training import evaluation as lavt_evaluate
from lavt_hf.training.data import synthetic
from tests.conftest import small_tokenizer_dir
from tests.test_bad_inputs_cli import assert_usage_error
from tests.test_conversion import original, save_checkpoint  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("fresh_accelerator_state")


@pytest.mark.parametrize("main, prog, extra", [
    (predict.main, "lavt-predict", ["--image", "x.jpg", "--text", "a"]),
    (lavt_evaluate.main, "lavt-evaluate", ["--dataset", "d"]),
    (export.main, "lavt-export", ["--output-dir", "out"]),
])
def test_a_file_given_as_model_folder_is_refused(main, prog, extra, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text("{}")
    assert_usage_error(capsys, main, ["--model", str(config), *extra], prog,
                       f"{config} is a file, not a model folder", str(tmp_path))


@pytest.mark.parametrize("opset", ["3", "-1", "17", "23", "99"])
def test_an_opset_the_exporter_cannot_write_is_refused(opset, tmp_path, capsys):
    argv = ["--model", str(tmp_path), "--output-dir", str(tmp_path / "out"), "--opset", opset]
    assert_usage_error(capsys, export.main, argv, "lavt-export", f"--opset: invalid choice: {opset}")


def test_a_tokenizer_larger_than_the_text_vocabulary_is_refused(original, reference_dir, bert_vocab_dir, tmp_path,  # noqa: F811
                                                                capsys):
    checkpoint = save_checkpoint(tmp_path / "c.pth", original)
    argv = ["--checkpoint", str(checkpoint), "--output_dir", str(tmp_path / "out"),
            "--text_config", str(reference_dir / "bert_small_config.json"), "--tokenizer", str(bert_vocab_dir)]
    assert_usage_error(capsys, convert_lavt_original_to_hf.main, argv, "lavt-convert",
                       "30522 entries", "knows 1000")
    assert not (tmp_path / "out").exists()
    small = small_tokenizer_dir(bert_vocab_dir, tmp_path / "small")
    assert convert_lavt_original_to_hf.main([*argv[:-1], str(small)]) == 0


@pytest.mark.parametrize("value", ["-1", "0", "nan"])
def test_a_shard_size_that_is_not_positive_is_refused(value, tmp_path, capsys):
    argv = ["--refer_root", str(tmp_path), "--images_root", str(tmp_path), "--output_dir", str(tmp_path / "o"),
            "--max_shard_mb", value]
    assert_usage_error(capsys, prepare_refcoco.main, argv, "lavt-prepare-refcoco", "--max_shard_mb")


@pytest.mark.parametrize("flag", ["--num_images", "--width", "--height"])
def test_a_synthetic_count_or_size_below_one_is_refused(flag, tmp_path, capsys):
    argv = [str(tmp_path / "refer"), str(tmp_path / "images"), flag, "-3"]
    assert_usage_error(capsys, synthetic.main, argv, "python -m lavt_hf.training.data.synthetic",
                       f"argument {flag}: must be >= 1, got -3")
    assert not (tmp_path / "refer").exists()


@pytest.mark.parametrize("main, prog", [(benchmark.main, "lavt-benchmark"),
                                        (demo.main, "python -m lavt_hf.training.demo")])
def test_usage_names_the_command_the_user_types(main, prog, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith(f"usage: {prog} ")


def test_a_misspelt_option_is_named_before_the_required_one_it_stood_for(tmp_path, capsys):
    argv = ["--images", str(tmp_path / "a.jpg"), "--text", "a", "--model", str(tmp_path)]
    assert_usage_error(capsys, predict.main, argv, "lavt-predict", "unrecognized arguments: --images",
                       "did you mean --image?")
