# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""IoU metrics: the evaluate module and the pure functions against an independent per-sample computation."""

import evaluate
import numpy as np
import pytest
import torch

from lavt_hf.training.metrics import REFER_IOU_DIR, compute_refer_metrics, intersection_and_union


def independent_metrics(predictions: np.ndarray, truths: np.ndarray) -> dict:
    """docs/evaluation.md's definitions written out sample by sample with plain Python loops over the masks."""
    ious, total_i, total_u = [], 0, 0
    for pred, truth in zip(predictions, truths):
        i = sum(1 for p, g in zip(pred.ravel(), truth.ravel()) if p and g)
        u = sum(1 for p, g in zip(pred.ravel(), truth.ravel()) if p or g)
        ious.append(i / u if u else 0.0)
        total_i, total_u = total_i + i, total_u + u
    expected = {"overall_iou": 100 * total_i / total_u, "mean_iou": 100 * sum(ious) / len(ious)}
    for k in (0.5, 0.6, 0.7, 0.8, 0.9):
        expected[f"precision@{k}"] = 100 * sum(iou >= k for iou in ious) / len(ious)
    expected["num_samples"] = len(ious)
    return expected


@pytest.fixture
def random_masks() -> tuple[np.ndarray, np.ndarray]:
    """Random masks plus an empty prediction, an empty truth and a sample with both empty (U = 0)."""
    rng = np.random.default_rng(0)
    predictions = rng.random((12, 9, 7)) > rng.random((12, 1, 1))
    truths = rng.random((12, 9, 7)) > rng.random((12, 1, 1))
    predictions[0] = False
    truths[1] = False
    predictions[2] = truths[2] = False
    return predictions, truths


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(REFER_IOU_DIR))


def assert_metrics_equal(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_intersection_and_union_numpy_and_torch_agree(random_masks):
    predictions, truths = random_masks
    intersections, unions = intersection_and_union(predictions, truths)
    assert intersections.dtype == np.int64 and unions.dtype == np.int64 and intersections.shape == (12,)
    np.testing.assert_array_equal(intersections, (predictions & truths).sum(axis=(1, 2)))
    np.testing.assert_array_equal(unions, (predictions | truths).sum(axis=(1, 2)))
    assert unions[2] == 0 and intersections[0] == 0 and intersections[1] == 0
    torch_counts = intersection_and_union(torch.from_numpy(predictions), torch.from_numpy(truths).long() * 255)
    for got, expected in zip(torch_counts, (intersections, unions)):
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected)


def test_pure_function_equals_independent_computation(random_masks):
    predictions, truths = random_masks
    got = compute_refer_metrics(*intersection_and_union(predictions, truths))
    assert_metrics_equal(got, independent_metrics(predictions, truths))


def test_evaluate_module_equals_independent_computation(metric, random_masks):
    predictions, truths = random_masks
    intersections, unions = intersection_and_union(predictions, truths)
    for start in (0, 5):  # two batches, as an evaluation loop feeds them
        stop = start + 5 if start == 0 else None
        metric.add_batch(intersection=intersections[start:stop].tolist(), union=unions[start:stop].tolist())
    assert_metrics_equal(metric.compute(), independent_metrics(predictions, truths))


def test_iou_exactly_at_a_threshold_counts(metric):
    results = metric.compute(intersection=[1, 3, 7, 0], union=[2, 5, 10, 0])  # IoU 0.5, 0.6, 0.7 and U = 0
    assert results["precision@0.5"] == 75.0
    assert results["precision@0.6"] == 50.0
    assert results["precision@0.7"] == 25.0
    assert results["precision@0.8"] == 0.0
    assert results["mean_iou"] == pytest.approx(100 * (0.5 + 0.6 + 0.7) / 4)
    assert results["overall_iou"] == pytest.approx(100 * 11 / 17)


def test_all_unions_zero_give_zero_not_nan():
    results = compute_refer_metrics([0, 0], [0, 0])
    assert results["overall_iou"] == 0.0 and results["mean_iou"] == 0.0 and results["num_samples"] == 2


def test_shape_mismatch_and_invalid_counts_raise():
    with pytest.raises(ValueError, match="differ in shape"):
        intersection_and_union(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="differ in shape"):
        intersection_and_union(torch.zeros(2, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        intersection_and_union(np.zeros((4, 4)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="intersection <= union"):
        compute_refer_metrics([3], [2])
    with pytest.raises(ValueError, match="no samples"):
        compute_refer_metrics([], [])
    with pytest.raises(ValueError, match="unions"):
        compute_refer_metrics([1, 2], [3])
