# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""LavtImageProcessor: preprocessing equals an independent PIL + NumPy computation; post-processing masks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from transformers import AutoConfig, AutoImageProcessor

from modeling_lavt import LavtConfig
from modeling_lavt.image_processing_lavt import LavtImageProcessor

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
SIZE = {"height": 48, "width": 64}


def expected_pixels(rgb: Image.Image, height: int = SIZE["height"], width: int = SIZE["width"]) -> np.ndarray:
    """What the original computes: PIL bilinear resize of the RGB image, /255, ImageNet normalization."""
    assert rgb.mode == "RGB"
    resized = np.asarray(rgb.resize((width, height), Image.BILINEAR), dtype=np.float64)
    return ((resized / 255.0 - MEAN) / STD).transpose(2, 0, 1)


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def processor() -> LavtImageProcessor:
    return LavtImageProcessor(size=SIZE)


def check(processor: LavtImageProcessor, image, expected: np.ndarray, original_size: tuple[int, int]) -> None:
    out = processor(image, return_tensors="pt")
    assert out["pixel_values"].dtype == torch.float32
    assert tuple(out["pixel_values"].shape) == (1, 3, SIZE["height"], SIZE["width"])
    assert out["original_sizes"] == [original_size]
    np.testing.assert_allclose(out["pixel_values"][0].numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "P", "RGBA", "CMYK", "1"])
def test_pil_modes_match_convert_then_resize(processor, mode):
    source = Image.fromarray(random_rgb(37, 53)).convert(mode)  # non-square, odd sizes
    check(processor, source, expected_pixels(source.convert("RGB")), (37, 53))


def test_sixteen_bit_is_scaled_not_clipped(processor):
    values = np.random.default_rng(1).integers(0, 65536, (30, 41), dtype=np.uint16)
    values[0, :3] = [0, 65535, 257 * 100 + 128]
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    gray = np.rint(values / 257.0).astype(np.uint8)
    expected = expected_pixels(Image.fromarray(gray).convert("RGB"))
    check(processor, image, expected, (30, 41))
    check(processor, values, expected, (30, 41))  # a uint16 array is the same 16-bit data
    check(processor, image.convert("I"), expected, (30, 41))


def test_exif_orientation_applied_to_jpeg(processor, tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(random_rgb(20, 50)).save(path, exif=exif, quality=95)
    with Image.open(path) as stored:
        upright = stored.convert("RGB").transpose(Image.Transpose.ROTATE_270)
    assert upright.size == (20, 50)
    check(processor, Image.open(path), expected_pixels(upright), (50, 20))
    check(processor, str(path), expected_pixels(upright), (50, 20))
    raw = LavtImageProcessor(size=SIZE, apply_exif_orientation=False)
    with Image.open(path) as stored:
        check(raw, stored, expected_pixels(stored.convert("RGB")), (20, 50))


def test_rgb_pil_images_give_the_pixels_of_their_arrays(processor, tmp_path):
    """An RGB PIL image is resized as it is (no round trip through an array): bit for bit the array's result,
    with and without its EXIF orientation applied; Fortran-ordered masks (as RLE decodes them) likewise."""
    def pixels(image, **kwargs):
        return processor(image, return_tensors="pt", **kwargs)["pixel_values"]

    image = Image.fromarray(random_rgb(37, 53))
    assert torch.equal(pixels(image), pixels(np.asarray(image)))
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, exif=exif, quality=95)
    with Image.open(path) as stored:
        stored.load()
        upright = ImageOps.exif_transpose(stored)
        assert stored.mode == "RGB" and upright.size == (37, 53)
        assert torch.equal(pixels(stored), pixels(np.asarray(upright)))
        assert torch.equal(pixels(stored, apply_exif_orientation=False), pixels(np.asarray(stored)))
    mask = np.random.default_rng(2).integers(0, 3, (37, 53), dtype=np.uint8)
    labels = processor(image, masks=[np.asfortranarray(mask)], return_tensors="pt")["labels"]
    assert torch.equal(labels, processor(image, masks=[mask > 0], return_tensors="pt")["labels"])


def test_arrays_and_tensors(processor):
    rgb = random_rgb(26, 31, seed=2)
    expected = expected_pixels(Image.fromarray(rgb))
    check(processor, rgb, expected, (26, 31))
    check(processor, torch.from_numpy(rgb).permute(2, 0, 1), expected, (26, 31))  # CHW tensor
    check(processor, torch.from_numpy(rgb), expected, (26, 31))  # HWC tensor
    check(processor, rgb.transpose(2, 0, 1), expected, (26, 31))  # CHW array
    check(processor, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0, expected, (26, 31))
    gray = rgb[..., 0]
    check(processor, gray, expected_pixels(Image.fromarray(gray).convert("RGB")), (26, 31))
    rgba = np.concatenate([rgb, np.full((26, 31, 1), 7, np.uint8)], axis=2)
    check(processor, rgba, expected, (26, 31))


def test_batch_and_size_override(processor):
    images = [random_rgb(20, 30), Image.fromarray(random_rgb(44, 17, seed=3)), random_rgb(9, 9)]
    out = processor(images, return_tensors="np", size=(16, 24))
    assert out["pixel_values"].shape == (3, 3, 16, 24)
    assert out["original_sizes"] == [(20, 30), (44, 17), (9, 9)]
    np.testing.assert_allclose(out["pixel_values"][1], expected_pixels(images[1], 16, 24), rtol=0, atol=1e-6)
    batch = np.stack([random_rgb(10, 12, seed=s) for s in range(2)])  # (B, H, W, C)
    assert processor(batch)["pixel_values"].shape == (2, 3, 48, 64)


def test_masks_become_nearest_resized_labels(processor):
    rng = np.random.default_rng(4)
    masks = [rng.integers(0, 2, (37, 53)).astype(bool), rng.integers(0, 2, (20, 21), dtype=np.uint8)]
    images = [random_rgb(37, 53), random_rgb(20, 21)]
    out = processor(images, masks=masks, return_tensors="pt")
    assert out["labels"].dtype == torch.int64
    assert tuple(out["labels"].shape) == (2, 48, 64)
    for label, mask in zip(out["labels"], masks):
        expected = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((64, 48), Image.NEAREST))
        np.testing.assert_array_equal(label.numpy(), expected)
    pil_mask = Image.fromarray((masks[1] * 255).astype(np.uint8))  # 0 / 255 works too (nonzero = object)
    labels = processor(images[1], masks=pil_mask)["labels"]
    np.testing.assert_array_equal(labels[0], out["labels"][1].numpy())


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 5, 3), np.uint8), "zero size"),
        (Image.new("RGB", (0, 4)), "zero size"),
        (np.zeros((5,), np.uint8), "dimensions"),
        (np.zeros((5, 5, 5), np.uint8), "channels"),
        (np.zeros((4, 4, 3), np.float32) + 2.0, r"\[0, 1\]"),
        (np.full((4, 4), 300, np.int32), "uint16"),
        ("/nonexistent/image.png", "not found"),
        (12, "Unsupported image type"),
    ],
)
def test_bad_images(processor, image, message):
    with pytest.raises(ValueError, match=message):
        processor(image)


def test_bad_masks(processor):
    image = random_rgb(10, 12)
    with pytest.raises(ValueError, match="size"):
        processor(image, masks=np.ones((12, 10)))
    with pytest.raises(ValueError, match="2 masks for 1 images"):
        processor(image, masks=[np.ones((10, 12)), np.ones((10, 12))])
    with pytest.raises(ValueError, match="2-D"):
        processor(image, masks=Image.new("RGB", (12, 10)))


def test_corrupt_file(processor, tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="Cannot read image"):
        processor(str(path))


def test_save_load_round_trip_and_auto_class(tmp_path):
    AutoConfig.register("lavt", LavtConfig, exist_ok=True)
    AutoImageProcessor.register(
        LavtConfig,
        image_processor_classes={"pil": LavtImageProcessor, "torchvision": LavtImageProcessor},
        exist_ok=True,
    )
    processor = LavtImageProcessor(size=(32, 40), apply_exif_orientation=False, image_mean=[0.5, 0.5, 0.5])
    processor.save_pretrained(tmp_path)
    for loaded in (
        LavtImageProcessor.from_pretrained(tmp_path),
        AutoImageProcessor.from_pretrained(tmp_path),
    ):
        assert type(loaded) is LavtImageProcessor
        assert loaded.to_dict() == processor.to_dict()
    overridden = LavtImageProcessor.from_pretrained(tmp_path, apply_exif_orientation=True)
    assert overridden.apply_exif_orientation is True


# ---------------------------------------------------------------------------------------------- post-processing


def reference_masks(logits: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Independent computation: align_corners=True bilinear upsampling, then argmax over the 2 classes."""
    return [
        F.interpolate(logits[i : i + 1].double(), size=size, mode="bilinear", align_corners=True)[0].argmax(0)
        for i, size in enumerate(sizes)
    ]


def test_post_process_shapes_and_argmax(processor):
    logits = torch.randn(3, 2, 12, 16, generator=torch.Generator().manual_seed(0))
    sizes = [(48, 64), (37, 53), (5, 3)]
    results = processor.post_process_referring_segmentation(logits, target_sizes=sizes)
    for result, size, expected in zip(results, sizes, reference_masks(logits, sizes)):
        assert tuple(result["mask"].shape) == size and result["mask"].dtype == torch.int64
        assert result["probabilities"].dtype == torch.float32
        torch.testing.assert_close(result["mask"], expected)
        foreground = result["probabilities"][result["mask"].bool()]
        assert result["score"] == pytest.approx(foreground.mean().item())
    kept = processor.post_process_referring_segmentation(logits)
    assert tuple(kept[0]["mask"].shape) == (12, 16)
    torch.testing.assert_close(kept[0]["mask"], logits[0].argmax(0))


def test_post_process_threshold_ties_and_empty(processor):
    logits = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    result = processor.post_process_referring_segmentation(logits, threshold=0.8)
    expected = (logits.softmax(1)[:, 1] >= 0.8).long()
    torch.testing.assert_close(torch.stack([r["mask"] for r in result]), expected)

    tied = processor.post_process_referring_segmentation(torch.zeros(1, 2, 4, 4))[0]
    assert tied["mask"].sum() == 0 and tied["score"] == 0.0
    assert torch.allclose(tied["probabilities"], torch.full((4, 4), 0.5))


def test_post_process_bf16_and_model_output(processor):
    logits = torch.randn(2, 2, 10, 10, generator=torch.Generator().manual_seed(2)).bfloat16()

    class Output:  # anything with `.logits`, like the model's output dataclass
        pass

    output = Output()
    output.logits = logits
    results = processor.post_process_referring_segmentation(
        output, target_sizes=torch.tensor([[40, 40], [7, 9]])
    )
    expected = processor.post_process_referring_segmentation(logits.float(), target_sizes=[(40, 40), (7, 9)])
    for got, want in zip(results, expected):
        assert got["probabilities"].dtype == torch.float32
        torch.testing.assert_close(got["mask"], want["mask"])
        torch.testing.assert_close(got["probabilities"], want["probabilities"])


def test_post_process_bad_inputs(processor):
    with pytest.raises(ValueError, match="shape"):
        processor.post_process_referring_segmentation(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="target sizes"):
        processor.post_process_referring_segmentation(torch.zeros(2, 2, 4, 4), target_sizes=[(4, 4)])
    with pytest.raises(ValueError, match="threshold"):
        processor.post_process_referring_segmentation(torch.zeros(1, 2, 4, 4), threshold=1.5)


@pytest.mark.parametrize("case", ["case_224x224", "case_200x264"])
def test_post_process_matches_original_prediction(reference_dir, case):
    """The original's test-time mask: argmax of the quarter-resolution logits upsampled to the input size."""
    from safetensors.torch import load_file

    tensors = load_file(reference_dir / "small_w7_sharp" / f"{case}.safetensors")
    height, width = tensors["pred_mask"].shape[1:]
    results = LavtImageProcessor().post_process_referring_segmentation(
        tensors["decoder_logits_quarter"], target_sizes=[(height, width)] * 2
    )
    for result, expected in zip(results, tensors["pred_mask"]):
        torch.testing.assert_close(result["mask"], expected.long())
