# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Evaluate a LAVT model on one split of a referring-segmentation dataset, every (object, sentence) pair one
sample, on one process or several with the same numbers (docs/evaluation.md: protocols, metrics, no-target).

  lavt-evaluate --model ./lavt-refcoco --dataset ./refer --dataset_config refcoco_unc --images_root ./coco
  accelerate launch -m lavt_hf.training.evaluation --model ./lavt-refcoco --dataset ./refcoco-parquet --split testA
  lavt-evaluate --model ./lavt-refcoco --dataset owner/refcoco-parquet --dataset_config refcoco_unc --streaming

Writes to --output_dir: eval_results.json (the metrics, x100, generalized too when a sample is no-target,
and what was evaluated: protocol, model, dataset, split, image_size, dtype, ...), per_sample.json (in dataset
order: sample_id, ref_id, sentence_index, sentence, intersection, union, iou, no_target, presence) and
overlays/ (the best and worst samples by IoU: the prediction in red, the ground truth outlined in green).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import evaluate
import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from lavt_hf.cli import (
    ArgumentParser,
    check_writable_dir,
    dataset_errors,
    exit_with_usage_error,
    model_folder,
    non_negative_float,
    non_negative_int,
    positive_int,
    usage_errors_exit,
)
from lavt_hf.training.data import (
    SENTENCE_FIELDS,
    ReferEvalDataset,
    ReferEvalStream,
    collate,
    decode_mask,
    load_refer_dataset,
    streaming_problem,
)
from lavt_hf.training.data.user import add_column_arguments
from lavt_hf.training.data.views import open_image
from lavt_hf.training.metrics import GENERALIZED_CONFIG, REFER_IOU_DIR, intersection_and_union, per_sample_iou
from modeling_lavt.image_processing_lavt import presence_scores
from modeling_lavt.modeling_lavt import LavtForReferringSegmentation
from modeling_lavt.precision import DTYPES, autocast
from modeling_lavt.processing_lavt import LavtProcessor
from modeling_lavt.resize import upsample_logits
from modeling_lavt.sharing.visualization import draw_overlay, mask_outline
from modeling_lavt.validation import check_tokenizer_fits, is_hub_repo_id

PROTOCOLS = ("model_input", "original")
# Presence scores under it are the answer "no target"; at 0.5 that is an empty argmax mask.
DEFAULT_PRESENCE_THRESHOLD = 0.5
_LABELS = {"overall_iou": "overall IoU", "mean_iou": "mean IoU", "giou": "gIoU", "ciou": "cIoU",
           "n_acc": "N-acc", "t_acc": "T-acc"}


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose 'model_input' (the original's) or 'original'")


def foreground_masks(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Argmax masks at `size` from (B, 2, h, w) logits (bilinear, align_corners=True, as the original)."""
    return upsample_logits(logits.float(), size).argmax(dim=1)


@torch.no_grad()
def evaluate_model(model, dataloader, accelerator, protocol: str = "model_input", description: str = "evaluate",
                   presence_threshold: float = DEFAULT_PRESENCE_THRESHOLD) -> dict:
    """Metrics over every pair of `dataloader` (a prepared loader of a `ReferEvalDataset` or a
    `ReferEvalStream`), the same for any number of processes, generalized too when a sample is no-target
    (predicted so when its presence score is under `presence_threshold`); plus "protocol" and "per_sample": by
    sample id, dicts of sample_id, intersection, union, iou, no_target, presence. Raises ValueError for an
    unknown protocol."""
    check_protocol(protocol)
    was_training = model.training
    model.eval()
    stores = ([], [], [], [], [])
    for batch in tqdm(dataloader, desc=description, disable=not accelerator.is_local_main_process, leave=False):
        logits = model(pixel_values=batch["pixel_values"], input_ids=batch["input_ids"],
                       attention_mask=batch["attention_mask"]).logits
        if protocol == "model_input":
            labels = batch["labels"]
            counts = intersection_and_union(foreground_masks(logits, labels.shape[-2:]), labels)
        else:  # each sample at its own image size
            masks = [(foreground_masks(logits[i : i + 1], truth.shape), truth[None])
                     for i, truth in enumerate(batch["original_mask"])]
            counts = np.concatenate([intersection_and_union(*pair) for pair in masks], axis=1)
        counts = [torch.from_numpy(c).to(batch["sample_id"].device) for c in counts]
        # gather_for_metrics drops the samples repeated to pad the last batch.
        gathered = accelerator.gather_for_metrics(
            (batch["sample_id"], *counts, batch["no_target"].to(torch.int64), presence_scores(logits)))
        for store, values in zip(stores, gathered):
            store.append(values.cpu().numpy())
    model.train(was_training)
    order = np.argsort(np.concatenate(stores[0]), kind="stable")
    sample_ids, intersections, unions, no_target, presence = (np.concatenate(x)[order] for x in stores)
    no_target = no_target.astype(bool)
    flags = {}
    if no_target.any():
        flags = {"no_target": no_target, "predicted_no_target": presence < presence_threshold}
    # Kept in memory: it only sees the gathered counts, so no process needs its cache files or rendezvous.
    metric = evaluate.load(str(REFER_IOU_DIR), GENERALIZED_CONFIG if flags else None, keep_in_memory=True)
    per_sample = {"sample_id": sample_ids, "intersection": intersections, "union": unions,
                  "iou": per_sample_iou(intersections, unions), "no_target": no_target, "presence": presence}
    rows = zip(*(column.tolist() for column in per_sample.values()))
    return {**metric.compute(intersection=intersections, union=unions, **flags), "protocol": protocol,
            "per_sample": [dict(zip(per_sample, row)) for row in rows]}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="lavt-evaluate", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=model_folder,
                        help="model folder or Hub id (model + LavtProcessor files)")
    parser.add_argument("--dataset", required=True, help="raw refer root, prepared or community parquet "
                        "(folder / Hub id), or one's own (image, mask, text columns, or expressions.jsonl)")
    parser.add_argument("--dataset_config", help="e.g. refcoco_unc, refcocog_umd (optional if only one)")
    parser.add_argument("--images_root", default=None, help="COCO folder holding train2014/ (raw layouts)")
    add_column_arguments(parser)
    parser.add_argument("--split", default="val", help="split to evaluate (default: %(default)s)")
    parser.add_argument("--sentence_field", choices=SENTENCE_FIELDS, default="raw", help="raw: as typed, "
                        "what the original LAVT reads; sent: normalised (default: %(default)s)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="model_input", help="model_input: masks "
                        "at the model input size (the original's); original: at each image's size "
                        "(default: %(default)s)")
    parser.add_argument("--batch_size", type=positive_int, default=16, help="per process (default: %(default)s)")
    parser.add_argument("--num_workers", type=non_negative_int, default=2,
                        help="data loader workers per process (default: %(default)s)")
    parser.add_argument("--image_size", type=positive_int, help="model input side (default: the processor's)")
    parser.add_argument("--max_samples", type=positive_int, help="only the first N (object, sentence) pairs")
    parser.add_argument("--streaming", action="store_true", help="stream prepared parquet (folder / Hub id): "
                        "the same samples in the same order (several processes: model_input protocol only)")
    parser.add_argument("--output_dir", default="eval_outputs",
                        help="folder for eval_results.json, per_sample.json and overlays/ (default: %(default)s)")
    parser.add_argument("--num_overlays", type=non_negative_int, default=4,
                        help="draw the N best and N worst samples by IoU (default: %(default)s)")
    parser.add_argument("--presence_threshold", type=non_negative_float, default=DEFAULT_PRESENCE_THRESHOLD,
                        help="a presence score (largest foreground probability) under it is 'no target', "
                             "for the generalized metrics; 0.5: an empty argmax mask (default: %(default)s)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="fp32",
                        help="compute precision; bf16 / fp16 run the model under autocast (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.presence_threshold > 1:
        parser.error(f"argument --presence_threshold: must be <= 1 (a probability), got "
                     f"{args.presence_threshold}")
    check_writable_dir(args.output_dir, "--output_dir", prog="lavt-evaluate")
    accelerator = Accelerator()
    if args.streaming and args.protocol == "original" and accelerator.num_processes > 1:
        # Dispatched batches are concatenated and split as tensors; masks of several sizes cannot be.
        exit_with_usage_error(parser.prog, "--streaming with --protocol original runs on one process only, not "
                                           f"{accelerator.num_processes}: launch one process, or drop --streaming")
    with usage_errors_exit(parser.prog), dataset_errors(args.dataset):
        problem = args.streaming and streaming_problem(args.dataset)
        if problem:
            exit_with_usage_error(parser.prog, f"--streaming: {problem}")
        rows = load_refer_dataset(args.dataset, args.dataset_config, args.split, images_root=args.images_root,
                                  sentence_field=args.sentence_field, streaming=args.streaming,
                                  image_column=args.image_column, mask_column=args.mask_column,
                                  text_column=args.text_column)
    if not Path(args.model).exists() and not is_hub_repo_id(args.model):  # not a Hub request: fail at once
        exit_with_usage_error(parser.prog, f"--model {args.model}: no such model folder (and not a Hub id)")
    try:
        model = LavtForReferringSegmentation.from_pretrained(args.model).eval()
        processor = LavtProcessor.from_pretrained(args.model)
        check_tokenizer_fits(processor.tokenizer, model.config)
    except (OSError, ValueError) as error:
        exit_with_usage_error(parser.prog, f"cannot load the model and processor from {args.model}: {error}")
    if args.image_size:
        processor.image_processor.size = {"height": args.image_size, "width": args.image_size}
    original_mask = args.protocol == "original"
    if args.streaming:
        samples = view = ReferEvalStream(rows, processor, original_mask, max_samples=args.max_samples)
    else:
        view = ReferEvalDataset(rows, processor, return_original_mask=original_mask)
        samples = view if args.max_samples is None else Subset(view, range(min(args.max_samples, len(view))))
    workers = min(args.num_workers, 1) if args.streaming else args.num_workers  # a stream's pairs count in order
    loader = accelerator.prepare(DataLoader(samples, batch_size=args.batch_size, collate_fn=collate,
                                            num_workers=workers))
    model.to(accelerator.device)  # inference only: no DDP wrapper, each process runs its own copy
    with autocast(accelerator.device, args.dtype):
        results = evaluate_model(model, loader, accelerator, args.protocol,
                                 presence_threshold=args.presence_threshold)
    if accelerator.is_main_process:
        output_dir = Path(args.output_dir)
        size = processor.image_processor.size
        summary = {**{k: v for k, v in results.items() if k != "per_sample"}, "model": args.model,
                   "dataset": args.dataset, "dataset_config": args.dataset_config, "split": args.split,
                   "sentence_field": args.sentence_field, "presence_threshold": args.presence_threshold,
                   "image_size": [size["height"], size["width"]], "dtype": args.dtype,
                   "num_processes": accelerator.num_processes, "per_sample_file": "per_sample.json"}
        pairs = view.pairs()  # sample ids number the view's pairs
        records = []
        for sample in results["per_sample"]:
            ref_id, sentence_index, sentence = pairs[sample["sample_id"]]
            records.append({"sample_id": sample["sample_id"], "ref_id": ref_id,
                            "sentence_index": sentence_index, "sentence": sentence, **sample})
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / summary["per_sample_file"]).write_text(json.dumps(records, indent=1))
        (output_dir / "eval_results.json").write_text(json.dumps(summary, indent=1))
        if args.num_overlays:
            with autocast(accelerator.device, args.dtype):
                write_overlays(model, view, records, args.num_overlays, output_dir / "overlays")
        print_table(summary, output_dir / "eval_results.json")
    accelerator.wait_for_everyone()
    return 0


@torch.no_grad()
def write_overlays(model: LavtForReferringSegmentation, view: ReferEvalDataset | ReferEvalStream,
                   records: list[dict[str, Any]], count: int, folder: Path) -> None:
    """Overlays of the `count` best and worst samples by IoU (ties to the lower sample id) at their image
    size. The few chosen are run again: cheaper than keeping every prediction (a stream is read once more)."""
    folder.mkdir(parents=True, exist_ok=True)
    best = sorted(records, key=lambda r: (-r["iou"], r["sample_id"]))[:count]
    worst = sorted(records, key=lambda r: (r["iou"], r["sample_id"]))[:count]
    chosen = [(tag, rank, record) for tag, ranked in (("best", best), ("worst", worst))
              for rank, record in enumerate(ranked, 1)]
    samples = view.samples([record["sample_id"] for _, _, record in chosen])
    device = next(model.parameters()).device
    for tag, rank, record in chosen:
        item, row = samples[record["sample_id"]]
        item = collate([item])
        logits = model(**{k: item[k].to(device) for k in ("pixel_values", "input_ids", "attention_mask")}).logits
        image, truth = open_image(row["image"]), decode_mask(row["mask"]).astype(bool)
        prediction = foreground_masks(logits, truth.shape)[0].cpu().numpy()
        caption = f"{tag} {rank}: IoU {record['iou']:.2f} | {record['sentence']}"
        overlay = draw_overlay(draw_overlay(image, mask_outline(truth), color=(40, 220, 40), alpha=1.0,
                                            outline=False), prediction, caption)
        overlay.save(folder / f"{tag}_{rank:02d}_sample{record['sample_id']:06d}.png")


def print_table(summary: dict[str, Any], results_path: Path) -> None:
    height, width = summary["image_size"]
    print(f"LAVT evaluation of {summary['model']} on {summary['dataset_config'] or summary['dataset']} "
          f"{summary['split']}: {summary['num_samples']} samples, protocol {summary['protocol']} "
          f"(model input {height}x{width}), {summary['num_processes']} process(es)")
    for key, value in summary.items():
        if key == "giou":
            print(f"  generalized: {summary['num_no_target']} no-target sample(s), presence threshold "
                  f"{summary['presence_threshold']}")
        if key in _LABELS or "precision@" in key:
            print(f"  {_LABELS.get(key, key.replace('generalized_', 'g')):<15} {value:6.2f}")
    print(f"results: {results_path}")


if __name__ == "__main__":
    sys.exit(main())
