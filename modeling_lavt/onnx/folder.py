# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""What an ONNX export folder holds (file names, `onnx_export.json`) and the check of its graph's inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

EXPORT_INFO_NAME = "onnx_export.json"
ONNX_NAME = "model.onnx"
INPUT_NAMES = ("pixel_values", "input_ids", "attention_mask")
OUTPUT_NAMES = ("logits",)
FORMAT_VERSION = 1


def processor_settings(processor: Any) -> dict[str, Any]:
    """What the graph is built for, read from a LavtProcessor: image size [H, W] and text length."""
    size = processor.image_processor.size
    return {"image_size": [int(size["height"]), int(size["width"])], "text_length": int(processor.max_length)}


def write_export_info(folder: Path, info: dict[str, Any]) -> None:
    (folder / EXPORT_INFO_NAME).write_text(json.dumps(info, indent=2) + "\n")


def read_export_info(folder: str | Path) -> dict[str, Any]:
    """The folder's `onnx_export.json`. Raises FileNotFoundError (not an export) or ValueError (another format
    version)."""
    path = Path(folder) / EXPORT_INFO_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} is not an ONNX export of LAVT (no {EXPORT_INFO_NAME}); create one with lavt-export")
    info = json.loads(path.read_text())
    if info.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version {info.get('format_version')!r} "
                         f"(this version reads {FORMAT_VERSION}); export the model again")
    return info


def check_input_shapes(what: str, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor, num_channels: int, info: dict[str, Any]) -> None:
    """Raise ValueError "{what}: ..." naming the tensor, its shape and the export's when an input does not
    have the shape the graph was exported for (`info`: its onnx_export.json)."""
    (height, width), tokens = info["image_size"], info["text_length"]
    if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (num_channels, height, width):
        raise ValueError(
            f"{what}: pixel_values of shape {tuple(pixel_values.shape)}, but the export takes (batch, {num_channels}, "
            f"{height}, {width}) (exported for {height}x{width} images); prepare the images with the export's "
            "processor, or export again at the size you need")
    if input_ids.ndim != 2 or input_ids.shape[1] != tokens:
        raise ValueError(
            f"{what}: input_ids of shape {tuple(input_ids.shape)}, but the export takes (batch, {tokens}) (exported "
            f"for {tokens} tokens); tokenize with the export's processor (max_length={tokens})")
    if attention_mask.shape != input_ids.shape or input_ids.shape[0] != pixel_values.shape[0]:
        raise ValueError(
            f"{what}: batch mismatch: pixel_values {tuple(pixel_values.shape)}, input_ids {tuple(input_ids.shape)}, "
            f"attention_mask {tuple(attention_mask.shape)}")


def compare_settings(what: str, settings: dict[str, Any], info: dict[str, Any], remedy: str | None = None) -> None:
    """Raise ValueError when `settings` (a processor's, or the graph's) differ from `info`; `remedy` replaces
    the advice given for a processor."""
    (height, width), tokens = info["image_size"], info["text_length"]
    if list(settings["image_size"]) != [height, width]:
        got_h, got_w = settings["image_size"]
        raise ValueError(
            f"{what} is set for {got_h}x{got_w} images, but the ONNX model was exported for {height}x{width} "
            f"({EXPORT_INFO_NAME}); "
            + (remedy or f"use the processor saved with the export, or export again at {got_h}x{got_w}"))
    if settings["text_length"] != tokens:
        raise ValueError(
            f"{what} is set for {settings['text_length']} tokens per expression, but the ONNX model was exported "
            f"for {tokens} ({EXPORT_INFO_NAME}); "
            + (remedy or f"use the processor saved with the export (max_length={tokens})"))
