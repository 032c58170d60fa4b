# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The referring-image-segmentation pipeline on a tiny random LAVT: masks at the original size, batching, options."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer, pipeline

from modeling_lavt.image_processing_lavt import LavtImageProcessor
from modeling_lavt.pipeline_lavt import TASK, ReferringImageSegmentationPipeline, register_pipeline
from modeling_lavt.processing_lavt import LavtProcessor
from tests.conftest import spread_tiny_model
from tests.test_processing import register_auto_classes

INPUT_SIZE = {"height": 64, "width": 48}




def tiny_processor(bert_vocab_dir: Path) -> LavtProcessor:
    return LavtProcessor(LavtImageProcessor(size=INPUT_SIZE), AutoTokenizer.from_pretrained(bert_vocab_dir))


def save_tiny_checkpoint(folder: Path, bert_vocab_dir: Path) -> Path:
    """A model folder as users get it: model weights + config + processor + tokenizer."""
    spread_tiny_model().save_pretrained(folder)
    tiny_processor(bert_vocab_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pipe(bert_vocab_dir) -> ReferringImageSegmentationPipeline:
    return ReferringImageSegmentationPipeline(
        model=spread_tiny_model(), processor=tiny_processor(bert_vocab_dir), device="cpu"
    )


def random_image(height: int, width: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def expected_result(pipe, image, text: str, threshold: float | None = None) -> dict:
    """The same prediction computed by hand: processor -> model -> post-processing at the original size."""
    inputs = pipe.processor(images=image, text=text, return_tensors="pt")
    with torch.no_grad():
        logits = pipe.model(
            pixel_values=inputs["pixel_values"],
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
        ).logits
    return pipe.image_processor.post_process_referring_segmentation(
        logits, target_sizes=inputs["original_sizes"], threshold=threshold
    )[0]


def test_single_image_and_expression(pipe):
    image = random_image(37, 53)
    result = pipe(image, text="the man on the left")
    assert set(result) == {"label", "score", "box", "mask", "presence_score", "no_target"}
    assert result["mask"].mode == "L" and result["mask"].size == image.size
    mask = np.asarray(result["mask"])
    assert set(np.unique(mask)) <= {0, 255}
    expected = expected_result(pipe, image, "the man on the left")
    np.testing.assert_array_equal(mask // 255, expected["mask"].numpy())
    assert (
        0 < mask.mean() / 255 < 1
    )  # the tiny model gives a non-trivial mask, so the comparison means something
    assert isinstance(result["score"], float) and result["score"] == pytest.approx(expected["score"])


@pytest.mark.parametrize(
    ("mode", "height", "width"),
    [("L", 20, 31), ("RGBA", 64, 48), ("P", 9, 70), ("CMYK", 33, 33), ("I;16", 41, 17), ("1", 15, 16)],
)
def test_mask_size_follows_the_original_image(pipe, mode, height, width):
    if mode == "I;16":
        image = Image.fromarray(np.random.default_rng(1).integers(0, 65536, (height, width), dtype=np.uint16))
    else:
        image = random_image(height, width, mode)
    result = pipe(image, text="a dog")
    assert result["mask"].size == (width, height)


def test_arrays_paths_and_exif(pipe, tmp_path):
    array = np.random.default_rng(2).integers(0, 256, (25, 19, 3), dtype=np.uint8)
    assert pipe(array, text="cat")["mask"].size == (19, 25)
    assert pipe(array[..., 0], text="cat")["mask"].size == (19, 25)
    path = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    random_image(20, 30).save(path, exif=exif)
    for source in (str(path), path):
        assert pipe(source, text="the cup")["mask"].size == (20, 30)


def test_batched_equals_one_by_one(pipe):
    inputs = [
        {"image": random_image(30, 40, seed=3), "text": "the left one"},
        {
            "image": random_image(50, 20, seed=4),
            "text": "a very long description of the second object in the scene that goes on and on past twenty wordpieces",
        },
        {"image": random_image(30, 40, seed=3), "text": "the right one"},
    ]
    with pytest.warns(UserWarning, match="more than 20 tokens"):
        batched = pipe(inputs, batch_size=2)
        single = [pipe(item) for item in inputs]
    assert len(batched) == 3
    for got, want, item in zip(batched, single, inputs):
        assert got["mask"].size == item["image"].size
        np.testing.assert_array_equal(np.asarray(got["mask"]), np.asarray(want["mask"]))
        assert got["score"] == pytest.approx(want["score"], abs=1e-6)


def test_pairing_forms(pipe):
    image, other = random_image(22, 26), random_image(18, 12, seed=5)
    one_image = pipe(image, text=["a", "b", "c"])
    assert [r["mask"].size for r in one_image] == [(26, 22)] * 3
    pairs = pipe([image, other], text=["a", "b"])
    assert [r["mask"].size for r in pairs] == [(26, 22), (12, 18)]
    with pytest.raises(ValueError, match="Cannot pair 2 images with 3"):
        pipe([image, other], text=["a", "b", "c"])


def test_threshold_and_probabilities(pipe):
    image = random_image(24, 28, seed=6)
    result = pipe(image, text="the bowl", threshold=0.5, return_probabilities=True)
    probabilities = result["probabilities"]
    assert probabilities.dtype == np.float32 and probabilities.shape == (24, 28)
    np.testing.assert_array_equal(np.asarray(result["mask"]) // 255, probabilities >= 0.5)
    expected = expected_result(pipe, image, "the bowl", threshold=0.5)
    np.testing.assert_allclose(probabilities, expected["probabilities"].numpy(), atol=1e-6)
    strict = pipe(image, text="the bowl", threshold=1.0)
    assert np.asarray(strict["mask"]).max() == 0 and strict["score"] == 0.0


def test_bad_calls(pipe):
    with pytest.raises(TypeError, match="treshold"):
        pipe(random_image(8, 8), text="a", treshold=0.3)
    with pytest.raises(ValueError, match="'image' and 'text'"):
        pipe({"picture": random_image(8, 8), "text": "a"})
    with pytest.raises(ValueError, match="empty"):
        pipe(random_image(8, 8), text="  ")


def test_pipeline_factory_from_saved_folder(tmp_path, bert_vocab_dir):
    register_auto_classes()
    register_pipeline()
    register_pipeline()  # idempotent
    folder = save_tiny_checkpoint(tmp_path / "tiny-lavt", bert_vocab_dir)
    segmenter = pipeline(TASK, model=str(folder), device="cpu")
    assert isinstance(segmenter, ReferringImageSegmentationPipeline)
    assert isinstance(segmenter.processor, LavtProcessor)
    image = random_image(29, 31, seed=7)
    reference = ReferringImageSegmentationPipeline(
        model=spread_tiny_model(), processor=tiny_processor(bert_vocab_dir), device="cpu"
    )
    np.testing.assert_array_equal(
        np.asarray(segmenter(image, text="the plate")["mask"]),
        np.asarray(reference(image, text="the plate")["mask"]),
    )
    # From model object + components, like `pipeline(task, model=model, tokenizer=..., image_processor=...)`.
    from_parts = pipeline(
        TASK,
        model=spread_tiny_model(),
        tokenizer=reference.tokenizer,
        image_processor=reference.image_processor,
        device="cpu",
    )
    assert from_parts(image, text="the plate")["mask"].size == (31, 29)
