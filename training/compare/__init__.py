# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Loss studies: train every (arm, seed) the same way, evaluate each run, compare every arm with a baseline
(docs/training.md, "Comparing losses"). `plan`: arms, settings, runs and every check before training;
`launch`: running them; `results`: results.json's content, results.md, curves.png."""

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
from .results import METRICS, markdown_report

__all__ = ["DEFAULT_ARMS", "METRICS", "OFFLINE_NETWORK", "REPO_ROOT", "Arm", "Run", "StudySettings",
           "build_base_recipe", "execute_run", "execute_study", "json_safe", "launched", "load_arms_file",
           "markdown_report", "parse_arm", "plan_study", "run_status", "run_study",
           "with_perceptual_defaults"]
