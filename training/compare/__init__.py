# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Loss studies: train every (arm, seed) the same way, evaluate each run, compare every arm with a baseline.

The perceptual-loss paper reports gains (+0.5 mean IoU, +0.23 overall IoU, one run per arm) smaller than LAVT's
own run-to-run spread (about +-0.5 overall IoU): only several seeds per arm, paired by seed and by evaluation
sample, tell such a difference from noise. Runs of different arms with the same seed start from the same
initialisation and see the same data order (training seeds both from the run's seed; the perceptual CNN is built
later), so the arm is the only difference within a pair.

An arm is a mapping of training options (`lavt-train --help`) merged over the base recipe (`loss`,
`model_overrides` and `text_config` key by key). Arms may not set what the study owns (`output_dir`, `seed`,
resuming, Hub pushes) nor what the pairing needs shared (the dataset and the evaluation split).

A study folder holds perceptual/ (offline ImageNet weights, exported once when an arm needs them), results.json,
results.md, curves.png and runs/<arm>/seed<k>/: config.yaml (written first; `lavt-train --config config.yaml`
redoes the run), model/ (best validation overall IoU), trainer_state.json (written last by training), eval/
(`lavt-evaluate` of model/), train.log and evaluate.log (with a launcher), DONE (written last, atomically:
"ok" or "diverged", timings). A run with DONE is never redone; a trained one is only evaluated; any other
resumes from its last checkpoint (`--resume_from_checkpoint latest`). A run folder whose config.yaml differs from
what the study would now write is an error.

Modules: `plan` (arms, settings, runs, every check before training), `launch` (running runs in process or
through a launcher, the whole study), `results` (results.json's content, results.md, curves.png).
"""

from .launch import REPO_ROOT, execute_run, execute_study, json_safe, launched, run_status, run_study
from .plan import (
    DEFAULT_ARMS,
    OFFLINE_NETWORK,
    Arm,
    Run,
    StudySettings,
    build_base_recipe,
    load_arms_file,
    parse_arm,
    plan_study,
    with_perceptual_defaults,
)
from .results import METRICS, collect_results, markdown_report

__all__ = ["DEFAULT_ARMS", "METRICS", "OFFLINE_NETWORK", "REPO_ROOT", "Arm", "Run", "StudySettings",
           "build_base_recipe", "collect_results", "execute_run", "execute_study", "json_safe", "launched",
           "load_arms_file", "markdown_report", "parse_arm", "plan_study", "run_status", "run_study",
           "with_perceptual_defaults"]
