# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Checks at the door: forward checks shapes and dtypes only, values are refused where data enters (processor,
pipeline, lavt-predict, training views), and `from_pretrained`, the converter and the ONNX export refuse weights
that would give silent wrong answers (NaN weights, a config.json that contradicts them), through public
transformers paths only."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoTokenizer, pipeline

from lavt_hf.training.data import ReferTrainDataset, load_refer_dataset
from lavt_hf.training.data.synthetic import generate_synthetic_refer
from lavt_hf.training.data.views import check_sample_values
from modeling_lavt import LavtForReferringSegmentation, LavtImageProcessor, LavtModel, LavtProcessor
from modeling_lavt.pipeline_lavt import TASK, ReferringImageSegmentationPipeline
from modeling_lavt.validation import CheckedLoadingMixin, check_finite_weights, model_shapes
from tests.conftest import assert_predict_refuses, spread_tiny_model, tiny_lavt_config, tiny_text_config
from tests.test_pipeline import random_image, save_tiny_checkpoint, tiny_processor


@pytest.fixture(scope="module")
def model() -> LavtForReferringSegmentation:
    return spread_tiny_model()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, bert_vocab_dir) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("saved") / "tiny-lavt", bert_vocab_dir)


def copy_of(saved_model: Path, folder: Path) -> Path:
    shutil.copytree(saved_model, folder)
    return folder


def edit_weights(folder: Path, edit) -> Path:
    weights = load_file(folder / "model.safetensors")
    edit(weights)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def edit_config(folder: Path, **changes) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def with_nan(weights: dict) -> None:
    weights["decoder.classifier.weight"][0, 0] = float("nan")
    weights["lavt.backbone.patch_embed.projection.bias"][1] = float("inf")


class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def test_forward_checks_read_no_value(model):
    """The input checks of forward run no tensor operation (no reduction, no host sync): bad values pass them."""
    pixels = torch.full((2, 3, 32, 32), float("nan"))
    ids = torch.full((2, 20), 10**6)
    labels, mask = torch.full((2, 32, 32), 2), torch.ones(2, 20, dtype=torch.long)
    with _CountOps() as counter:
        model.check_inputs(pixels, ids, mask, labels)
    assert counter.ops == []


def test_forward_checks_compile_without_graph_breaks(model):
    inputs = (torch.randn(1, 3, 32, 32), torch.ones(1, 20, dtype=torch.long), None, None)
    torch.compile(model.check_inputs, backend="eager", fullgraph=True)(*inputs)


# Bad pixel values where they enter: the image processor, the processor and the pipeline.
IMAGE_CASES = {
    "nan-float-array": (np.full((8, 8, 3), np.nan, dtype=np.float32), {}, "holds 192 NaN or infinite values"),
    "inf-float-tensor": (torch.zeros(3, 8, 8).index_fill_(1, torch.tensor([2]), float("inf")), {},
                         "holds 24 NaN or infinite values"),
    "zero-image-std": (random_image(8, 8), {"image_std": [0.5, 0.0, 0.5]}, "image_std nonzero"),
    "nan-image-mean": (random_image(8, 8), {"image_mean": [float("nan"), 0.5, 0.5]}, "must be finite"),
}


@pytest.mark.parametrize("image, options, message", IMAGE_CASES.values(), ids=IMAGE_CASES.keys())
def test_image_processor_refuses_non_finite_pixels(bert_vocab_dir, image, options, message):
    with pytest.raises(ValueError, match=message):
        LavtImageProcessor(size=8)(image, **options)
    with pytest.raises(ValueError, match=message):
        tiny_processor(bert_vocab_dir)(images=image, text="a dog", **options)


def test_a_zero_std_saved_in_the_processor_is_refused(bert_vocab_dir, tmp_path):
    LavtImageProcessor(size=8, image_std=[0.2, 0.0, 0.2]).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"image_std \[0\.2.*, 0\.0, 0\.2.*\]; fix them \(preprocessor_config"):
        LavtImageProcessor.from_pretrained(tmp_path)(random_image(8, 8))


def test_pipeline_refuses_nan_images(model, bert_vocab_dir):
    pipe = ReferringImageSegmentationPipeline(model=model, processor=tiny_processor(bert_vocab_dir), device="cpu")
    with pytest.raises(ValueError, match="NaN or infinite"):
        pipe(np.full((8, 8, 3), np.nan, dtype=np.float32), text="a dog")


# Ids outside the vocabulary: only a tokenizer larger than the text encoder's vocabulary makes them.
def small_vocabulary_model() -> LavtForReferringSegmentation:
    return LavtForReferringSegmentation(tiny_lavt_config(text_config=tiny_text_config(vocab_size=1000))).eval()


def test_pipeline_refuses_a_tokenizer_larger_than_the_vocabulary(bert_vocab_dir):
    with pytest.raises(ValueError, match=r"tokenizer has 30522 entries but the model's text encoder knows 1000 "
                                         r"\(text_config.vocab_size\)"):
        ReferringImageSegmentationPipeline(model=small_vocabulary_model(), processor=tiny_processor(bert_vocab_dir),
                                           device="cpu")


# Labels and pixels in the training and evaluation views (a processor set up wrong).
class _UnbinarisedMasks(LavtProcessor):
    """A processor that forgot to binarise the masks (labels 0 / 2)."""

    def __call__(self, *args, **kwargs):
        features = super().__call__(*args, **kwargs)
        if "labels" in features:
            features["labels"] = features["labels"] * 2
        return features


def test_views_refuse_labels_other_than_0_and_1(tmp_path, bert_vocab_dir):
    generate_synthetic_refer(tmp_path / "refer", tmp_path / "images", num_images=4, seed=1, image_size=(40, 30))
    rows = load_refer_dataset(tmp_path / "refer", "refcoco_unc", "train", images_root=tmp_path / "images")
    processor = _UnbinarisedMasks(LavtImageProcessor(size=16), AutoTokenizer.from_pretrained(bert_vocab_dir))
    with pytest.raises(ValueError, match=r"labels other than 0 \(background\) and 1 .*: \[2\]"):
        ReferTrainDataset(rows, processor)[0]


def test_sample_value_check():
    good = {"pixel_values": torch.zeros(3, 4, 4), "labels": torch.ones(4, 4, dtype=torch.long)}
    check_sample_values(good)
    with pytest.raises(ValueError, match="gave 1 NaN or infinite pixel values; check its image_mean and image_std"):
        check_sample_values({**good, "pixel_values": torch.zeros(3, 4, 4).index_fill_(2, torch.tensor([0]),
                                                                                      float("nan"))[:1, :1]})
    with pytest.raises(ValueError, match=r"\[-100\]"):
        check_sample_values({**good, "labels": torch.full((4, 4), -100)})


# Weights: NaN / inf, a config.json that contradicts them, loading without private transformers hooks.
def test_from_pretrained_refuses_nan_weights_naming_them(saved_model, tmp_path):
    folder = edit_weights(copy_of(saved_model, tmp_path / "nan"), with_nan)
    for model_class in (LavtForReferringSegmentation, LavtModel):
        with pytest.raises(ValueError, match="2 weight tensors hold NaN or inf values"
                                             if model_class is LavtForReferringSegmentation else "1 weight tensors"):
            model_class.from_pretrained(folder)
    with pytest.raises(ValueError) as error:
        LavtForReferringSegmentation.from_pretrained(folder)
    assert str(folder) in str(error.value)
    assert "decoder.classifier.weight" in str(error.value) and "patch_embed.projection.bias" in str(error.value)


def test_onnx_export_refuses_nan_weights(model, bert_vocab_dir, tmp_path):
    from modeling_lavt.onnx.export import export_onnx

    broken = spread_tiny_model()
    with torch.no_grad():
        broken.decoder.classifier.bias[0] = float("nan")
    with pytest.raises(ValueError, match=r"the model: 1 weight tensors hold NaN or inf values \(decoder\.classifier"):
        export_onnx(broken, tiny_processor(bert_vocab_dir), tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_finite_weight_check_names_at_most_five():
    tensors = {f"w{i}": torch.tensor([float("nan")]) for i in range(7)} | {"ids": torch.tensor([1])}
    with pytest.raises(ValueError, match=r"7 weight tensors .*\(w0, w1, w2, w3, w4, \.\.\. 2 more\)"):
        check_finite_weights(tensors, "x")


def test_config_width_contradicting_the_weights_is_named(saved_model, tmp_path, capfd):
    folder = edit_config(copy_of(saved_model, tmp_path / "wide"), embed_dim=16)
    with pytest.raises(ValueError, match=r"config.json says embed_dim 16 but the weights have width 8 "
                                         r"\(lavt\.backbone\.patch_embed\.projection\.weight\)"):
        LavtForReferringSegmentation.from_pretrained(folder)
    err = capfd.readouterr().err
    assert "ignore_mismatched_sizes" not in err and "LOAD REPORT" not in err, err


def test_text_encoder_width_contradicting_the_weights_is_named(saved_model, tmp_path):
    config = json.loads((saved_model / "config.json").read_text())
    folder = edit_config(copy_of(saved_model, tmp_path / "text"),
                         text_config={**config["text_config"], "hidden_size": 64, "intermediate_size": 128})
    with pytest.raises(ValueError, match=r"config.json does not fit the weights: \d+ tensors have other shapes, "
                                         r"e.g. .* is \(.*\) in the weights but \(.*\) in the model"):
        LavtForReferringSegmentation.from_pretrained(folder)


def test_sharded_checkpoints_are_checked_per_shard(tmp_path):
    model = spread_tiny_model()
    model.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    shards = sorted((tmp_path / "sharded").glob("model-*.safetensors"))
    assert len(shards) > 1
    loaded = LavtForReferringSegmentation.from_pretrained(tmp_path / "sharded")
    assert torch.equal(loaded.decoder.classifier.weight, model.decoder.classifier.weight)
    shards[-1].write_bytes(shards[-1].read_bytes()[:-50])
    with pytest.raises(OSError, match=f"{shards[-1].name} is not a readable safetensors file"):
        LavtForReferringSegmentation.from_pretrained(tmp_path / "sharded")


def test_old_layout_and_headless_loads_still_fit(saved_model, tmp_path):
    """Keys saved before the headless split (no `lavt.` prefix) load into the full model; a full checkpoint
    loads into the headless LavtModel (its decoder ignored), with no error from the fit check."""
    folder = edit_weights(copy_of(saved_model, tmp_path / "old"),
                          lambda w: w.update({k.removeprefix("lavt."): w.pop(k) for k in list(w)}))
    reference = LavtForReferringSegmentation.from_pretrained(saved_model)
    old = LavtForReferringSegmentation.from_pretrained(folder)
    assert torch.equal(old.lavt.backbone.patch_embed.projection.weight,
                       reference.lavt.backbone.patch_embed.projection.weight)
    headless = LavtModel.from_pretrained(saved_model)
    assert torch.equal(headless.backbone.patch_embed.projection.weight,
                       reference.lavt.backbone.patch_embed.projection.weight)


def test_loading_overrides_no_private_transformers_step():
    """from_pretrained is the only loading method overridden: transformers' private steps
    (_load_pretrained_model, _finalize_model_loading, _adjust_missing_and_unexpected_keys) are not used."""
    assert [name for name in vars(CheckedLoadingMixin) if not name.startswith("__")] == ["from_pretrained"]
    source = Path(CheckedLoadingMixin.__module__.replace(".", "/") + ".py")
    text = (Path(__file__).parents[1] / source).read_text()
    for private in ("_load_pretrained_model", "_finalize_model_loading", "_adjust_missing_and_unexpected_keys"):
        assert private not in text


@pytest.mark.parametrize("model_class", [LavtForReferringSegmentation, LavtModel])
def test_meta_skeleton_has_the_models_shapes(model_class):
    """The fit check builds the model on the meta device with transformers' `meta_device_safe_creation_ops`
    (the drop-path schedule is read in __init__): the shapes must be those of the real model."""
    config = tiny_lavt_config(drop_path_rate=0.1)
    real = {name: tuple(tensor.shape) for name, tensor in model_class(config).state_dict().items()}
    assert model_shapes(model_class, config) == real


def test_pipeline_of_a_missing_folder_is_resolved_by_transformers_first():
    """pipeline() resolves the name before any LAVT code runs, so its message is transformers' (docs/design.md);
    from_pretrained and lavt-predict say what is wrong."""
    with pytest.raises(OSError, match="Repo id must be in the form"):
        pipeline(TASK, model="/no/such/folder")
    with pytest.raises(FileNotFoundError, match="Model folder /no/such/folder not found"):
        LavtForReferringSegmentation.from_pretrained("/no/such/folder")


# lavt-predict: one line, exit 2.
def without_processor(folder: Path) -> Path:
    for name in ("processor_config.json", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    return folder


def without_tokenizer(folder: Path) -> Path:
    (folder / "tokenizer.json").unlink()
    return folder


def small_vocabulary_folder(folder: Path) -> Path:
    processor = LavtProcessor.from_pretrained(folder)
    shutil.rmtree(folder)
    small_vocabulary_model().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


PREDICT_CASES = {
    "nan-weights": (lambda folder: edit_weights(folder, with_nan), "2 weight tensors hold NaN or inf values"),
    "config-width-differs": (lambda folder: edit_config(folder, embed_dim=16),
                             "config.json says embed_dim 16 but the weights have width 8"),
    "no-processor-files": (without_processor, "lacks processor_config.json and tokenizer files (tokenizer.json or "
                                              "vocab.txt): convert with lavt-convert --tokenizer"),
    "no-tokenizer": (without_tokenizer, "lacks tokenizer files"),
    "tokenizer-larger-than-vocabulary": (small_vocabulary_folder, "tokenizer has 30522 entries but the model's text "
                                                                 "encoder knows 1000"),
}


@pytest.mark.parametrize("damage, message", PREDICT_CASES.values(), ids=PREDICT_CASES.keys())
def test_predict_prints_one_line_and_exits_2(saved_model, tmp_path, capfd, damage, message):
    folder = damage(copy_of(saved_model, tmp_path / "model"))
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "image.png")
    argv = ["--model", str(folder), "--image", str(tmp_path / "image.png"), "--text", "a dog",
            "--output-dir", str(tmp_path / "out")]
    capfd.readouterr()
    assert_predict_refuses(argv, capfd, message, tmp_path / "out")


def test_loading_logs_nothing_for_a_good_folder(saved_model, caplog):
    with caplog.at_level(logging.WARNING):
        LavtForReferringSegmentation.from_pretrained(saved_model)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING], caplog.text




def test_evaluate_refuses_a_tokenizer_larger_than_the_vocabulary(saved_model, synthetic_data, tmp_path, capsys,
                                                                  fresh_accelerator_state):
    from lavt_hf.training import evaluation

    folder = small_vocabulary_folder(copy_of(saved_model, tmp_path / "model"))
    argv = ["--model", str(folder), "--dataset", str(synthetic_data / "refer"), "--dataset_config", "refcoco_unc",
            "--images_root", str(synthetic_data / "images"), "--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        evaluation.main(argv)
    assert exit_info.value.code == 2
    assert "tokenizer has 30522 entries but the model's text encoder knows 1000" in capsys.readouterr().err


def test_train_refuses_a_tokenizer_larger_than_the_vocabulary(synthetic_data, tmp_path, bert_vocab_dir, capsys,
                                                              fresh_accelerator_state):
    from lavt_hf.training import train
    from tests.test_train import tiny_recipe

    recipe = tiny_recipe(synthetic_data, tmp_path / "run", bert_vocab_dir)
    recipe.write_text(recipe.read_text().replace("vocab_size: 30522", "vocab_size: 1000"))
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--config", str(recipe)])
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("lavt-train: error: tokenizer: The tokenizer has 30522 entries but the model's text "
                           "encoder knows 1000"), line


@pytest.mark.slow
def test_hub_repos_are_checked_after_the_download(local_hub, saved_model, tmp_path):
    """A Hub repo goes through transformers' own download; its loading info and weights are checked after."""
    from huggingface_hub import HfApi

    from tests.conftest import REPO_ROOT
    from tests.local_hub import TOKEN, run_client
    from tests.test_hub import pushing_to

    damaged = {
        "user/missing": edit_weights(copy_of(saved_model, tmp_path / "missing"),
                                     lambda weights: weights.pop("decoder.classifier.bias")),
        "user/nan": edit_weights(copy_of(saved_model, tmp_path / "nan"), with_nan),
    }
    api = HfApi(endpoint=local_hub.endpoint, token=TOKEN)
    with pushing_to(local_hub):
        for repo, folder in damaged.items():
            api.create_repo(repo)
            api.upload_folder(folder_path=folder, repo_id=repo)
    code = """
from modeling_lavt import LavtForReferringSegmentation
for repo in ("user/missing", "user/nan"):
    try:
        LavtForReferringSegmentation.from_pretrained(repo)
    except ValueError as error:
        print("refused:", error)
"""
    lines = run_client(code, local_hub, tmp_path / "client", extra_env={"PYTHONPATH": str(REPO_ROOT)}).stdout
    refused = [line for line in lines.splitlines() if line.startswith("refused:")]
    assert len(refused) == 2, lines
    assert "user/missing does not match its configuration: 1 weights of the model are missing from the checkpoint " \
           "(decoder.classifier.bias)" in refused[0]
    assert "user/nan: 2 weight tensors hold NaN or inf values" in refused[1]
