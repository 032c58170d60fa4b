# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Collecting a study's results, the content of results.json: every run, each arm's mean and spread over the
seeds, and each arm against the baseline (paired tests over seeds, a paired bootstrap over evaluation samples)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lavt_hf.training.stats import paired_bootstrap_ci, paired_comparison, summarize

from .plan import Run, StudySettings

# Evaluation metrics reported per arm (keys of eval_results.json -> table headers).
METRICS: dict[str, str] = {"overall_iou": "overall IoU", "mean_iou": "mean IoU", "precision@0.5": "P@0.5",
                           "precision@0.7": "P@0.7", "precision@0.9": "P@0.9"}
_BOOTSTRAP_SEED = 0


def validation_curve(run: Run) -> list[dict]:
    """The validation evaluations made during training (step, epoch and the metrics)."""
    history = json.loads(run.trainer_state_path.read_text())["history"]
    return [{k: h[k] for k in ("step", "epoch", *METRICS) if k in h} for h in history if "overall_iou" in h]


def run_record(run: Run, study_dir: Path) -> dict:
    """Everything results.json keeps about one run."""
    done = json.loads(run.done_path.read_text())
    record = {"arm": run.arm, "seed": run.seed, "directory": str(run.directory.relative_to(study_dir)), **done,
              "config": run.recipe, "metrics": None, "validation_curve": []}
    if done["status"] == "ok":
        record["metrics"] = json.loads((run.eval_dir / "eval_results.json").read_text())
        record["validation_curve"] = validation_curve(run)
    return record


def per_sample_ious(run: Run) -> dict[int, float]:
    """Sample id -> IoU (x100) of a run's evaluation."""
    records = json.loads((run.eval_dir / "per_sample.json").read_text())
    return {r["sample_id"]: 100.0 * r["iou"] for r in records}


def summarize_arm(records: list[dict]) -> dict:
    """Mean, sample std and per-seed values of every metric over the arm's runs that finished."""
    finished = [r for r in records if r["status"] == "ok"]
    summary: dict[str, Any] = {"seeds": [r["seed"] for r in finished],
                               "failed_seeds": [r["seed"] for r in records if r["status"] != "ok"], "metrics": {}}
    for key in METRICS:
        values = [r["metrics"][key] for r in finished]
        mean, std = summarize(values) if values else (math.nan, math.nan)
        summary["metrics"][key] = {"mean": mean, "std": std, "values": values}
    return summary


def seed_mean_ious(runs: Sequence[Run]) -> tuple[list[int], np.ndarray]:
    """Per-sample IoU averaged over `runs` (same split, so the same sample ids), in sample-id order."""
    tables = [per_sample_ious(run) for run in runs]
    ids = sorted(tables[0])
    for run, table in zip(runs, tables):
        if sorted(table) != ids:
            raise ValueError(f"{run.eval_dir} was evaluated on other samples than {runs[0].eval_dir}")
    return ids, np.mean([[table[i] for i in ids] for table in tables], axis=0)


def compare_arm(arm_runs: dict[int, Run], baseline_runs: dict[int, Run], statuses: dict[Run, str],
                settings: StudySettings) -> dict:
    """Arm minus baseline over the seeds both finished: per-metric paired tests, and the paired bootstrap CI
    of the mean-IoU difference over the (object, sentence) samples.

    The bootstrap resamples samples with all seeds at once (each sample's IoU averaged over the paired seeds),
    so its interval reflects which samples were drawn into the split, not the seed-to-seed spread: that spread
    is what the per-seed tests address.
    """
    seeds = [s for s in arm_runs if statuses[arm_runs[s]] == "ok" and statuses.get(baseline_runs.get(s)) == "ok"]
    result: dict[str, Any] = {"baseline": settings.baseline_arm, "seeds": seeds}
    if len(seeds) < 2:
        return {**result, "skipped": f"only {len(seeds)} seed(s) finished in both arms; a paired test needs 2"}
    metrics = {s: json.loads((arm_runs[s].eval_dir / "eval_results.json").read_text()) for s in seeds}
    base_metrics = {s: json.loads((baseline_runs[s].eval_dir / "eval_results.json").read_text()) for s in seeds}
    result["metrics"] = {}
    for key in METRICS:
        comparison = paired_comparison([metrics[s][key] for s in seeds], [base_metrics[s][key] for s in seeds])
        result["metrics"][key] = {**dataclasses.asdict(comparison), "differences": comparison.differences.tolist()}
    ids, arm_ious = seed_mean_ious([arm_runs[s] for s in seeds])
    base_ids, base_ious = seed_mean_ious([baseline_runs[s] for s in seeds])
    if ids != base_ids:
        raise ValueError(f"arm {arm_runs[seeds[0]].arm} and the baseline were evaluated on different samples")
    interval = paired_bootstrap_ci(arm_ious, base_ious, n_resamples=settings.bootstrap_resamples,
                                   confidence=settings.confidence, seed=_BOOTSTRAP_SEED)
    result["bootstrap_mean_iou"] = {**dataclasses.asdict(interval), "num_samples": len(ids),
                                    "seed": _BOOTSTRAP_SEED}
    return result


def collect_results(settings: StudySettings, runs: Sequence[Run]) -> dict:
    """results.json's content: every run, a summary per arm and the paired comparisons with the baseline."""
    study_dir = settings.study_dir
    records = [run_record(run, study_dir) for run in runs]
    statuses = {run: record["status"] for run, record in zip(runs, records)}
    by_arm = {arm.name: {run.seed: run for run in runs if run.arm == arm.name} for arm in settings.arms}
    baseline = settings.baseline_arm
    first_ok = next((r["metrics"] for r in records if r["metrics"]), {})
    return {
        "study_dir": str(study_dir),
        "baseline": baseline,
        "seeds": list(settings.seeds),
        "arms": {arm.name: arm.override for arm in settings.arms},
        "base_recipe": settings.base_recipe,
        "evaluation": {k: first_ok.get(k) for k in ("dataset", "dataset_config", "split", "protocol",
                                                    "num_samples", "image_size")},
        "metrics": list(METRICS),
        "runs": records,
        "summary": {arm: summarize_arm([r for r in records if r["arm"] == arm]) for arm in by_arm},
        "comparisons": {arm: compare_arm(by_arm[arm], by_arm[baseline], statuses, settings)
                        for arm in by_arm if arm != baseline},
    }
