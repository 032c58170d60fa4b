# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The `refer_iou` evaluate module and the one copy of the metric formulas. Self-contained: `evaluate.load`
imports this file alone. It takes per-sample counts (masks through `datasets` features: tens of ms each)."""

import datasets
import evaluate
import numpy as np

PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
# `evaluate.load(..., config_name=GENERALIZED_CONFIG)` takes each sample's no-target flags too.
GENERALIZED_CONFIG = "generalized"

_DESCRIPTION = """
IoU metrics of referring image segmentation (one binary mask per (image, expression) sample), from per-sample
intersection I = |pred AND gt| and union U = |pred OR gt| pixel counts:
overall IoU = sum(I) / sum(U) (0 when it is 0 / 0); mean IoU = mean of the per-sample I / U (0 where U = 0);
precision@k = share of samples with IoU >= k for k in 0.5, 0.6, 0.7, 0.8, 0.9. All reported x100.

Given each sample's `no_target` (its expression names nothing: empty ground truth) and `predicted_no_target`
(the model's separate decision), the generalized metrics follow the GRES evaluator: a sample scores 1 for a
no-target sample predicted no-target, 0 for a missed one or a targeted sample predicted no-target, else I / U;
gIoU = mean score; cIoU = sum(I) / sum(U) without the no-target samples predicted no-target (a missed one adds
its predicted area to U) and with I = 0 for a targeted sample predicted no-target; N-acc = share of no-target
samples predicted no-target; T-acc = share of targeted samples not predicted no-target (both 0 without
no-target samples); generalized precision@k = share of targeted samples scoring >= k. All reported x100.
"""

_KWARGS_DESCRIPTION = """
Args:
    intersection (`list[int]`): per-sample |pred AND gt| pixel count.
    union (`list[int]`): per-sample |pred OR gt| pixel count.
    no_target, predicted_no_target (`list[bool]`, configuration "generalized" only): per sample, whether the
        expression names no object (empty ground truth), and the model's separate no-target decision.
Returns:
    overall_iou, mean_iou, precision@0.5 ... precision@0.9 (`float`, x100, as described), num_samples (`int`);
    in the "generalized" configuration also giou, ciou, n_acc, t_acc, generalized_precision@0.5 ... @0.9
    (`float`, x100) and num_no_target (`int`).
Examples:
    >>> metric = evaluate.load("training/metrics/refer_iou")
    >>> metric.compute(intersection=[1, 3, 0], union=[2, 4, 0])["overall_iou"]
    66.66666666666666
    >>> generalized = evaluate.load("training/metrics/refer_iou", config_name="generalized")
    >>> generalized.compute(intersection=[3, 0], union=[4, 0], no_target=[False, True],
    ...                     predicted_no_target=[False, True])["giou"]
    87.5
"""

_CITATION = """
@inproceedings{yang2022lavt,
  title={LAVT: Language-Aware Vision Transformer for Referring Image Segmentation},
  author={Yang, Zhao and Wang, Jiaqi and Tang, Yansong and Chen, Kai and Zhao, Hengshuang and Torr, Philip H. S.},
  booktitle={CVPR},
  year={2022}
}
"""


def per_sample_iou(intersections: np.ndarray, unions: np.ndarray) -> np.ndarray:
    """I / U per sample, 0 where U = 0 (an empty prediction of an empty mask), as the original evaluation."""
    return np.divide(intersections, unions, out=np.zeros(np.shape(unions)), where=unions > 0)


def _percent(part, whole) -> float:
    return 100.0 * float(part / whole) if whole > 0 else 0.0


def _checked_counts(intersections, unions) -> tuple[np.ndarray, np.ndarray]:
    intersections = np.asarray(intersections, dtype=np.int64).reshape(-1)
    unions = np.asarray(unions, dtype=np.int64).reshape(-1)
    if intersections.shape != unions.shape:
        raise ValueError(f"{intersections.size} intersections but {unions.size} unions")
    if intersections.size == 0:
        raise ValueError("no samples to compute IoU metrics on")
    if (intersections < 0).any() or (intersections > unions).any():
        raise ValueError("intersections must satisfy 0 <= intersection <= union for every sample")
    return intersections, unions


def compute_refer_metrics(intersections, unions) -> dict:
    """Overall IoU, mean IoU and precision@k (x100) from per-sample intersection / union pixel counts. Raises
    ValueError when the lengths differ, there are no samples, or counts are outside 0 <= I <= U."""
    intersections, unions = _checked_counts(intersections, unions)
    ious = per_sample_iou(intersections, unions)
    return {"overall_iou": _percent(intersections.sum(), unions.sum()),
            "mean_iou": 100.0 * float(ious.mean()),
            **{f"precision@{k}": 100.0 * float((ious >= k).mean()) for k in PRECISION_THRESHOLDS},
            "num_samples": int(intersections.size)}


def compute_generalized_metrics(intersections, unions, no_target, predicted_no_target) -> dict:
    """gIoU, cIoU, N-acc, T-acc and generalized precision@k (x100) by the GRES evaluator's rules, from the
    per-sample counts of the argmax mask (a no-target sample's union is its predicted area), the `no_target`
    flags (the expression names no object) and the model's separate `predicted_no_target` decisions. Raises
    ValueError as `compute_refer_metrics` does, and for other flag lengths or a no-target sample with I > 0."""
    intersections, unions = _checked_counts(intersections, unions)
    no_target = np.asarray(no_target, dtype=bool).reshape(-1)
    predicted = np.asarray(predicted_no_target, dtype=bool).reshape(-1)
    if not intersections.size == no_target.size == predicted.size:
        raise ValueError(f"{intersections.size} samples but {no_target.size} no_target and {predicted.size} "
                         "predicted_no_target flags")
    if (intersections[no_target] > 0).any():
        raise ValueError("a no-target sample has a nonzero intersection: its ground truth must be empty")
    targeted = ~no_target
    scores = np.where(no_target, predicted, np.where(predicted, 0.0, per_sample_iou(intersections, unions)))
    return {
        "giou": 100.0 * float(scores.mean()),
        "ciou": _percent(intersections[targeted & ~predicted].sum(), unions[~(no_target & predicted)].sum()),
        "n_acc": _percent(predicted[no_target].sum(), no_target.sum()),
        # As the evaluator: 0 without no-target samples.
        "t_acc": _percent((~predicted[targeted]).sum(), targeted.sum()) if no_target.any() else 0.0,
        **{f"generalized_precision@{k}": _percent((scores[targeted] >= k).sum(), targeted.sum())
           for k in PRECISION_THRESHOLDS},
        "num_no_target": int(no_target.sum()),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ReferIou(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "intersection": datasets.Value("int64"), "union": datasets.Value("int64"),
                **({"no_target": datasets.Value("bool"), "predicted_no_target": datasets.Value("bool")}
                   if self.config_name == GENERALIZED_CONFIG else {})}),
            reference_urls=["https://arxiv.org/abs/2112.02244"],
        )

    def _compute(self, intersection, union, no_target=None, predicted_no_target=None) -> dict:
        results = compute_refer_metrics(intersection, union)
        if no_target is not None:
            results.update(compute_generalized_metrics(intersection, union, no_target, predicted_no_target))
        return results
