# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""A loss study from start to end: plan it (every check first), run what is not done yet, collect the results and
write results.json, results.md and curves.png."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .collect import collect_results
from .launch import execute_run, export_offline_weights, needs_offline_weights, run_status, write_atomically
from .plan import Run, StudySettings, plan_study
from .plot import plot_curves
from .report import markdown_report


def run_study(settings: StudySettings) -> dict:
    """Plan (all checks first), run what is not done yet, then write results.json, results.md and curves.png."""
    return execute_study(settings, plan_study(settings))


def execute_study(settings: StudySettings, runs: Sequence[Run]) -> dict:
    """Run the planned runs that are not done yet, then write the reports (see `plan_study` for the runs)."""
    if needs_offline_weights(runs, settings.study_dir):
        export_offline_weights(settings.study_dir)
    for index, run in enumerate(runs, 1):
        status = run_status(run)
        if status in ("ok", "diverged"):
            print(f"[{index}/{len(runs)}] {run.arm} seed {run.seed}: {status}, skipped", flush=True)
            continue
        print(f"[{index}/{len(runs)}] {run.arm} seed {run.seed}: {status} -> running in {run.directory}", flush=True)
        execute_run(run, settings)
    results = collect_results(settings, runs)
    write_reports(results, settings.study_dir)
    print(f"results: {settings.study_dir / 'results.md'}", flush=True)
    return results


def write_reports(results: dict, study_dir: Path) -> None:
    write_atomically(study_dir / "results.json", json.dumps(json_safe(results), indent=1))
    write_atomically(study_dir / "results.md", markdown_report(results))
    plot_curves(results, study_dir / "curves.png")


def json_safe(value: Any) -> Any:
    """NaN / inf -> None (strict JSON has neither), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
