# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Statistics for comparing training runs: seed summaries, paired tests over seeds, paired bootstrap over samples.

Two arms of a study (e.g. cross-entropy vs cross-entropy + perceptual loss) are trained with the same seeds and
evaluated on the same samples, so every comparison here is paired: pairing removes the seed-to-seed and
sample-to-sample variance the arms share, which is most of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

# Bootstrap index draws per chunk: bounds memory (about 32 MB of int64) whatever n_resamples * n_samples is.
_BOOTSTRAP_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True, eq=False)
class PairedComparison:
    """Arm A minus arm B over the same seeds; p-values are two-sided. (No `==`: it holds an array.)"""

    differences: np.ndarray
    mean_difference: float
    t_statistic: float
    t_pvalue: float
    wilcoxon_statistic: float
    wilcoxon_pvalue: float


@dataclass(frozen=True)
class BootstrapInterval:
    """Percentile bootstrap confidence interval of mean IoU(A) - mean IoU(B)."""

    mean_difference: float
    low: float
    high: float
    confidence: float
    n_resamples: int


def summarize(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, the spread across seeds); the std of one value is NaN."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("summarize needs at least one value")
    std = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return float(values.mean()), std


def _paired_arrays(a: Sequence[float], b: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired {what} must be two 1-D sequences of equal length, got {a.shape} and {b.shape}")
    return a, b


def paired_comparison(a: Sequence[float], b: Sequence[float]) -> PairedComparison:
    """Paired t-test and Wilcoxon signed-rank test of per-seed metrics `a[i]` vs `b[i]` (same seed i).

    The t-test assumes roughly normal differences; Wilcoxon does not, but with few seeds its smallest
    attainable p-value is coarse (0.0625 for 5 seeds), so report both. When every difference is exactly zero
    there is no evidence of a difference at all: both statistics are 0 and both p-values 1 (scipy would give
    NaN and warnings).
    """
    a, b = _paired_arrays(a, b, "seed metrics")
    if a.size < 2:
        raise ValueError(f"a paired test needs at least 2 seeds per arm, got {a.size}")
    differences = a - b
    if not differences.any():
        return PairedComparison(differences, 0.0, 0.0, 1.0, 0.0, 1.0)
    t_test = stats.ttest_rel(a, b)
    wilcoxon = stats.wilcoxon(differences)
    return PairedComparison(
        differences=differences,
        mean_difference=float(differences.mean()),
        t_statistic=float(t_test.statistic),
        t_pvalue=float(t_test.pvalue),
        wilcoxon_statistic=float(wilcoxon.statistic),
        wilcoxon_pvalue=float(wilcoxon.pvalue),
    )


def paired_bootstrap_ci(
    iou_a: Sequence[float],
    iou_b: Sequence[float],
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval:
    """Percentile bootstrap CI of the mean-IoU difference A - B over the same evaluation samples.

    Each resample draws sample indices with replacement and applies them to both arms at once, which keeps the
    pairing. Deterministic for a given `seed`; vectorised in chunks, so 10k resamples of 10k samples take about
    a second and bounded memory.
    """
    a, b = _paired_arrays(iou_a, iou_b, "per-sample IoUs")
    if a.size == 0:
        raise ValueError("paired_bootstrap_ci needs at least one sample")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    differences = a - b
    rng = np.random.default_rng(seed)
    resampled_means = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // differences.size)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        indices = rng.integers(0, differences.size, size=(stop - start, differences.size))
        resampled_means[start:stop] = differences[indices].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled_means, [tail, 1 - tail])
    return BootstrapInterval(float(differences.mean()), float(low), float(high), confidence, n_resamples)


__all__ = ["BootstrapInterval", "PairedComparison", "paired_bootstrap_ci", "paired_comparison", "summarize"]
