# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""LAVT's one upsampling rule, bilinear with `align_corners=True` (docs/model.md, "Decoder"): the decoder's
coarse-to-fine steps, the logits for the loss, the post-processed masks and the evaluation's masks all use it,
so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def upsample_logits(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, *size), bilinear with `align_corners=True` as the original; returned unchanged
    (the same tensor) when it already has that size."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=True)
