# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Weights besides `from_pretrained`: original LAVT checkpoints and a pretrained Swin and text encoder."""
