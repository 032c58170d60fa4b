# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Planning a loss study: the arms, the settings and every (arm, seed) run with its recipe, checks first."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timm
import yaml
from transformers import HfArgumentParser

from lavt_hf.training import arguments, evaluation
from lavt_hf.training.data import load_refer_dataset

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
    config_path = property(lambda self: self.directory / "config.yaml")
    done_path = property(lambda self: self.directory / "DONE")
    eval_dir = property(lambda self: self.directory / "eval")
    trainer_state_path = property(lambda self: self.directory / "trainer_state.json")


def _as_mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping of training options, got {value!r}")
    return value


def parse_arm(text: str) -> Arm:
    """`name=MAPPING` (YAML or JSON, e.g. `ce_dice={loss: {dice_weight: 1.0}}`) or the name of a default arm."""
    name, separator, mapping = text.partition("=")
    name = name.strip()
    if separator:
        return Arm(name, _as_mapping(yaml.safe_load(mapping), f"arm {name!r}"))
    if name not in DEFAULT_ARMS:
        raise ValueError(f"--arm {name!r}: not a default arm ({sorted(DEFAULT_ARMS)}); give name=MAPPING")
    return Arm(name, DEFAULT_ARMS[name])


def load_arms_file(path: str | Path) -> list[Arm]:
    """A YAML file mapping arm name -> override mapping (null: the base recipe as it is), in study order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"arms file {path} does not exist")
    content = _as_mapping(yaml.safe_load(path.read_text()), f"arms file {path}")
    return [Arm(str(name), _as_mapping(override or {}, f"arm {name!r} in {path}")) for name, override in content.items()]


def build_base_recipe(config: str | Path | None, assignments: Sequence[str] = ()) -> dict:
    """The `--config` recipe (if any) with the `--set KEY=VALUE` assignments (VALUE as YAML) merged in."""
    recipe = arguments.load_recipe(config) if config else {}
    for text in assignments:
        key, separator, value = text.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"--set {text!r}: expected KEY=VALUE")
        override = {key.strip(): yaml.safe_load(value)}
        check_override(override, "--set", forbidden=STUDY_OPTIONS)
        recipe = arguments.merge_recipe(recipe, override)
    return recipe


def check_override(override: dict, where: str, forbidden: Sequence[str]) -> None:
    """Only real training options, none of `forbidden`, and mappings where the option is a mapping."""
    known = sorted(arguments.field_names())
    unknown = sorted(set(override) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown training option(s) {unknown}; valid options are {known}")
    owned = sorted(set(override) & set(forbidden))
    if owned:
        raise ValueError(f"{where}: {owned} cannot be set here: the study sets or shares them for every run")
    for key in arguments.MERGED_OPTIONS:
        if key in override and not isinstance(override[key], dict):
            raise ValueError(f"{where}: {key} must be a mapping, got {override[key]!r}")


def check_settings(settings: StudySettings) -> None:
    """Refuse a study that cannot give a paired comparison, before anything is read or written."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched on several ranks, each would run every run
        raise ValueError("lavt-compare must run as one process; to train each run on several GPUs pass the "
                         "launcher instead, e.g. --launcher 'accelerate launch --config_file 4gpu.yaml'")
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


def with_perceptual_defaults(recipe: dict, settings: StudySettings) -> dict:
    """The settings' perceptual network and weights where an arm with a perceptual term leaves them unset."""
    loss = dict(recipe.get("loss") or {})
    if not loss.get("perceptual_weight"):
        return recipe
    network = loss.setdefault("perceptual_network", settings.perceptual_network)
    choice = settings.perceptual_weights
    if "perceptual_pretrained" not in loss and choice == "offline":
        if network != OFFLINE_NETWORK:
            raise ValueError(f"offline ImageNet weights exist only for {OFFLINE_NETWORK}, not {network}; use "
                             "--perceptual-weights timm (Hub download), random, or a weights file")
        loss["perceptual_pretrained"] = str(offline_weights_path(settings.study_dir))
    loss.setdefault("perceptual_pretrained", {"timm": True, "random": False}.get(choice, choice))
    return {**recipe, "loss": loss}


def parse_recipe(recipe: dict) -> tuple:
    """(model, data, training) arguments of a recipe as `lavt-train --config` reads it, without the checks
    (the recipe as parser defaults, so that values such as `5e-4`, a string to YAML, convert the same way)."""
    parser = HfArgumentParser(arguments.ARGUMENT_CLASSES)
    parser.set_defaults(**recipe)
    return tuple(parser.parse_args_into_dataclasses([], return_remaining_strings=False, look_for_args_file=False))


def validate_run_recipe(recipe: dict, where: str, exported_file: Path) -> None:
    """What `lavt-train` would refuse (its checks build the config and loss of the recipe)."""
    try:
        model_args, data_args, train_args = parse_recipe(recipe)
        arguments.validate(model_args, data_args, train_args)
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
    _, data_args, _ = parse_recipe(recipe)  # the dataset is named: each arm's recipe passed `validate`
    for split in (data_args.train_split, data_args.eval_split):
        try:
            load_refer_dataset(data_args.dataset, data_args.dataset_config, split, images_root=data_args.images_root,
                               sentence_field=data_args.sentence_field, image_column=data_args.image_column,
                               mask_column=data_args.mask_column, text_column=data_args.text_column)
        except (OSError, ValueError) as error:
            message = (f"cannot load split {split!r} of dataset {data_args.dataset!r} "
                       f"(config {data_args.dataset_config}): {error}")
            raise (FileNotFoundError if isinstance(error, FileNotFoundError) else ValueError)(message) from error


def plan_study(settings: StudySettings) -> list[Run]:
    """Every (arm, seed) run with its recipe, after every check that can fail before training; a run folder
    left with another recipe is an error (its results would be mixed in)."""
    check_settings(settings)
    runs = []
    for arm in settings.arms:
        recipe = arguments.merge_recipe(settings.base_recipe, arm.override)
        recipe = with_perceptual_defaults(recipe, settings)
        validate_run_recipe(recipe, f"arm {arm.name!r}", offline_weights_path(settings.study_dir))
        for seed in settings.seeds:
            directory = settings.study_dir / "runs" / arm.name / f"seed{seed}"
            runs.append(Run(arm.name, seed, directory, {**recipe, "output_dir": str(directory), "seed": seed}))
    check_dataset(settings.base_recipe)
    for run in runs:
        existing = yaml.safe_load(run.config_path.read_text()) if run.config_path.is_file() else run.recipe
        if existing != run.recipe:
            changed = sorted(k for k in set(existing) | set(run.recipe) if existing.get(k) != run.recipe.get(k))
            raise ValueError(f"{run.config_path} was written with other settings (differing: {changed}); use a "
                             "new study folder, or delete that run folder to redo it")
    return runs
