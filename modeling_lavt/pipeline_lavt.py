# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The `referring-image-segmentation` pipeline: (image, referring expression) -> mask at the image's size."""

from __future__ import annotations

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
    Segments the object a sentence refers to, with a LAVT model (docs/presence.md, "API").

    ```python
    >>> import modeling_lavt  # registers the task
    >>> segmenter = transformers.pipeline("referring-image-segmentation", model="path/to/lavt")
    >>> segmenter("photo.jpg", text="the two dogs", presence_threshold=0.5, split_parts=True)
    {'label': 'the two dogs', 'score': 0.91, 'box': {'xmin': 12, ...}, 'mask': <PIL.Image ...>, ...}
    ```

    Inputs: `pipe(image, text="...")`, `pipe(image, text=[...])` (one image, several expressions),
    `pipe([image, ...], text=[...])` (pairs), `pipe({"image": ..., "text": ...})` or a list / generator /
    dataset of such dicts. An image is a local path, an http(s) URL, a PIL image, a NumPy array or a tensor.

    A result is a dict: `label` (the expression), `mask` (a PIL image of mode "L", 255 on the object, of the
    EXIF-upright image's size), and `score`, `box` (image pixels), `presence_score`, `no_target` and `parts`
    (with `split_parts=True`) as post-processing gives them. With `return_list=True`, a list as transformers'
    `promptable-concept-segmentation` gives: one `{"score", "label", "box", "mask"}` per answer (the mask, or
    each part), empty for "no target". `return_probabilities=True` adds `probabilities` (float32 NumPy
    (h, w)), `return_word_maps=True` `word_maps`: one `{"token", "special", "map"}` per real token, the map
    float32 NumPy (h, w) (docs/usage.md, "Word maps").

    Call options: `threshold`, `presence_threshold`, `split_parts`, `return_list`, `return_probabilities`,
    `return_word_maps`, `timeout` (seconds, for URLs), `batch_size`.
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
                raise ValueError(f"The {TASK} pipeline needs a LavtProcessor, or a tokenizer and an image "
                                 "processor")
            max_length = getattr(self.model.config, "max_text_length", 20)
            self.processor = LavtProcessor(self.image_processor, self.tokenizer, max_length=max_length)
        elif type(self.processor).__name__ != LavtProcessor.__name__:  # remote code may load a second copy
            raise ValueError(f"The {TASK} pipeline needs a LavtProcessor, got "
                             f"{type(self.processor).__name__}")
        self.image_processor = self.processor.image_processor
        self.tokenizer = self.processor.tokenizer
        check_tokenizer_fits(self.tokenizer, self.model.config)

    def __call__(self, image: ImageLike | dict | Iterable[Any], text: str | list[str] | None = None,
                 **kwargs: Any) -> dict[str, Any] | list[dict[str, Any]] | Iterable[dict[str, Any]]:
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
        single = isinstance(text, str) and not isinstance(image, list | tuple)
        return super().__call__(pairs[0] if single else pairs, **kwargs)

    def _sanitize_parameters(self, threshold: float | None = None, presence_threshold: float | None = None,
                             split_parts: bool | None = None, return_list: bool | None = None,
                             return_probabilities: bool | None = None, return_word_maps: bool | None = None,
                             timeout: float | None = None, **unknown: Any) -> tuple[dict, dict, dict]:
        if unknown:
            raise TypeError(f"Unknown arguments for the {TASK} pipeline: {sorted(unknown)}")
        check_probability_threshold("threshold", threshold)
        check_probability_threshold("presence_threshold", presence_threshold)
        preprocess_params = {} if timeout is None else {"timeout": timeout}
        forward_params = {} if return_word_maps is None else {"return_word_maps": return_word_maps}
        options = {"threshold": threshold, "presence_threshold": presence_threshold, "split_parts": split_parts,
                   "return_list": return_list, "return_probabilities": return_probabilities, **forward_params}
        postprocess_params = {key: value for key, value in options.items() if value is not None}
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, inputs: dict[str, Any], timeout: float | None = None) -> dict[str, torch.Tensor]:
        if not isinstance(inputs, dict) or not {"image", "text"} <= set(inputs):
            raise ValueError(f"Each input must be a dict with 'image' and 'text', got "
                             f"{type(inputs).__name__}")
        if not isinstance(inputs["text"], str):
            raise ValueError("Each input has one referring expression (a string); pass a list of inputs "
                             "for more")
        image = inputs["image"]
        if isinstance(image, str) and image.startswith(("http://", "https://")):
            image = load_image_url(image, timeout=timeout)
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

    def postprocess(self, model_outputs: dict[str, Any], threshold: float | None = None,
                    presence_threshold: float | None = None, split_parts: bool = False,
                    return_list: bool = False, return_probabilities: bool = False,
                    return_word_maps: bool = False) -> dict[str, Any] | list[dict[str, Any]]:
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
            return [{"label": label, **_answer(answer), **extras} for answer in answers]
        output = {"label": label, **_answer(result), "presence_score": result["presence_score"],
                  "no_target": result["no_target"], **extras}
        if split_parts:
            output["parts"] = [_answer(part) for part in result["parts"]]
        return output


def _answer(result: dict[str, Any]) -> dict[str, Any]:
    """The `score`, `box` and `mask` of a post-processed mask or part, the mask as a PIL image of mode "L"."""
    return {"score": result["score"], "box": result["box"],
            "mask": Image.fromarray((result["mask"].numpy() * 255).astype(np.uint8))}

def register_pipeline() -> None:
    """Make `pipeline("referring-image-segmentation", model=...)` available (idempotent)."""
    registered = PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl")
    if registered is ReferringImageSegmentationPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=ReferringImageSegmentationPipeline,
                                        pt_model=AutoModel, type="multimodal")


__all__ = ["ReferringImageSegmentationPipeline", "TASK", "register_pipeline"]
