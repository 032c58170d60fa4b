# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Train LAVT with Accelerate.

  accelerate launch training/train.py --config training/configs/lavt_refcoco_swin_b.yaml
  python -m lavt_hf.training.train --config training/configs/demo.yaml --output_dir outputs/demo

The recipe (YAML) gives every option; command-line options override it (`--help` lists them all).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedConfig

from lavt_hf.cli import UsageError, dataset_errors, usage_errors_exit
from lavt_hf.training.arguments import DataArguments, ModelArguments, TrainingArguments, parse_arguments
from lavt_hf.training.data import (
    ReferEvalDataset,
    ReferEvalStream,
    ReferTrainDataset,
    ReferTrainStream,
    collate,
    load_refer_dataset,
    stream_num_rows,
)
from lavt_hf.training.evaluation import DEFAULT_PRESENCE_THRESHOLD, evaluate_model
from lavt_hf.training.memory import return_freed_blocks_to_system
from modeling_lavt import LavtConfig, LavtForReferringSegmentation
from modeling_lavt.image_processing_lavt import LavtImageProcessor
from modeling_lavt.processing_lavt import LavtProcessor
from modeling_lavt.sharing.hub import push_lavt_to_hub, write_model_card
from modeling_lavt.validation import check_tokenizer_fits
from modeling_lavt.weights.pretrained import lavt_from_pretrained_parts

# Beside accelerate's files in each checkpoint: the size of every file saved (a truncated file is found before
# loading), the run's schedule and the model's settings (both compared on resume).
CHECKPOINT_RECORD = "lavt_checkpoint.json"
# The options that decide which samples each optimizer step sees and at which learning rate.
SCHEDULE_OPTIONS = ("per_device_batch_size", "gradient_accumulation_steps", "num_epochs", "max_steps", "seed",
                    "optimizer", "learning_rate", "poly_power")


class NonFiniteLossError(RuntimeError):
    pass


def data_loader_configuration(seed: int) -> DataLoaderConfiguration:
    """Accelerate's seedable sampler: epoch e's order is drawn from `data_seed + e` alone, on every process,
    so a resumed run replays it. seed * 100_003 keeps seed s + 1 from replaying seed s one epoch later."""
    return DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed * 100_003)


def build_processor(model_args: ModelArguments, data_args: DataArguments) -> LavtProcessor:
    if model_args.init_from:
        processor = LavtProcessor.from_pretrained(model_args.init_from)
        processor.image_processor.size = {"height": data_args.image_size, "width": data_args.image_size}
        return processor
    tokenizer_source = model_args.tokenizer or model_args.text_encoder
    if tokenizer_source is None:
        raise UsageError("no tokenizer: set `tokenizer` (a folder or Hub id with a BERT vocabulary)")
    return LavtProcessor(LavtImageProcessor(size=data_args.image_size), AutoTokenizer.from_pretrained(tokenizer_source))


def build_model(model_args: ModelArguments, train_args: TrainingArguments) -> LavtForReferringSegmentation:
    if model_args.init_from:
        return LavtForReferringSegmentation.from_pretrained(model_args.init_from, **train_args.loss)
    overrides = {**model_args.model_overrides, **train_args.loss}
    if model_args.text_config and not model_args.text_encoder:
        overrides["text_config"] = {"model_type": "bert", **model_args.text_config}
    config = LavtConfig.from_preset(model_args.preset, **overrides)
    return lavt_from_pretrained_parts(config, swin=model_args.swin_weights, text_encoder=model_args.text_encoder)


def parameter_groups(model: LavtForReferringSegmentation, train_args: TrainingArguments) -> list[dict]:
    """The original's groups: no weight decay on backbone norms and position-bias tables; only the first
    `text_trainable_layers` text encoder layers are optimised (the rest are frozen but pass gradients)."""
    trainable_text = train_args.text_trainable_layers
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        name = name.removeprefix(f"{model.base_model_prefix}.")  # text_encoder.* and backbone.* of the headless part
        if name.startswith("text_encoder.") and trainable_text is not None:
            layer = re.match(r"text_encoder\.encoder\.layer\.(\d+)\.", name)
            if layer is None or int(layer.group(1)) >= trainable_text:
                param.requires_grad_(False)
                continue
        if name.startswith("backbone.") and ("norm" in name or "relative_position_bias_table" in name):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": train_args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def poly_schedule(optimizer, total_steps: int, power: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Each group's lr * max(1 - step / total_steps, 0) ** power, the original's per-step poly decay
    (transformers' polynomial schedule refuses learning rate 0 and gives 0 past the end at power 0)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(1.0 - step / total_steps, 0.0) ** power)


def model_settings(config: LavtConfig) -> dict:
    """The model's settings (the text encoder's as `text_config.<name>`), less transformers' generic ones."""
    generic = set(PreTrainedConfig().to_dict())
    settings = {key: value for key, value in config.to_dict().items() if key not in generic}
    settings.update({f"text_config.{k}": v for k, v in settings.pop("text_config").items() if k not in generic})
    return json.loads(json.dumps(settings))  # tuples as lists, as read back from the checkpoint


def checkpoints_in(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first (incomplete ones never get their final name)."""
    found = [p for p in directory.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()]
    return sorted(found, key=lambda p: int(p.name.removeprefix("checkpoint-")))


def link_or_copy(source: str, destination: str) -> None:
    """A hard link where the file system allows (files are replaced, never edited), else a copy."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def save_checkpoint(accelerator: Accelerator, output_dir: Path, state: dict, limit: int, record: dict) -> Path:
    """`save_state` into a folder renamed when complete (a kill mid-save leaves nothing loadable), with the
    best model so far (hard links) and `record` plus each file's size in `CHECKPOINT_RECORD`."""
    directory = output_dir / "checkpoints"
    final = directory / f"checkpoint-{state['global_step']}"
    staging = directory / f".incomplete-checkpoint-{state['global_step']}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()  # every process's files are there before their sizes are recorded
    if accelerator.is_main_process:
        if (output_dir / "best").is_dir():
            shutil.copytree(output_dir / "best", staging / "best", copy_function=link_or_copy)
        files = {str(p.relative_to(staging)): p.stat().st_size for p in sorted(staging.rglob("*")) if p.is_file()}
        (staging / CHECKPOINT_RECORD).write_text(json.dumps({**record, "files": files}, indent=1))
        (staging / "trainer_state.json").write_text(json.dumps(state, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        for old in checkpoints_in(directory)[:-limit]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def checkpoint_damage(checkpoint: Path) -> str | None:
    """What is wrong with a checkpoint's files (missing, or another size than saved), or None."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
        files = json.loads((checkpoint / CHECKPOINT_RECORD).read_text())["files"]
    except (OSError, ValueError, KeyError) as error:
        return f"its state or record cannot be read ({error})"
    for name, size in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != size:
            return f"{path} has {path.stat().st_size} bytes, {size} were saved (truncated or overwritten)"
    return None


def resolve_checkpoint(value: str, output_dir: Path, say=print) -> Path | None:
    """The folder `value`, or for `latest` the newest undamaged checkpoint in `output_dir/checkpoints` (each
    damaged one is named via `say` and skipped); None when there is none. Raises `UsageError` for a folder
    that is not a complete, undamaged checkpoint, and when every checkpoint is damaged."""
    if value != "latest":
        path = Path(value)
        if not (path / "trainer_state.json").is_file():
            raise UsageError(f"--resume_from_checkpoint {path}: not a complete checkpoint (no trainer_state.json); "
                             "give a folder output_dir/checkpoints/checkpoint-<step> or 'latest'")
        damage = checkpoint_damage(path)
        if damage:
            raise UsageError(f"--resume_from_checkpoint {path}: the checkpoint is damaged: {damage}; resume from "
                             "an earlier checkpoint")
        return path
    found = checkpoints_in(output_dir / "checkpoints")
    if not found:
        say(f"--resume_from_checkpoint latest: no checkpoint in {output_dir / 'checkpoints'}; starting from scratch")
        return None
    for checkpoint in reversed(found):
        damage = checkpoint_damage(checkpoint)
        if damage is None:
            return checkpoint
        say(f"warning: checkpoint {checkpoint} is damaged: {damage}; falling back to the previous checkpoint")
    raise UsageError(f"--resume_from_checkpoint latest: every checkpoint in {output_dir / 'checkpoints'} is "
                     "damaged (see the warnings above); remove them to start from scratch")


def resume(accelerator: Accelerator, checkpoint: Path, output_dir: Path, record: dict) -> dict:
    """Load `checkpoint` and return its trainer state, with `output_dir/best` as it was when saved. Raises
    `UsageError` for a checkpoint of another schedule or model, naming each setting with both values."""
    saved_record = json.loads((checkpoint / CHECKPOINT_RECORD).read_text())
    for what, key, advice in (
        ("schedule", "schedule",
         "resume with the checkpoint's values, or start a new run (another --output_dir, no resume)"),
        ("model", "model_settings",
         "resume with the recipe that saved it (preset, model_overrides, text_config, loss)"),
    ):
        saved, current = saved_record[key], record[key]
        found = [f"{name}: {saved.get(name)!r} in the checkpoint, {current.get(name)!r} now"
                 for name in sorted(saved.keys() | current.keys()) if saved.get(name) != current.get(name)]
        if found:
            raise UsageError(f"--resume_from_checkpoint {checkpoint}: the {what} settings differ from the "
                             f"checkpoint's ({'; '.join(found)}); {advice}")
    accelerator.load_state(str(checkpoint))
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    if (checkpoint / "best").is_dir():
        if accelerator.is_main_process:
            shutil.rmtree(output_dir / "best", ignore_errors=True)
            shutil.copytree(checkpoint / "best", output_dir / "best", copy_function=link_or_copy)
    elif state["best_overall_iou"] >= 0 and not (output_dir / "best").is_dir():
        # The best score cannot be matched to a model: the best is chosen anew.
        accelerator.print(f"warning: {checkpoint} holds no best model and {output_dir / 'best'} does not exist; "
                          "the best model is chosen among the evaluations from now on")
        state["best_overall_iou"] = -1.0
        state.pop("best_metrics", None)
    accelerator.wait_for_everyone()
    accelerator.print(f"resumed from {checkpoint} at step {state['global_step']}")
    return state


class WorkerItems(torch.utils.data.IterableDataset):
    """A streamed view's items read by `num_workers` DataLoader workers, merged in a fixed round-robin order
    and batched in this process: `len(view) // batch_size` batches an epoch, however shards fall."""

    def __init__(self, view: ReferTrainStream, num_workers: int) -> None:
        self.view, self.num_workers = view, num_workers

    def __len__(self) -> int:
        return len(self.view)

    def __iter__(self):
        yield from DataLoader(self.view, batch_size=None, num_workers=self.num_workers)


def build_dataloaders(data_args: DataArguments, train_args: TrainingArguments, processor: LavtProcessor):
    """One sentence per object per epoch for training, every (object, sentence) pair for evaluation. A
    stream's recorded row count gives the schedule before the first step; its shard order and shuffle buffer,
    drawn from (seed, epoch), replace a sampler (docs/training.md, "Streaming")."""
    with dataset_errors(data_args.dataset):
        train_rows, eval_rows = (
            load_refer_dataset(data_args.dataset, data_args.dataset_config, split, images_root=data_args.images_root,
                               sentence_field=data_args.sentence_field, streaming=data_args.streaming,
                               image_column=data_args.image_column, mask_column=data_args.mask_column,
                               text_column=data_args.text_column)
            for split in (data_args.train_split, data_args.eval_split))
    limit, eval_limit = data_args.max_train_objects, data_args.max_eval_samples
    workers = data_args.num_workers
    if data_args.streaming:
        num_rows = stream_num_rows(train_rows)
        if num_rows is None:
            raise UsageError(f"--streaming: {data_args.dataset} does not say how many rows its "
                             f"{data_args.train_split!r} split has (no split sizes in its card, no readable "
                             "parquet footers), which the schedule needs; train without --streaming")
        if limit:
            train_rows, num_rows = train_rows.take(limit), min(limit, num_rows)
        train_rows = train_rows.shuffle(seed=train_args.seed, buffer_size=data_args.shuffle_buffer)
        train_view = ReferTrainStream(train_rows, processor, seed=train_args.seed, num_rows=num_rows)
        eval_view = ReferEvalStream(eval_rows, processor, max_samples=eval_limit)
        train_loader = DataLoader(WorkerItems(train_view, workers), collate_fn=collate,
                                  batch_size=train_args.per_device_batch_size, drop_last=True)
    else:
        if limit:
            train_rows = train_rows.select(range(min(limit, len(train_rows))))
        train_view = ReferTrainDataset(train_rows, processor, seed=train_args.seed)
        eval_view = ReferEvalDataset(eval_rows, processor)
        if eval_limit:
            eval_view = torch.utils.data.Subset(eval_view, range(min(eval_limit, len(eval_view))))
        # Shuffled by the seedable sampler `accelerator.prepare` puts in (see `data_loader_configuration`).
        train_loader = DataLoader(train_view, batch_size=train_args.per_device_batch_size, shuffle=True,
                                  collate_fn=collate, num_workers=workers, drop_last=True)
    # A stream's evaluation pairs are numbered in stream order: one reader.
    eval_loader = DataLoader(eval_view, batch_size=train_args.eval_batch_size, collate_fn=collate,
                             num_workers=min(workers, 1) if data_args.streaming else workers)
    return train_view, train_loader, eval_loader


def data_batches(loader: Iterable, source: str) -> Iterator:
    """The loader's batches; a row found bad only when read (a stream's) ends in one line naming the data."""
    try:
        yield from loader
    except ValueError as error:  # from a worker, the message ends with the worker's own error line
        problem = str(error).strip().splitlines()[-1].removeprefix("ValueError: ")
        raise UsageError(f"--dataset {source}: {problem}") from error


def plot_training_curves(history: list[dict], path: Path) -> None:
    """Training loss per logged step and validation IoUs per evaluation, one PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6))
    loss_ax, iou_ax = fig.subplots(1, 2)
    logged = [h for h in history if "loss" in h]
    loss_ax.plot([h["step"] for h in logged], [h["loss"] for h in logged], color="tab:blue")
    loss_ax.set(title="training loss", xlabel="step", ylabel="loss")
    evals = [h for h in history if "overall_iou" in h]
    for key, label in (("overall_iou", "overall IoU"), ("mean_iou", "mean IoU")):
        iou_ax.plot([h["step"] for h in evals], [h[key] for h in evals], marker="o", label=label)
    iou_ax.legend()
    iou_ax.set(title="validation", xlabel="step", ylabel="IoU (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run(argv: list[str] | None = None) -> dict:
    """Train as configured; returns the final state and the folder of the saved model."""
    model_args, data_args, train_args = parse_arguments(argv)
    output_dir = Path(train_args.output_dir)
    trackers = [t.strip() for t in train_args.report_to.split(",") if t.strip() and t.strip() != "none"]
    accelerator = Accelerator(
        gradient_accumulation_steps=train_args.gradient_accumulation_steps,
        dataloader_config=data_loader_configuration(train_args.seed),
        log_with=trackers or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    set_seed(train_args.seed)
    checkpoint = None
    if train_args.resume_from_checkpoint:  # found (and checked) before any work
        checkpoint = resolve_checkpoint(train_args.resume_from_checkpoint, output_dir, accelerator.print)

    processor = build_processor(model_args, data_args)
    train_view, train_loader, eval_loader = build_dataloaders(data_args, train_args, processor)
    eval_size = "streamed" if data_args.streaming else len(eval_loader.dataset)

    model = build_model(model_args, train_args)
    try:
        check_tokenizer_fits(processor.tokenizer, model.config)
    except ValueError as error:
        raise UsageError(f"tokenizer: {error}") from None
    if model_args.gradient_checkpointing:
        model.activation_checkpointing_enable()
        if accelerator.device.type == "cpu":  # the memory-saving mode: let freed activations leave the process
            threshold = return_freed_blocks_to_system()
            if threshold is not None:
                accelerator.print(f"gradient checkpointing on CPU: freed blocks of {threshold / 2**20:g} MiB and "
                                  "more go back to the system (malloc mmap threshold)")
    if accelerator.num_processes > 1 and accelerator.device.type == "cuda":  # PyTorch syncs BatchNorm on GPUs only
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer_class = torch.optim.Adam if train_args.optimizer == "adam" else torch.optim.AdamW
    optimizer = optimizer_class(parameter_groups(model, train_args), lr=train_args.learning_rate)

    model, optimizer, train_loader, eval_loader = accelerator.prepare(model, optimizer, train_loader, eval_loader)
    if len(train_loader) == 0:
        raise UsageError(f"--per_device_batch_size {train_args.per_device_batch_size}: the {len(train_view)} training "
                         f"objects do not fill one batch per process ({accelerator.num_processes} processes); give "
                         "a smaller batch size or more training objects")
    steps_per_epoch = math.ceil(len(train_loader) / train_args.gradient_accumulation_steps)  # per process
    total_steps = min(train_args.num_epochs * steps_per_epoch, train_args.max_steps or math.inf)
    # Stepped by hand once per optimizer step (not through `prepare`, which would step it once per process).
    scheduler = poly_schedule(optimizer, total_steps, train_args.poly_power)
    accelerator.register_for_checkpointing(scheduler)

    total_batch = train_args.per_device_batch_size * accelerator.num_processes * train_args.gradient_accumulation_steps
    accelerator.print(
        f"LAVT training: {len(train_view)} objects, {eval_size} evaluation pairs; batch {total_batch} in total "
        f"({train_args.per_device_batch_size} per device x {accelerator.num_processes} processes x "
        f"{train_args.gradient_accumulation_steps} accumulation); {steps_per_epoch} steps per epoch, "
        f"{total_steps} steps; mixed precision: {accelerator.mixed_precision}"
    )
    if trackers:
        accelerator.init_trackers("lavt", config={k: v for k, v in vars(train_args).items()
                                                  if isinstance(v, (int, float, str, bool))})

    schedule = {name: getattr(train_args, name) for name in SCHEDULE_OPTIONS}
    schedule.update(num_processes=accelerator.num_processes, training_objects=len(train_view))
    if data_args.streaming:  # the order of a streamed epoch: its shuffle buffer and how workers interleave shards
        schedule.update(streaming_shuffle_buffer=data_args.shuffle_buffer,
                        streaming_num_workers=data_args.num_workers)
    record = {"schedule": schedule, "model_settings": model_settings(accelerator.unwrap_model(model).config)}
    state = {"global_step": 0, "epoch": 0, "step_in_epoch": 0, "best_overall_iou": -1.0, "history": []}
    if checkpoint is not None:
        state = resume(accelerator, checkpoint, output_dir, record)

    def run_evaluation() -> None:
        results = evaluate_model(model, eval_loader, accelerator, description=f"eval step {state['global_step']}")
        metrics = {k: v for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        state["history"].append({"step": state["global_step"], "epoch": state["epoch"], **metrics})
        accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=state["global_step"])
        accelerator.print(f"step {state['global_step']}: overall IoU {metrics['overall_iou']:.2f}, "
                          f"mean IoU {metrics['mean_iou']:.2f}")
        if metrics["overall_iou"] <= state["best_overall_iou"]:
            return
        state.update(best_overall_iou=metrics["overall_iou"], best_metrics=metrics)
        if accelerator.is_main_process:  # saved aside, then renamed: a kill mid-save keeps the previous best
            staging = output_dir / ".incomplete-best"
            shutil.rmtree(staging, ignore_errors=True)
            accelerator.unwrap_model(model).save_pretrained(staging)
            processor.save_pretrained(staging)
            shutil.rmtree(output_dir / "best", ignore_errors=True)
            os.replace(staging, output_dir / "best")
        accelerator.wait_for_everyone()

    progress = tqdm(total=total_steps, initial=state["global_step"], desc="train",
                    disable=not accelerator.is_local_main_process)
    model.train()
    window_start, window_samples = time.perf_counter(), 0
    while state["global_step"] < total_steps:
        train_view.set_epoch(state["epoch"])
        loader = train_loader
        if state["step_in_epoch"]:
            loader = accelerator.skip_first_batches(
                train_loader, state["step_in_epoch"] * train_args.gradient_accumulation_steps)
        loader.set_epoch(state["epoch"])  # Accelerate passes it on to the sampler when iteration starts
        for batch in data_batches(loader, data_args.dataset):
            with accelerator.accumulate(model):
                out = model(**batch)
                finite = accelerator.reduce(torch.isfinite(out.loss.detach()).float(), reduction="sum")
                if finite.item() < accelerator.num_processes:
                    raise NonFiniteLossError(
                        f"non-finite loss at step {state['global_step']} (epoch {state['epoch']}); the last good "
                        f"checkpoint is in {output_dir / 'checkpoints'}. Lower the learning rate or enable "
                        "max_grad_norm, then resume with --resume_from_checkpoint latest")
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and train_args.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), train_args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            window_samples += batch["pixel_values"].shape[0] * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            state["global_step"] += 1
            state["step_in_epoch"] += 1
            progress.update(1)
            if state["global_step"] % train_args.log_every_steps == 0:
                elapsed = time.perf_counter() - window_start
                logs = {"train/loss": out.loss.item(), "train/lr": scheduler.get_last_lr()[0],
                        "train/samples_per_second": window_samples / elapsed,
                        **{f"train/{k}": v.item() for k, v in (out.loss_terms or {}).items()}}
                accelerator.log(logs, step=state["global_step"])
                state["history"].append({"step": state["global_step"], "loss": logs["train/loss"],
                                         "lr": logs["train/lr"]})
                progress.set_postfix(loss=f"{logs['train/loss']:.4f}")
                window_start, window_samples = time.perf_counter(), 0
            if train_args.eval_every_steps and state["global_step"] % train_args.eval_every_steps == 0:
                run_evaluation()
            if train_args.checkpointing_steps and state["global_step"] % train_args.checkpointing_steps == 0:
                save_checkpoint(accelerator, output_dir, state, train_args.checkpoints_total_limit, record)
            if state["global_step"] >= total_steps:
                break
        if state["step_in_epoch"] >= steps_per_epoch:  # a full epoch (the loader may be empty after a resume)
            state["epoch"] += 1
            state["step_in_epoch"] = 0
            if not train_args.eval_every_steps:
                run_evaluation()
            save_checkpoint(accelerator, output_dir, state, train_args.checkpoints_total_limit, record)
    progress.close()

    # The final folder: best weights by overall IoU (as the original keeps), processor, card and curves.
    if not any("overall_iou" in h for h in state["history"]):
        run_evaluation()
    final_dir = output_dir / "model"
    if accelerator.is_main_process:
        shutil.rmtree(final_dir, ignore_errors=True)
        shutil.copytree(output_dir / "best", final_dir)
        results = state.get("best_metrics", {})
        evaluation = {**results, "dataset": data_args.dataset, "dataset_config": data_args.dataset_config,
                      "split": data_args.eval_split, "protocol": "model_input",
                      "sentence_field": data_args.sentence_field, "presence_threshold": DEFAULT_PRESENCE_THRESHOLD}
        (final_dir / "eval_results.json").write_text(json.dumps(evaluation, indent=1))
        plot_training_curves(state["history"], output_dir / "training_curves.png")
        write_model_card(final_dir, accelerator.unwrap_model(model).config, [evaluation],
                         recipe={**vars(model_args), **vars(data_args), **vars(train_args)},
                         repo_id=train_args.hub_model_id)
        (output_dir / "trainer_state.json").write_text(json.dumps(state, indent=1))
        accelerator.print(json.dumps({"output_dir": str(final_dir), **results}))
        if train_args.push_to_hub:  # the folder as saved, plus remote code and the pipeline definition
            push_lavt_to_hub(final_dir, train_args.hub_model_id, private=train_args.hub_private,
                             commit_message=f"LAVT trained for {state['global_step']} steps")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return {"state": state, "final_dir": str(final_dir)}


def main(argv: list[str] | None = None) -> int:
    """lavt-train: a mistake in the options, recipe, data or checkpoint is one line and exit status 2."""
    with usage_errors_exit("lavt-train"):
        run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
