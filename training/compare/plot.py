# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""curves.png: the validation curves of every arm (mean over seeds, min-max band)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .collect import METRICS


def plot_curves(results: dict, path: Path) -> Path:
    """Validation mean IoU and overall IoU per arm: the mean over seeds as a line, min..max as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x_key = curve_axis(results["runs"])
    for arm in results["summary"]:
        curves = [r["validation_curve"] for r in results["runs"] if r["arm"] == arm and r["validation_curve"]]
        if not curves:
            continue
        xs = sorted(set.intersection(*({h[x_key] for h in curve} for curve in curves)))
        for ax, key in zip(axes, ("mean_iou", "overall_iou")):
            values = np.array([[next(h[key] for h in curve if h[x_key] == x) for x in xs] for curve in curves])
            line = ax.plot(xs, values.mean(axis=0), marker="o", markersize=3, label=f"{arm} ({len(curves)} seeds)")
            ax.fill_between(xs, values.min(axis=0), values.max(axis=0), color=line[0].get_color(), alpha=0.2)
    for ax, key in zip(axes, ("mean_iou", "overall_iou")):
        ax.set(title=f"validation {METRICS[key]} (mean, min-max band over seeds)", xlabel=x_key, ylabel="IoU (%)")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # epochs and steps are whole
    if axes[0].lines:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def curve_axis(records: list[dict]) -> str:
    """`epoch` when every run validated once per epoch, else `step` (with `eval_every_steps`)."""
    for record in records:
        epochs = [h.get("epoch") for h in record["validation_curve"]]
        if None in epochs or len(set(epochs)) != len(epochs):
            return "step"
    return "epoch"
