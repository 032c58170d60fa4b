# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Evaluation metrics of referring segmentation for training code: the formulas of the `evaluate` module
`refer_iou/refer_iou.py`, re-exported, and `intersection_and_union`, the per-sample counts they take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .refer_iou.refer_iou import (
    GENERALIZED_CONFIG,
    compute_generalized_metrics,
    compute_refer_metrics,
    per_sample_iou,
)

# Pass to `evaluate.load` (works offline); the folder is also what gets pushed to a Hub Space.
REFER_IOU_DIR = Path(__file__).resolve().parent / "refer_iou"


def intersection_and_union(
    prediction: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample |pred AND gt| and |pred OR gt| of batched (B, H, W) masks (nonzero is foreground), as two
    int64 arrays of length B, counted where the tensors live (e.g. the GPU). Raises ValueError for shapes that
    differ or are not (B, H, W)."""
    if tuple(prediction.shape) != tuple(target.shape):
        raise ValueError(f"prediction and ground truth masks differ in shape: {tuple(prediction.shape)} vs "
                         f"{tuple(target.shape)}")
    if len(prediction.shape) != 3:
        raise ValueError(f"expected batched masks of shape (B, H, W), got {tuple(prediction.shape)}")
    pred = torch.as_tensor(prediction).bool()
    truth = torch.as_tensor(target, device=pred.device).bool()
    counts = torch.stack([(pred & truth).flatten(1).sum(1), (pred | truth).flatten(1).sum(1)])
    intersections, unions = counts.cpu().numpy().astype(np.int64)
    return intersections, unions


__all__ = ["GENERALIZED_CONFIG", "REFER_IOU_DIR", "compute_generalized_metrics", "compute_refer_metrics",
           "intersection_and_union", "per_sample_iou"]
