# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Drawing predictions for people: the mask tinted over the image, with the referring expression written on it."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .image_processing_lavt import ImageLike, to_rgb_uint8

DEFAULT_COLOR = (255, 40, 40)


def draw_overlay(
    image: ImageLike,
    mask: Image.Image | np.ndarray | torch.Tensor,
    text: str | None = None,
    color: tuple[int, int, int] = DEFAULT_COLOR,
    alpha: float = 0.5,
) -> Image.Image:
    """The image (RGB, upright, original size) with the mask blended in `color` and `text` in a top banner.

    Args:
        image: anything [`LavtImageProcessor`] accepts; it is shown the way the model saw it (EXIF applied).
        mask: (H, W) of the same size as the image; nonzero = the referred object (e.g. the pipeline's 0/255
            mask image or a 0/1 array).
        text: the referring expression; wrapped to the image width. `None` or empty draws no banner.
        color: RGB tint of the mask.
        alpha: opacity of the tint, in [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    rgb = to_rgb_uint8(image).astype(np.float32)
    selected = _mask_array(mask) != 0
    if selected.shape != rgb.shape[:2]:
        raise ValueError(f"Mask size {selected.shape} (h, w) differs from the image size {rgb.shape[:2]}")
    rgb[selected] = (1.0 - alpha) * rgb[selected] + alpha * np.asarray(color, dtype=np.float32)
    overlay = Image.fromarray(np.rint(rgb).astype(np.uint8))
    if text and text.strip():
        _draw_caption(overlay, text.strip())
    return overlay


def _mask_array(mask: Image.Image | np.ndarray | torch.Tensor) -> np.ndarray:
    """A mask image, array or tensor -> a 2-D NumPy array."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"A mask must be 2-D (height, width), got shape {array.shape}")
    return array


def _draw_caption(image: Image.Image, text: str) -> None:
    """Write `text` in white on a translucent dark banner across the top, wrapped to the image width.

    The banner covers at most the top third of the image (at least one line), so that a long expression on a
    small image does not hide the mask; text that does not fit ends with "...".
    """
    font = ImageFont.load_default(size=max(10, min(image.width, image.height) // 20))
    margin = 2
    draw = ImageDraw.Draw(image, "RGBA")
    line_height = draw.textbbox((0, 0), "Ag", font=font)[3] + margin
    lines = _wrap(text, draw, font, image.width - 2 * margin)
    max_lines = max(1, (image.height // 3 - margin) // line_height)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] += " ..."
    banner_height = margin + line_height * len(lines)
    draw.rectangle((0, 0, image.width - 1, banner_height - 1), fill=(0, 0, 0, 150))  # inclusive corners
    for index, line in enumerate(lines):
        draw.text((margin, margin + index * line_height), line, fill=(255, 255, 255, 255), font=font)


def _wrap(text: str, draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, max_width: int) -> list[str]:
    """Greedy word wrap by rendered width; a single word wider than the image stays on its own line."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(candidate, font=font) <= max_width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


__all__ = ["draw_overlay"]
