# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Running a study: train (or resume) and evaluate each planned run, in this process or in child processes started
by a launcher, mark it done, then write the reports. Every step is safe to redo after a kill."""

from __future__ import annotations

import gc
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from lavt_hf.training import evaluation, train
from modeling_lavt.losses import export_efficientnet_lite0

from .plan import Run, StudySettings, offline_weights_path, parse_recipe, plan_study
from .results import collect_results, markdown_report, plot_curves

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_status(run: Run) -> str:
    """done (ok / diverged), trained (evaluation pending), started (resumable) or pending."""
    if run.done_path.is_file():
        return json.loads(run.done_path.read_text())["status"]
    if run.trainer_state_path.is_file():
        return "trained"
    return "started" if run.config_path.is_file() else "pending"


def write_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".incomplete-{path.name}")
    staging.write_text(text)
    os.replace(staging, path)


def release_memory() -> None:
    """Free the finished run's tensors before the next run builds its model (in-process runs share the GPU)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def launched(module: str, argv: list[str], launcher: Sequence[str], log_path: Path) -> tuple[str, str | None]:
    """`<launcher> -m <module> <argv>` in a child process (e.g. `accelerate launch` on several GPUs), its output
    shown live and appended to `log_path`: ("ok", None), or ("diverged", the message) for a child that died of
    `NonFiniteLossError`. Raises RuntimeError on any other failure (a rerun resumes the run)."""
    command = [*launcher, "-m", module, *argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    output = bytearray()
    with open(log_path, "ab") as log:
        log.write(f"$ {shlex.join(command)}\n".encode())
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as child:
            for chunk in iter(lambda: child.stdout.read1(1 << 16), b""):
                print(chunk.decode("utf-8", errors="replace"), end="", flush=True)
                log.write(chunk)
                output += chunk
    if child.returncode == 0:
        return "ok", None
    diverged = re.findall(r"NonFiniteLossError:(.*)", output.decode("utf-8", errors="replace"))
    if diverged:
        return "diverged", diverged[-1].strip()
    raise RuntimeError(f"{shlex.join(command)} failed with exit code {child.returncode}; see {log_path}")


def train_run(run: Run, launcher: Sequence[str] | None) -> tuple[str, str | None]:
    """Train (or resume) one run; a non-finite loss is a result ("diverged"), not a crash."""
    argv = ["--config", str(run.config_path), "--resume_from_checkpoint", "latest"]
    if launcher:
        return launched("lavt_hf.training.train", argv, launcher, run.directory / "train.log")
    try:
        train.run(argv)
    except train.NonFiniteLossError as error:
        return "diverged", str(error)
    finally:
        release_memory()
    return "ok", None


def evaluate_run(run: Run, protocol: str, launcher: Sequence[str] | None) -> None:
    """`lavt-evaluate` of the selected checkpoint (model/) on every (object, sentence) pair of the eval split."""
    _, data_args, train_args = parse_recipe(run.recipe)
    argv = ["--model", str(run.directory / "model"), "--dataset", data_args.dataset, "--split", data_args.eval_split,
            "--protocol", protocol, "--output_dir", str(run.eval_dir), "--num_overlays", "0",
            "--batch_size", str(train_args.eval_batch_size), "--num_workers", str(data_args.num_workers)]
    # The data options of training: the texts and columns the run trained on are the ones evaluated.
    for option in ("dataset_config", "images_root", "sentence_field", "image_column", "mask_column",
                   "text_column"):
        if getattr(data_args, option):
            argv += [f"--{option}", getattr(data_args, option)]
    if not launcher:
        evaluation.main(argv)
        release_memory()
        return
    status, error = launched("lavt_hf.training.evaluation", argv, launcher, run.directory / "evaluate.log")
    if status != "ok":
        raise RuntimeError(f"evaluation of {run.directory} failed: {error}")


def execute_run(run: Run, settings: StudySettings) -> None:
    """Train, evaluate, tidy and mark one run done."""
    run.directory.mkdir(parents=True, exist_ok=True)
    write_atomically(run.config_path, yaml.safe_dump(run.recipe, sort_keys=False))
    record: dict[str, Any] = {"status": "ok", "error": None, "train_seconds": None, "eval_seconds": None}
    if not run.trainer_state_path.is_file():
        start = time.perf_counter()
        record["status"], record["error"] = train_run(run, settings.launcher)
        record["train_seconds"] = time.perf_counter() - start
    if record["status"] == "ok":
        start = time.perf_counter()
        evaluate_run(run, settings.protocol, settings.launcher)
        record["eval_seconds"] = time.perf_counter() - start
    for folder in ("checkpoints", "best"):  # model/ keeps the selected weights; these are for resuming only
        shutil.rmtree(run.directory / folder, ignore_errors=True)
    write_atomically(run.done_path, json.dumps(record, indent=1))


def run_study(settings: StudySettings) -> dict:
    """Plan (all checks first), run what is not done yet, then write results.json, results.md and curves.png."""
    return execute_study(settings, plan_study(settings))


def execute_study(settings: StudySettings, runs: Sequence[Run]) -> dict:
    """Run the planned runs that are not done yet, then write the reports; returns results.json's content."""
    exported = offline_weights_path(settings.study_dir)  # the offline ImageNet weights, once per study
    if not exported.is_file() and any((run.recipe.get("loss") or {}).get("perceptual_pretrained") == str(exported)
                                      for run in runs):
        os.replace(export_efficientnet_lite0(exported.with_name(f".incomplete-{exported.name}")), exported)
    for index, run in enumerate(runs, 1):
        status = run_status(run)
        if status in ("ok", "diverged"):
            print(f"[{index}/{len(runs)}] {run.arm} seed {run.seed}: {status}, skipped", flush=True)
            continue
        print(f"[{index}/{len(runs)}] {run.arm} seed {run.seed}: {status} -> running in {run.directory}", flush=True)
        execute_run(run, settings)
    results = collect_results(settings, runs)
    write_atomically(settings.study_dir / "results.json", json.dumps(json_safe(results), indent=1))
    write_atomically(settings.study_dir / "results.md", markdown_report(results))
    plot_curves(results, settings.study_dir / "curves.png")
    print(f"results: {settings.study_dir / 'results.md'}", flush=True)
    return results


def json_safe(value: Any) -> Any:
    """NaN / inf -> None (strict JSON has neither), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
