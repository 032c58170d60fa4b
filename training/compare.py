# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Loss studies: train every (arm, seed) the same way, evaluate each run, compare every arm with a baseline.

Why this exists: the perceptual-loss paper reports gains (+0.5 mean IoU, +0.23 overall IoU, one run per arm)
smaller than LAVT's own run-to-run spread (about +-0.5 overall IoU). Only several seeds per arm, paired by seed
and by evaluation sample, tell such a difference from noise. Runs of different arms with the same seed start
from the same LAVT initialisation and see the same data order (`training.train` seeds both from the run's seed;
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
starts `<launcher> -m training.train` and `<launcher> -m training.evaluate` for each run instead, so every run
gets fresh processes on all the launcher's devices; their output is also kept in the run's train.log and
evaluate.log.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from training import evaluate as evaluation
from training import train
from training.arguments import (
    ARGUMENT_CLASSES,
    MERGED_OPTIONS,
    field_names,
    load_recipe,
    merge_recipe,
    validate,
)
from training.stats import paired_bootstrap_ci, paired_comparison, summarize

# Evaluation metrics reported per arm (keys of eval_results.json -> table headers).
METRICS: dict[str, str] = {"overall_iou": "overall IoU", "mean_iou": "mean IoU", "precision@0.5": "P@0.5",
                           "precision@0.7": "P@0.7", "precision@0.9": "P@0.9"}
# The paper's arms; `ce_perceptual_nosoftmax` is its ablation (cross-entropy + perceptual on the raw logit).
DEFAULT_ARMS: dict[str, dict] = {
    "ce": {"loss": {"ce_weight": 1.0, "perceptual_weight": 0.0, "dice_weight": 0.0}},
    "ce_perceptual": {"loss": {"ce_weight": 1.0, "perceptual_weight": 1.0, "perceptual_softmax": True,
                               "dice_weight": 0.0}},
    "ce_perceptual_nosoftmax": {"loss": {"ce_weight": 1.0, "perceptual_weight": 1.0, "perceptual_softmax": False,
                                         "dice_weight": 0.0}},
    "ce_dice": {"loss": {"ce_weight": 1.0, "perceptual_weight": 0.0, "dice_weight": 1.0}},
}
# Options the study sets per run; an arm or --set that names them would break resuming or the pairing.
STUDY_OPTIONS = ("output_dir", "seed", "resume_from_checkpoint", "push_to_hub", "hub_model_id", "hub_private")
SHARED_OPTIONS = ("dataset", "dataset_config", "images_root", "eval_split")
OFFLINE_NETWORK = "tf_efficientnet_lite0"
PERCEPTUAL_WEIGHT_CHOICES = ("offline", "timm", "random")
_ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
REPO_ROOT = Path(__file__).resolve().parents[1]
_BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Arm:
    name: str
    override: dict


@dataclass
class StudySettings:
    """Everything that defines a study. `base_recipe` is the training recipe every arm starts from."""

    study_dir: Path
    base_recipe: dict
    arms: list[Arm]
    seeds: list[int]
    baseline: str | None = None  # default: the first arm
    perceptual_network: str = OFFLINE_NETWORK
    perceptual_weights: str = "offline"  # or "timm", "random", or a weights file
    protocol: str = "model_input"
    bootstrap_resamples: int = 10_000
    confidence: float = 0.95
    keep_checkpoints: bool = False
    launcher: list[str] | None = None  # e.g. ["accelerate", "launch", ...]: each run in child processes

    @property
    def baseline_arm(self) -> str:
        return self.baseline or self.arms[0].name


@dataclass(frozen=True)
class Run:
    """One (arm, seed) of a study and the recipe it trains with."""

    arm: str
    seed: int
    directory: Path
    recipe: dict = field(hash=False)

    @property
    def config_path(self) -> Path:
        return self.directory / "config.yaml"

    @property
    def done_path(self) -> Path:
        return self.directory / "DONE"

    @property
    def eval_dir(self) -> Path:
        return self.directory / "eval"

    @property
    def trainer_state_path(self) -> Path:
        return self.directory / "trainer_state.json"


# ----------------------------------------------------------------------------------------------- arms and recipes


def parse_arm(text: str) -> Arm:
    """`name=MAPPING` (YAML or JSON, e.g. `ce_dice={loss: {dice_weight: 1.0}}`) or the name of a default arm."""
    name, separator, mapping = text.partition("=")
    name = name.strip()
    if not separator:
        if name not in DEFAULT_ARMS:
            raise ValueError(f"--arm {name!r}: not a default arm ({sorted(DEFAULT_ARMS)}); give name=MAPPING")
        return Arm(name, DEFAULT_ARMS[name])
    return Arm(name, _as_mapping(yaml.safe_load(mapping), f"arm {name!r}"))


def load_arms_file(path: str | Path) -> list[Arm]:
    """A YAML file mapping arm name -> override mapping (null: the base recipe as it is), in study order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"arms file {path} does not exist")
    content = _as_mapping(yaml.safe_load(path.read_text()), f"arms file {path}")
    return [Arm(str(name), _as_mapping(override or {}, f"arm {name!r} in {path}")) for name, override in content.items()]


def parse_assignment(text: str) -> dict:
    """`KEY=VALUE` (VALUE parsed as YAML) -> {KEY: VALUE}."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise ValueError(f"--set {text!r}: expected KEY=VALUE")
    return {key.strip(): yaml.safe_load(value)}


def build_base_recipe(config: str | Path | None, assignments: Sequence[str] = ()) -> dict:
    """The recipe every arm starts from: the `--config` file (if any) with the `--set` assignments merged in."""
    recipe = load_recipe(config) if config else {}
    for text in assignments:
        override = parse_assignment(text)
        check_override(override, "--set", forbidden=STUDY_OPTIONS)
        recipe = merge_recipe(recipe, override)
    return recipe


def _as_mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping of training options, got {value!r}")
    return value


def check_override(override: dict, where: str, forbidden: Sequence[str]) -> None:
    """Only real training options, none of `forbidden`, and mappings where the option is a mapping."""
    unknown = sorted(set(override) - set(field_names()))
    if unknown:
        raise ValueError(f"{where}: unknown training option(s) {unknown}; valid options are {sorted(field_names())}")
    owned = sorted(set(override) & set(forbidden))
    if owned:
        raise ValueError(f"{where}: {owned} cannot be set here: the study sets or shares them for every run")
    for key in MERGED_OPTIONS:
        if key in override and not isinstance(override[key], dict):
            raise ValueError(f"{where}: {key} must be a mapping, got {override[key]!r}")


def check_settings(settings: StudySettings) -> None:
    """Refuse a study that cannot give a paired comparison, before anything is read or written."""
    if len(settings.seeds) < 2:
        raise ValueError(f"a paired comparison needs at least 2 seeds, got {len(settings.seeds)}")
    if len(set(settings.seeds)) != len(settings.seeds):
        raise ValueError(f"seeds must be distinct, got {settings.seeds}")
    names = [arm.name for arm in settings.arms]
    if len(names) < 2:
        raise ValueError(f"a comparison needs at least 2 arms, got {names}")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"arm names must be unique, got {duplicated} more than once")
    for name in names:
        if not _ARM_NAME.fullmatch(name):
            raise ValueError(f"arm name {name!r} must be a folder name: letters, digits, '_', '.', '-'")
    if settings.baseline_arm not in names:
        raise ValueError(f"baseline arm {settings.baseline_arm!r} is not one of the arms {names}")
    weights = settings.perceptual_weights
    if weights not in PERCEPTUAL_WEIGHT_CHOICES and not Path(weights).is_file():
        raise FileNotFoundError(f"--perceptual-weights {weights!r}: neither one of {PERCEPTUAL_WEIGHT_CHOICES} "
                                "nor an existing weights file")
    evaluation.check_protocol(settings.protocol)
    for arm in settings.arms:
        check_override(arm.override, f"arm {arm.name!r}", forbidden=STUDY_OPTIONS + SHARED_OPTIONS)


def offline_weights_path(study_dir: Path) -> Path:
    return study_dir / "perceptual" / f"{OFFLINE_NETWORK}.safetensors"


def perceptual_pretrained_value(settings: StudySettings, network: str) -> bool | str:
    """The `perceptual_pretrained` that --perceptual-weights means for `network`."""
    choice = settings.perceptual_weights
    if choice == "offline":
        if network != OFFLINE_NETWORK:
            raise ValueError(f"offline ImageNet weights exist only for {OFFLINE_NETWORK}, not {network}; use "
                             "--perceptual-weights timm (Hub download), random, or a weights file")
        return str(offline_weights_path(settings.study_dir))
    return {"timm": True, "random": False}.get(choice, choice)


def with_perceptual_defaults(recipe: dict, settings: StudySettings) -> dict:
    """Fill in the perceptual network and its weights where an arm with a perceptual term leaves them unset."""
    loss = dict(recipe.get("loss") or {})
    if not loss.get("perceptual_weight"):
        return recipe
    loss.setdefault("perceptual_network", settings.perceptual_network)
    if "perceptual_pretrained" not in loss:
        loss["perceptual_pretrained"] = perceptual_pretrained_value(settings, loss["perceptual_network"])
    return {**recipe, "loss": loss}


def parse_recipe(recipe: dict) -> tuple:
    """(model, data, training) arguments of a recipe exactly as `lavt-train --config` reads it (the recipe as
    parser defaults, so values such as `5e-4`, a string to YAML, convert the same way), without the checks."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(ARGUMENT_CLASSES)
    parser.set_defaults(**recipe)
    return tuple(parser.parse_args_into_dataclasses([], return_remaining_strings=False, look_for_args_file=False))


def validate_run_recipe(recipe: dict, where: str, exported_file: Path) -> None:
    """What `lavt-train` would refuse, plus the loss settings the model would refuse only when built."""
    import timm

    from modeling_lavt import LavtConfig
    from modeling_lavt.losses import LavtLoss

    try:
        model_args, data_args, train_args = parse_recipe(recipe)
        validate(model_args, data_args, train_args)
        LavtLoss(LavtConfig(**train_args.loss))
    except (ValueError, TypeError) as error:
        kind = FileNotFoundError if isinstance(error, FileNotFoundError) else ValueError  # a missing path stays one
        raise kind(f"{where}: {error}") from error
    loss = train_args.loss
    if loss.get("perceptual_weight"):
        network = loss.get("perceptual_network", "vgg16")
        if not timm.is_model(network):
            raise ValueError(f"{where}: perceptual_network {network!r} is not a timm model")
        weights = loss.get("perceptual_pretrained")
        if isinstance(weights, str) and Path(weights) != exported_file and not Path(weights).is_file():
            raise FileNotFoundError(f"{where}: perceptual_pretrained {weights!r} is not a file")


def check_dataset(recipe: dict) -> None:
    """Both splits load: a missing or mistyped dataset fails here, before the first run starts."""
    from training.data import load_refer_dataset

    _, data_args, _ = parse_recipe(recipe)
    if not data_args.dataset:
        raise ValueError("no dataset given: set `dataset` in the --config recipe or with --set dataset=...")
    for split in (data_args.train_split, data_args.eval_split):
        try:
            load_refer_dataset(data_args.dataset, data_args.dataset_config, split, images_root=data_args.images_root,
                               sentence_field=data_args.sentence_field)
        except (OSError, ValueError) as error:
            message = (f"cannot load split {split!r} of dataset {data_args.dataset!r} "
                       f"(config {data_args.dataset_config}): {error}")
            raise (FileNotFoundError if isinstance(error, FileNotFoundError) else ValueError)(message) from error


def plan_study(settings: StudySettings) -> list[Run]:
    """Every (arm, seed) run with its recipe, after every check that can fail before training."""
    check_single_process()
    check_settings(settings)
    exported = offline_weights_path(settings.study_dir)
    runs = []
    for arm in settings.arms:
        recipe = with_perceptual_defaults(merge_recipe(settings.base_recipe, arm.override), settings)
        validate_run_recipe(recipe, f"arm {arm.name!r}", exported)
        for seed in settings.seeds:
            directory = settings.study_dir / "runs" / arm.name / f"seed{seed}"
            runs.append(Run(arm.name, seed, directory, {**recipe, "output_dir": str(directory), "seed": seed}))
    check_dataset(settings.base_recipe)
    for run in runs:
        check_existing_config(run)
    return runs


def check_existing_config(run: Run) -> None:
    """A run folder left by an earlier invocation must hold the same recipe, or its results would be mixed in."""
    if not run.config_path.is_file():
        return
    existing = yaml.safe_load(run.config_path.read_text())
    if existing != run.recipe:
        changed = sorted(k for k in set(existing) | set(run.recipe) if existing.get(k) != run.recipe.get(k))
        raise ValueError(f"{run.config_path} was written with other settings (differing: {changed}); use a new "
                         "study folder, or delete that run folder to redo it")


def needs_offline_weights(runs: Sequence[Run], study_dir: Path) -> bool:
    target = str(offline_weights_path(study_dir))
    return any((run.recipe.get("loss") or {}).get("perceptual_pretrained") == target for run in runs)


def export_offline_weights(study_dir: Path) -> Path:
    """Export the offline ImageNet EfficientNet-Lite0 once per study (atomically: a partial file never counts)."""
    from modeling_lavt.losses import export_efficientnet_lite0

    target = offline_weights_path(study_dir)
    if not target.is_file():
        staging = export_efficientnet_lite0(target.with_name(f".incomplete-{target.name}"))
        os.replace(staging, target)
    return target


# --------------------------------------------------------------------------------------------------- running


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
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def train_run(run: Run, launcher: Sequence[str] | None) -> tuple[str, str | None]:
    """Train (or resume) one run with `training.train`; a non-finite loss is a result ("diverged"), not a crash."""
    argv = ["--config", str(run.config_path), "--resume_from_checkpoint", "latest"]
    if launcher:
        return launched("training.train", argv, launcher, run.directory / "train.log")
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
    if data_args.dataset_config:
        argv += ["--dataset_config", data_args.dataset_config]
    if data_args.images_root:
        argv += ["--images_root", data_args.images_root]
    if launcher:
        status, error = launched("training.evaluate", argv, launcher, run.directory / "evaluate.log")
        if status != "ok":
            raise RuntimeError(f"evaluation of {run.directory} failed: {error}")
        return
    evaluation.main(argv)
    release_memory()


def launched(module: str, argv: list[str], launcher: Sequence[str], log_path: Path) -> tuple[str, str | None]:
    """`<launcher> -m <module> <argv>` in a child process (e.g. `accelerate launch` on several GPUs), its output
    shown live and appended to `log_path`. A child that died of `NonFiniteLossError` diverged; any other failure
    stops the study (a rerun resumes the run)."""
    command = [*launcher, "-m", module, *argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log_path, "ab") as log:
        log.write(f"$ {shlex.join(command)}\n".encode())
        attempt_start = log.tell()
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as child:
            for chunk in iter(lambda: child.stdout.read1(1 << 16), b""):
                sys.stdout.write(chunk.decode("utf-8", errors="replace"))
                sys.stdout.flush()
                log.write(chunk)
    if child.returncode == 0:
        return "ok", None
    with open(log_path, "rb") as log:
        log.seek(attempt_start)
        output = log.read().decode("utf-8", errors="replace")
    diverged = [line for line in output.splitlines() if "NonFiniteLossError:" in line]
    if diverged:
        return "diverged", diverged[-1].split("NonFiniteLossError:", 1)[1].strip()
    raise RuntimeError(f"{shlex.join(command)} failed with exit code {child.returncode}; see {log_path}")


def execute_run(run: Run, settings: StudySettings) -> None:
    """Train, evaluate, tidy and mark one run done; every step is safe to redo after a kill."""
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
    if not settings.keep_checkpoints:  # model/ keeps the selected weights; these are for resuming only
        for folder in ("checkpoints", "best"):
            shutil.rmtree(run.directory / folder, ignore_errors=True)
    write_atomically(run.done_path, json.dumps(record, indent=1))


def check_single_process() -> None:
    """The study is one process that starts its runs; launched on several ranks, each would run every run."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("lavt-compare must run as one process; to train each run on several GPUs pass the "
                         "launcher instead, e.g. --launcher 'accelerate launch --config_file 4gpu.yaml'")


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


# ---------------------------------------------------------------------------------------------------- results


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


def json_safe(value: Any) -> Any:
    """NaN / inf -> None (strict JSON has neither), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_reports(results: dict, study_dir: Path) -> None:
    write_atomically(study_dir / "results.json", json.dumps(json_safe(results), indent=1))
    write_atomically(study_dir / "results.md", markdown_report(results))
    plot_curves(results, study_dir / "curves.png")


# ---------------------------------------------------------------------------------------------------- report


def format_mean_std(entry: dict) -> str:
    """`mean ± std` with two decimals, the form results.md uses (and the tests read back)."""
    mean, std = entry["mean"], entry["std"]
    if mean is None or not math.isfinite(mean):
        return "n/a"
    return f"{mean:.2f}" if std is None or not math.isfinite(std) else f"{mean:.2f} ± {std:.2f}"


def format_p(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


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
              "about ±0.5 overall IoU (spec section 6).", "", "## Per seed", "",
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


__all__ = ["DEFAULT_ARMS", "METRICS", "Arm", "Run", "StudySettings", "build_base_recipe", "execute_study",
           "load_arms_file", "parse_arm", "plan_study", "run_status", "run_study"]
