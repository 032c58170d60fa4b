"""The whole path a researcher takes to the original's numbers: an original checkpoint that records non-default
settings (2 pixel-word attention heads per stage, a 48-pixel input) -> `lavt-convert` -> `lavt-evaluate` on raw
refer files whose typed (`raw`) texts differ from their normalised (`sent`) form. `eval_results.json` must equal
the original's evaluation computed here from first principles (docs/evaluation.md, docs/data.md): the raw
text tokenized and cut at 20 ids, the image squashed to the recorded input size, polygons whose overlap is
background, the ground truth nearest-resized, per-sample IoU and the overall / mean IoU."""

import argparse
import json
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools import mask as mask_utils
from transformers import AutoTokenizer

from lavt_hf.scripts import convert_lavt_original_to_hf
from lavt_hf.training import evaluation as evaluate
from modeling_lavt import LavtForReferringSegmentation
from modeling_lavt.weights.conversion import convert_visual_state_dict
from tests.conftest import small_tokenizer_dir, tiny_lavt_config

IMAGE_SIZE = 48  # args.img_size of the checkpoint: the evaluation must run at it, not at the default 480
HEADS = [2, 2, 2, 2]  # args.mha = '2-2-2-2'
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

# Our parameter names -> the original's (the inverse of modeling_lavt.weights.conversion, checked by a round trip below).
_TO_ORIGINAL = [
    (r"backbone\.patch_embed\.projection\.(.+)", r"backbone.patch_embed.proj.\1"),
    (r"backbone\.patch_embed\.norm\.(.+)", r"backbone.patch_embed.norm.\1"),
    (r"backbone\.stages\.(\d)\.(blocks\..+|downsample\..+)", r"backbone.layers.\1.\2"),
    (r"backbone\.stages\.(\d)\.output_norm\.(.+)", r"backbone.norm\1.\2"),
    (r"backbone\.stages\.(\d)\.fusion\.vision_projection\.(.+)", r"backbone.layers.\1.fusion.vis_project.0.\2"),
    (r"backbone\.stages\.(\d)\.fusion\.query\.(.+)", r"backbone.layers.\1.fusion.image_lang_att.f_query.0.\2"),
    (r"backbone\.stages\.(\d)\.fusion\.key\.(.+)", r"backbone.layers.\1.fusion.image_lang_att.f_key.0.\2"),
    (r"backbone\.stages\.(\d)\.fusion\.value\.(.+)", r"backbone.layers.\1.fusion.image_lang_att.f_value.0.\2"),
    (r"backbone\.stages\.(\d)\.fusion\.attended_projection\.(.+)", r"backbone.layers.\1.fusion.image_lang_att.W.0.\2"),
    (r"backbone\.stages\.(\d)\.fusion\.output_projection\.(.+)", r"backbone.layers.\1.fusion.project_mm.0.\2"),
    (r"backbone\.stages\.(\d)\.gate\.fc1\.weight", r"backbone.layers.\1.res_gate.0.weight"),
    (r"backbone\.stages\.(\d)\.gate\.fc2\.weight", r"backbone.layers.\1.res_gate.2.weight"),
    (r"decoder\.classifier\.(.+)", r"classifier.conv1_1.\1"),
]
_DECODER_STAGE = {"0": "4", "1": "3", "2": "2"}
_DECODER_LAYER = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2"}


def to_original_layout(model: LavtForReferringSegmentation) -> tuple[dict, dict]:
    """(checkpoint['model'], checkpoint['bert_model']) of a model, as the original code would save them."""
    visual, text = {}, {}
    for key, value in model.state_dict().items():
        key = key.removeprefix(f"{model.base_model_prefix}.")
        if key.startswith("text_encoder."):
            text[key[len("text_encoder."):]] = value
            continue
        if match := re.fullmatch(r"decoder\.blocks\.(\d)\.(\d)\.(.+)", key):
            block, layer, param = match.groups()
            visual[f"classifier.{_DECODER_LAYER[layer]}_{_DECODER_STAGE[block]}.{param}"] = value
            continue
        for pattern, replacement in _TO_ORIGINAL:
            if re.fullmatch(pattern, key):
                original = re.sub(pattern, replacement, key)
                visual[original] = value[..., None] if ".fusion." in original and original.endswith("weight") else value
                break
        else:
            raise AssertionError(f"no original name for {key}")
    return visual, text


@pytest.fixture(scope="module")
def original_model():
    """A tiny LAVT with 2 pixel-word attention heads per stage and a spread-out classifier (masks neither empty
    nor full), standing in for a model the original code trained."""
    torch.manual_seed(0)
    model = LavtForReferringSegmentation(tiny_lavt_config(fusion_num_heads=HEADS)).eval()
    with torch.no_grad():
        model.decoder.classifier.weight.normal_(0.0, 3.0)
        model.decoder.classifier.bias.zero_()
    return model


def test_the_inverse_layout_round_trips(original_model):
    visual, _ = to_original_layout(original_model)
    ours = {k.removeprefix(f"{original_model.base_model_prefix}."): v for k, v in original_model.state_dict().items()}
    for key, value in convert_visual_state_dict(visual).items():
        assert torch.equal(value, ours[key]), key


def original_evaluation(model, refer_root, images_root, tokenizer, field: str) -> list[float]:
    """Per-sample IoUs of every (object, sentence) pair of the val split, computed as the original does."""
    with open(refer_root / "refcoco" / "refs(unc).p", "rb") as f:
        refs = [r for r in pickle.load(f) if r["split"] == "val"]
    instances = json.loads((refer_root / "refcoco" / "instances.json").read_text())
    annotations = {a["id"]: a for a in instances["annotations"]}
    images = {i["id"]: i for i in instances["images"]}
    ious = []
    for ref in refs:
        info, annotation = images[ref["image_id"]], annotations[ref["ann_id"]]
        image = Image.open(images_root / "train2014" / info["file_name"]).convert("RGB")
        pixels = np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR), dtype=np.float64) / 255
        pixels = torch.from_numpy(((pixels - MEAN) / STD).transpose(2, 0, 1)).float()[None]
        decoded = mask_utils.decode(mask_utils.frPyObjects(annotation["segmentation"], info["height"], info["width"]))
        target = (decoded.sum(axis=2) == 1).astype(np.uint8)  # overlapping polygons of one object: background
        target = np.asarray(Image.fromarray(target).resize((IMAGE_SIZE, IMAGE_SIZE), Image.NEAREST)).astype(bool)
        for sentence in ref["sentences"]:
            ids = tokenizer.encode(sentence[field], add_special_tokens=True)[:20]  # the original's cut
            input_ids = torch.zeros(1, 20, dtype=torch.long)
            input_ids[0, :len(ids)] = torch.tensor(ids)
            attention_mask = (input_ids != 0).long()
            with torch.no_grad():
                logits = model(pixel_values=pixels, input_ids=input_ids, attention_mask=attention_mask).logits
            logits = F.interpolate(logits, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=True)
            prediction = logits.argmax(1)[0].numpy().astype(bool)
            union = (prediction | target).sum()
            ious.append(float((prediction & target).sum() / union) if union else 0.0)
    return ious


@pytest.mark.slow
def test_original_checkpoint_to_eval_results_matches_the_original_evaluation(
        original_model, typed_data, bert_vocab_dir, tmp_path, capsys):
    visual, text = to_original_layout(original_model)
    args = argparse.Namespace(model="lavt", mha="-".join(map(str, HEADS)), img_size=IMAGE_SIZE, fusion_drop=0.0,
                              dataset="refcoco", splitBy="unc", ck_bert="bert-base-uncased")
    torch.save({"model": visual, "bert_model": text, "args": args, "epoch": 39}, tmp_path / "checkpoint.pth")
    # A text encoder of 32-wide heads: its config is given, as a user of a non-BERT-base encoder would.
    (tmp_path / "bert.json").write_text(json.dumps(original_model.config.text_config.to_dict()))
    convert_lavt_original_to_hf.main([
        "--checkpoint", str(tmp_path / "checkpoint.pth"), "--text_config", str(tmp_path / "bert.json"),
        "--tokenizer", str(small_tokenizer_dir(bert_vocab_dir, tmp_path / "tokenizer",
                                               original_model.config.text_config.vocab_size)),
        "--output_dir", str(tmp_path / "converted"),
    ])
    evaluate.main(["--model", str(tmp_path / "converted"), "--dataset", str(typed_data / "refer"),
                   "--images_root", str(typed_data / "images"), "--dataset_config", "refcoco_unc", "--split", "val",
                   "--num_workers", "0", "--num_overlays", "0", "--output_dir", str(tmp_path / "eval")])
    results = json.loads((tmp_path / "eval" / "eval_results.json").read_text())
    per_sample = json.loads((tmp_path / "eval" / "per_sample.json").read_text())
    per_sample = per_sample["samples"] if isinstance(per_sample, dict) else per_sample

    tokenizer = AutoTokenizer.from_pretrained(bert_vocab_dir)
    expected = original_evaluation(original_model, typed_data / "refer", typed_data / "images", tokenizer, "raw")
    assert results["sentence_field"] == "raw" and results["image_size"] == [IMAGE_SIZE, IMAGE_SIZE]
    assert [s["iou"] for s in per_sample] == pytest.approx(expected, abs=1e-6)
    assert results["mean_iou"] == pytest.approx(100 * np.mean(expected), abs=1e-4)
    assert 0 < results["mean_iou"] < 100  # neither empty nor full masks: the comparison means something
    # The normalised text gives other masks: reading it would have been a silent divergence.
    normalised = original_evaluation(original_model, typed_data / "refer", typed_data / "images", tokenizer, "sent")
    assert normalised != pytest.approx(expected, abs=1e-6)
