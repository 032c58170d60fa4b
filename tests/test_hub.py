# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Pushing LAVT models to the Hub and loading them back, against the local Hub with the real clients.

Pushes run in this process, pointed at the hub by patching `huggingface_hub.constants` (it reads HF_ENDPOINT
at import time); loads run in fresh processes with a cold cache, one that cannot import this package
(remote code) and one that can. The training script's push runs in its own process, as users run it.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoTokenizer

from lavt_hf.scripts import convert_lavt_original_to_hf
from modeling_lavt import LavtForReferringSegmentation
from modeling_lavt.image_processing_lavt import LavtImageProcessor
from modeling_lavt.pipeline_lavt import TASK, ReferringImageSegmentationPipeline
from modeling_lavt.processing_lavt import LavtProcessor
from modeling_lavt.sharing.hub import CARD_METRICS, HubPushError, push_lavt_to_hub
from tests.conftest import REPO_ROOT, small_tokenizer_dir, spread_tiny_model
from tests.local_hub import TOKEN, LocalHub, run_client
from tests.test_train import tiny_recipe

TEXT = "the red circle"
PICKLED_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack", ".onnx")
REMOTE_CODE_FILES = {"configuration_lavt.py", "modeling_lavt.py", "losses.py", "image_processing_lavt.py",
                     "processing_lavt.py", "pipeline_lavt.py"}


@pytest.fixture(scope="module")
def hub() -> Iterator[LocalHub]:
    """One hub for the module's pushes (the `local_hub` fixture is per test)."""
    with LocalHub() as hub:
        yield hub
        assert not hub.errors, "LocalHub internal errors:\n" + "\n".join(hub.errors)


@contextmanager
def pushing_to(hub: LocalHub) -> Iterator[None]:
    """Point this process's huggingface_hub at `hub` for pushes (it read HF_ENDPOINT when it was imported)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "ENDPOINT", hub.endpoint)
        patch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
        patch.setenv("HF_TOKEN", TOKEN)
        yield


def hub_api(hub: LocalHub) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=TOKEN)


def assert_only_safetensors_weights(files: list[str]) -> None:
    assert "model.safetensors" in files, files
    assert not [f for f in files if f.endswith(PICKLED_WEIGHT_SUFFIXES)], files


def folder_snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}




@pytest.fixture(scope="module")
def original(tmp_path_factory, bert_vocab_dir) -> dict:
    """The model, processor, an image on disk and what this process computes from them (the reference)."""
    folder = tmp_path_factory.mktemp("original")
    model = spread_tiny_model()
    processor = LavtProcessor(LavtImageProcessor(size=32), AutoTokenizer.from_pretrained(bert_vocab_dir))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    image.save(folder / "image.png")
    inputs = processor(images=image, text=TEXT, return_tensors="pt")
    with torch.no_grad():
        logits = model(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"],
                       attention_mask=inputs["attention_mask"]).logits
    result = ReferringImageSegmentationPipeline(model=model, processor=processor, device="cpu")(
        image, text=TEXT, return_probabilities=True)
    mask = np.array(result["mask"])
    assert 0 < mask.mean() < 255, "the reference mask must be neither empty nor full"
    return {"model": model, "processor": processor, "image": folder / "image.png", "logits": logits,
            "mask": mask, "probabilities": result["probabilities"]}


@pytest.fixture(scope="module")
def pushed(hub, original) -> str:
    """A tiny model and its processor pushed as objects."""
    with pushing_to(hub):
        push_lavt_to_hub(original["model"], "user/lavt-tiny", original["processor"])
    return "user/lavt-tiny"


# A fresh process loads the pushed repo with the Auto classes and the pipeline and saves what it computes.
LOAD_AND_RUN = """
import json
import numpy as np
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor, pipeline

kwargs = {kwargs}
model = AutoModel.from_pretrained({repo!r}, **kwargs).eval()
processor = AutoProcessor.from_pretrained({repo!r}, **kwargs)
image = Image.open({image!r})
inputs = processor(images=image, text={text!r}, return_tensors="pt")
with torch.no_grad():
    logits = model(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"],
                   attention_mask=inputs["attention_mask"]).logits
segmenter = pipeline({task!r}, model={repo!r}, device="cpu", **kwargs)
result = segmenter(image, text={text!r}, return_probabilities=True)
torch.save({{"logits": logits, "mask": torch.from_numpy(np.array(result["mask"])),
            "probabilities": torch.from_numpy(result["probabilities"])}}, "outputs.pt")
print(json.dumps({{"model": type(model).__module__, "processor": type(processor).__module__,
                  "pipeline": type(segmenter).__module__}}))
"""


def load_in_fresh_process(hub: LocalHub, repo: str, original: dict, folder: Path, *, preamble: str,
                          trust_remote_code: bool, extra_env: dict | None = None) -> tuple[dict, dict]:
    """Run LOAD_AND_RUN after `preamble`; returns (class modules, outputs)."""
    kwargs = {"trust_remote_code": True} if trust_remote_code else {}
    code = preamble + LOAD_AND_RUN.format(kwargs=kwargs, repo=repo, image=str(original["image"]), text=TEXT,
                                          task=TASK)
    process = run_client(code, hub, folder, extra_env=extra_env)
    return json.loads(process.stdout.strip().splitlines()[-1]), torch.load(folder / "outputs.pt")


def assert_same_outputs(outputs: dict, original: dict) -> None:
    torch.testing.assert_close(outputs["logits"], original["logits"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(outputs["mask"].numpy(), original["mask"])
    np.testing.assert_allclose(outputs["probabilities"].numpy(), original["probabilities"], rtol=0, atol=1e-6)


def test_push_uploads_weights_processor_code_pipeline_and_card(hub, pushed, tmp_path):
    api = hub_api(hub)
    files = api.list_repo_files(pushed)
    assert_only_safetensors_weights(files)
    assert {"config.json", "processor_config.json", "tokenizer.json", "README.md"} | REMOTE_CODE_FILES <= set(files)
    config = json.loads(Path(api.hf_hub_download(pushed, "config.json", cache_dir=tmp_path)).read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_lavt.LavtConfig",
                                  "AutoModel": "modeling_lavt.LavtForReferringSegmentation"}
    assert config["custom_pipelines"][TASK]["impl"] == "pipeline_lavt.ReferringImageSegmentationPipeline"
    for name in sorted(f for f in files if f.endswith(".py")):  # every relative import is uploaded too
        source = Path(api.hf_hub_download(pushed, name, cache_dir=tmp_path)).read_text()
        imported = {line.split()[1].lstrip(".") + ".py" for line in source.splitlines()
                    if line.lstrip().startswith("from .")}
        assert imported <= set(files), (name, imported - set(files))
    card = ModelCard.load(api.hf_hub_download(pushed, "README.md", cache_dir=tmp_path))
    # No widget that cannot run the model: the image-segmentation one would send an image without text.
    assert (card.data.license, card.data.library_name, card.data.pipeline_tag, card.data.inference) == (
        "apache-2.0", "transformers", None, False)
    assert "referring-image-segmentation" in card.data.tags and card.data.eval_results is None
    assert f'pipeline("{TASK}", model="{pushed}", trust_remote_code=True)' in card.text


@pytest.mark.slow
def test_fresh_process_without_the_package_loads_with_trust_remote_code(hub, pushed, original, tmp_path):
    classes, outputs = load_in_fresh_process(
        hub, pushed, original, tmp_path, trust_remote_code=True,
        preamble='import sys\nsys.modules["modeling_lavt"] = None  # this package cannot be imported\n')
    assert all(module.startswith("transformers_modules.") for module in classes.values()), classes
    assert_same_outputs(outputs, original)


@pytest.mark.slow
def test_installed_package_loads_without_trust_remote_code(hub, pushed, original, tmp_path):
    classes, outputs = load_in_fresh_process(
        hub, pushed, original, tmp_path, trust_remote_code=False, preamble="import modeling_lavt\n",
        extra_env={"PYTHONPATH": str(REPO_ROOT)})
    assert classes == {"model": "modeling_lavt.modeling_lavt", "processor": "modeling_lavt.processing_lavt",
                       "pipeline": "modeling_lavt.pipeline_lavt"}
    assert_same_outputs(outputs, original)


def test_folder_push_skips_other_weight_formats_and_keeps_the_folder(hub, original, tmp_path):
    folder = tmp_path / "model"
    original["model"].save_pretrained(folder)
    original["processor"].save_pretrained(folder)
    for name in ("pytorch_model.bin", "optimizer.pt", "old.pth"):
        (folder / name).write_bytes(b"\0pickle")
    before = folder_snapshot(folder)
    with pushing_to(hub):
        push_lavt_to_hub(folder, "user/from-folder", commit_message="from a folder")
    assert folder_snapshot(folder) == before
    api = hub_api(hub)
    files = api.list_repo_files("user/from-folder")
    assert_only_safetensors_weights(files)
    assert "README.md" in files and REMOTE_CODE_FILES <= set(files)
    assert api.list_repo_commits("user/from-folder")[0].title == "from a folder"
    uploaded = Path(api.hf_hub_download("user/from-folder", "model.safetensors", cache_dir=tmp_path / "cache"))
    assert uploaded.read_bytes() == before["model.safetensors"]


@pytest.mark.parametrize("failure", ["auth refused", "server down"])
def test_failed_push_names_the_cause_and_keeps_the_folder(local_hub, original, tmp_path, failure):
    folder = tmp_path / "model"
    original["model"].save_pretrained(folder)
    original["processor"].save_pretrained(folder)
    before = folder_snapshot(folder)
    if failure == "auth refused":
        local_hub.refuse_auth = True
        expected = rf"Hub at {local_hub.endpoint} refused the token \(HTTP 401\).*hf auth login.*HF_TOKEN"
    else:
        local_hub.stop()
        expected = rf"Could not reach the Hub at {local_hub.endpoint}"
    with pushing_to(local_hub), pytest.raises(HubPushError, match=expected) as raised:
        push_lavt_to_hub(folder, "user/never-pushed")
    assert "Nothing was pushed" in str(raised.value) and f"local folder {folder} is intact" in str(raised.value)
    assert folder_snapshot(folder) == before


@pytest.mark.slow
def test_training_script_pushes_model_processor_and_card(hub, synthetic_data, bert_vocab_dir, tmp_path):
    recipe = tiny_recipe(synthetic_data, tmp_path / "run", bert_vocab_dir, num_epochs=1, max_train_objects=4,
                         max_eval_samples=8)
    process = run_client(f"""
        from lavt_hf.training import train
        train.run(["--config", {str(recipe)!r}, "--push_to_hub", "--hub_model_id", "user/lavt-trained"])
        """, hub, tmp_path / "client", extra_env={"PYTHONPATH": str(REPO_ROOT)}, timeout=300)
    printed = json.loads(next(line for line in reversed(process.stdout.splitlines())
                              if line.startswith('{"output_dir"')))
    api = hub_api(hub)
    files = api.list_repo_files("user/lavt-trained")
    assert_only_safetensors_weights(files)
    assert {"config.json", "processor_config.json", "tokenizer.json", "README.md", "eval_results.json"} <= set(files)
    card = ModelCard.load(api.hf_hub_download("user/lavt-trained", "README.md", cache_dir=tmp_path / "cache"))
    assert {r.dataset_split for r in card.data.eval_results} == {"val"}
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert values == {key: pytest.approx(printed[key], abs=1e-4) for key in CARD_METRICS}
    assert 'model="user/lavt-trained"' in card.text


def run_converter(reference_dir: Path, bert_vocab_dir: Path, tmp_path: Path, *extra: str) -> Path:
    """The converter on the small original checkpoint of the conformance fixtures; returns its folder."""
    (tmp_path / "bert.json").write_text((reference_dir / "bert_small_config.json").read_text())
    output_dir = tmp_path / "converted"
    convert_lavt_original_to_hf.main([
        "--checkpoint", str(reference_dir / "small_w7_sharp" / "model.safetensors"),
        "--text_checkpoint", str(reference_dir / "bert_small.safetensors"),
        "--text_config", str(tmp_path / "bert.json"), "--tokenizer",
        str(small_tokenizer_dir(bert_vocab_dir, tmp_path / "tokenizer")), "--output_dir", str(output_dir), *extra,
    ])
    return output_dir


@pytest.mark.slow
def test_converter_pushes_a_loadable_model_with_card(hub, reference_dir, bert_vocab_dir, tmp_path):
    evaluation = tmp_path / "eval_results.json"
    evaluation.write_text(json.dumps({"overall_iou": 61.25, "mean_iou": 63.5, "precision@0.5": 70.0,
                                      "dataset": "user/refcoco-lavt", "dataset_config": "refcoco_unc",
                                      "split": "testA", "protocol": "model_input"}))
    with pushing_to(hub):
        output_dir = run_converter(reference_dir, bert_vocab_dir, tmp_path, "--push_to_hub", "user/converted",
                                   "--eval_results", str(evaluation))
    api = hub_api(hub)
    assert_only_safetensors_weights(api.list_repo_files("user/converted"))
    snapshot = Path(api.snapshot_download("user/converted", cache_dir=tmp_path / "cache"))
    loaded = LavtForReferringSegmentation.from_pretrained(snapshot)
    expected = load_file(output_dir / "model.safetensors")
    assert loaded.state_dict().keys() >= expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert isinstance(LavtProcessor.from_pretrained(snapshot), LavtProcessor)
    card = ModelCard.load(snapshot / "README.md")
    assert {(r.dataset_split, r.metric_type, r.metric_value) for r in card.data.eval_results} == {
        ("testA", "overall_iou", 61.25), ("testA", "mean_iou", 63.5), ("testA", "precision@0.5", 70.0)}
    assert card.data.datasets == ["user/refcoco-lavt"]
    assert "converted from the original LAVT checkpoint `model.safetensors`" in card.text


def test_converter_push_failure_exits_with_the_reason(local_hub, reference_dir, bert_vocab_dir, tmp_path):
    local_hub.stop()
    with pushing_to(local_hub), pytest.raises(SystemExit) as exited:
        run_converter(reference_dir, bert_vocab_dir, tmp_path, "--push_to_hub", "user/converted")
    assert f"Could not reach the Hub at {local_hub.endpoint}" in str(exited.value)
    assert "is intact" in str(exited.value) and "push_lavt_to_hub(" in str(exited.value)
    assert (tmp_path / "converted" / "model.safetensors").is_file()
