# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Processor of LAVT: the image processor and a BERT tokenizer, pairing images with referring expressions."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers.image_processing_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .image_processing_lavt import ImageLike, MaskLike, make_list
from .validation import check_referring_expressions, check_text_argument

TRUNCATION_MODES = ("original", "keep_sep")
PADDING_MODES = ("max_length", "longest")
# `__call__`'s keyword arguments for the text side; the image side takes those of the image processor.
TEXT_OPTIONS = ("max_length", "truncation_mode", "padding", "truncation")


class LavtProcessor(ProcessorMixin):
    """A [`LavtImageProcessor`] and a BERT-family tokenizer (bert-base-uncased for the released models; its
    `padding_side` and `truncation_side` are set to "right", what the model reads) in one processor.
    `max_length`: token positions per expression, as in the original. `truncation_mode="original"` cuts the
    encoded ids at `max_length` as the original does (docs/model.md, "Text side"): a long expression loses its
    [SEP]; `"keep_sep"` keeps [SEP] as the last token, as the tokenizer's own truncation does."""

    model_input_names = ["pixel_values", "input_ids", "attention_mask"]

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, max_length: int = 20,
                 truncation_mode: str = "original") -> None:
        _check_text_settings(max_length, truncation_mode)
        self.max_length = int(max_length)
        self.truncation_mode = truncation_mode
        super().__init__(image_processor, tokenizer)
        _right_sides(self.tokenizer)

    def __call__(self, images: ImageLike | Sequence[ImageLike] | None = None,
                 text: str | Sequence[str] | None = None, masks: MaskLike | Sequence[MaskLike] | None = None,
                 return_tensors: str | None = None, **kwargs: Any) -> BatchFeature:
        """Prepare (image, expression) rows for the model, paired by [`pair_images_with_texts`].

        Args:
            images: what [`LavtImageProcessor.preprocess`] accepts.
            text: one referring expression or a list of them.
            masks: binary ground-truth masks -> `labels`, one per row or one per image.
            return_tensors: `"pt"` for torch tensors, `"np"` or `None` for NumPy arrays.
            kwargs: the options of [`~LavtProcessor.tokenize`] and [`LavtImageProcessor.preprocess`].

        Returns:
            [`BatchFeature`] with, for the modalities given, `pixel_values` (N, 3, H, W), `original_sizes`
            (one `(h, w)` per row), `input_ids` and `attention_mask` (N, L) int64, `labels` (N, H, W).

        Raises:
            ValueError: for a keyword argument that is neither a text nor an image option.
        """
        text_kwargs, image_kwargs = self._route_kwargs(kwargs)
        if images is None and text is None:
            raise ValueError("Give images, text, or both")
        if masks is not None and images is None:
            raise ValueError("masks need their images")
        data: dict[str, Any] = {}
        if text is not None:
            check_text_argument(text)
            data.update(self.tokenize([text] if isinstance(text, str) else list(text), **text_kwargs))
        if images is not None:
            image_list = make_list(images, "images")
            rows = image_list if text is None else pair_images_with_texts(image_list, data["input_ids"])
            data.update(self._image_rows(image_list, masks, len(rows), image_kwargs))
        return BatchFeature(data=data, tensor_type=return_tensors, skip_tensor_conversion=["original_sizes"])

    def tokenize(self, texts: Sequence[str], max_length: int | None = None,
                 truncation_mode: str | None = None, padding: str | bool = "max_length",
                 truncation: bool = True) -> dict[str, np.ndarray]:
        """Expressions -> `input_ids`, `attention_mask` int64 (N, L), cut and padded the way the settings say.

        Args:
            max_length, truncation_mode: override the processor's settings for this call.
            padding: `"max_length"` (L = max_length, the original) or `"longest"` / `True` (the longest row).
            truncation: `False` keeps every token (the text encoder reads up to `max_position_embeddings`).
        """
        max_length = self.max_length if max_length is None else max_length
        truncation_mode = self.truncation_mode if truncation_mode is None else truncation_mode
        _check_text_settings(max_length, truncation_mode)
        padding = "longest" if padding is True else padding
        if padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES} (or True for 'longest'), got {padding!r}")
        if not isinstance(truncation, bool):
            raise ValueError(f"truncation must be True or False, got {truncation!r}")
        if not texts:
            raise ValueError("Got an empty list of referring expressions")
        check_referring_expressions(texts, self.tokenizer)
        _right_sides(self.tokenizer)

        kept = self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        if truncation and max(map(len, kept)) > max_length:
            warnings.warn(
                f"A referring expression has more than {max_length} tokens and was truncated to {max_length} "
                f"({truncation_mode!r} mode{': its [SEP] is dropped' if truncation_mode == 'original' else ''}).",
                stacklevel=2,
            )
            keep_sep = truncation_mode == "keep_sep"
            kept = [ids[: max_length - 1] + ids[-1:] if keep_sep and len(ids) > max_length
                    else ids[:max_length] for ids in kept]
        width = max(map(len, kept)) if padding == "longest" else max(max_length, *map(len, kept))
        pad_id = self.tokenizer.pad_token_id  # None: 0, BERT's, which the original hard-codes
        input_ids = np.full((len(kept), width), 0 if pad_id is None else pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(kept), width), dtype=np.int64)
        for row, ids in enumerate(kept):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def post_process_referring_segmentation(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """See [`LavtImageProcessor.post_process_referring_segmentation`]."""
        return self.image_processor.post_process_referring_segmentation(*args, **kwargs)

    def post_process_semantic_segmentation(self, *args: Any, **kwargs: Any) -> list[Any]:
        """See [`LavtImageProcessor.post_process_semantic_segmentation`]."""
        return self.image_processor.post_process_semantic_segmentation(*args, **kwargs)

    def post_process_word_attention(self, outputs: Any, input_ids: Any, attention_mask: Any = None,
                                    target_sizes: Sequence[tuple[int, int]] | None = None,
                                    stages: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """[`LavtImageProcessor.post_process_word_attention`] with the token strings and special tokens read
        from `input_ids` (B, T) by the tokenizer (docs/usage.md, "Word maps")."""
        rows = [list(map(int, row)) for row in input_ids.tolist()]
        tokens = [self.tokenizer.convert_ids_to_tokens(row) for row in rows]
        special = [self.tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True) for row in rows]
        return self.image_processor.post_process_word_attention(
            outputs, attention_mask=attention_mask, target_sizes=target_sizes, stages=stages, tokens=tokens,
            special_tokens_mask=special,
        )

    def _route_kwargs(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split `__call__`'s keyword arguments into text options and image options; refuse anything else."""
        image_options = [name for name in inspect.signature(self.image_processor.preprocess).parameters
                         if name not in ("images", "masks", "return_tensors")]
        unknown = sorted(set(kwargs) - set(TEXT_OPTIONS) - set(image_options))
        if unknown:
            raise ValueError(
                f"LavtProcessor got unknown keyword argument(s) {unknown}: text options are {list(TEXT_OPTIONS)}, "
                f"image options are {image_options}")
        text_kwargs = {k: v for k, v in kwargs.items() if k in TEXT_OPTIONS}
        return text_kwargs, {k: v for k, v in kwargs.items() if k not in TEXT_OPTIONS}

    def _image_rows(self, image_list: list[ImageLike], masks: MaskLike | Sequence[MaskLike] | None,
                    num_rows: int, image_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Preprocess each image once, then repeat it (and its mask) for the rows that share it."""
        features = self.image_processor(image_list, **image_kwargs)
        image_sizes = features["original_sizes"]
        row_image = [0] * num_rows if len(image_list) == 1 else list(range(num_rows))
        pixel_values = features["pixel_values"]
        if row_image != list(range(len(pixel_values))):  # a row per image needs no (copying) re-indexing
            pixel_values = pixel_values[row_image]
        rows = {"pixel_values": pixel_values, "original_sizes": [image_sizes[i] for i in row_image]}
        if masks is None:
            return rows
        mask_list, size = make_list(masks, "masks"), image_kwargs.get("size")
        if len(mask_list) == num_rows:
            rows["labels"] = self.image_processor.preprocess_masks(mask_list, size, rows["original_sizes"])
        elif len(mask_list) == len(image_sizes):
            rows["labels"] = self.image_processor.preprocess_masks(mask_list, size, image_sizes)[row_image]
        else:
            raise ValueError(
                f"Got {len(mask_list)} masks for {num_rows} (image, expression) rows and {len(image_sizes)} "
                "images; give one mask per row or one per image")
        return rows


def _check_text_settings(max_length: int, truncation_mode: str) -> None:
    """Reject settings that cannot hold [CLS] + [SEP] or name an unknown mode."""
    if truncation_mode not in TRUNCATION_MODES:
        raise ValueError(f"truncation_mode must be one of {TRUNCATION_MODES}, got {truncation_mode!r}")
    if int(max_length) < 2:
        raise ValueError(f"max_length must be at least 2 ([CLS] and [SEP]), got {max_length}")


def _right_sides(tokenizer: Any) -> None:
    """The model reads ids padded on the right and cut at the end (the original's text contract): a tokenizer
    saved or set with a "left" padding_side or truncation_side is set back to "right", with a warning."""
    for name in ("padding_side", "truncation_side"):
        side = getattr(tokenizer, name, "right")
        if side != "right":
            warnings.warn(f"the tokenizer's {name}={side!r} is not used: LAVT reads ids padded on the right and cut "
                          f"at the end; {name} is set to 'right'", stacklevel=3)
            setattr(tokenizer, name, "right")


def pair_images_with_texts(images: Sequence[Any], texts: Sequence[Any]) -> list[tuple[Any, Any]]:
    """The (image, expression) pairs of one call: one image for every expression, or image i with expression
    i. The one pairing rule of the processor, the pipeline and lavt-predict; a ValueError for other counts."""
    if len(images) == 1:
        return [(images[0], text) for text in texts]
    if len(images) == len(texts):
        return list(zip(images, texts))
    raise ValueError(
        f"Cannot pair {len(images)} images with {len(texts)} referring expressions: give one image for all "
        "expressions, or one image per expression")


__all__ = ["LavtProcessor", "TRUNCATION_MODES"]
