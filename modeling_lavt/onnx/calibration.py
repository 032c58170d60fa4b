# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Calibration sets for static INT8 quantization of an ONNX export: model inputs of the export's shapes, from
which each quantized activation's range is fixed ahead of time. They come from a folder of samples (images and
`expressions.json`, which maps each image's file name to its expression or list of expressions), from model
inputs, or from generated images (coloured shapes on smooth backgrounds, each named by its colour and shape);
real images of the deployment's domain calibrate better.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from .folder import INPUT_NAMES, check_input_shapes

EXPRESSIONS_NAME = "expressions.json"
DEFAULT_GENERATED_SAMPLES = 8
_COLOURS = {"red": (215, 38, 38), "green": (34, 160, 60), "blue": (40, 80, 215), "yellow": (235, 200, 30),
            "white": (240, 240, 240), "black": (20, 20, 20)}


def folder_samples(folder: str | Path) -> list[tuple[Image.Image, str]]:
    """The (RGB image, expression) pairs of a calibration folder, in the order of `expressions.json`.

    Raises FileNotFoundError when the folder, its `expressions.json` or an image it names is missing, and
    ValueError when `expressions.json` is not a JSON mapping of file names to expressions or holds no pair, or
    an image cannot be read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"calibration folder {folder} is a file, not a folder; give the folder that holds the images and "
            f"{EXPRESSIONS_NAME}" if folder.exists() else f"calibration folder {folder} does not exist")
    index = folder / EXPRESSIONS_NAME
    if not index.is_file():
        raise FileNotFoundError(
            f"calibration folder {folder} has no {EXPRESSIONS_NAME}: write one that maps each image's file name to "
            'its expression(s), e.g. {"street.jpg": ["the red car"]}'
        )
    try:
        mapping = json.loads(index.read_text())
    except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
        raise ValueError(f"{index} is not valid JSON ({error}); it must map image file names to expression(s), "
                         'e.g. {"street.jpg": ["the red car"]}') from None
    if not isinstance(mapping, dict) or not all(
        isinstance(texts, str) or (isinstance(texts, list) and all(isinstance(t, str) for t in texts))
        for texts in mapping.values()
    ):
        raise ValueError(f"{index} must map image file names to an expression or a list of expressions")
    samples = []
    for name, texts in mapping.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{index} names {name}, which is not in {folder}")
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except OSError as error:
            raise ValueError(f"calibration image {path} cannot be read: {error}") from None
        samples += [(rgb, text) for text in ([texts] if isinstance(texts, str) else texts) if text.strip()]
    if not samples:
        raise ValueError(f"calibration folder {folder} holds no (image, expression) pair: {index} is empty; list "
                         "a few images of the kind the model will see, with an expression each")
    return samples


def generated_samples(count: int) -> list[tuple[Image.Image, str]]:
    """`count` (640x480 RGB image, expression) pairs: two to four filled ellipses and rectangles of distinct
    colours on a vertical colour gradient; the expression names one. Raises ValueError for `count` < 1."""
    if count < 1:
        raise ValueError(f"the calibration set needs at least one sample, got {count}")
    rng = np.random.default_rng(0)
    width, height = 640, 480
    samples = []
    for _ in range(count):
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = np.linspace(0.0, 1.0, height)[:, None, None]
        image = Image.fromarray((top * (1 - ramp) + bottom * ramp).astype(np.uint8).repeat(width, axis=1))
        draw = ImageDraw.Draw(image)
        names = []
        for colour in rng.choice(list(_COLOURS), size=int(rng.integers(2, 5)), replace=False):
            shape = str(rng.choice(["circle", "square"]))
            side = int(rng.integers(height // 8, height // 2))
            x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            (draw.ellipse if shape == "circle" else draw.rectangle)((x, y, x + side, y + side), fill=_COLOURS[colour])
            names.append(f"the {colour} {shape}")
        samples.append((image, names[int(rng.integers(len(names)))]))
    return samples


def calibration_set(processor: Any, info: dict[str, Any], num_channels: int,
                    calibration: str | Path | Sequence[dict[str, torch.Tensor]] | None,
                    calibration_size: int | None = None) -> tuple[list[dict[str, torch.Tensor]], str]:
    """The calibration inputs (batch of 1 each) and a description of their source: the samples of a folder,
    model inputs, or `calibration_size` generated images (None: 8), prepared by `processor`.

    Raises FileNotFoundError / ValueError for a bad folder (`folder_samples`), and ValueError for
    `calibration_size` with a folder or inputs, no input, or a tensor missing or not of `info`'s shapes.
    """
    if calibration is not None and calibration_size is not None:
        raise ValueError("calibration_size sets the number of generated images; a calibration folder or list "
                         "is used whole")
    if calibration is None or isinstance(calibration, (str, Path)):
        if calibration is None:
            count = DEFAULT_GENERATED_SAMPLES if calibration_size is None else calibration_size
            samples = generated_samples(count)
            source = "generated images (modeling_lavt/onnx/calibration.py)"
        else:
            samples, source = folder_samples(calibration), f"folder {calibration}"
        encoded = [processor(images=[image], text=[text], return_tensors="pt") for image, text in samples]
        inputs = [{name: sample[name] for name in INPUT_NAMES} for sample in encoded]
    else:
        inputs, source = list(calibration), "model inputs given to quantize_export"
    if not inputs:
        raise ValueError("the calibration set is empty; give a few (image, expression) samples")
    for number, sample in enumerate(inputs):
        missing = [name for name in INPUT_NAMES if name not in sample]
        if missing:
            raise ValueError(f"calibration sample {number} lacks {missing}; each sample needs {list(INPUT_NAMES)}")
        check_input_shapes(f"calibration sample {number}", *(sample[name] for name in INPUT_NAMES), num_channels, info)
    return inputs, source
