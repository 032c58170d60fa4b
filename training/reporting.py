# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""What a training run leaves for people besides the model card (`modeling_lavt.sharing.hub.write_model_card`): the
training-curve plot."""

from __future__ import annotations

from pathlib import Path


def plot_training_curves(history: list[dict], path: str | Path) -> Path:
    """Training loss per logged step and validation IoUs per evaluation, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, iou_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [h for h in history if "overall_iou" in h]
    if losses:
        loss_ax.plot(*zip(*losses), color="tab:blue")
    loss_ax.set(title="training loss", xlabel="step", ylabel="loss")
    if evals:
        for key, label in (("overall_iou", "overall IoU"), ("mean_iou", "mean IoU")):
            iou_ax.plot([h["step"] for h in evals], [h[key] for h in evals], marker="o", label=label)
        iou_ax.legend()
    iou_ax.set(title="validation", xlabel="step", ylabel="IoU (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
