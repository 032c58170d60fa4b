# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Captions sit in a strip of one line beside the picture, never over it: on a small image a written-over caption
hides much of the image, the referred object included."""

import numpy as np
from PIL import Image

from modeling_lavt.sharing.visualization import draw_overlay, draw_word_maps

LONG = "best 1: IoU 0.95 | the small red square to the left of the big green circle on the far side"


def small_image() -> tuple[Image.Image, np.ndarray]:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))  # the demo's 160x120
    mask = np.zeros((120, 160), np.uint8)
    mask[2:30, 5:40] = 1  # an object at the top, where a caption over the image would lie
    return image, mask


def test_the_caption_covers_no_image_pixel():
    image, mask = small_image()
    plain = np.asarray(draw_overlay(image, mask))
    captioned = np.asarray(draw_overlay(image, mask, LONG))
    assert captioned.shape[1] == 160 and captioned.shape[0] > 120
    np.testing.assert_array_equal(captioned[-120:], plain)  # the image whole, below the strip
    assert captioned[:-120].min(axis=-1).max() > 200  # white text on the dark strip


def test_a_long_caption_stays_on_one_line():
    image, mask = small_image()
    short = draw_overlay(image, mask, "the red square")
    long = draw_overlay(image, mask, LONG)
    assert long.height == short.height < 120 + 20  # one line of a 10-pixel font, however long the text


def test_word_map_labels_cover_no_heatmap_pixel():
    _, mask = small_image()
    image = Image.new("RGB", (160, 120), (90, 90, 90))
    uniform = np.full((120, 160), 0.5, np.float32)
    sheet = np.asarray(draw_word_maps(image, mask, LONG, [{"token": "red", "map": uniform},
                                                          {"token": "square", "map": uniform}], columns=3))
    tile_width = sheet.shape[1] // 3
    heat = sheet[:, tile_width:2 * tile_width]
    # A uniform map is one colour: every pixel of the tile below its label strip has it.
    body = heat[-(tile_width * 120 // 160):]
    assert (body == body[-1, -1]).all()
