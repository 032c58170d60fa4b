"""`lavt-convert` and `modeling_lavt.weights.conversion`: the settings an original checkpoint records (`args`) are used,
checked against the tensors and against command-line flags; damaged or unsafe inputs are refused in our words;
the output folder appears complete or not at all."""

import argparse
import json

import pytest
import torch
from safetensors.torch import load_file

from lavt_hf.scripts import convert_lavt_original_to_hf
from modeling_lavt import LavtForReferringSegmentation
from modeling_lavt.weights.conversion import (
    OriginalSettings,
    UnsupportedCheckpointError,
    convert_original,
    load_original_checkpoint,
    settings_from_args,
)
from tests.conftest import small_tokenizer_dir

RELEASED_ARGS = dict(mha="", window12=False, model="lavt", img_size=480, fusion_drop=0.0, dataset="refcoco",
                     splitBy="unc", ck_bert="bert-base-uncased")


@pytest.fixture(scope="module")
def original(reference_dir):
    """The small sharp model of the conformance fixtures, in the original layout (window 7, embed_dim 32)."""
    return {"model": load_file(reference_dir / "small_w7_sharp" / "model.safetensors"),
            "bert_model": load_file(reference_dir / "bert_small.safetensors")}


@pytest.fixture(scope="module")
def text_config(reference_dir):
    return json.loads((reference_dir / "bert_small_config.json").read_text())


def save_checkpoint(path, original, **args):
    torch.save({**original, "args": argparse.Namespace(**{**RELEASED_ARGS, **args}), "epoch": 3}, path)
    return path


def convert(tmp_path, checkpoint, *extra, text_config=None, output="converted"):
    """Run the CLI; returns the output folder."""
    argv = ["--checkpoint", str(checkpoint), "--output_dir", str(tmp_path / output), *extra]
    if text_config is not None:
        (tmp_path / "bert.json").write_text(json.dumps(text_config))
        argv += ["--text_config", str(tmp_path / "bert.json")]
    assert convert_lavt_original_to_hf.main(argv) == 0
    return tmp_path / output


def cli_error(capsys, argv) -> str:
    """The one error line of a refused conversion (argparse style, exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        convert_lavt_original_to_hf.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def logits(model, height=64, width=48):
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return model(torch.randn(1, 3, height, width, generator=generator),
                     torch.randint(1, 999, (1, 20), generator=generator),
                     (torch.arange(20) < 9).long()[None]).logits


def test_settings_from_args_reads_every_recorded_setting():
    settings = settings_from_args(argparse.Namespace(**{**RELEASED_ARGS, "mha": "2-4-4-8", "window12": True,
                                                       "swin_type": "base", "fusion_drop": 0.1}))
    assert settings == OriginalSettings(fusion_num_heads=(2, 4, 4, 8), window_size=12, swin_type="base",
                                        model="lavt", fusion_dropout=0.1, image_size=480, dataset="refcoco",
                                        split_by="unc", text_model="bert-base-uncased")
    assert settings_from_args(argparse.Namespace(mha="")).fusion_num_heads == (1, 1, 1, 1)
    assert settings_from_args(None) == OriginalSettings()


@pytest.mark.parametrize("args, message", [
    ({"mha": "2-2"}, "args.mha='2-2' is not '' or four positive head counts"),
    ({"mha": "a-b-c-d"}, "four positive head counts"),
    ({"swin_type": "huge"}, "args.swin_type='huge' is not one of"),
    ({"model": "lavt_two"}, "args.model='lavt_two' is neither"),
    ({"img_size": 0}, "args.img_size=0 is not a positive input size"),
], ids=["mha-three-parts", "mha-not-numbers", "unknown-swin-type", "unknown-model", "img-size-zero"])
def test_malformed_args_are_refused(args, message):
    with pytest.raises(UnsupportedCheckpointError, match=message.replace("(", r"\(")):
        settings_from_args(args)


def test_recorded_heads_are_used_and_match_a_model_built_with_them(original, text_config, tmp_path):
    """args.mha = '2-2-2-2': the same weights with 2 heads per stage compute another function; the converter
    must build the 2-head model without being told."""
    folder = convert(tmp_path, save_checkpoint(tmp_path / "mha2.pth", original, mha="2-2-2-2"),
                     text_config=text_config)
    converted = LavtForReferringSegmentation.from_pretrained(folder).eval()
    assert converted.config.fusion_num_heads == [2, 2, 2, 2]

    one_head = convert_original(original["model"], original["bert_model"], text_config)
    config = one_head.config.to_dict() | {"fusion_num_heads": [2, 2, 2, 2]}
    expected = LavtForReferringSegmentation(type(one_head.config).from_dict(config)).eval()
    expected.load_state_dict(one_head.state_dict())
    assert torch.allclose(logits(converted), logits(expected), atol=1e-5)
    assert (logits(converted) - logits(one_head)).abs().max() > 1e-2  # the heads do change the function


def test_a_flag_that_contradicts_the_checkpoint_is_an_error(original, text_config, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "mha2.pth", original, mha="2-2-2-2")
    line = cli_error(capsys, ["--checkpoint", str(checkpoint), "--output_dir", str(tmp_path / "out"),
                              "--fusion_num_heads", "1", "1", "1", "1"])
    assert "fusion_num_heads=1 1 1 1 was asked for" in line and "records fusion_num_heads=2 2 2 2" in line
    line = cli_error(capsys, ["--checkpoint", str(checkpoint), "--output_dir", str(tmp_path / "out"),
                              "--image_size", "320"])
    assert "image_size=320 was asked for" in line and "image_size=480" in line
    assert not (tmp_path / "out").exists()
    # agreeing with the checkpoint is fine
    folder = convert(tmp_path, checkpoint, "--fusion_num_heads", "2", "2", "2", "2", text_config=text_config)
    assert json.loads((folder / "config.json").read_text())["fusion_num_heads"] == [2, 2, 2, 2]


def test_image_size_becomes_the_processors_size(original, text_config, bert_vocab_dir, tmp_path):
    folder = convert(tmp_path, save_checkpoint(tmp_path / "c.pth", original, img_size=320),
                     "--tokenizer", str(small_tokenizer_dir(bert_vocab_dir, tmp_path / "tokenizer")),
                     text_config=text_config)
    from transformers import AutoProcessor

    import modeling_lavt  # noqa: F401  (registers the processor)

    processor = AutoProcessor.from_pretrained(folder)
    assert processor.image_processor.size == {"height": 320, "width": 320}
    # without a tokenizer the image processor alone keeps the size
    folder = convert(tmp_path, save_checkpoint(tmp_path / "c.pth", original, img_size=352),
                     text_config=text_config, output="no_tokenizer")
    assert json.loads((folder / "preprocessor_config.json").read_text())["size"] == {"height": 352, "width": 352}


def test_window_recorded_in_args_is_checked_against_the_tables(original, text_config):
    visual = dict(original["model"])
    for key in [k for k in visual if k.endswith("relative_position_bias_table")]:
        visual[key] = torch.zeros(23**2, visual[key].shape[1])  # tables of window 12
    model = convert_original(visual, original["bert_model"], text_config, OriginalSettings(window_size=12))
    assert model.config.window_size == 12
    with pytest.raises(UnsupportedCheckpointError, match="args.window12 says window 7, but .* window 12"):
        convert_original(visual, original["bert_model"], text_config, settings_from_args({"window12": False}))


def test_swin_type_recorded_in_args_is_checked_against_the_tensors(original, text_config):
    with pytest.raises(UnsupportedCheckpointError,
                       match=r"args.swin_type='tiny' means embed_dim 96, .* tensors hold embed_dim 32"):
        convert_original(original["model"], original["bert_model"], text_config, OriginalSettings(swin_type="tiny"))


def test_heads_that_do_not_divide_a_stage_are_refused(original, text_config):
    with pytest.raises(UnsupportedCheckpointError, match="3 pixel-word attention heads in stage 0, which do not "
                                                         "divide its 32 channels"):
        convert_original(original["model"], original["bert_model"], text_config,
                         OriginalSettings(fusion_num_heads=(3, 1, 1, 1)))


def test_lavt_one_layout_converts_to_the_same_model(original, text_config, tmp_path):
    one = {**original["model"], **{f"text_encoder.{k}": v for k, v in original["bert_model"].items()}}
    torch.save({"model": one, "args": argparse.Namespace(**{**RELEASED_ARGS, "model": "lavt_one",
                                                            "mha": "2-2-2-2"})}, tmp_path / "one.pth")
    folder_one = convert(tmp_path, tmp_path / "one.pth", text_config=text_config, output="one")
    folder = convert(tmp_path, save_checkpoint(tmp_path / "two.pth", original, mha="2-2-2-2"),
                     text_config=text_config, output="two")
    one_model = LavtForReferringSegmentation.from_pretrained(folder_one).eval()
    two_model = LavtForReferringSegmentation.from_pretrained(folder).eval()
    assert one_model.config.fusion_num_heads == [2, 2, 2, 2]
    assert torch.equal(logits(one_model), logits(two_model))


def test_args_model_contradicting_the_layout_is_an_error(original, tmp_path):
    save_checkpoint(tmp_path / "c.pth", original, model="lavt_one")
    with pytest.raises(UnsupportedCheckpointError, match="args.model='lavt_one', but the checkpoint is laid out "
                                                         "as 'lavt'"):
        load_original_checkpoint(tmp_path / "c.pth")


def test_weights_with_nan_or_inf_are_refused(original, text_config, tmp_path, capsys):
    broken = dict(original["model"])
    broken["classifier.conv1_1.weight"] = broken["classifier.conv1_1.weight"].clone()
    broken["classifier.conv1_1.weight"][0, 0] = float("nan")
    torch.save({"model": broken, "bert_model": original["bert_model"], "args": argparse.Namespace(**RELEASED_ARGS)},
               tmp_path / "nan.pth")
    line = cli_error(capsys, ["--checkpoint", str(tmp_path / "nan.pth"), "--output_dir", str(tmp_path / "o")])
    assert "hold NaN or inf" in line and "decoder.classifier.weight" in line
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.partial-*"))


def test_checkpoint_without_args_warns_what_it_assumes(reference_dir, text_config, tmp_path, capsys):
    convert(tmp_path, reference_dir / "small_w7_sharp" / "model.safetensors", "--text_checkpoint",
            str(reference_dir / "bert_small.safetensors"), text_config=text_config)
    err = capsys.readouterr().err
    assert "warning: " in err and "does not record fusion_num_heads, image_size" in err
    assert "fusion_num_heads=1 1 1 1, image_size=480" in err
    # told explicitly, nothing is assumed
    convert(tmp_path, reference_dir / "small_w7_sharp" / "model.safetensors", "--text_checkpoint",
            str(reference_dir / "bert_small.safetensors"), "--fusion_num_heads", "1", "1", "1", "1",
            "--image_size", "480", text_config=text_config, output="told")
    assert "warning" not in capsys.readouterr().err


def test_a_tokenizer_that_cases_text_otherwise_than_ck_bert_is_refused(original, bert_vocab_dir, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "c.pth", original, ck_bert="bert-base-cased")
    line = cli_error(capsys, ["--checkpoint", str(checkpoint), "--output_dir", str(tmp_path / "o"),
                              "--tokenizer", str(bert_vocab_dir)])
    assert "trained with bert-base-cased (args.ck_bert)" in line and "lower-cases" in line


@pytest.mark.parametrize("case", ["random-bytes-pth", "zip-junk-pth", "truncated-safetensors",
                                  "refused-pickle", "eval-results-not-json", "eval-results-missing",
                                  "text-config-not-json", "tokenizer-missing", "output-holds-a-model",
                                  "output-is-a-file", "output-parent-is-a-file", "image-size-zero",
                                  "text-checkpoint-damaged"])
def test_bad_inputs_are_refused_in_one_line(case, original, reference_dir, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "good.pth", original)
    output = tmp_path / "out"
    argv = ["--checkpoint", str(checkpoint), "--output_dir", str(output)]
    if case == "random-bytes-pth":
        (tmp_path / "bad.pth").write_bytes(bytes(range(256)) * 8)
        argv[1], expected = str(tmp_path / "bad.pth"), "bad.pth is not a PyTorch checkpoint"
    elif case == "zip-junk-pth":
        (tmp_path / "bad.pth").write_bytes(b"PK\x03\x04junk")
        argv[1], expected = str(tmp_path / "bad.pth"), "bad.pth cannot be read as a PyTorch checkpoint: it is damaged"
    elif case == "truncated-safetensors":
        data = (reference_dir / "small_w7_sharp" / "model.safetensors").read_bytes()
        (tmp_path / "cut.safetensors").write_bytes(data[:1000])
        argv[1], expected = str(tmp_path / "cut.safetensors"), "cut.safetensors is not a readable safetensors file"
    elif case == "text-checkpoint-damaged":
        (tmp_path / "bert.safetensors").write_bytes(b"\x00" * 50)
        argv += ["--text_checkpoint", str(tmp_path / "bert.safetensors")]
        expected = "bert.safetensors is not a readable safetensors file"
    elif case == "refused-pickle":
        torch.save({"model": {}, "args": Unsafe()}, tmp_path / "evil.pth")
        argv[1], expected = str(tmp_path / "evil.pth"), "evil.pth was refused: it asks to import"
    elif case in ("eval-results-not-json", "eval-results-missing"):
        if case == "eval-results-not-json":
            (tmp_path / "eval.json").write_text("overall_iou: 3")
        argv += ["--eval_results", str(tmp_path / "eval.json")]
        expected = (f"--eval_results {tmp_path / 'eval.json'} is not valid JSON" if case == "eval-results-not-json"
                    else f"--eval_results {tmp_path / 'eval.json'} not found")
    elif case == "text-config-not-json":
        (tmp_path / "bert.json").write_text("{")
        argv += ["--text_config", str(tmp_path / "bert.json")]
        expected = f"--text_config {tmp_path / 'bert.json'} is not valid JSON"
    elif case == "tokenizer-missing":
        argv += ["--tokenizer", str(tmp_path / "no_such_tokenizer")]
        expected = f"--tokenizer {tmp_path / 'no_such_tokenizer'} could not be loaded"
    elif case == "output-holds-a-model":
        output.mkdir()
        (output / "pytorch_model.bin").write_bytes(b"")
        (output / "config.json").write_text("{}")
        expected = "already holds ['config.json', 'pytorch_model.bin']; choose a new or empty folder"
    elif case == "output-is-a-file":
        output.write_text("")
        expected = "it is a file, not a folder; choose another folder"  # training.cli.check_writable_dir
    elif case == "output-parent-is-a-file":
        (tmp_path / "file").write_text("")
        argv[3] = str(tmp_path / "file" / "out")
        expected = "file is a file, not a folder"
    else:
        argv += ["--image_size", "0"]
        expected = "--image_size"
    line = cli_error(capsys, argv)
    assert line.startswith("lavt-convert: error: ") and expected in line
    assert "weights_only=False" not in line and "Traceback" not in line
    if case == "output-holds-a-model":
        assert (output / "config.json").read_text() == "{}"  # untouched
    elif case != "output-is-a-file":
        assert not output.exists() and not list(tmp_path.glob(".out.partial-*"))


class Unsafe:
    pass


def test_a_failed_conversion_leaves_nothing_and_the_rerun_works(original, text_config, bert_vocab_dir, tmp_path,
                                                                 capsys):
    """Everything that can fail is loaded first: a bad --tokenizer writes nothing, so fixing it is enough."""
    checkpoint = save_checkpoint(tmp_path / "c.pth", original)
    (tmp_path / "bert.json").write_text(json.dumps(text_config))
    argv = ["--checkpoint", str(checkpoint), "--output_dir", str(tmp_path / "out"), "--text_config",
            str(tmp_path / "bert.json")]
    cli_error(capsys, [*argv, "--tokenizer", str(tmp_path / "missing")])
    assert not (tmp_path / "out").exists()
    tokenizer = small_tokenizer_dir(bert_vocab_dir, tmp_path / "tokenizer", text_config["vocab_size"])
    assert convert_lavt_original_to_hf.main([*argv, "--tokenizer", str(tokenizer)]) == 0
    assert {"config.json", "model.safetensors", "processor_config.json"} <= {p.name for p in (tmp_path / "out").iterdir()}
