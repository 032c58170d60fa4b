# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Processor of LAVT: the image processor and a BERT tokenizer, pairing images with referring expressions.

The tokenization reproduces the original by default (docs/model.md, "Text side"): encode with special tokens and no
truncation, keep the first `max_length` ids, pad with the pad id. A sentence longer than `max_length - 2`
wordpieces therefore loses its [SEP]; `truncation_mode="keep_sep"` gives the modern behaviour instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers.image_processing_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .image_processing_lavt import ImageLike, MaskLike, make_image_list, make_mask_list
from .validation import check_referring_expressions, check_text_argument

TRUNCATION_MODES = ("original", "keep_sep")


class LavtProcessor(ProcessorMixin):
    r"""
    Wraps a [`LavtImageProcessor`] and a BERT tokenizer into one processor.

    Args:
        image_processor ([`LavtImageProcessor`]): the image processor.
        tokenizer ([`PreTrainedTokenizerBase`]): a BERT-family tokenizer (bert-base-uncased for the released
            models).
        max_length (`int`, *optional*, defaults to 20): token positions per expression, as in the original.
        truncation_mode (`str`, *optional*, defaults to `"original"`): `"original"` cuts the encoded ids at
            `max_length` (the [SEP] of a long expression is lost, exactly like the released models were trained);
            `"keep_sep"` uses the tokenizer's own truncation, which keeps [SEP] as the last token.
    """

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        max_length: int = 20,
        truncation_mode: str = "original",
    ) -> None:
        _check_text_settings(max_length, truncation_mode)
        self.max_length = int(max_length)
        self.truncation_mode = truncation_mode
        super().__init__(image_processor, tokenizer)

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values", "input_ids", "attention_mask"]

    def __call__(
        self,
        images: ImageLike | Sequence[ImageLike] | None = None,
        text: str | Sequence[str] | None = None,
        masks: MaskLike | Sequence[MaskLike] | None = None,
        return_tensors: str | None = None,
        max_length: int | None = None,
        truncation_mode: str | None = None,
        **image_kwargs: Any,
    ) -> BatchFeature:
        """Prepare (image, expression) rows for the model.

        Pairing: one image and N expressions give N rows (the image is repeated); N images and N expressions
        give N pairs. Masks, when given, are one per row or one per image.

        Args:
            images: what [`LavtImageProcessor.preprocess`] accepts.
            text: one referring expression or a list of them.
            masks: binary ground-truth masks -> `labels`.
            return_tensors: `"pt"` for torch tensors, `"np"` or `None` for NumPy arrays.
            max_length, truncation_mode: override the processor's text settings for this call.
            image_kwargs: passed to the image processor (e.g. `size`).

        Returns:
            [`BatchFeature`] with `pixel_values` (N, 3, H, W), `original_sizes` (one `(h, w)` per row),
            `input_ids` and `attention_mask` (N, max_length) int64, and `labels` (N, H, W) when masks are given.
            Only the keys of the given modalities are present.
        """
        if images is None and text is None:
            raise ValueError("Give images, text, or both")
        if masks is not None and images is None:
            raise ValueError("masks need their images")
        data: dict[str, Any] = {}
        if text is not None:
            texts = _as_text_list(text)
            data.update(self.tokenize(texts, max_length=max_length, truncation_mode=truncation_mode))
        if images is not None:
            image_list = make_image_list(images)
            num_rows = (
                len(image_list) if text is None else _pair_count(len(image_list), len(data["input_ids"]))
            )
            data.update(self._image_rows(image_list, masks, num_rows, image_kwargs))
        return BatchFeature(data=data, tensor_type=return_tensors, skip_tensor_conversion=["original_sizes"])

    def tokenize(
        self,
        texts: Sequence[str],
        max_length: int | None = None,
        truncation_mode: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Expressions -> `input_ids`, `attention_mask` int64 (N, max_length), cut the way the settings say."""
        max_length = self.max_length if max_length is None else max_length
        truncation_mode = self.truncation_mode if truncation_mode is None else truncation_mode
        _check_text_settings(max_length, truncation_mode)
        check_referring_expressions(texts, self.tokenizer)

        full_ids = self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        longest = max(len(ids) for ids in full_ids)
        if longest > max_length:
            warnings.warn(
                f"A referring expression has more than {max_length} tokens and was truncated to {max_length} "
                f"({truncation_mode!r} mode{': its [SEP] is dropped' if truncation_mode == 'original' else ''}).",
                stacklevel=2,
            )
        if truncation_mode == "keep_sep":
            encoded = self.tokenizer(
                list(texts),
                truncation=True,
                max_length=max_length,
                padding="max_length",
                return_attention_mask=True,
            )
            return {
                "input_ids": np.asarray(encoded["input_ids"], dtype=np.int64),
                "attention_mask": np.asarray(encoded["attention_mask"], dtype=np.int64),
            }
        return _cut_and_pad(full_ids, max_length, self._pad_id())

    def post_process_referring_segmentation(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """See [`LavtImageProcessor.post_process_referring_segmentation`]."""
        return self.image_processor.post_process_referring_segmentation(*args, **kwargs)

    def _pad_id(self) -> int:
        """The tokenizer's pad id; 0 (BERT's, which the original hard-codes) when it has none."""
        pad_id = getattr(self.tokenizer, "pad_token_id", None)
        return 0 if pad_id is None else int(pad_id)

    def _image_rows(
        self,
        image_list: list[ImageLike],
        masks: MaskLike | Sequence[MaskLike] | None,
        num_rows: int,
        image_kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        """Preprocess each image once, then repeat it for the rows that share it."""
        features = self.image_processor(image_list, **image_kwargs)
        row_image = [0] * num_rows if len(image_list) == 1 else list(range(num_rows))
        original_sizes = [features["original_sizes"][i] for i in row_image]
        pixel_values = features["pixel_values"]
        if row_image != list(range(len(pixel_values))):  # a row per image needs no (copying) re-indexing
            pixel_values = pixel_values[row_image]
        rows = {"pixel_values": pixel_values, "original_sizes": original_sizes}
        if masks is not None:
            rows["labels"] = self._mask_rows(
                make_mask_list(masks), features["original_sizes"], row_image, image_kwargs
            )
        return rows

    def _mask_rows(
        self,
        mask_list: list[MaskLike],
        image_sizes: list[tuple[int, int]],
        row_image: list[int],
        image_kwargs: dict[str, Any],
    ) -> np.ndarray:
        """Labels for every row: masks are given either one per row or one per image."""
        size = image_kwargs.get("size")
        if len(mask_list) == len(row_image):
            sizes = [image_sizes[i] for i in row_image]
            return self.image_processor.preprocess_masks(mask_list, size=size, original_sizes=sizes)
        if len(mask_list) == len(image_sizes):
            labels = self.image_processor.preprocess_masks(mask_list, size=size, original_sizes=image_sizes)
            return labels[row_image]
        raise ValueError(
            f"Got {len(mask_list)} masks for {len(row_image)} (image, expression) rows and {len(image_sizes)} "
            "images; give one mask per row or one per image"
        )


def _check_text_settings(max_length: int, truncation_mode: str) -> None:
    """Reject settings that cannot hold [CLS] + [SEP] or name an unknown mode."""
    if truncation_mode not in TRUNCATION_MODES:
        raise ValueError(f"truncation_mode must be one of {TRUNCATION_MODES}, got {truncation_mode!r}")
    if int(max_length) < 2:
        raise ValueError(f"max_length must be at least 2 ([CLS] and [SEP]), got {max_length}")


def _as_text_list(text: str | Sequence[str]) -> list[str]:
    """One expression or a list of them -> a non-empty list."""
    check_text_argument(text)
    if isinstance(text, str):
        return [text]
    texts = list(text)
    if not texts:
        raise ValueError("Got an empty list of referring expressions")
    return texts


def _pair_count(num_images: int, num_texts: int) -> int:
    """Rows produced by pairing images with expressions (1 image + N texts, or N + N)."""
    if num_images == 1 or num_images == num_texts:
        return num_texts
    raise ValueError(
        f"Cannot pair {num_images} images with {num_texts} referring expressions: give one image for all "
        "expressions, or one image per expression"
    )


def _cut_and_pad(full_ids: list[list[int]], max_length: int, pad_id: int) -> dict[str, np.ndarray]:
    """The original's text preparation: keep the first `max_length` ids, pad, mask 1 on kept ids."""
    input_ids = np.full((len(full_ids), max_length), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(full_ids), max_length), dtype=np.int64)
    for row, ids in enumerate(full_ids):
        kept = ids[:max_length]
        input_ids[row, : len(kept)] = kept
        attention_mask[row, : len(kept)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


__all__ = ["LavtProcessor", "TRUNCATION_MODES"]
