# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Drawing predictions for people: the mask tinted over the image, with the referring expression in a strip above
it, and the word maps (where each word of the expression looks)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..image_processing_lavt import ImageLike, MaskLike, binary_mask, to_rgb_uint8

DEFAULT_COLOR = (255, 40, 40)
# Word-map tiles are enlarged to at least this shorter side, so that the labels stay readable on small images.
MIN_TILE_SIDE = 192


def draw_overlay(image: ImageLike, mask: MaskLike, text: str | None = None,
                 color: tuple[int, int, int] = DEFAULT_COLOR, alpha: float = 0.5, outline: bool = True
                 ) -> Image.Image:
    """The image (RGB, upright, original size) with the mask blended in `color` (opacity `alpha`) and, with
    `outline`, its edge drawn white beside black (visible on any image, even on an object of the tint's
    colour); with `text`, the expression in a strip of one line above it (shortened to the image width).

    `image` is anything [`LavtImageProcessor`] accepts (shown with EXIF applied); `mask` is (H, W) of the
    image's size, nonzero on the referred object (e.g. the pipeline's 0/255 mask image or a 0/1 array). Raises
    ValueError for `alpha` outside [0, 1] or a mask that is not 2-D or not of the image's size.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    rgb = to_rgb_uint8(image).astype(np.float32)
    selected = binary_mask(mask).view(bool)
    if selected.shape != rgb.shape[:2]:
        raise ValueError(f"Mask size {selected.shape} (h, w) differs from the image size {rgb.shape[:2]}")
    rgb[selected] = (1.0 - alpha) * rgb[selected] + alpha * np.asarray(color, dtype=np.float32)
    if outline:
        rgb[mask_outline(~selected)] = 0.0
        rgb[mask_outline(selected)] = 255.0
    overlay = Image.fromarray(np.rint(rgb).astype(np.uint8))
    return _with_caption(overlay, text.strip()) if text and text.strip() else overlay


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of a boolean (H, W) `mask` that touch the background (4-neighbourhood; the image border is not
    background): its one-pixel boundary, boolean (H, W)."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _with_caption(image: Image.Image, text: str, font_size: int | None = None) -> Image.Image:
    """`image` under a dark strip holding `text` in white on one line, shortened with "…" to fit the width (a
    caption over a small image would hide much of it). `font_size` defaults to 1/20 of the shorter side."""
    font = ImageFont.load_default(size=font_size or max(10, min(image.width, image.height) // 20))
    margin = 2
    measure = ImageDraw.Draw(image)
    line = text
    if measure.textlength(line, font=font) > image.width - 2 * margin:
        while line and measure.textlength(line.rstrip() + "…", font=font) > image.width - 2 * margin:
            line = line[:-1]
        line = line.rstrip() + "…"
    strip = measure.textbbox((0, 0), "Ag", font=font)[3] + 2 * margin
    captioned = Image.new("RGB", (image.width, image.height + strip), (0, 0, 0))
    captioned.paste(image, (0, strip))
    ImageDraw.Draw(captioned).text((margin, margin), line, fill=(255, 255, 255), font=font)
    return captioned


def draw_word_maps(image: ImageLike, mask: MaskLike, text: str,
                   word_maps: list[dict], columns: int = 4, colormap: str = "inferno") -> Image.Image:
    """One picture: the overlay of the mask, then a heatmap per token of where that token's attention goes.

    `image`, `mask`, `text` are as for [`draw_overlay`]; `word_maps` are the pipeline's (`return_word_maps`):
    dicts with `token` and `map` (H, W), the share of each pixel's attention that goes to that token. The
    heatmaps (matplotlib `colormap`, `columns` tiles per row) share one colour scale so that tokens can be
    compared; each label gives the token and its mean share of the attention. Raises ValueError without maps.
    """
    from matplotlib import colormaps

    if not word_maps:
        raise ValueError("No word maps to draw: run the pipeline with return_word_maps=True")
    overlay = draw_overlay(image, mask)  # captioned after enlarging, in the tiles' font
    zoom = max(1, -(-MIN_TILE_SIDE // min(overlay.size)))
    size = (overlay.width * zoom, overlay.height * zoom)
    gray = np.asarray(Image.fromarray(to_rgb_uint8(image)).convert("L").convert("RGB"), dtype=np.float32)
    low = min(float(entry["map"].min()) for entry in word_maps)
    span = max(float(entry["map"].max()) for entry in word_maps) - low or 1.0
    font_size = max(12, min(size) // 12)
    tiles = [_with_caption(overlay.resize(size, Image.Resampling.NEAREST), text, font_size)]
    for entry in word_maps:
        heat = colormaps[colormap](np.clip((entry["map"] - low) / span, 0.0, 1.0))[..., :3] * 255.0
        blended = Image.fromarray(np.rint(0.25 * gray + 0.75 * heat).astype(np.uint8))
        label = f"{entry['token']}  {100.0 * float(entry['map'].mean()):.0f}%"
        tiles.append(_with_caption(blended.resize(size, Image.Resampling.BILINEAR), label, font_size))
    width, height = tiles[0].size
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (min(columns, len(tiles)) * width, rows * height), "white")
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * width, (index // columns) * height))
    return sheet

