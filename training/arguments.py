# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Training options: three dataclasses read from a YAML recipe (every key a field below, or `base:
other.yaml`, a recipe relative to this one that it changes), then overridden from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from accelerate.utils import LoggerType
from transformers import HfArgumentParser

from lavt_hf.cli import (
    ArgumentParser,
    NotFoundError,
    UsageError,
    check_source_exists,
    check_writable_dir,
    range_problem,
    unknown_arguments_message,
)
from lavt_hf.training.data import streaming_problem
from lavt_hf.training.data.refer import check_sentence_field
from lavt_hf.training.data.user import COLUMN_HELP
from modeling_lavt.configuration_lavt import PRESETS, LavtConfig
from modeling_lavt.losses import LavtLoss

# Options that are mappings: a recipe over its base, an arm or a --set over a study's recipe merge them key by key.
MERGED_OPTIONS = ("loss", "model_overrides", "text_config")
KNOWN_TRACKERS = (*(tracker.value for tracker in LoggerType), "none")


@dataclass
class ModelArguments:
    preset: str = field(default="swin-tiny-window7", metadata={"help": f"Swin size and window: {sorted(PRESETS)}"})
    model_overrides: dict = field(default_factory=dict, metadata={
        "help": "LavtConfig fields set on top of the preset (YAML mapping), e.g. {embed_dim: 32, depths: [1,1,1,1]}"})
    text_config: dict = field(default_factory=dict, metadata={
        "help": "text encoder config fields for a randomly initialised encoder (ignored with --text_encoder)"})
    swin_weights: str | None = field(default=None, metadata={
        "help": "timm model name (e.g. swin_base_patch4_window12_384.ms_in22k) or Swin checkpoint file"})
    text_encoder: str | None = field(default=None, metadata={
        "help": "pretrained text encoder: local folder or Hub id (e.g. bert-base-uncased)"})
    tokenizer: str | None = field(default=None, metadata={
        "help": "tokenizer folder or Hub id (default: the text encoder's)"})
    init_from: str | None = field(default=None, metadata={
        "help": "start from a saved LAVT folder or Hub id instead (fine-tuning)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations in backward"})


@dataclass
class DataArguments:
    dataset: str = field(default="", metadata={
        "help": "raw refer root, prepared parquet folder / Hub id, community parquet, or a dataset of one's own "
                "(Hub id or folder with image, mask and text columns, or a folder with expressions.jsonl)"})
    dataset_config: str | None = field(default=None, metadata={"help": "e.g. refcoco_unc, refcocog_umd"})
    images_root: str | None = field(default=None, metadata={"help": "COCO folder holding train2014/ (raw layouts)"})
    image_column: str | None = field(default=None, metadata={"help": COLUMN_HELP["image_column"]})
    mask_column: str | None = field(default=None, metadata={"help": COLUMN_HELP["mask_column"]})
    text_column: str | None = field(default=None, metadata={"help": COLUMN_HELP["text_column"]})
    sentence_field: str = field(default="raw", metadata={
        "help": "text of each sentence read: raw (as typed, what the original LAVT reads) or sent (normalised)"})
    train_split: str = "train"
    eval_split: str = "val"
    image_size: int = field(default=480, metadata={"help": "square side the images are resized to"})
    max_train_objects: int | None = field(default=None, metadata={"help": "use only the first N objects"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "evaluate only the first N pairs"})
    num_workers: int = field(default=2, metadata={"help": "data loader worker processes per training process"})
    streaming: bool = field(default=False, metadata={
        "help": "stream prepared parquet (folder or Hub id) instead of loading it: every object once per epoch, "
                "batches read by the main process and dispatched to the others (docs/training.md)"})
    shuffle_buffer: int = field(default=1000, metadata={
        "help": "with --streaming: objects in the shuffle buffer (shard order and buffer drawn from seed, epoch)"})


@dataclass
class TrainingArguments:
    output_dir: str = "outputs/lavt"
    seed: int = 42
    num_epochs: int = 40
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimizer steps"})
    per_device_batch_size: int = 8
    eval_batch_size: int = 16
    gradient_accumulation_steps: int = 1
    optimizer: str = field(default="adamw", metadata={"help": "adamw (original LAVT) or adam (the paper)"})
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    poly_power: float = field(default=0.9, metadata={"help": "lr * (1 - step / total) ** power, per step"})
    text_trainable_layers: int | None = field(default=10, metadata={
        "help": "optimise text encoder layers 0..N-1 only (original: 10); null trains all, 0 freezes it"})
    max_grad_norm: float | None = field(default=None, metadata={"help": "clip gradients to this norm"})
    eval_every_steps: int | None = field(default=None, metadata={"help": "evaluate every N steps (default: epoch)"})
    checkpointing_steps: int | None = field(default=None, metadata={
        "help": "save a resumable checkpoint every N steps (always at epoch end)"})
    checkpoints_total_limit: int = field(default=2, metadata={"help": "resumable checkpoints kept"})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "'latest' or a checkpoint folder"})
    report_to: str = field(default="tensorboard", metadata={"help": f"tracker name(s), comma-separated: "
                                                                    f"{', '.join(KNOWN_TRACKERS)}"})
    log_every_steps: int = 10
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False
    loss: dict = field(default_factory=dict, metadata={
        "help": "loss fields of LavtConfig, e.g. {perceptual_weight: 1.0, perceptual_softmax: true}"})


ARGUMENT_CLASSES = (ModelArguments, DataArguments, TrainingArguments)
# The lowest value of each numeric option (max_grad_norm: above it); None is allowed where it is the default.
MINIMUMS = {"image_size": 1, "max_train_objects": 1, "max_eval_samples": 1, "num_workers": 0,
            "shuffle_buffer": 1, "seed": 0, "num_epochs": 1, "max_steps": 1, "per_device_batch_size": 1,
            "eval_batch_size": 1, "gradient_accumulation_steps": 1, "learning_rate": 0.0, "weight_decay": 0.0,
            "poly_power": 0.0, "text_trainable_layers": 0, "max_grad_norm": 0.0, "eval_every_steps": 1,
            "checkpointing_steps": 1, "checkpoints_total_limit": 1, "log_every_steps": 1}
CHOICES = {"preset": sorted(PRESETS), "optimizer": ["adamw", "adam"]}


def field_names() -> dict[str, type]:
    return {f.name: cls for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls)}


def merge_recipe(base: dict, override: dict) -> dict:
    """`override` over `base`; the mapping options (loss, model_overrides, text_config) merge key by key, so an
    override that adds `{loss: {dice_weight: 1}}` keeps the base's other loss settings."""
    merged = {**base, **override}
    for key in MERGED_OPTIONS:
        if isinstance(base.get(key), dict) and isinstance(override.get(key), dict):
            merged[key] = {**base[key], **override[key]}
    return merged


def load_recipe(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """A YAML recipe as a flat mapping of field -> value, over its `base` recipe if it names one; unknown keys
    are an error that lists the valid ones."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"training config {path} does not exist")
    if path.resolve() in _seen:
        raise UsageError(f"{path}: recipes name each other as base: {[str(p) for p in _seen]}")
    try:
        recipe = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or error
        raise UsageError(f"{where}: not valid YAML ({problem}); fix the recipe there") from error
    if not isinstance(recipe, dict):
        raise UsageError(f"{path} must hold a mapping of option: value")
    base = recipe.pop("base", None)
    unknown = sorted(set(recipe) - set(field_names()))
    if unknown:
        raise UsageError(f"{path}: unknown option(s) {unknown}; valid options are {sorted(field_names())}")
    if base is None:
        return recipe
    if not isinstance(base, str):
        raise UsageError(f"{path}: base must be the path of another recipe, got {base!r}")
    return merge_recipe(load_recipe(path.parent / base, (*_seen, path.resolve())), recipe)


def validate(model_args: ModelArguments, data_args: DataArguments, train_args: TrainingArguments) -> None:
    """Refuse what would fail later, before any model is built or data read: raises `UsageError` (a
    `NotFoundError` for a missing path)."""
    for name, value in (("preset", model_args.preset), ("optimizer", train_args.optimizer)):
        if value not in CHOICES[name]:
            raise UsageError(f"--{name} {value!r}: unknown {name}; choose one of {CHOICES[name]}")
    config_fields = {f.name for f in dataclasses.fields(LavtConfig)}
    for name, mapping in (("model_overrides", model_args.model_overrides), ("loss", train_args.loss)):
        unknown = sorted(set(mapping) - config_fields)
        if unknown:
            raise UsageError(f"{name} names unknown LavtConfig field(s) {unknown}")
    for instance in (data_args, train_args):  # recipe values reach the dataclasses unconverted
        for name, hint in typing.get_type_hints(type(instance)).items():
            value, allowed = getattr(instance, name), typing.get_args(hint) or (hint,)
            if name not in MINIMUMS or (value is None and type(None) in allowed):
                continue
            wanted = "an integer" if int in allowed else "a number"
            if isinstance(value, bool) or not isinstance(value, int if int in allowed else (int, float)):
                raise UsageError(f"--{name} {value!r}: must be {wanted}; fix it on the command line or in "
                                 "the recipe")
            problem = range_problem(value, MINIMUMS[name], exclusive=name == "max_grad_norm")
            if problem:
                raise UsageError(f"--{name} {value}: {problem}; fix it on the command line or in the recipe")
    if not data_args.dataset:
        raise UsageError("no dataset given: set `dataset` in the config or pass --dataset")
    check_source_exists(data_args.dataset, "--dataset")
    if data_args.streaming and streaming_problem(data_args.dataset):
        raise UsageError(f"--streaming: {streaming_problem(data_args.dataset)}")
    if data_args.streaming and data_args.max_train_objects and data_args.num_workers:
        # `datasets` cuts a stream per worker, each in its own shards: the objects kept would not be the first N.
        raise UsageError(f"--max_train_objects {data_args.max_train_objects} with --streaming reads the first "
                         f"objects in one reader: set --num_workers 0 (not {data_args.num_workers}), or drop "
                         "--max_train_objects")
    for flag, source in (("--tokenizer", model_args.tokenizer), ("--text_encoder", model_args.text_encoder),
                         ("--init_from", model_args.init_from), ("--swin_weights", model_args.swin_weights)):
        if source:
            check_source_exists(source, flag)
    try:  # what the model would refuse only when built; --init_from's config with the loss train gives it
        config = (LavtConfig.from_pretrained(model_args.init_from, **train_args.loss) if model_args.init_from else
                  LavtConfig.from_preset(model_args.preset, **model_args.model_overrides, **train_args.loss))
        LavtLoss(config)
    except (ValueError, TypeError) as error:
        raise UsageError(f"--model_overrides / --loss: {error}; fix it on the command line or in the recipe") from None
    if data_args.images_root and not Path(data_args.images_root).is_dir():
        raise NotFoundError(f"--images_root {data_args.images_root}: no such folder; give the COCO folder "
                            "holding train2014/")
    try:
        check_sentence_field(data_args.sentence_field)
    except ValueError as error:
        raise UsageError(f"--sentence_field: {error}") from error
    trackers = [t.strip() for t in train_args.report_to.split(",") if t.strip()]
    unknown_trackers = [t for t in trackers if t not in KNOWN_TRACKERS]
    if unknown_trackers:
        raise UsageError(f"unknown tracker(s) {unknown_trackers}; choose from {list(KNOWN_TRACKERS)}")
    if train_args.push_to_hub and not train_args.hub_model_id:
        raise UsageError("--push_to_hub needs --hub_model_id")
    resume = train_args.resume_from_checkpoint
    if resume not in (None, "latest") and not Path(resume).is_dir():
        raise NotFoundError(f"--resume_from_checkpoint {resume}: no such checkpoint folder; give a folder "
                            "output_dir/checkpoints/checkpoint-<step> or 'latest'")
    check_writable_dir(train_args.output_dir, "--output_dir")


def yaml_mapping(text: str) -> dict:
    """The argparse `type` of the mapping options: a YAML or JSON mapping, e.g. '{perceptual_weight: 1.0}'."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML or JSON mapping such as '{{perceptual_weight: 1.0, "
                                         f"perceptual_softmax: true}}', got {text!r}")
    return value


def dotted_overrides(extras: list[str]) -> tuple[dict[str, dict], list[str]]:
    """The `--<mapping option>.<key> VALUE` (or `=VALUE`) arguments among those argparse did not know, as
    {option: {key: value}} with YAML values, and the arguments left unknown."""
    overrides, unknown = {}, []
    tokens = iter(extras)
    for token in tokens:
        name, dot, key = token[2:].partition(".") if token.startswith("--") else ("", "", "")
        if not (dot and name in MERGED_OPTIONS and key):
            unknown.append(token)
            continue
        key, equals, value = key.partition("=")
        value = value if equals else next(tokens, None)
        if value is None or (not equals and value.startswith("--")):
            raise UsageError(f"{token}: expected a value, e.g. {token} 1.0")
        try:
            overrides.setdefault(name, {})[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise UsageError(f"{token} {value}: not a valid YAML value ({getattr(error, 'problem', None) or error})"
                             ) from error
    return overrides, unknown


class TrainingArgumentParser(HfArgumentParser):
    """`HfArgumentParser` whose mistakes are one line, as `lavt_hf.cli.ArgumentParser`'s."""

    error = ArgumentParser.error


def parse_arguments(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """`--config recipe.yaml` gives defaults that other options override; a mapping option takes a YAML or
    JSON mapping (`--loss '{perceptual_weight: 1.0}'`) or one key at a time (`--loss.perceptual_weight 1.0`),
    merged over the recipe's. Raises `UsageError` for an unknown option (naming the closest), a bad value."""
    parser = TrainingArgumentParser(
        ARGUMENT_CLASSES, prog="lavt-train", allow_abbrev=False, description="Train LAVT with Accelerate. Options come from --config "
        "(YAML) and are overridden by the command line; a mapping option also takes one key at a time, e.g. "
        "--loss.perceptual_weight 1.0.")
    parser.add_argument("--config", help="YAML recipe, e.g. training/configs/demo.yaml")
    for name in MERGED_OPTIONS:
        parser._option_string_actions[f"--{name}"].type = yaml_mapping
    namespace, _ = parser.parse_known_args(argv)
    recipe = load_recipe(namespace.config) if namespace.config else {}
    parser.set_defaults(**{**recipe, **dict.fromkeys(MERGED_OPTIONS)})  # a mapping given here is merged, below
    namespace, extras = parser.parse_known_args(argv)
    overrides, unknown = dotted_overrides(extras)
    if unknown:
        raise UsageError(unknown_arguments_message(parser, unknown))
    for name in MERGED_OPTIONS:
        base = recipe.get(name, {})
        if not isinstance(base, dict):
            raise UsageError(f"{namespace.config}: {name} must be a mapping of key: value, got {base!r}")
        setattr(namespace, name, {**base, **(getattr(namespace, name) or {}), **overrides.get(name, {})})
    model_args, data_args, train_args = (
        cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if f.init})
        for cls in ARGUMENT_CLASSES
    )
    validate(model_args, data_args, train_args)
    return model_args, data_args, train_args
