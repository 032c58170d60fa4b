# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Referring-segmentation IoU metrics (overall IoU, mean IoU, precision@k) as an `evaluate` module.

Self-contained on purpose: `evaluate.load` copies this one file (from this folder or from a Hub Space) and
imports it on its own, so it cannot import the training package. `compute_refer_metrics` is the single copy
of the formulas; `lavt_hf.training.metrics` re-exports it for training code. The features are the per-sample
intersection and union pixel counts, not the masks: feeding whole masks through `datasets` features costs
tens of milliseconds per mask.
"""

import datasets
import evaluate
import numpy as np

PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)

_DESCRIPTION = """
IoU metrics of referring image segmentation (one binary mask per (image, expression) sample), from per-sample
intersection I = |pred AND gt| and union U = |pred OR gt| pixel counts:
overall IoU = sum(I) / sum(U); mean IoU = mean of the per-sample I / U (0 where U = 0);
precision@k = share of samples with IoU >= k for k in 0.5, 0.6, 0.7, 0.8, 0.9. All reported x100.
"""

_KWARGS_DESCRIPTION = """
Args:
    intersection (`list[int]`): per-sample count of pixels that are foreground in both prediction and truth.
    union (`list[int]`): per-sample count of pixels that are foreground in the prediction or the truth.
Returns:
    overall_iou (`float`): 100 * sum(intersection) / sum(union) (0 when every union is 0).
    mean_iou (`float`): 100 * mean of per-sample IoU, where a sample with union 0 has IoU 0.
    precision@0.5 ... precision@0.9 (`float`): 100 * share of samples with IoU >= the threshold.
    num_samples (`int`): number of samples.
Examples:
    >>> metric = evaluate.load("training/metrics/refer_iou")
    >>> metric.compute(intersection=[1, 3, 0], union=[2, 4, 0])["overall_iou"]
    66.66666666666666
"""

_CITATION = """
@inproceedings{yang2022lavt,
  title={LAVT: Language-Aware Vision Transformer for Referring Image Segmentation},
  author={Yang, Zhao and Wang, Jiaqi and Tang, Yansong and Chen, Kai and Zhao, Hengshuang and Torr, Philip H. S.},
  booktitle={CVPR},
  year={2022}
}
"""


def compute_refer_metrics(intersections, unions) -> dict:
    """Overall IoU, mean IoU and precision@k (x100) from per-sample intersection / union pixel counts.

    A sample whose union is 0 (empty prediction and empty truth) has IoU 0, as in the original evaluation.
    """
    intersections = np.asarray(intersections, dtype=np.int64).reshape(-1)
    unions = np.asarray(unions, dtype=np.int64).reshape(-1)
    if intersections.shape != unions.shape:
        raise ValueError(f"{intersections.size} intersections but {unions.size} unions")
    if intersections.size == 0:
        raise ValueError("no samples to compute IoU metrics on")
    if (intersections < 0).any() or (intersections > unions).any():
        raise ValueError("intersections must satisfy 0 <= intersection <= union for every sample")
    ious = np.divide(intersections, unions, out=np.zeros(unions.shape, dtype=np.float64), where=unions > 0)
    total_union = unions.sum()
    results = {
        "overall_iou": 100.0 * float(intersections.sum() / total_union) if total_union > 0 else 0.0,
        "mean_iou": 100.0 * float(ious.mean()),
    }
    for threshold in PRECISION_THRESHOLDS:
        results[f"precision@{threshold}"] = 100.0 * float((ious >= threshold).mean())
    results["num_samples"] = int(intersections.size)
    return results


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ReferIou(evaluate.Metric):
    """Accumulates per-sample (intersection, union) counts with `add_batch`, reduces them in `compute`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"intersection": datasets.Value("int64"), "union": datasets.Value("int64")}
            ),
            reference_urls=["https://arxiv.org/abs/2112.02244"],
        )

    def _compute(self, intersection, union) -> dict:
        return compute_refer_metrics(intersection, union)
