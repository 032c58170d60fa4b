# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""A study's results: results.json's content (every run, each arm over its seeds, each arm against the
baseline), results.md and curves.png."""

from __future__ import annotations

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


def _eval_results(run: Run) -> dict:
    return json.loads((run.eval_dir / "eval_results.json").read_text())


def run_record(run: Run, study_dir: Path) -> dict:
    """Everything results.json keeps about one run, with its validation curve (step, epoch and the metrics)."""
    done = json.loads(run.done_path.read_text())
    record = {"arm": run.arm, "seed": run.seed, "directory": str(run.directory.relative_to(study_dir)), **done,
              "config": run.recipe, "metrics": None, "validation_curve": []}
    if done["status"] == "ok":
        history = json.loads(run.trainer_state_path.read_text())["history"]
        record["metrics"] = _eval_results(run)
        record["validation_curve"] = [{k: h[k] for k in ("step", "epoch", *METRICS) if k in h}
                                      for h in history if "overall_iou" in h]
    return record


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


def per_sample_ious(runs: Sequence[Run]) -> np.ndarray:
    """(runs, samples) IoUs (x100) in sample-id order. Raises ValueError for runs evaluated on other samples."""
    tables = [{r["sample_id"]: 100.0 * r["iou"] for r in json.loads((run.eval_dir / "per_sample.json").read_text())}
              for run in runs]
    ids = sorted(tables[0])
    for run, table in zip(runs, tables):
        if sorted(table) != ids:
            raise ValueError(f"{run.eval_dir} was evaluated on other samples than {runs[0].eval_dir}")
    return np.array([[table[i] for i in ids] for table in tables])


def compare_arm(arm_runs: dict[int, Run], baseline_runs: dict[int, Run], statuses: dict[Run, str],
                settings: StudySettings) -> dict:
    """Arm minus baseline over the seeds both finished: per-metric paired tests, and the paired bootstrap CI of
    the mean-IoU difference over the (object, sentence) samples, each sample's IoU averaged over the seeds."""
    seeds = [s for s in arm_runs if statuses[arm_runs[s]] == "ok" and statuses.get(baseline_runs.get(s)) == "ok"]
    result: dict[str, Any] = {"baseline": settings.baseline_arm, "seeds": seeds}
    if len(seeds) < 2:
        return {**result, "skipped": f"only {len(seeds)} seed(s) finished in both arms; a paired test needs 2"}
    arm_metrics = [_eval_results(arm_runs[s]) for s in seeds]
    base_metrics = [_eval_results(baseline_runs[s]) for s in seeds]
    result["metrics"] = {key: paired_comparison([m[key] for m in arm_metrics], [m[key] for m in base_metrics])
                         for key in METRICS}
    ious = per_sample_ious([arm_runs[s] for s in seeds] + [baseline_runs[s] for s in seeds])
    arm_ious, base_ious = ious[: len(seeds)].mean(axis=0), ious[len(seeds) :].mean(axis=0)
    interval = paired_bootstrap_ci(arm_ious, base_ious, n_resamples=settings.bootstrap_resamples, seed=_BOOTSTRAP_SEED)
    result["bootstrap_mean_iou"] = {**interval, "num_samples": ious.shape[1], "seed": _BOOTSTRAP_SEED}
    return result


def collect_results(settings: StudySettings, runs: Sequence[Run]) -> dict:
    """results.json's content: every run, a summary per arm and the paired comparisons with the baseline."""
    records = [run_record(run, settings.study_dir) for run in runs]
    statuses = {run: record["status"] for run, record in zip(runs, records)}
    by_arm = {arm.name: {run.seed: run for run in runs if run.arm == arm.name} for arm in settings.arms}
    baseline = settings.baseline_arm
    first_ok = next((r["metrics"] for r in records if r["metrics"]), {})
    return {
        "study_dir": str(settings.study_dir), "baseline": baseline, "seeds": list(settings.seeds),
        "arms": {arm.name: arm.override for arm in settings.arms}, "base_recipe": settings.base_recipe,
        "evaluation": {k: first_ok.get(k) for k in ("dataset", "dataset_config", "split", "protocol",
                                                    "num_samples", "image_size")},
        "metrics": list(METRICS), "runs": records,
        "summary": {arm: summarize_arm([r for r in records if r["arm"] == arm]) for arm in by_arm},
        "comparisons": {arm: compare_arm(by_arm[arm], by_arm[baseline], statuses, settings)
                        for arm in by_arm if arm != baseline},
    }


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of a markdown table."""
    return [f"| {' | '.join(header)} |", "|" + "---|" * len(header),
            *(f"| {' | '.join(map(str, row))} |" for row in rows)]


def markdown_report(results: dict) -> str:
    """results.md: the arm table, the per-seed values and the paired comparisons, with how to read them."""
    evaluated = results["evaluation"]
    baseline, seeds = results["baseline"], results["seeds"]
    summary_rows = []
    for arm, summary in results["summary"].items():
        failed = f" ({len(summary['failed_seeds'])} diverged)" if summary["failed_seeds"] else ""
        summary_rows.append([arm, *(format_mean_std(summary["metrics"][key]) for key in METRICS),
                             f"{len(summary['seeds'])}{failed}"])
    seed_rows = [[r["arm"], r["seed"], r["status"],
                  *(f"{r['metrics'][key]:.2f}" if key in (r["metrics"] or {}) else "-" for key in METRICS),
                  best_epoch(r["validation_curve"])] for r in results["runs"]]
    lines = ["# Loss study", "",
             f"{len(results['arms'])} arms x {len(seeds)} seeds ({', '.join(map(str, seeds))}); evaluated on "
             f"{evaluated['dataset_config'] or evaluated['dataset']} {evaluated['split']} "
             f"({evaluated['num_samples']} (object, sentence) samples, protocol {evaluated['protocol']}), "
             "selected checkpoint = best validation overall IoU. All metrics x100.", "",
             "## Mean ± std over seeds", "", *table(["arm", *METRICS.values(), "seeds"], summary_rows), "",
             "std is the sample standard deviation (ddof=1) across seeds. LAVT's own run-to-run spread is "
             "about ±0.5 overall IoU (docs/evaluation.md, section 'Reference numbers').", "", "## Per seed", "",
             *table(["arm", "seed", "status", *METRICS.values(), "best val epoch"], seed_rows),
             *comparison_section(results, baseline, len(seeds))]
    diverged = [r for r in results["runs"] if r["status"] == "diverged"]
    if diverged:
        lines += ["", "## Diverged runs", ""]
        lines += [f"- {r['arm']} seed {r['seed']}: {r['error']}" for r in diverged]
    return "\n".join(lines) + "\n"


def format_mean_std(entry: dict) -> str:
    mean, std = entry["mean"], entry["std"]
    if mean is None or not math.isfinite(mean):
        return "n/a"
    return f"{mean:.2f}" if std is None or not math.isfinite(std) else f"{mean:.2f} ± {std:.2f}"


def format_p(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def best_epoch(curve: list[dict]) -> str:
    return str(max(curve, key=lambda h: h["overall_iou"]).get("epoch", "-")) if curve else "-"


def comparison_section(results: dict, baseline: str, num_seeds: int) -> list[str]:
    """Paired tests per metric and the bootstrap CI of the mean-IoU difference, each arm against the baseline."""
    tests, intervals = [], []
    for arm, comparison in results["comparisons"].items():
        if "skipped" in comparison:
            tests.append([arm, "-", comparison["skipped"], "-", "-", "-"])
            continue
        for key, label in METRICS.items():
            entry = comparison["metrics"][key]
            tests.append([arm, label, ", ".join(f"{d:+.2f}" for d in entry["differences"]),
                          f"{entry['mean_difference']:+.2f}", format_p(entry["t_pvalue"]),
                          format_p(entry["wilcoxon_pvalue"])])
        interval = comparison["bootstrap_mean_iou"]
        intervals.append([arm, f"{interval['mean_difference']:+.2f}",
                          f"[{interval['low']:+.2f}, {interval['high']:+.2f}]",
                          f"{interval['num_samples']} x {len(comparison['seeds'])} seeds"])
    header = ["arm", "metric", "per-seed differences", "mean difference", "t-test p", "Wilcoxon p"]
    lines = ["", f"## Paired comparison against `{baseline}` (arm − {baseline}, same seeds)", "",
             *table(header, tests), "", f"Two-sided p-values. With {num_seeds} seeds the exact Wilcoxon "
             f"signed-rank test cannot give p below {2 / 2**num_seeds:.3g} (2 / 2^{num_seeds}), however large the "
             "effect: it can never reach 0.05 with fewer than 6 seeds. The t-test assumes roughly normal per-seed "
             "differences.", ""]
    if intervals:
        confidence = next(c["bootstrap_mean_iou"]["confidence"] for c in results["comparisons"].values()
                          if "bootstrap_mean_iou" in c)
        lines += [f"### Mean-IoU difference: {confidence:.0%} paired bootstrap interval over the samples", "",
                  *table(["arm", "mean IoU difference", "interval", "samples"], intervals), "",
                  "Each resample draws (object, sentence) samples with replacement, the same ones for both arms "
                  "and all seeds (each sample's IoU averaged over the paired seeds). It measures the uncertainty "
                  "from the choice of evaluation samples, not the seed-to-seed spread (the tests above)."]
    return lines


def plot_curves(results: dict, path: Path) -> Path:
    """curves.png: validation mean IoU and overall IoU per arm, the mean over seeds as a line, min..max as a band;
    against the epoch when every run validated once per epoch, else the step."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [[h.get("epoch") for h in r["validation_curve"]] for r in results["runs"]]
    x_key = "epoch" if all(None not in e and len(set(e)) == len(e) for e in epochs) else "step"
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs and steps are whole
    if axes[0].lines:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
