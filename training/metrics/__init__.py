# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Evaluation metrics of referring segmentation for training code.

`compute_refer_metrics` and `compute_generalized_metrics` live in the self-contained `evaluate` module script
`refer_iou/refer_iou.py` (the one copy of the formulas, also what `evaluate.load(REFER_IOU_DIR)` runs) and are
re-exported here;
`intersection_and_union` turns batched masks into the per-sample counts that both consume.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .refer_iou.refer_iou import (
    GENERALIZED_CONFIG,
    PRECISION_THRESHOLDS,
    compute_generalized_metrics,
    compute_refer_metrics,
)

# Pass to `evaluate.load` (works offline); the folder is also what gets pushed to a Hub Space.
REFER_IOU_DIR = Path(__file__).resolve().parent / "refer_iou"


def intersection_and_union(
    prediction: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample |pred AND gt| and |pred OR gt| of batched (B, H, W) masks, as two int64 arrays of length B.

    Nonzero means foreground. Torch tensors are reduced where they live (e.g. on the GPU) and only the 2 * B
    counts are copied back, which is what makes evaluating at full resolution cheap.
    """
    if tuple(prediction.shape) != tuple(target.shape):
        raise ValueError(
            f"prediction and ground truth masks differ in shape: {tuple(prediction.shape)} vs {tuple(target.shape)}"
        )
    if len(prediction.shape) != 3:
        raise ValueError(f"expected batched masks of shape (B, H, W), got {tuple(prediction.shape)}")
    if isinstance(prediction, torch.Tensor) or isinstance(target, torch.Tensor):
        pred = torch.as_tensor(prediction).bool()
        truth = torch.as_tensor(target, device=pred.device).bool()
        counts = torch.stack([(pred & truth).flatten(1).sum(1), (pred | truth).flatten(1).sum(1)])
        intersections, unions = counts.cpu().numpy().astype(np.int64)
        return intersections, unions
    pred = np.asarray(prediction).astype(bool)
    truth = np.asarray(target).astype(bool)
    intersections = (pred & truth).reshape(len(pred), -1).sum(axis=1, dtype=np.int64)
    unions = (pred | truth).reshape(len(pred), -1).sum(axis=1, dtype=np.int64)
    return intersections, unions


__all__ = ["GENERALIZED_CONFIG", "PRECISION_THRESHOLDS", "REFER_IOU_DIR", "compute_generalized_metrics",
           "compute_refer_metrics", "intersection_and_union"]
