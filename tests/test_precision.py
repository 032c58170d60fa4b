# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Compute precision: weights stored for autocast give autocast's results bit for bit; lavt-predict uses them."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from lavt_hf.scripts import predict
from modeling_lavt import LavtProcessor, ReferringImageSegmentationPipeline
from modeling_lavt.precision import AUTOCAST_WEIGHT_LAYERS, autocast, store_weights_for_autocast
from tests.conftest import spread_tiny_model
from tests.test_predict import model_dir  # noqa: F401 (the module's tiny saved model, a fixture)

CPU = torch.device("cpu")


def inputs(batch: int = 2, size: int = 64) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"pixel_values": torch.randn(batch, 3, size, size, generator=generator),
            "input_ids": torch.randint(1000, 2000, (batch, 20), generator=generator),
            "attention_mask": torch.ones(batch, 20, dtype=torch.long)}


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_stored_weights_give_autocasts_outputs_bit_for_bit(dtype):
    model = spread_tiny_model()
    stored = store_weights_for_autocast(copy.deepcopy(model), dtype)
    with torch.inference_mode(), autocast(CPU, dtype):
        expected = model(**inputs(), output_attentions=True)
        got = stored(**inputs(), output_attentions=True)
    assert torch.equal(got.logits, expected.logits)
    for got_map, expected_map in zip(got.attentions, expected.attentions):
        assert torch.equal(got_map, expected_map)


def test_only_the_layers_autocast_runs_low_are_stored_low():
    model = store_weights_for_autocast(spread_tiny_model(), "bf16")
    low = {name for name, module in model.named_modules() if isinstance(module, AUTOCAST_WEIGHT_LAYERS)
           for name in (f"{name}.weight", f"{name}.bias") if name in dict(model.named_parameters())}
    assert low, "no linear or convolution layer found"
    for name, param in model.named_parameters():
        assert param.dtype == (torch.bfloat16 if name in low else torch.float32), name
    assert any("norm" in name for name, param in model.named_parameters() if param.dtype == torch.float32)


@pytest.mark.parametrize("call", ["no autocast", "fp16 autocast", "training", "headless, no autocast"])
def test_stored_weights_refuse_to_run_outside_their_autocast(call):
    """Without this, the model failed deep inside with "mat1 and mat2 must have the same dtype", and training
    would have stepped rounded weights without a word."""
    model = store_weights_for_autocast(spread_tiny_model(), "bf16")
    messages = {
        "no autocast": r"stored in bf16 for autocast \(store_weights_for_autocast\); call it under "
                       r"torch.autocast\('cpu', dtype=torch.bfloat16\)",
        "fp16 autocast": r"stored in bf16 for autocast",
        "training": r"stored in bf16 for inference \(store_weights_for_autocast\): an optimizer would step",
        "headless, no autocast": r"stored in bf16 for autocast",
    }
    with pytest.raises(ValueError, match=messages[call]):
        if call == "no autocast":
            model(**inputs())
        elif call == "fp16 autocast":
            with autocast(CPU, "fp16"):
                model(**inputs())
        elif call == "training":
            with autocast(CPU, "bf16"):
                model.train()(**inputs())
        else:
            model.lavt(**inputs())
    with torch.no_grad(), autocast(CPU, "bf16"):  # what it is for
        assert torch.isfinite(model.eval()(**inputs()).logits).all()
        assert len(model.lavt(**inputs()).stage_features) == 4


@pytest.mark.parametrize("cast", ["float", "bfloat16", "half"])
def test_a_stored_model_cast_wholesale_runs_without_autocast(cast):
    """`.float()` undoes the storing and `.to(bfloat16)` / `.half()` make a model of one precision: the check
    must follow the weights, not refuse what was stored before."""
    model = getattr(store_weights_for_autocast(spread_tiny_model(), "bf16"), cast)()
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        logits = model(**{**inputs(), "pixel_values": inputs()["pixel_values"].to(dtype)}).logits
    assert logits.dtype == dtype and torch.isfinite(logits).all()


def test_a_stored_model_is_not_saved(tmp_path):
    """Saved, the rounded weights would load as a float32 model without a word; the model saved before storing,
    or cast back whole, saves as usual."""
    model = store_weights_for_autocast(spread_tiny_model(), "bf16")
    with pytest.raises(ValueError, match=r"stored in bf16 for autocast \(store_weights_for_autocast\): saved, "
                                         r"they would load as a float32 model with rounded weights"):
        model.save_pretrained(tmp_path / "stored")
    assert not (tmp_path / "stored").exists()
    model.float().save_pretrained(tmp_path / "cast")
    assert (tmp_path / "cast" / "model.safetensors").is_file()


def test_fp32_leaves_the_model_as_it_is():
    model = spread_tiny_model()
    before = {name: param.clone() for name, param in model.named_parameters()}
    store_weights_for_autocast(model, "fp32")
    assert all(torch.equal(param, before[name]) and param.dtype == torch.float32
               for name, param in model.named_parameters())


def test_the_pipeline_with_stored_weights_gives_the_same_masks(model_dir):  # noqa: F811
    from modeling_lavt import LavtForReferringSegmentation

    processor = LavtProcessor.from_pretrained(model_dir)
    model = LavtForReferringSegmentation.from_pretrained(model_dir).eval()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8))
    results = []
    for candidate in (model, store_weights_for_autocast(copy.deepcopy(model), "bf16")):
        with autocast(CPU, "bf16"):
            results.append(ReferringImageSegmentationPipeline(model=candidate, processor=processor)(
                image, text="the cat on the left"))
    assert np.array_equal(np.asarray(results[0]["mask"]), np.asarray(results[1]["mask"]))
    assert results[0]["score"] == results[1]["score"]


def test_lavt_predict_stores_the_weights_in_its_precision(model_dir, tmp_path, capsys, monkeypatch):  # noqa: F811
    calls = []

    def spy(model, dtype):
        calls.append(dtype)
        return store_weights_for_autocast(model, dtype)

    monkeypatch.setattr(predict, "store_weights_for_autocast", spy)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "a.png")
    argv = ["--model", str(model_dir), "--image", str(tmp_path / "a.png"), "--text", "the cat", "--device", "cpu"]
    for dtype in ("bf16", "fp32"):
        assert predict.main([*argv, "--output-dir", str(tmp_path / dtype), "--dtype", dtype]) == 0
    assert calls == ["bf16", "fp32"]
