# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""A Gradio app for a Hugging Face Space: an image and an expression in, the overlay out.

  pip install -e ".[demo]" && python app.py            # LAVT_MODEL=<folder or Hub id> chooses the default model
"""

from __future__ import annotations

import functools
import os

from PIL import Image

import modeling_lavt  # noqa: F401  (registers the pipeline and Auto classes)
from modeling_lavt.visualization import draw_overlay

DEFAULT_MODEL = os.environ.get("LAVT_MODEL", "outputs/demo/run/model")


@functools.lru_cache(maxsize=2)
def load_segmenter(model: str):
    """One pipeline per model, kept between requests."""
    from transformers import pipeline

    return pipeline("referring-image-segmentation", model=model)


def predict(image: Image.Image, text: str, model: str = DEFAULT_MODEL) -> tuple[Image.Image, float]:
    """The overlay of the referred object on the image, and the model's confidence score."""
    if image is None:
        raise ValueError("upload an image first")
    if not text or not text.strip():
        raise ValueError("type an expression, e.g. 'the red circle on the left'")
    result = load_segmenter(model.strip() or DEFAULT_MODEL)(image, text=text)
    return draw_overlay(image, result["mask"], text), float(result["score"])


def build_interface():
    import gradio as gr

    return gr.Interface(
        fn=predict,
        inputs=[gr.Image(type="pil", label="image"), gr.Textbox(label="expression", value="the red circle"),
                gr.Textbox(label="model (folder or Hub id)", value=DEFAULT_MODEL)],
        outputs=[gr.Image(type="pil", label="overlay"), gr.Number(label="score")],
        title="LAVT referring image segmentation",
        description="Segments the one object the expression refers to.",
    )


if __name__ == "__main__":
    build_interface().launch()
