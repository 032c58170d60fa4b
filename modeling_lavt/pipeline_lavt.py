# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The `referring-image-segmentation` pipeline: (image, referring expression) -> mask at the image's size."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY, Pipeline

from .image_processing_lavt import ImageLike
from .processing_lavt import LavtProcessor, pair_images_with_texts
from .validation import (
    check_probability_threshold,
    check_referring_expressions,
    check_text_argument,
    check_tokenizer_fits,
    load_image_url,
)

TASK = "referring-image-segmentation"


class ReferringImageSegmentationPipeline(Pipeline):
    """
    Segments the object a sentence refers to, with a LAVT model.

    ```python
    >>> from transformers import pipeline
    >>> import modeling_lavt  # registers the task
    >>> segmenter = pipeline("referring-image-segmentation", model="path/to/lavt")
    >>> result = segmenter("photo.jpg", text="the man on the left")
    >>> result["mask"].size == Image.open("photo.jpg").size, result["score"]
    ```

    Inputs: `pipe(image, text="...")`, `pipe(image, text=[...])` (one image, several expressions),
    `pipe([image, ...], text=[...])` (pairs), `pipe({"image": ..., "text": ...})` or a list / generator / dataset
    of such dicts. An image is a local path, an http(s) URL, a PIL image, a NumPy array or a tensor.

    Each result is a dict: `label`, the expression; `mask`, a PIL image of mode "L" (255 = the referred object,
    0 elsewhere) of the original (EXIF-upright) image size; `score`, the mean foreground probability over the
    mask (0 when empty); `box`, `{"xmin", "ymin", "xmax", "ymax"}`, the mask's first and last pixel column and
    row (inclusive) in the image, `None` when the mask is empty; `presence_score`, how sure the model is that the
    expression names something in the image (the largest foreground probability, in [0, 1]); `no_target`,
    `True` when the mask is empty. With `presence_threshold=t`, a presence score below `t` gives the answer "no
    target" (an empty mask, `no_target: True`). With `split_parts=True` also `parts`: one
    `{"score", "box", "mask"}` per connected part of the mask, highest score first.
    With `return_probabilities=True` also `probabilities`, the foreground probability map as float32 NumPy;
    with `return_word_maps=True` also `word_maps`: one dict per real token of the expression (padding left out),
    `{"token": str, "special": bool, "map": float32 NumPy (height, width)}`, where the map is the model's
    pixel-word attention on that token at the original image size (all four stages averaged; see
    `LavtImageProcessor.post_process_word_attention`). At every pixel the maps sum to 1 over the tokens.

    ```python
    >>> result = segmenter("photo.jpg", text="the red circle on the left", return_word_maps=True)
    >>> {entry["token"]: entry["map"].max() for entry in result["word_maps"]}
    ```

    With `return_list=True` each result is instead a list in the shape of transformers'
    `promptable-concept-segmentation` output: one `{"score", "label", "box", "mask"}` per answer (the mask, or
    each of its parts with `split_parts=True`), empty for "no target"; `probabilities` and `word_maps`, when
    asked for, come with every entry.

    ```python
    >>> segmenter("photo.jpg", text="the two dogs", presence_threshold=0.5, split_parts=True, return_list=True)
    [{'score': 0.91, 'label': 'the two dogs', 'box': {'xmin': 12, ...}, 'mask': <PIL.Image ...>}, {...}]
    ```

    Call options: `threshold` (foreground where the probability >= threshold instead of the argmax),
    `presence_threshold`, `split_parts`, `return_list`, `return_probabilities`, `return_word_maps`, `timeout`
    (seconds, for URLs), `batch_size`.
    """

    _load_processor = None
    _load_image_processor = None
    _load_tokenizer = None
    _load_feature_extractor = False
    _load_video_processor = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.processor is None:
            if self.tokenizer is None or self.image_processor is None:
                raise ValueError(
                    f"The {TASK} pipeline needs a LavtProcessor, or a tokenizer and an image processor"
                )
            max_length = getattr(self.model.config, "max_text_length", 20)
            self.processor = LavtProcessor(self.image_processor, self.tokenizer, max_length=max_length)
        elif type(self.processor).__name__ != LavtProcessor.__name__:  # remote code may load a second copy
            raise ValueError(
                f"The {TASK} pipeline needs a LavtProcessor, got {type(self.processor).__name__}"
            )
        self.image_processor = self.processor.image_processor
        self.tokenizer = self.processor.tokenizer
        check_tokenizer_fits(self.tokenizer, self.model.config)

    def __call__(
        self,
        image: ImageLike | dict | Iterable[Any],
        text: str | list[str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | list[dict[str, Any]] | Iterable[dict[str, Any]]:
        """Segment `text` in `image`; see the class docstring for the accepted forms."""
        if text is None:
            items = image if isinstance(image, list | tuple) else []
            texts = [item.get("text") for item in items if isinstance(item, dict)]
            if texts and len(texts) == len(items) and all(isinstance(expression, str) for expression in texts):
                check_referring_expressions(texts, self.tokenizer)  # indices of the list, not of one row
            return super().__call__(image, **kwargs)
        check_text_argument(text)
        texts = [text] if isinstance(text, str) else list(text)
        check_referring_expressions(texts, self.tokenizer)  # indices of the list, not of one row
        images = list(image) if isinstance(image, list | tuple) else [image]
        pairs = [{"image": img, "text": expression} for img, expression in pair_images_with_texts(images, texts)]
        if isinstance(text, str) and not isinstance(image, list | tuple):
            return super().__call__(pairs[0], **kwargs)
        return super().__call__(pairs, **kwargs)

    def _sanitize_parameters(
        self,
        threshold: float | None = None,
        presence_threshold: float | None = None,
        split_parts: bool | None = None,
        return_list: bool | None = None,
        return_probabilities: bool | None = None,
        return_word_maps: bool | None = None,
        timeout: float | None = None,
        **unknown: Any,
    ) -> tuple[dict, dict, dict]:
        if unknown:
            raise TypeError(f"Unknown arguments for the {TASK} pipeline: {sorted(unknown)}")
        check_probability_threshold("threshold", threshold)
        check_probability_threshold("presence_threshold", presence_threshold)
        preprocess_params = {} if timeout is None else {"timeout": timeout}
        options = {"threshold": threshold, "presence_threshold": presence_threshold, "split_parts": split_parts,
                   "return_list": return_list, "return_probabilities": return_probabilities}
        postprocess_params: dict[str, Any] = {key: value for key, value in options.items() if value is not None}
        forward_params = {}
        if return_word_maps is not None:
            forward_params["return_word_maps"] = postprocess_params["return_word_maps"] = return_word_maps
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, inputs: dict[str, Any], timeout: float | None = None) -> dict[str, torch.Tensor]:
        if not isinstance(inputs, dict) or not {"image", "text"} <= set(inputs):
            raise ValueError(
                f"Each input must be a dict with 'image' and 'text', got {type(inputs).__name__}"
            )
        if not isinstance(inputs["text"], str):
            raise ValueError(
                "Each input has one referring expression (a string); pass a list of inputs for more"
            )
        image = inputs["image"]
        if isinstance(image, str) and image.startswith(("http://", "https://")):
            image = load_image_url(image, timeout=timeout)
        elif isinstance(image, os.PathLike):
            image = os.fspath(image)
        encoded = self.processor(images=image, text=inputs["text"], return_tensors="pt")
        return {
            "label": inputs["text"],
            "pixel_values": encoded["pixel_values"].to(self.dtype),
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            # Travels with the sample (and through batching) so that postprocess knows the original size.
            "target_size": torch.tensor(encoded["original_sizes"], dtype=torch.long),
        }

    def _forward(self, model_inputs: dict[str, torch.Tensor], return_word_maps: bool = False) -> dict[str, Any]:
        target_size, label = model_inputs.pop("target_size"), model_inputs.pop("label")
        outputs = self.model(**model_inputs, output_attentions=return_word_maps)
        result = {"logits": outputs.logits, "target_size": target_size, "label": label}
        if return_word_maps:  # "attentions": the key under which batched pipelines split a tuple per sample
            result.update(attentions=outputs.attentions, input_ids=model_inputs["input_ids"],
                          attention_mask=model_inputs["attention_mask"])
        return result

    def postprocess(
        self,
        model_outputs: dict[str, Any],
        threshold: float | None = None,
        presence_threshold: float | None = None,
        split_parts: bool = False,
        return_list: bool = False,
        return_probabilities: bool = False,
        return_word_maps: bool = False,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        result = self.image_processor.post_process_referring_segmentation(
            model_outputs["logits"], target_sizes=model_outputs["target_size"].tolist(), threshold=threshold,
            presence_threshold=presence_threshold, split_parts=split_parts,
        )[0]
        label = model_outputs["label"]
        extras: dict[str, Any] = {}
        if return_probabilities:
            extras["probabilities"] = result["probabilities"].numpy()
        if return_word_maps:
            words = self.processor.post_process_word_attention(
                model_outputs["attentions"], model_outputs["input_ids"], model_outputs["attention_mask"],
                target_sizes=model_outputs["target_size"].tolist(),
            )[0]
            extras["word_maps"] = [
                {"token": token, "special": special, "map": word_map.numpy()}
                for token, special, padding, word_map in zip(words["tokens"], words["special"], words["padding"],
                                                              words["maps"])
                if not padding
            ]
        if return_list:
            answers = result["parts"] if split_parts else [] if result["no_target"] else [result]
            return [{"score": answer["score"], "label": label, "box": answer["box"],
                     "mask": _mask_image(answer["mask"]), **extras} for answer in answers]
        output: dict[str, Any] = {
            "label": label, "score": result["score"], "box": result["box"], "mask": _mask_image(result["mask"]),
            "presence_score": result["presence_score"], "no_target": result["no_target"],
        }
        if split_parts:
            output["parts"] = [{"score": part["score"], "box": part["box"], "mask": _mask_image(part["mask"])}
                               for part in result["parts"]]
        return {**output, **extras}


def _mask_image(mask: torch.Tensor) -> Image.Image:
    """(h, w) 0 / 1 mask -> PIL image of mode "L", 255 on the mask."""
    return Image.fromarray((mask.numpy() * 255).astype(np.uint8))


def register_pipeline() -> None:
    """Make `pipeline("referring-image-segmentation", model=...)` available (idempotent)."""
    registered = PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl")
    if registered is ReferringImageSegmentationPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=ReferringImageSegmentationPipeline, pt_model=AutoModel, type="multimodal"
    )


__all__ = ["ReferringImageSegmentationPipeline", "TASK", "register_pipeline"]
