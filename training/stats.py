# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Statistics for comparing training runs: seed summaries, paired tests over seeds, paired bootstrap over
samples (arms share seeds and samples, so pairing removes most of the variance)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def summarize(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, the spread across seeds); the std of one value is NaN.
    Raises ValueError on no values."""
    if len(values) == 0:
        raise ValueError("summarize needs at least one value")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def _differences(a: Sequence[float], b: Sequence[float], what: str) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired {what} must be two 1-D sequences of equal length, got {a.shape} and {b.shape}")
    return a - b


def paired_comparison(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Two-sided paired t-test and Wilcoxon signed-rank test (coarse with few seeds) of per-seed metrics
    `a[i]` vs `b[i]`: the differences a - b, their mean, statistics and p-values (0 and 1 for identical arms,
    where scipy gives NaN). Raises ValueError on fewer than 2 seeds or unequal lengths."""
    differences = _differences(a, b, "seed metrics")
    if differences.size < 2:
        raise ValueError(f"a paired test needs at least 2 seeds per arm, got {differences.size}")
    t_test, wilcoxon = ((0.0, 1.0), (0.0, 1.0)) if not differences.any() else (
        stats.ttest_rel(a, b), stats.wilcoxon(differences))
    return {"differences": differences.tolist(), "mean_difference": float(differences.mean()),
            "t_statistic": float(t_test[0]), "t_pvalue": float(t_test[1]),
            "wilcoxon_statistic": float(wilcoxon[0]), "wilcoxon_pvalue": float(wilcoxon[1])}


def paired_bootstrap_ci(iou_a: Sequence[float], iou_b: Sequence[float], n_resamples: int = 10_000,
                        confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Percentile bootstrap CI (`low`, `high`) of the mean-IoU difference A - B over the same evaluation samples:
    each resample draws sample indices for both arms at once, which keeps the pairing. Deterministic for a given
    `seed`. Raises ValueError on fewer than 2 samples, unequal lengths or a confidence outside (0, 1)."""
    differences = _differences(iou_a, iou_b, "per-sample IoUs")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if differences.size < 2:
        raise ValueError(f"paired_bootstrap_ci needs at least 2 samples, got {differences.size}")
    interval = stats.bootstrap(  # in batches of about 4M index draws: bounded memory
        (differences,), np.mean, n_resamples=n_resamples, batch=max(1, 2**22 // differences.size),
        confidence_level=confidence, method="percentile", random_state=np.random.default_rng(seed),
    ).confidence_interval
    return {"mean_difference": float(differences.mean()), "low": float(interval.low), "high": float(interval.high),
            "confidence": confidence, "n_resamples": n_resamples}
