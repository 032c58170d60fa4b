# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Run-comparison statistics: agreement with scipy, degenerate cases, bootstrap determinism and coverage."""

import math
import time
import warnings

import numpy as np
import pytest
from scipy import stats

from lavt_hf.training.stats import paired_bootstrap_ci, paired_comparison, summarize

ARM_A = [65.10, 64.70, 65.42, 64.95, 65.31]  # e.g. overall IoU of 5 seeds
ARM_B = [64.87, 64.80, 64.91, 64.52, 64.99]


def test_summarize_matches_numpy_with_ddof_1():
    mean, std = summarize(ARM_A)
    assert mean == pytest.approx(np.mean(ARM_A))
    assert std == pytest.approx(np.std(ARM_A, ddof=1))
    assert summarize([3.0])[0] == 3.0 and math.isnan(summarize([3.0])[1])
    with pytest.raises(ValueError):
        summarize([])


def test_paired_comparison_equals_scipy():
    result = paired_comparison(ARM_A, ARM_B)
    np.testing.assert_allclose(result["differences"], np.subtract(ARM_A, ARM_B))
    assert result["mean_difference"] == pytest.approx(np.mean(np.subtract(ARM_A, ARM_B)))
    t_test = stats.ttest_rel(ARM_A, ARM_B)
    wilcoxon = stats.wilcoxon(np.subtract(ARM_A, ARM_B))
    assert result["t_statistic"] == pytest.approx(t_test.statistic)
    assert result["t_pvalue"] == pytest.approx(t_test.pvalue)
    assert result["wilcoxon_statistic"] == pytest.approx(wilcoxon.statistic)
    assert result["wilcoxon_pvalue"] == pytest.approx(wilcoxon.pvalue)
    # The direction is A - B: swapping the arms flips the statistic, not the p-value.
    swapped = paired_comparison(ARM_B, ARM_A)
    assert swapped["t_statistic"] == pytest.approx(-t_test.statistic) and swapped["t_pvalue"] == pytest.approx(t_test.pvalue)


def test_identical_arms_give_no_evidence_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_comparison(ARM_A, list(ARM_A))
    assert (result["mean_difference"], result["t_pvalue"], result["wilcoxon_pvalue"]) == (0.0, 1.0, 1.0)


def test_paired_comparison_input_errors():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        paired_comparison([65.0], [64.0])
    with pytest.raises(ValueError, match="equal length"):
        paired_comparison([65.0, 64.0], [64.0])


def test_bootstrap_is_deterministic_under_a_seed():
    rng = np.random.default_rng(1)
    a, b = rng.random(500), rng.random(500)
    first = paired_bootstrap_ci(a, b, n_resamples=2000, seed=7)
    assert first == paired_bootstrap_ci(a, b, n_resamples=2000, seed=7)
    assert first != paired_bootstrap_ci(a, b, n_resamples=2000, seed=8)
    assert first["low"] < first["mean_difference"] < first["high"]


def test_bootstrap_covers_the_true_difference():
    rng = np.random.default_rng(0)
    iou_b = rng.beta(5, 2, size=2000)
    iou_a = np.clip(iou_b + 0.03 + rng.normal(0, 0.05, size=2000), 0, 1)  # A is better by about 0.03
    true_difference = float(np.mean(iou_a - iou_b))
    interval = paired_bootstrap_ci(iou_a, iou_b, n_resamples=5000, seed=0)
    assert interval["low"] < true_difference < interval["high"] and interval["low"] > 0
    # Agrees with scipy's own percentile bootstrap of the paired mean difference.
    reference = stats.bootstrap(
        (iou_a - iou_b,), np.mean, n_resamples=5000, confidence_level=0.95, method="percentile", random_state=0
    ).confidence_interval
    assert interval["low"] == pytest.approx(reference.low, abs=5e-4)
    assert interval["high"] == pytest.approx(reference.high, abs=5e-4)
    # A constant shift has no sampling uncertainty: the interval collapses onto it.
    shifted = paired_bootstrap_ci(iou_b + 0.25, iou_b, n_resamples=100)
    assert shifted["low"] == pytest.approx(0.25) and shifted["high"] == pytest.approx(0.25)


def test_bootstrap_of_ten_thousand_samples_is_fast():
    rng = np.random.default_rng(0)
    a, b = rng.random(10_000), rng.random(10_000)
    start = time.perf_counter()
    paired_bootstrap_ci(a, b, n_resamples=10_000)
    assert time.perf_counter() - start < 15  # about a second on a quiet machine; generous for shared CI


def test_bootstrap_input_errors():
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap_ci([0.1, 0.2], [0.3])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap_ci([0.1], [0.2], confidence=1.0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        paired_bootstrap_ci([0.1], [0.2])
