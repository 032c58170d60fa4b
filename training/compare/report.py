# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""results.md: the collected results (see `collect`) as a Markdown report that says how to read them."""

from __future__ import annotations

import math

from .collect import METRICS


def markdown_report(results: dict) -> str:
    """results.md: the arm table, the per-seed values and the paired comparisons, with how to read them."""
    evaluated = results["evaluation"]
    baseline, seeds = results["baseline"], results["seeds"]
    lines = ["# Loss study", "",
             f"{len(results['arms'])} arms x {len(seeds)} seeds ({', '.join(map(str, seeds))}); evaluated on "
             f"{evaluated['dataset_config'] or evaluated['dataset']} {evaluated['split']} "
             f"({evaluated['num_samples']} (object, sentence) samples, protocol {evaluated['protocol']}), "
             "selected checkpoint = best validation overall IoU. All metrics x100.", "",
             "## Mean ± std over seeds", "",
             "| arm | " + " | ".join(METRICS.values()) + " | seeds |",
             "|---|" + "---|" * (len(METRICS) + 1)]
    for arm, summary in results["summary"].items():
        cells = [format_mean_std(summary["metrics"][key]) for key in METRICS]
        failed = f" ({len(summary['failed_seeds'])} diverged)" if summary["failed_seeds"] else ""
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {len(summary['seeds'])}{failed} |")
    lines += ["", "std is the sample standard deviation (ddof=1) across seeds. LAVT's own run-to-run spread is "
              "about ±0.5 overall IoU (docs/evaluation.md, section 'Reference numbers').", "", "## Per seed", "",
              "| arm | seed | status | " + " | ".join(METRICS.values()) + " | best val epoch |",
              "|---|---|---|" + "---|" * (len(METRICS) + 1)]
    for record in results["runs"]:
        metrics = record["metrics"] or {}
        cells = [f"{metrics[key]:.2f}" if key in metrics else "-" for key in METRICS]
        lines.append(f"| {record['arm']} | {record['seed']} | {record['status']} | " + " | ".join(cells)
                     + f" | {best_epoch(record['validation_curve'])} |")
    lines += comparison_section(results, baseline, len(seeds))
    diverged = [r for r in results["runs"] if r["status"] == "diverged"]
    if diverged:
        lines += ["", "## Diverged runs", ""]
        lines += [f"- {r['arm']} seed {r['seed']}: {r['error']}" for r in diverged]
    return "\n".join(lines) + "\n"


def format_mean_std(entry: dict) -> str:
    """`mean ± std` with two decimals, the form results.md uses (and the tests read back)."""
    mean, std = entry["mean"], entry["std"]
    if mean is None or not math.isfinite(mean):
        return "n/a"
    return f"{mean:.2f}" if std is None or not math.isfinite(std) else f"{mean:.2f} ± {std:.2f}"


def format_p(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def best_epoch(curve: list[dict]) -> str:
    if not curve:
        return "-"
    best = max(curve, key=lambda h: h["overall_iou"])
    return str(best.get("epoch", "-"))


def comparison_section(results: dict, baseline: str, num_seeds: int) -> list[str]:
    """Paired tests per metric and the bootstrap CI of the mean-IoU difference, each arm against the baseline."""
    lines = ["", f"## Paired comparison against `{baseline}` (arm − {baseline}, same seeds)", "",
             "| arm | metric | per-seed differences | mean difference | t-test p | Wilcoxon p |",
             "|---|---|---|---|---|---|"]
    intervals = []
    for arm, comparison in results["comparisons"].items():
        if "skipped" in comparison:
            lines.append(f"| {arm} | - | {comparison['skipped']} | - | - | - |")
            continue
        for key, label in METRICS.items():
            entry = comparison["metrics"][key]
            differences = ", ".join(f"{d:+.2f}" for d in entry["differences"])
            lines.append(f"| {arm} | {label} | {differences} | {entry['mean_difference']:+.2f} | "
                         f"{format_p(entry['t_pvalue'])} | {format_p(entry['wilcoxon_pvalue'])} |")
        interval = comparison["bootstrap_mean_iou"]
        intervals.append(f"| {arm} | {interval['mean_difference']:+.2f} | [{interval['low']:+.2f}, "
                         f"{interval['high']:+.2f}] | {interval['num_samples']} x {len(comparison['seeds'])} seeds |")
    smallest_wilcoxon = 2 / 2**num_seeds
    lines += ["", f"Two-sided p-values. With {num_seeds} seeds the exact Wilcoxon signed-rank test cannot give "
              f"p below {smallest_wilcoxon:.3g} (2 / 2^{num_seeds}), however large the effect: it can never "
              "reach 0.05 with fewer than 6 seeds. The t-test assumes roughly normal per-seed differences.", ""]
    if intervals:
        confidence = next(iter(c["bootstrap_mean_iou"]["confidence"] for c in results["comparisons"].values()
                               if "bootstrap_mean_iou" in c))
        lines += [f"### Mean-IoU difference: {confidence:.0%} paired bootstrap interval over the samples", "",
                  "| arm | mean IoU difference | interval | samples |", "|---|---|---|---|", *intervals, "",
                  "Each resample draws (object, sentence) samples with replacement, the same ones for both arms "
                  "and all seeds (each sample's IoU averaged over the paired seeds). It measures the uncertainty "
                  "from the choice of evaluation samples, not the seed-to-seed spread (the tests above)."]
    return lines
