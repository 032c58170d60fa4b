# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""LavtProcessor: the original's cut-at-20 tokenization, image/expression pairing, save/load and AutoProcessor."""

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer

from modeling_lavt import LavtConfig
from modeling_lavt.image_processing_lavt import LavtImageProcessor
from modeling_lavt.processing_lavt import LavtProcessor

SHORT = "the man on the left"
# 23 wordpieces with [CLS] and [SEP]: longer than 18 words, so the original cut drops [SEP].
LONG = "the man on the left wearing a very long striped shirt and holding an umbrella near the red car parked outside"


def register_auto_classes() -> None:
    """What modeling_lavt/__init__.py does; repeated here so that this file also runs on its own."""
    AutoConfig.register("lavt", LavtConfig, exist_ok=True)
    AutoImageProcessor.register(
        LavtConfig,
        image_processor_classes={"pil": LavtImageProcessor, "torchvision": LavtImageProcessor},
        exist_ok=True,
    )
    AutoProcessor.register(LavtConfig, LavtProcessor, exist_ok=True)


@pytest.fixture(scope="module")
def tokenizer(bert_vocab_dir):
    return AutoTokenizer.from_pretrained(bert_vocab_dir)


@pytest.fixture(scope="module")
def processor(tokenizer) -> LavtProcessor:
    return LavtProcessor(LavtImageProcessor(size={"height": 32, "width": 40}), tokenizer)


def original_text_rows(tokenizer, text: str, max_length: int = 20) -> tuple[list[int], list[int]]:
    """The original's recipe written out: encode without truncation, keep the first ids, pad with 0."""
    ids = tokenizer.encode(text, add_special_tokens=True)[:max_length]
    padding = max_length - len(ids)
    return ids + [0] * padding, [1] * len(ids) + [0] * padding


def test_original_tokenization(processor, tokenizer):
    with pytest.warns(UserWarning, match="more than 20 tokens"):
        out = processor(text=[SHORT, LONG], return_tensors="pt")
    assert set(out) == {"input_ids", "attention_mask"}
    assert out["input_ids"].dtype == torch.int64 and tuple(out["input_ids"].shape) == (2, 20)
    for row, text in enumerate([SHORT, LONG]):
        ids, mask = original_text_rows(tokenizer, text)
        assert out["input_ids"][row].tolist() == ids
        assert out["attention_mask"][row].tolist() == mask
    assert len(tokenizer.encode(LONG)) > 20
    assert tokenizer.sep_token_id not in out["input_ids"][1].tolist()  # the cut lost [SEP]
    assert out["attention_mask"][1].sum() == 20


def test_keep_sep_mode(tokenizer):
    processor = LavtProcessor(LavtImageProcessor(), tokenizer, truncation_mode="keep_sep")
    with pytest.warns(UserWarning, match="keep_sep"):
        out = processor(text=[LONG, SHORT])
    expected = tokenizer([LONG, SHORT], truncation=True, max_length=20, padding="max_length")
    np.testing.assert_array_equal(out["input_ids"], expected["input_ids"])
    np.testing.assert_array_equal(out["attention_mask"], expected["attention_mask"])
    assert out["input_ids"][0, 19] == tokenizer.sep_token_id
    # A short expression is the same in both modes.
    original = LavtProcessor(LavtImageProcessor(), tokenizer)(text=SHORT)
    np.testing.assert_array_equal(original["input_ids"][0], out["input_ids"][1])


def test_per_call_max_length(processor, tokenizer):
    with pytest.warns(UserWarning, match="more than 4 tokens"):
        out = processor(text=SHORT, max_length=4)
    ids, mask = original_text_rows(tokenizer, SHORT, max_length=4)
    assert out["input_ids"][0].tolist() == ids and out["attention_mask"][0].tolist() == mask


def test_one_image_many_expressions(processor):
    image = np.random.default_rng(0).integers(0, 256, (21, 34, 3), dtype=np.uint8)
    out = processor(images=image, text=[SHORT, "a dog", "the red car"], return_tensors="pt")
    assert tuple(out["pixel_values"].shape) == (3, 3, 32, 40)
    assert out["original_sizes"] == [(21, 34)] * 3
    alone = processor.image_processor(image, return_tensors="pt")["pixel_values"][0]
    for row in out["pixel_values"]:
        torch.testing.assert_close(row, alone, rtol=0, atol=0)
    assert tuple(out["input_ids"].shape) == (3, 20)


def test_pairs_and_masks(processor):
    rng = np.random.default_rng(1)
    images = [
        rng.integers(0, 256, (21, 34, 3), dtype=np.uint8),
        rng.integers(0, 256, (40, 12), dtype=np.uint8),
    ]
    masks = [rng.integers(0, 2, (21, 34)), rng.integers(0, 2, (40, 12))]
    out = processor(images=images, text=[SHORT, "a dog"], masks=masks, return_tensors="pt")
    assert tuple(out["pixel_values"].shape) == (2, 3, 32, 40)
    assert tuple(out["labels"].shape) == (2, 32, 40) and out["labels"].dtype == torch.int64
    assert out["original_sizes"] == [(21, 34), (40, 12)]
    expected = processor.image_processor(images, masks=masks, return_tensors="pt")
    torch.testing.assert_close(out["labels"], expected["labels"])
    torch.testing.assert_close(out["pixel_values"], expected["pixel_values"])


def test_one_image_masks_per_row_or_per_image(processor):
    image = np.zeros((10, 16, 3), np.uint8)
    first, second = np.zeros((10, 16)), np.ones((10, 16))
    per_row = processor(images=image, text=["a", "b"], masks=[first, second])
    assert per_row["labels"].shape == (2, 32, 40)
    assert per_row["labels"][0].sum() == 0 and per_row["labels"][1].all()
    per_image = processor(images=image, text=["a", "b"], masks=second)
    assert per_image["labels"].shape == (2, 32, 40) and per_image["labels"].all()
    with pytest.raises(ValueError, match="3 masks for 2"):
        processor(images=image, text=["a", "b"], masks=[first, first, first])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": ""}, "empty"),
        ({"text": ["a dog", "   "]}, "expression 1 is empty"),
        ({"text": []}, "empty list"),
        ({"images": [np.zeros((4, 4, 3), np.uint8)] * 2, "text": ["a", "b", "c"]}, "2 images with 3"),
        ({}, "images, text, or both"),
        ({"text": "a", "masks": np.zeros((4, 4))}, "masks need their images"),
    ],
)
def test_bad_inputs(processor, kwargs, message):
    with pytest.raises(ValueError, match=message):
        processor(**kwargs)


def test_bad_settings(tokenizer):
    with pytest.raises(ValueError, match="truncation_mode"):
        LavtProcessor(LavtImageProcessor(), tokenizer, truncation_mode="longest_first")
    with pytest.raises(ValueError, match="max_length"):
        LavtProcessor(LavtImageProcessor(), tokenizer, max_length=1)


def test_save_load_round_trip(tmp_path, tokenizer):
    register_auto_classes()
    processor = LavtProcessor(
        LavtImageProcessor(size=(24, 28), apply_exif_orientation=False),
        tokenizer,
        max_length=12,
        truncation_mode="keep_sep",
    )
    processor.save_pretrained(tmp_path)
    for loaded in (LavtProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is LavtProcessor
        assert (loaded.max_length, loaded.truncation_mode) == (12, "keep_sep")
        assert type(loaded.image_processor) is LavtImageProcessor
        assert loaded.image_processor.to_dict() == processor.image_processor.to_dict()
        image = np.zeros((5, 6, 3), np.uint8)
        with pytest.warns(UserWarning, match="more than 12"):
            got = loaded(images=image, text=LONG)
        with pytest.warns(UserWarning):
            want = processor(images=image, text=LONG)
        for key in ("pixel_values", "input_ids", "attention_mask"):
            np.testing.assert_array_equal(got[key], want[key])
    assert LavtProcessor.from_pretrained(tmp_path, truncation_mode="original").truncation_mode == "original"


def test_post_process_is_the_image_processors(processor):
    logits = torch.randn(2, 2, 8, 10, generator=torch.Generator().manual_seed(0))
    sizes = [(21, 34), (40, 12)]
    got = processor.post_process_referring_segmentation(logits, target_sizes=sizes, threshold=0.4)
    want = processor.image_processor.post_process_referring_segmentation(
        logits, target_sizes=sizes, threshold=0.4
    )
    for a, b in zip(got, want):
        torch.testing.assert_close(a["mask"], b["mask"])
        assert a["score"] == b["score"]
