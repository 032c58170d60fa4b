# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Image processor of LAVT: PIL-exact preprocessing (docs/data.md, "Images and masks"), in PIL + NumPy so that
the numbers match the original's, and mask post-processing (docs/presence.md)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.processing_utils import ImagesKwargs

from .resize import upsample_logits
from .validation import check_probability_threshold, check_target_sizes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_CHANNEL_COUNTS = (1, 2, 3, 4)

ImageLike = Image.Image | np.ndarray | torch.Tensor | str | os.PathLike
MaskLike = Image.Image | np.ndarray | torch.Tensor
SizeLike = dict[str, int] | int | Sequence[int]
Sizes = Sequence[tuple[int, int]] | torch.Tensor  # one (height, width) per sample
TokenMask = torch.Tensor | np.ndarray | Sequence[Sequence[int]]  # (B, T) of 0 / 1


class LavtImageProcessorKwargs(ImagesKwargs, total=False):
    """The standard image keyword arguments, and `apply_exif_orientation`."""

    apply_exif_orientation: bool


class LavtImageProcessor(BaseImageProcessor):
    """Image processor of LAVT, the original's preprocessing (docs/data.md, "Images and masks") to the model
    input `size` (480x480 by default). `apply_exif_orientation=False` reads the raw pixel layout, as the
    original does and as COCO's annotations need."""

    model_input_names = ["pixel_values"]
    valid_kwargs = LavtImageProcessorKwargs

    def __init__(self, size: SizeLike | None = None, resample: int = Image.Resampling.BILINEAR,
                 image_mean: Sequence[float] = IMAGENET_MEAN, image_std: Sequence[float] = IMAGENET_STD,
                 apply_exif_orientation: bool = True, **kwargs: Any) -> None:
        # `image_processor_type` is written by `to_dict` for the Auto classes; it is not a setting.
        kwargs.pop("image_processor_type", None)
        super().__init__(**kwargs)
        self.size = _size_dict({"height": 480, "width": 480} if size is None else size)
        self.resample = int(resample)
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.apply_exif_orientation = bool(apply_exif_orientation)

    def preprocess(self, images: ImageLike | Sequence[ImageLike],
                   masks: MaskLike | Sequence[MaskLike] | None = None, return_tensors: str | None = None,
                   size: SizeLike | None = None, image_mean: Sequence[float] | None = None,
                   image_std: Sequence[float] | None = None, apply_exif_orientation: bool | None = None,
                   input_data_format: str | None = None) -> BatchFeature:
        """One image or a batch -> `pixel_values` (B, 3, H, W) float32, plus `labels` when masks are given.

        Args:
            images: PIL images, NumPy arrays (HW, HWC or CHW; uint8, uint16, bool, or float in [0, 1]), torch
                tensors (CHW or HWC), file paths, or a list of them; a 4-D array is a batch.
            masks: one binary mask (h, w) per image, of its (oriented) size, or a (B, h, w) array.
            return_tensors: `"pt"` for torch tensors, `"np"` or `None` for NumPy arrays.
            size, image_mean, image_std, apply_exif_orientation: override the settings for this call.
            input_data_format: `"channels_first"` or `"channels_last"`; by default arrays are HWC and tensors
                CHW unless their channel count says otherwise.

        Returns:
            [`BatchFeature`] with `pixel_values`, `original_sizes` (one `(height, width)` per image) and, with
            masks, `labels` int64 (B, H, W) of 0 / 1.

        Raises:
            ValueError: an image or mask that cannot be read (named), a float image that is not finite, or an
                image_mean / image_std that is not finite or a zero std.
        """
        size = self.size if size is None else _size_dict(size)
        mean = np.asarray(self.image_mean if image_mean is None else image_mean, dtype=np.float32)
        std = np.asarray(self.image_std if image_std is None else image_std, dtype=np.float32)
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and np.all(std != 0)):
            raise ValueError(f"image_mean and image_std must be finite and image_std nonzero, got image_mean "
                             f"{mean.tolist()} and image_std {std.tolist()}; fix them (preprocessor_config.json)")
        orient = self.apply_exif_orientation if apply_exif_orientation is None else apply_exif_orientation

        rgbs = [_rgb_image(image, orient, input_data_format) for image in make_list(images, "images")]
        original_sizes = [(rgb.height, rgb.width) for rgb in rgbs]
        resized = (np.asarray(rgb.resize((size["width"], size["height"]), self.resample)) for rgb in rgbs)
        planes = [_normalize(rgb, mean, std) for rgb in resized]
        pixel_values = planes[0][None] if len(planes) == 1 else np.stack(planes)  # one image: no copy
        data: dict[str, Any] = {"pixel_values": pixel_values, "original_sizes": original_sizes}
        if masks is not None:
            data["labels"] = self.preprocess_masks(masks, size=size, original_sizes=original_sizes)
        return BatchFeature(data=data, tensor_type=return_tensors, skip_tensor_conversion=["original_sizes"])

    def preprocess_masks(self, masks: MaskLike | Sequence[MaskLike], size: SizeLike | None,
                         original_sizes: Sequence[tuple[int, int]]) -> np.ndarray:
        """Binary masks -> int64 (B, H, W) 0 / 1 labels, nearest-resized like the original's targets; mask i
        must have the size (h, w) of its image, `original_sizes[i]`."""
        size = self.size if size is None else _size_dict(size)
        mask_list = make_list(masks, "masks")
        if len(original_sizes) != len(mask_list):
            raise ValueError(f"Got {len(mask_list)} masks for {len(original_sizes)} images; give one mask "
                             "per image")
        labels = np.empty((len(mask_list), size["height"], size["width"]), dtype=np.int64)
        for index, (mask, image_size) in enumerate(zip(mask_list, original_sizes)):
            binary = binary_mask(mask)
            if binary.shape != tuple(image_size):
                raise ValueError(f"Mask {index} has size {binary.shape} (h, w) but its image has size "
                                 f"{tuple(image_size)}")
            resized = Image.fromarray(binary).resize((size["width"], size["height"]), Image.NEAREST)
            labels[index] = np.asarray(resized)  # widened to int64 as it is written: no stacking copy
        return labels

    def post_process_referring_segmentation(self, outputs: Any, target_sizes: Sizes | None = None,
                                            threshold: float | None = None,
                                            presence_threshold: float | None = None,
                                            split_parts: bool = False) -> list[dict[str, Any]]:
        """Model logits -> one mask per sample, at the size asked for, with scores and box.

        The (2, h, w) logits are upsampled in float32, bilinearly with `align_corners=True`: with target
        size = input size and no thresholds, the mask is the original's prediction.

        Args:
            outputs: the model output (with `.logits`) or the logits (B, 2, h, w); class 1 is the object.
            target_sizes: one `(height, width)` per sample; `None` keeps the logits' size.
            threshold: a probability in [0, 1]: foreground where the foreground probability is >= threshold;
                `None` takes the argmax (ties go to background).
            presence_threshold: a sample whose `presence_score` is below it gets an empty mask ("no target").
            split_parts: also give the mask's 8-connected parts in `parts`.

        Returns:
            One dict per sample (docs/presence.md, "API"): `mask` int64 (h, w) of 0 / 1, `probabilities`
            float32 (h, w), `score`, `presence_score`, `no_target`, `box` (pixels) and `parts`.

        Raises:
            ValueError: logits of another shape or not finite, a threshold that is not a number in [0, 1],
                target sizes that do not match the batch.
        """
        logits = outputs if isinstance(outputs, torch.Tensor) else outputs.logits
        if logits.ndim != 4 or logits.shape[1] != 2:
            raise ValueError(f"Expected logits of shape (batch, 2, height, width), got {tuple(logits.shape)}")
        if not torch.isfinite(logits).all():
            raise ValueError("The logits hold NaN or infinite values: the model's output is broken, there is no "
                             "mask (or 'no target') to read from it")
        target_sizes = check_target_sizes(target_sizes, logits.shape[0])
        check_probability_threshold("threshold", threshold)
        check_probability_threshold("presence_threshold", presence_threshold)

        presence = presence_scores(logits).tolist()
        results = []
        for index in range(logits.shape[0]):
            sample = logits[index : index + 1].float()
            if target_sizes is not None:
                sample = upsample_logits(sample, target_sizes[index])
            background, foreground = sample[0, 0], sample[0, 1]
            probabilities = torch.sigmoid(foreground - background)  # = softmax(...)[1] for two classes
            is_foreground = foreground > background if threshold is None else probabilities >= threshold
            if presence_threshold is not None and presence[index] < presence_threshold:
                is_foreground = torch.zeros_like(is_foreground)
            result = {"mask": is_foreground.long(), "probabilities": probabilities,
                      **_mask_summary(is_foreground, probabilities),
                      "presence_score": presence[index], "no_target": not is_foreground.any().item()}
            if split_parts:
                result["parts"] = sorted(
                    ({"mask": part.long(), **_mask_summary(part, probabilities)}
                     for part in connected_parts(is_foreground)),
                    key=lambda part: -part["score"])
            results.append(result)
        return results

    def post_process_semantic_segmentation(self, outputs: Any,
                                           target_sizes: Sizes | None = None) -> list[torch.Tensor]:
        """As transformers' semantic-segmentation models: one int64 (height, width) label map per sample, 1 on
        the referred object (the `mask` of [`~LavtImageProcessor.post_process_referring_segmentation`])."""
        return [result["mask"] for result in self.post_process_referring_segmentation(outputs, target_sizes)]

    def post_process_word_attention(self, outputs: Any, attention_mask: TokenMask | None = None,
                                    target_sizes: Sizes | None = None, stages: Sequence[int] | None = None,
                                    tokens: Sequence[Sequence[str]] | None = None,
                                    special_tokens_mask: TokenMask | None = None) -> list[dict[str, Any]]:
        """Pixel-word attentions (docs/model.md, "Pixel-word attention (PWAM)") -> one heatmap per token.

        Per sample, each chosen stage's map (a softmax over the tokens at every pixel) is averaged over the
        heads, upsampled bilinearly to the target size, and the stages are averaged: the maps still sum to 1
        over the tokens at every pixel.

        Args:
            outputs: the model output of `output_attentions=True` or its per-stage attentions, each (B, heads,
                T, H_i, W_i).
            attention_mask, special_tokens_mask: (B, T), 1 on real tokens, resp. on [CLS], [SEP], [PAD].
            target_sizes: one `(height, width)` per sample; `None` gives the size of the finest chosen stage.
            stages: the stages to average (0 = finest, 1/4 of the input; 3 = coarsest); all by default.
            tokens: per sample, the T token strings.

        Returns:
            One dict per sample: `maps` float32 (T, height, width); `tokens`; `padding` and `special` (T
            bools, all `False` without their mask); `stages`.

        Raises:
            ValueError: outputs without attentions, a stage out of range, sizes, masks or tokens that do not
                match the batch.
        """
        attentions = outputs if isinstance(outputs, list | tuple) else getattr(outputs, "attentions", None)
        if not attentions:
            raise ValueError("The outputs hold no attentions: run the model with output_attentions=True")
        stages = tuple(range(len(attentions))) if stages is None else tuple(int(stage) for stage in stages)
        if not stages or any(not 0 <= stage < len(attentions) for stage in stages):
            raise ValueError(f"stages must be indices among 0..{len(attentions) - 1}, got {stages}")
        batch, _, num_tokens = attentions[0].shape[:3]
        for name, given in (("target sizes", target_sizes), ("attention_mask rows", attention_mask),
                            ("token lists", tokens), ("special_tokens_mask rows", special_tokens_mask)):
            if given is not None and len(given) != batch:
                raise ValueError(f"Got {len(given)} {name} for a batch of {batch} attention maps")
        finest = min(stages)
        results = []
        for index in range(batch):
            size = tuple(attentions[finest].shape[-2:]) if target_sizes is None else (
                tuple(int(v) for v in target_sizes[index]))
            per_stage = [F.interpolate(attentions[stage][index].float().mean(dim=0, keepdim=True), size=size,
                                       mode="bilinear", align_corners=False)[0] for stage in stages]
            results.append({
                "maps": torch.stack(per_stage).mean(dim=0),
                "tokens": None if tokens is None else list(tokens[index]),
                "padding": (~_token_flags(attention_mask, index, num_tokens, default=True)).tolist(),
                "special": _token_flags(special_tokens_mask, index, num_tokens, default=False).tolist(),
                "stages": stages,
            })
        return results


def presence_scores(logits: torch.Tensor) -> torch.Tensor:
    """How sure the model is that the expression names something in the image: (B, 2, h, w) logits -> (B,)
    float32 in [0, 1], the largest foreground probability of each sample. Below a threshold the answer is "no
    target"; at 0.5 that is exactly an empty argmax mask."""
    return torch.sigmoid((logits[:, 1] - logits[:, 0]).float().amax(dim=(1, 2)))


def _mask_summary(mask: torch.Tensor, probabilities: torch.Tensor) -> dict[str, Any]:
    """The `score` (mean foreground probability over the mask, 0.0 when empty) and `box` of a bool mask: its
    first and last column and row (inclusive, as torchvision's `masks_to_boxes`), `None` when empty."""
    columns, rows = mask.any(dim=0).nonzero(), mask.any(dim=1).nonzero()
    if len(columns) == 0:
        return {"score": 0.0, "box": None}
    box = {"xmin": int(columns[0]), "ymin": int(rows[0]), "xmax": int(columns[-1]), "ymax": int(rows[-1])}
    return {"score": probabilities[mask].mean().item(), "box": box}


def connected_parts(mask: torch.Tensor) -> list[torch.Tensor]:
    """(h, w) bool mask -> one (h, w) bool mask per 8-connected part, in the order of their first pixel (row
    by row). Two-pass labelling of the runs of each row with a union-find, in NumPy: no SciPy needed."""
    array = mask.cpu().numpy().astype(np.int8)
    edges = np.diff(np.pad(array, ((0, 0), (1, 1))), axis=1)
    rows = [list(zip(np.flatnonzero(edge == 1).tolist(), np.flatnonzero(edge == -1).tolist())) for edge in edges]
    first = np.cumsum([0] + [len(runs) for runs in rows])  # index of each row's first run (end exclusive)
    parent = list(range(first[-1]))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for row in range(1, len(rows)):
        above, lowest = rows[row - 1], 0
        for index, (start, end) in enumerate(rows[row]):
            while lowest < len(above) and above[lowest][1] < start:  # ends left of this run's left neighbour
                lowest += 1
            other = lowest
            while other < len(above) and above[other][0] <= end:  # touching or diagonal: 8-connected
                parent[root(first[row] + index)] = root(first[row - 1] + other)
                other += 1
    labels = np.zeros(array.shape, dtype=np.int64)
    roots: dict[int, int] = {}
    for row, runs in enumerate(rows):
        for index, (start, end) in enumerate(runs):
            labels[row, start:end] = roots.setdefault(root(first[row] + index), len(roots) + 1)
    return [torch.from_numpy(labels == label).to(mask.device) for label in range(1, len(roots) + 1)]


def _token_flags(rows: TokenMask | None, index: int, num_tokens: int, default: bool) -> np.ndarray:
    """Row `index` of a (B, T) 0/1 mask as T bools; `default` everywhere when not given."""
    return np.full(num_tokens, default) if rows is None else np.asarray(rows[index], dtype=bool)


def to_rgb_uint8(image: ImageLike, apply_exif_orientation: bool = True,
                 input_data_format: str | None = None) -> np.ndarray:
    """Any supported image -> (H, W, 3) uint8 RGB, the array the original would have resized: PIL's
    `convert("RGB")` (alpha dropped), except for modes I;16* and I (16-bit, which PIL would clip at 255:
    v / 257 rounded) and F (floats in [0, 1])."""
    if isinstance(image, str | os.PathLike):
        image = open_image(image)
    if isinstance(image, Image.Image):
        if apply_exif_orientation:
            image = ImageOps.exif_transpose(image)
        if image.mode in _SIXTEEN_BIT_MODES:
            array = _gray_to_rgb(_sixteen_to_eight_bit(np.asarray(image)))
        elif image.mode == "F":
            array = _gray_to_rgb(_float_to_eight_bit(np.asarray(image)))
        else:
            try:
                array = np.asarray(image.convert("RGB"))
            except ValueError as error:
                raise ValueError(f"Cannot convert an image of mode {image.mode!r} to RGB: {error}") from error
    elif isinstance(image, np.ndarray | torch.Tensor):
        array = _array_to_rgb(image, input_data_format)
    else:
        raise ValueError(f"Unsupported image type {type(image).__name__}: use a PIL image, array or path")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"Image has zero size: {array.shape[0]}x{array.shape[1]} (height x width)")
    return array


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and decode an image file; a missing, corrupt or decompression-bomb file is a ValueError naming it."""
    try:
        image = Image.open(path)
        image.load()  # decodes now (a corrupt file fails here) and closes a file opened by name
        return image
    except FileNotFoundError as error:
        raise ValueError(f"Image file not found: {path}") from error
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"Cannot read image file {path}: {error}") from error
    except Image.DecompressionBombError as error:  # not an OSError: PIL's refusal of a huge pixel count
        raise ValueError(f"Cannot read image file {path}: {error} (raise PIL.Image.MAX_IMAGE_PIXELS only for a "
                         "file you trust)") from error


def _array_to_rgb(array: np.ndarray | torch.Tensor, input_data_format: str | None) -> np.ndarray:
    """NumPy array or torch tensor (HW, HWC or CHW) -> (H, W, 3) uint8."""
    if input_data_format not in (None, "channels_first", "channels_last"):
        raise ValueError(f"input_data_format must be 'channels_first' or 'channels_last', got "
                         f"{input_data_format!r}")
    channels_first = isinstance(array, torch.Tensor)  # each type's default layout
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = (array.float() if array.dtype in (torch.bfloat16, torch.float16) else array).numpy()
    if array.ndim == 2:
        array, channels_first = array[..., None], False
    elif array.ndim != 3:
        raise ValueError(f"An image must have 2 (HW) or 3 (HWC / CHW) dimensions, got shape {array.shape}")
    elif input_data_format is not None:
        channels_first = input_data_format == "channels_first"
    elif array.shape[0 if channels_first else 2] not in _CHANNEL_COUNTS:  # then the other layout
        channels_first = not channels_first
    if channels_first:
        array = np.moveaxis(array, 0, -1)
    if array.shape[2] not in _CHANNEL_COUNTS:
        raise ValueError(f"An image needs 1, 2, 3 or 4 channels, got {array.shape[2]} (shape {array.shape})")
    array = _to_uint8(array)
    if array.shape[2] < 3:  # gray, gray + alpha
        return _gray_to_rgb(array[..., 0])
    return np.ascontiguousarray(array[..., :3])  # RGB, RGBA (alpha dropped like PIL's RGBA -> RGB)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Pixel values of any supported dtype -> uint8 on the 0..255 scale."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return _sixteen_to_eight_bit(array)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        return _float_to_eight_bit(array)
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"Integer image of dtype {array.dtype} has values outside 0..255; pass 16-bit "
                             "data as uint16")
        return array.astype(np.uint8)
    raise ValueError(f"Unsupported image dtype {array.dtype}")


def _sixteen_to_eight_bit(array: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255 by v / 257 rounded (maps both ends exactly; PIL itself would clip at 255)."""
    wide = np.clip(array.astype(np.int64), 0, 65535)
    return ((wide + 128) // 257).astype(np.uint8)


def _float_to_eight_bit(array: np.ndarray) -> np.ndarray:
    """Float intensities in [0, 1] (torchvision's convention) -> 0..255, rounded."""
    if not np.all((array >= 0.0) & (array <= 1.0)):  # NaN fails too
        non_finite = int(np.count_nonzero(~np.isfinite(array)))
        if non_finite:
            raise ValueError(f"A float image holds {non_finite} NaN or infinite values; check how it was made")
        raise ValueError("A float image must have values in [0, 1]; pass 0..255 data as uint8")
    return np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """Replicate one channel to three, which is what PIL's L -> RGB conversion does."""
    return np.repeat(gray[..., None], 3, axis=2)


def _rgb_image(image: ImageLike, apply_exif_orientation: bool, input_data_format: str | None) -> Image.Image:
    """The image `to_rgb_uint8` gives, as an RGB PIL image to resize; an 8-bit RGB PIL image is used as it is,
    without the two copies of a round trip through an array."""
    if isinstance(image, Image.Image) and image.mode == "RGB" and image.width and image.height:
        return ImageOps.exif_transpose(image) if apply_exif_orientation else image
    return Image.fromarray(to_rgb_uint8(image, apply_exif_orientation, input_data_format))


def _normalize(rgb: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> contiguous (3, H, W) float32 as ToTensor + Normalize compute it: (x / 255 - mean) /
    std. The same float32 operations, so the same bits, but in place over whole channel planes: broadcasting
    over a last axis of 3 is more than ten times slower."""
    planes = rgb.transpose(2, 0, 1).astype(np.float32, order="C")
    planes /= np.float32(255.0)
    planes -= mean.reshape(-1, 1, 1)
    planes /= std.reshape(-1, 1, 1)
    return planes


def binary_mask(mask: MaskLike) -> np.ndarray:
    """A mask of any supported type -> (H, W) uint8 0 / 1 (nonzero is the referred object)."""
    if isinstance(mask, Image.Image):
        mask = np.asarray(mask)
    elif isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    elif not isinstance(mask, np.ndarray):
        raise ValueError(f"Unsupported mask type {type(mask).__name__}: use a PIL image, array or tensor")
    if mask.ndim != 2:
        raise ValueError(f"A mask must be 2-D (height, width), got shape {mask.shape}; one channel only")
    if mask.shape[0] == 0 or mask.shape[1] == 0:
        raise ValueError(f"Mask has zero size: {mask.shape[0]}x{mask.shape[1]} (height x width)")
    # Written C-ordered (masks decoded from RLE are Fortran-ordered), so that PIL wraps it without a copy;
    # a bool array is 0 / 1 bytes, so viewing it as uint8 copies nothing either.
    return np.not_equal(mask, 0, order="C").view(np.uint8)


def make_list(items: Any, what: str) -> list[Any]:
    """One image (`what="images"`) or mask (`"masks"`), a non-empty list of them, or a batch array (4-D for
    images, 3-D for masks) -> a list of single ones."""
    if isinstance(items, list | tuple):
        if not items:
            raise ValueError(f"Got an empty list of {what}")
        return list(items)
    if isinstance(items, np.ndarray | torch.Tensor) and items.ndim == {"images": 4, "masks": 3}[what]:
        return list(items)
    return [items]


def _size_dict(size: SizeLike) -> dict[str, int]:
    """`{"height", "width"}`, an int (square) or `(height, width)` -> the dict, of positive ints."""
    if isinstance(size, int):
        size = (size, size)
    if isinstance(size, list | tuple) and len(size) == 2:
        size = {"height": size[0], "width": size[1]}
    if isinstance(size, dict) and set(size) == {"height", "width"}:
        size = {"height": int(size["height"]), "width": int(size["width"])}
        if size["height"] > 0 and size["width"] > 0:
            return size
    raise ValueError(f"size must be positive: an int, (height, width) or {{'height', 'width'}}, got {size!r}")


__all__ = ["LavtImageProcessor", "open_image", "to_rgb_uint8"]
