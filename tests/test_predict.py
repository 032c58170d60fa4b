# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""`lavt-predict` end to end on a tiny random model saved to a folder; overlay drawing; clean command errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lavt_hf.scripts import predict
from modeling_lavt.sharing.visualization import draw_overlay
from tests.test_pipeline import save_tiny_checkpoint
from tests.test_processing import register_auto_classes


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, bert_vocab_dir) -> Path:
    register_auto_classes()
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny-lavt", bert_vocab_dir)


def write_images(folder: Path) -> dict[str, tuple[int, int]]:
    """Images of several modes and sizes; returns path -> (width, height) as shown (EXIF applied)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    sizes = {}
    for name, image in {
        "photo.jpg": Image.fromarray(rgb),
        "gray.png": Image.fromarray(rgb[:30, :20, 0]),
        "alpha.png": Image.fromarray(rgb).convert("RGBA"),
        "palette.png": Image.fromarray(rgb[:17, :50]).convert("P"),
        "deep.png": Image.fromarray(rng.integers(0, 65536, (26, 33), dtype=np.uint16)),
    }.items():
        image.save(folder / name)
        sizes[str(folder / name)] = image.size
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees to display
    Image.fromarray(rgb[:20, :40]).save(folder / "rotated.jpg", exif=exif)
    sizes[str(folder / "rotated.jpg")] = (20, 40)
    return sizes


def run(capsys, argv: list[str]) -> list[dict]:
    assert predict.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_one_image_per_expression(model_dir, tmp_path, capsys):
    sizes = write_images(tmp_path)
    texts = [f"object number {i}" for i in range(len(sizes))]
    out_dir = tmp_path / "out"
    summary = run(
        capsys,
        [
            "--model",
            str(model_dir),
            "--image",
            *sizes,
            "--text",
            *texts,
            "--output-dir",
            str(out_dir),
            "--device",
            "cpu",
        ],
    )
    assert [entry["image"] for entry in summary] == list(sizes)
    assert [entry["text"] for entry in summary] == texts
    for entry in summary:
        size = sizes[entry["image"]]
        with Image.open(entry["mask_path"]) as mask:
            assert mask.format == "PNG" and mask.mode == "L" and mask.size == size
            values = np.asarray(mask)
        assert set(np.unique(values)) <= {0, 255}
        assert entry["foreground_fraction"] == pytest.approx((values > 0).mean())
        with Image.open(entry["overlay_path"]) as overlay:
            # The image under a strip holding the expression.
            assert overlay.format == "PNG" and overlay.mode == "RGB" and overlay.width == size[0]
            assert overlay.height > size[1]
            overlay.verify()
        assert 0.0 <= entry["score"] <= 1.0
        assert Path(entry["mask_path"]).parent == out_dir


def test_one_image_many_expressions_bf16_threshold(model_dir, tmp_path, capsys):
    sizes = write_images(tmp_path)
    image = str(tmp_path / "photo.jpg")
    summary = run(
        capsys,
        [
            "--model",
            str(model_dir),
            "--image",
            image,
            "--text",
            "the cat",
            "the dog on the left",
            "--output-dir",
            str(tmp_path / "out"),
            "--dtype",
            "bf16",
            "--threshold",
            "0.5",
        ],
    )
    assert len(summary) == 2 and {entry["image"] for entry in summary} == {image}
    assert len({entry["mask_path"] for entry in summary}) == 2
    for entry in summary:
        with Image.open(entry["overlay_path"]) as overlay:
            assert overlay.width == sizes[image][0] and overlay.height > sizes[image][1]


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--model", "--image", "--text", "--output-dir", "--device", "--dtype", "--threshold"):
        assert option in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--image", "{missing}", "--text", "a"], "not found"),
        (["--image", "{corrupt}", "--text", "a"], "Cannot read image"),
        (["--image", "{good}", "--text", "  "], "empty"),
        (["--image", "{good}", "{good}", "--text", "a", "b", "c"], "Cannot pair 2 images with 3 referring expressions"),
        (["--image", "{good}", "--text", "a", "--threshold", "2"], "threshold"),
    ],
)
def test_errors_are_messages_not_tracebacks(model_dir, tmp_path, capsys, extra, message):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    paths = {
        "missing": tmp_path / "missing.png",
        "corrupt": tmp_path / "corrupt.png",
        "good": tmp_path / "good.png",
    }
    argv = ["--model", str(model_dir), "--output-dir", str(tmp_path / "out")] + [
        a.format(**paths) for a in extra
    ]
    with pytest.raises(SystemExit) as exit_info:
        predict.main(argv)
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_model_is_a_message(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    with pytest.raises(SystemExit) as exit_info:
        predict.main(
            ["--model", str(tmp_path / "no-model"), "--image", str(tmp_path / "good.png"), "--text", "a"]
        )
    assert exit_info.value.code == 2
    assert "not found" in capsys.readouterr().err


def test_weights_stored_for_autocast_are_not_stored_again_in_another_precision(model_dir):
    """Storing bf16-rounded weights again in fp16 would round them twice (other results than fp16 autocast's)."""
    from modeling_lavt import LavtForReferringSegmentation
    from modeling_lavt.precision import store_weights_for_autocast

    model = store_weights_for_autocast(LavtForReferringSegmentation.from_pretrained(model_dir), "bf16")
    assert store_weights_for_autocast(model, "bf16") is model  # the same precision again: nothing to do
    with pytest.raises(ValueError, match="weights are already stored in bf16 for autocast; load the model again "
                                         "to store them in fp16"):
        store_weights_for_autocast(model, "fp16")


def test_draw_overlay_tints_only_the_mask():
    image = Image.new("RGB", (120, 90), (0, 0, 255))
    mask = np.zeros((90, 120), np.uint8)
    mask[60:, :30] = 255
    # A long caption: in a strip above the image, which stays whole below it.
    captioned = np.asarray(draw_overlay(image, mask, "the blue wall on the far left side of the room " * 3))
    overlay = captioned[-90:]
    assert captioned.shape[1:] == (120, 3)
    np.testing.assert_array_equal(overlay[75, 15], [128, 20, 148])  # 50 % of (255, 40, 40) over pure blue
    np.testing.assert_array_equal(overlay[75, 29], [255, 255, 255])  # the outline: white on the mask's edge,
    np.testing.assert_array_equal(overlay[60, 15], [255, 255, 255])
    np.testing.assert_array_equal(overlay[75, 30], [0, 0, 0])  # black on the background beside it
    np.testing.assert_array_equal(overlay[59, 15], [0, 0, 0])
    assert (overlay[61:89, :29] != [255, 255, 255]).any(axis=-1).all()  # the inside is tinted, not outlined
    np.testing.assert_array_equal(overlay[75, 60], [0, 0, 255])
    assert (captioned[:-90] != [0, 0, 255]).any()  # the caption strip
    assert (overlay[:, 31:] == [0, 0, 255]).all()
    # A red object under the red tint: without the outline the mask would not show at all.
    red = np.asarray(draw_overlay(Image.new("RGB", (120, 90), (255, 40, 40)), mask, None))
    assert (red[75, 29] == [255, 255, 255]).all() and (red[75, 30] == [0, 0, 0]).all()
    assert (red[:50] == [255, 40, 40]).all()
    plain = np.asarray(draw_overlay(image, mask, None, outline=False))
    np.testing.assert_array_equal(plain[75, 29], [128, 20, 148])
    untouched = np.asarray(draw_overlay(image, np.zeros((90, 120)), None))
    assert (untouched == [0, 0, 255]).all()
    with pytest.raises(ValueError, match="differs"):
        draw_overlay(image, np.zeros((120, 90)), "x")
