# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Referring-segmentation IoU metrics (overall IoU, mean IoU, precision@k) as an `evaluate` module, and the
generalized ones (gIoU, cIoU, N-acc, T-acc, precision@k over targeted samples) of expressions that may name
several objects or none (gRefCOCO).

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
# `evaluate.load(..., config_name=GENERALIZED_CONFIG)` takes each sample's no-target flags too.
GENERALIZED_CONFIG = "generalized"
_GENERALIZED_FEATURES = {"no_target": datasets.Value("bool"), "predicted_no_target": datasets.Value("bool")}

_DESCRIPTION = """
IoU metrics of referring image segmentation (one binary mask per (image, expression) sample), from per-sample
intersection I = |pred AND gt| and union U = |pred OR gt| pixel counts:
overall IoU = sum(I) / sum(U); mean IoU = mean of the per-sample I / U (0 where U = 0);
precision@k = share of samples with IoU >= k for k in 0.5, 0.6, 0.7, 0.8, 0.9. All reported x100.

Given each sample's `no_target` (its expression names nothing: empty ground truth) and `predicted_no_target`
(the model's separate no-target decision), the generalized metrics follow the GRES evaluator's rules:
a sample's score is 1 for a no-target sample predicted no-target, 0 for one that is not, 0 for a targeted
sample predicted no-target and I / U otherwise; gIoU = mean score; cIoU = sum(I) / sum(U) where a no-target
sample predicted no-target adds nothing, a missed one its predicted area to U, and a targeted sample predicted
no-target I = 0 and its U; N-acc = share of no-target samples predicted no-target; T-acc = share of targeted
samples not predicted no-target (both 0 when no sample is no-target); generalized precision@k = share of
targeted samples whose score >= k. All reported x100.
"""

_KWARGS_DESCRIPTION = """
Args:
    intersection (`list[int]`): per-sample count of pixels that are foreground in both prediction and truth.
    union (`list[int]`): per-sample count of pixels that are foreground in the prediction or the truth.
    no_target (`list[bool]`, configuration "generalized" only): per-sample: the expression names no object
        (empty ground truth).
    predicted_no_target (`list[bool]`, configuration "generalized" only): per-sample: the model's separate
        no-target decision.
Returns:
    overall_iou (`float`): 100 * sum(intersection) / sum(union) (0 when every union is 0).
    mean_iou (`float`): 100 * mean of per-sample IoU, where a sample with union 0 has IoU 0.
    precision@0.5 ... precision@0.9 (`float`): 100 * share of samples with IoU >= the threshold.
    num_samples (`int`): number of samples.
    In the "generalized" configuration also: giou, ciou, n_acc, t_acc, generalized_precision@0.5 ... @0.9 (`float`, x100) as described.
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


def compute_generalized_metrics(intersections, unions, no_target, predicted_no_target) -> dict:
    """gIoU, cIoU, N-acc, T-acc and generalized precision@k (x100) by the GRES evaluator's rules.

    Args:
        intersections, unions: per-sample pixel counts of the predicted mask (the argmax) and the ground truth,
            empty for a no-target sample (so its union is the predicted area).
        no_target: per-sample bools, the expression names no object.
        predicted_no_target: per-sample bools, the model's no-target decision (separate from the mask).
    Raises:
        ValueError: lengths differ, no samples, counts outside 0 <= I <= U, or a no-target sample with I > 0.
    """
    compute_refer_metrics(intersections, unions)  # the same checks of the counts
    intersections = np.asarray(intersections, dtype=np.int64).reshape(-1)
    unions = np.asarray(unions, dtype=np.int64).reshape(-1)
    no_target = np.asarray(no_target, dtype=bool).reshape(-1)
    predicted = np.asarray(predicted_no_target, dtype=bool).reshape(-1)
    if not intersections.size == no_target.size == predicted.size:
        raise ValueError(f"{intersections.size} samples but {no_target.size} no_target and {predicted.size} "
                         "predicted_no_target flags")
    if (intersections[no_target] > 0).any():
        raise ValueError("a no-target sample has a nonzero intersection: its ground truth must be empty")
    targeted = ~no_target
    ious = np.divide(intersections, unions, out=np.zeros(unions.shape, dtype=np.float64), where=unions > 0)
    scores = np.where(no_target, predicted.astype(np.float64), np.where(predicted, 0.0, ious))
    counted_i = np.where(targeted & ~predicted, intersections, 0)
    counted_u = np.where(no_target & predicted, 0, unions)
    total_union = counted_u.sum()
    has_no_target = bool(no_target.any())
    results = {
        "giou": 100.0 * float(scores.mean()),
        "ciou": 100.0 * float(counted_i.sum() / total_union) if total_union > 0 else 0.0,
        "n_acc": 100.0 * float(predicted[no_target].mean()) if has_no_target else 0.0,
        "t_acc": 100.0 * float((~predicted[targeted]).mean()) if has_no_target and targeted.any() else 0.0,
    }
    for threshold in PRECISION_THRESHOLDS:
        results[f"generalized_precision@{threshold}"] = (
            100.0 * float((scores[targeted] >= threshold).mean()) if targeted.any() else 0.0)
    results["num_no_target"] = int(no_target.sum())
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
                {"intersection": datasets.Value("int64"), "union": datasets.Value("int64"),
                 **(_GENERALIZED_FEATURES if self.config_name == GENERALIZED_CONFIG else {})}
            ),
            reference_urls=["https://arxiv.org/abs/2112.02244"],
        )

    def _compute(self, intersection, union, no_target=None, predicted_no_target=None) -> dict:
        results = compute_refer_metrics(intersection, union)
        if no_target is not None:
            results.update(compute_generalized_metrics(intersection, union, no_target, predicted_no_target))
        return results
