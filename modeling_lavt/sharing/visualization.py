# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Drawing predictions for people: the mask tinted over the image, with the referring expression in a strip above
it, and the word maps (where each word of the expression looks)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..image_processing_lavt import ImageLike, to_rgb_uint8

DEFAULT_COLOR = (255, 40, 40)
# Word-map tiles are enlarged (nearest neighbour) until their shorter side has this many pixels, so that the labels
# stay readable on small images.
MIN_TILE_SIDE = 192


def draw_overlay(
    image: ImageLike,
    mask: Image.Image | np.ndarray | torch.Tensor,
    text: str | None = None,
    color: tuple[int, int, int] = DEFAULT_COLOR,
    alpha: float = 0.5,
    outline: bool = True,
) -> Image.Image:
    """The image (RGB, upright, original size) with the mask blended in `color` and outlined; with `text`, a strip
    of one line above it holds the expression, so the picture is taller by that strip and no image pixel is covered.

    Args:
        image: anything [`LavtImageProcessor`] accepts; it is shown the way the model saw it (EXIF applied).
        mask: (H, W) of the same size as the image; nonzero = the referred object (e.g. the pipeline's 0/255
            mask image or a 0/1 array).
        text: the referring expression; shortened with "…" to the image width. `None` or empty adds no strip.
        color: RGB tint of the mask.
        alpha: opacity of the tint, in [0, 1].
        outline: draw the mask's edge as a white line (its boundary pixels, `mask_outline`) beside a black one
            (the background pixels touching it): visible on any image, and on an object of the tint's own colour,
            where a tint alone vanishes (a red tint on a red circle).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    rgb = to_rgb_uint8(image).astype(np.float32)
    selected = _mask_array(mask) != 0
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


def _mask_array(mask: Image.Image | np.ndarray | torch.Tensor) -> np.ndarray:
    """A mask image, array or tensor -> a 2-D NumPy array."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"A mask must be 2-D (height, width), got shape {array.shape}")
    return array


def _with_caption(image: Image.Image, text: str, font_size: int | None = None) -> Image.Image:
    """`image` under a dark strip holding `text` in white on one line, shortened with "…" to fit the width.

    The caption gets a strip of its own rather than lying over the image: on a small image a written-over caption
    hides much of it, at times the referred object itself. `font_size` defaults to 1/20 of the shorter side (at
    least 10 pixels).
    """
    font = ImageFont.load_default(size=font_size or max(10, min(image.width, image.height) // 20))
    margin = 2
    measure = ImageDraw.Draw(image)
    line = _shorten(text, measure, font, image.width - 2 * margin)
    strip = measure.textbbox((0, 0), "Ag", font=font)[3] + 2 * margin
    captioned = Image.new("RGB", (image.width, image.height + strip), (0, 0, 0))
    captioned.paste(image, (0, strip))
    ImageDraw.Draw(captioned).text((margin, margin), line, fill=(255, 255, 255), font=font)
    return captioned


def _shorten(text: str, draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, max_width: int) -> str:
    """`text`, or its longest start that fits `max_width` pixels with "…" appended."""
    if draw.textlength(text, font=font) <= max_width:
        return text
    while text and draw.textlength(text.rstrip() + "…", font=font) > max_width:
        text = text[:-1]
    return text.rstrip() + "…"


def draw_word_maps(
    image: ImageLike,
    mask: Image.Image | np.ndarray | torch.Tensor,
    text: str,
    word_maps: list[dict],
    columns: int = 4,
    colormap: str = "inferno",
) -> Image.Image:
    """One picture: the overlay of the mask, then a heatmap per token of where that token's attention goes.

    Args:
        image, mask, text: as for [`draw_overlay`] (the first tile).
        word_maps: the pipeline's `word_maps` (`return_word_maps=True`): dicts with `token` and `map` (H, W) of
            the image's size; each map is the share of the pixel's attention that goes to that token.
        columns: tiles per row.
        colormap: a matplotlib colormap name for the heatmaps.

    The heatmaps share one colour scale, from the smallest to the largest value of all the maps (dark to bright), so
    that tokens can be compared; each label gives the token and its mean share of the attention over the image.
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


__all__ = ["draw_overlay", "draw_word_maps"]
