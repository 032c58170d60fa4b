# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Entry point of the metric's Hub Space (the layout `evaluate-cli create` generates)."""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget

launch_gradio_widget(evaluate.load(str(Path(__file__).resolve().parent / "refer_iou.py")))
