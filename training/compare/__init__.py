# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Loss studies: train every (arm, seed) the same way, evaluate each run, compare every arm with a baseline.

Why this exists: the perceptual-loss paper reports gains (+0.5 mean IoU, +0.23 overall IoU, one run per arm)
smaller than LAVT's own run-to-run spread (about +-0.5 overall IoU). Only several seeds per arm, paired by seed
and by evaluation sample, tell such a difference from noise. Runs of different arms with the same seed start
from the same LAVT initialisation and see the same data order (`lavt_hf.training.train` seeds both from the run's seed;
the perceptual CNN is built later, at the first loss), so the arm is the only difference within a pair.

An arm is a mapping of training options (those of `lavt-train --help`) merged over the base recipe; the mapping
options `loss`, `model_overrides` and `text_config` are merged key by key. Arms may not set what the study
owns (`output_dir`, `seed`, resuming, Hub pushes) nor what the pairing over samples needs to be shared (the
dataset and the evaluation split).

Layout of a study folder:

  perceptual/tf_efficientnet_lite0.safetensors  offline ImageNet weights, exported once when an arm needs them
  runs/<arm>/seed<k>/    one self-contained run:
    config.yaml            its full training recipe, written before anything else (`lavt-train --config
                           config.yaml` redoes the run)
    model/                 the selected checkpoint: best validation overall IoU, with processor and card
    trainer_state.json     the training history (validation curve); training writes it last
    eval/                  eval_results.json and per_sample.json of `lavt-evaluate` on model/
    train.log, evaluate.log  what the launched processes printed (with a launcher only)
    DONE                   written last, atomically: status ("ok", or "diverged" on a non-finite loss), timings
  results.json, results.md, curves.png    the study's results, rewritten whenever the study completes

Resuming: a run with DONE is never redone (a diverged run neither: with its seed it diverges again). A run
whose training finished (trainer_state.json) is only evaluated. Any other run trains with
`--resume_from_checkpoint latest`, which continues exactly from its last complete checkpoint (saved at every
epoch end and every `checkpointing_steps`) or starts afresh when there is none. A run folder whose config.yaml
differs from what the study would now write is an error, not silently mixed in: use another study folder.

The study itself is one process. By default it trains and evaluates each run in that process (one device: the
CPU or one GPU), which is fastest for small runs. With a launcher (`accelerate launch ...`, `torchrun ...`) it
starts `<launcher> -m lavt_hf.training.train` and `<launcher> -m lavt_hf.training.evaluation` for each run instead, so every run
gets fresh processes on all the launcher's devices; their output is also kept in the run's train.log and
evaluate.log.

The package reads top to bottom by job: `plan` (arms, settings, the runs and every check made before training),
`launch` (training and evaluating one run, in process or through a launcher), `collect` (results.json's
content: summaries and paired comparisons), `report` (results.md), `plot` (curves.png) and `study` (the whole
study: plan, run, collect, write). `lavt-compare` (`scripts/compare_losses.py`) is its command line.
"""

from .collect import METRICS, collect_results
from .launch import REPO_ROOT, execute_run, launched, run_status
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
from .report import markdown_report
from .study import execute_study, json_safe, run_study

__all__ = ["DEFAULT_ARMS", "METRICS", "OFFLINE_NETWORK", "REPO_ROOT", "Arm", "Run", "StudySettings",
           "build_base_recipe", "collect_results", "execute_run", "execute_study", "json_safe", "launched",
           "load_arms_file", "markdown_report", "parse_arm", "plan_study", "run_status", "run_study",
           "with_perceptual_defaults"]
