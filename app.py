# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""A Gradio app for a Hugging Face Space: an image and an expression in; the overlay, the score and the word maps
(where each word of the expression looks) out. A few synthetic examples (docs/examples) are ready to click.

  pip install -c requirements.lock ".[demo]" && python app.py
  LAVT_MODEL=<folder or Hub id> python app.py     # another default model
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import gradio as gr
from PIL import Image
from transformers import pipeline

import modeling_lavt  # noqa: F401  (registers the pipeline and Auto classes)
from modeling_lavt.sharing.visualization import draw_overlay, draw_word_maps
from modeling_lavt.validation import check_model_location

DEFAULT_MODEL = os.environ.get("LAVT_MODEL", "outputs/demo/run/model")
EXAMPLES_DIR = Path(__file__).resolve().parent / "docs" / "examples"
# Images of the synthetic shapes task the demo model learns (training.data.synthetic, val split), with expressions.
EXAMPLES = [("shapes_1.jpg", "the red circle"), ("shapes_1.jpg", "the shape on the left"),
            ("shapes_2.jpg", "the big blue circle"), ("shapes_3.jpg", "the big yellow triangle")]


@functools.lru_cache(maxsize=2)
def load_segmenter(model: str):
    """One pipeline per model, kept between requests."""
    check_model_location(model)  # a missing folder named as such, not as a malformed Hub id
    return pipeline("referring-image-segmentation", model=model)


def user_error(message: str) -> gr.Error:
    """Shown on the page (other exceptions show a bare "Error"), with no traceback in the server log."""
    return gr.Error(message, print_exception=False)


def predict(image: Image.Image, text: str, model: str = DEFAULT_MODEL) -> tuple[Image.Image, float, Image.Image]:
    """The overlay of the referred object, the score (3 decimals) and the word maps (the overlay, then a
    labelled heatmap of the pixel-word attention per token). Raises gr.Error naming a missing image, a blank
    expression, a model that cannot be loaded, or an input the pipeline refuses."""
    if image is None:
        raise user_error("Upload an image first.")
    if not text or not text.strip():
        raise user_error("Type an expression, e.g. 'the red circle on the left'.")
    model = model.strip() or DEFAULT_MODEL
    try:
        segmenter = load_segmenter(model)
    except (OSError, ValueError) as error:
        raise user_error(f"Cannot load the model {model!r}: {error}") from error
    try:
        result = segmenter(image, text=text, return_word_maps=True)
    except ValueError as error:  # the pipeline's checks of its input
        raise user_error(str(error)) from error
    word_maps = draw_word_maps(image, result["mask"], text, result["word_maps"])
    return draw_overlay(image, result["mask"], text), round(float(result["score"]), 3), word_maps


def build_interface() -> gr.Interface:
    return gr.Interface(
        fn=predict,
        inputs=[gr.Image(type="pil", label="image"), gr.Textbox(label="expression", value="the red circle"),
                gr.Textbox(label="model (folder or Hub id)", value=DEFAULT_MODEL)],
        outputs=[gr.Image(type="pil", label="overlay"), gr.Number(label="score"),
                 gr.Image(type="pil", label="word maps: where each word looks")],
        # Image and expression only: the model box keeps its value (a model path would leak into a public page).
        examples=[[str(EXAMPLES_DIR / name), text] for name, text in EXAMPLES],
        flagging_mode="never",  # a public Space would otherwise keep its visitors' images on disk
        title="LAVT referring image segmentation",
        description="Segments the one object the expression refers to, and shows where each word of the expression "
                    "looks (the model's pixel-word attention; brighter = a larger share of the pixel's attention).",
    )


if __name__ == "__main__":
    build_interface().launch()
