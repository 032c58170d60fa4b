# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""How to tell "no target" from a LAVT output: a tiny model trained a fixed time on the synthetic shapes task
with no-target samples (an expression naming a (colour, shape) pair the image lacks); each presence rule's
threshold is chosen on val (best gIoU) and reported on testA + testB (docs/presence.md).

  python -m lavt_hf.training.presence_study --output docs/benchmarks/presence_threshold.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from lavt_hf.training.data import decode_mask, load_refer_dataset
from lavt_hf.training.data.synthetic import CATEGORY_IDS, COLOURS, SHAPES, generate_synthetic_refer
from lavt_hf.training.demo import offline_text_encoder
from lavt_hf.training.evaluation import foreground_masks
from lavt_hf.training.metrics import compute_generalized_metrics, intersection_and_union
from modeling_lavt import LavtConfig, LavtImageProcessor, LavtProcessor
from modeling_lavt.image_processing_lavt import presence_scores
from modeling_lavt.weights.pretrained import lavt_from_pretrained_parts

SHAPE_OF_CATEGORY = {CATEGORY_IDS[shape]: shape for shape in SHAPES}
THRESHOLDS = [round(0.02 * i, 2) for i in range(51)]
# The sweep's columns (as fractions) and the metric module's keys (x100) they come from.
REPORTED = {"N-acc": "n_acc", "T-acc": "t_acc", "gIoU": "giou"}


def presence_rules(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, 2, h, w) logits -> each candidate rule's (B,) score in [0, 1]."""
    probabilities = torch.sigmoid((logits[:, 1] - logits[:, 0]).float()).flatten(1)
    in_mask = probabilities > 0.5
    top = probabilities.topk(max(1, probabilities.shape[1] // 100), dim=1).values
    return {"max_probability": presence_scores(logits), "top1pct_mean_probability": top.mean(dim=1),
            "mask_mean_probability": (probabilities * in_mask).sum(1) / in_mask.sum(1).clamp(min=1)}


def colour_of(pixels: np.ndarray) -> str:
    """The palette colour nearest to the mean of an object's pixels (the JPEG blurs the exact values)."""
    mean = pixels.reshape(-1, 3).mean(axis=0)
    return min(COLOURS, key=lambda name: float(((np.array(COLOURS[name]) - mean) ** 2).sum()))


def build_samples(rows, rng: np.random.Generator, no_target_per_image: int, all_sentences: bool) -> list[dict]:
    """Targeted samples (every sentence of every ref, or its first), and no-target ones for each image."""
    samples, present = [], {}
    for row in rows:
        image = row["image"].convert("RGB")
        mask = decode_mask(row["mask"])
        if row["category_id"] in SHAPE_OF_CATEGORY:
            pairs = present.setdefault(row["image_id"], (image, set()))[1]
            pairs.add((colour_of(np.asarray(image)[mask > 0]), SHAPE_OF_CATEGORY[row["category_id"]]))
        texts = row["sentences"] if all_sentences else row["sentences"][:1]
        samples += [{"image": image, "text": text, "mask": mask} for text in texts]
    for image, pairs in present.values():
        absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in pairs]
        empty = np.zeros((image.height, image.width), dtype=np.uint8)
        for index in rng.permutation(len(absent))[:no_target_per_image]:
            colour, shape = absent[index]
            size = f"{rng.choice(['big', 'small'])} " if rng.random() < 0.5 else ""
            samples.append({"image": image, "text": f"the {size}{colour} {shape}", "mask": empty})
    return samples


def encode(processor: LavtProcessor, samples: list[dict]) -> dict[str, torch.Tensor]:
    encoded = processor(images=[s["image"] for s in samples], text=[s["text"] for s in samples],
                        masks=[s["mask"] for s in samples], return_tensors="pt")
    return {key: encoded[key] for key in ("pixel_values", "input_ids", "attention_mask", "labels")}


@torch.no_grad()
def predict(model, data: dict[str, torch.Tensor], batch_size: int = 64) -> torch.Tensor:
    inputs = {key: data[key] for key in ("pixel_values", "input_ids", "attention_mask")}
    return torch.cat([model(**{key: value[i : i + batch_size] for key, value in inputs.items()}).logits
                      for i in range(0, len(data["input_ids"]), batch_size)])


def sweep(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, list[dict]]:
    """Per rule and threshold: N-acc, T-acc and gIoU as fractions, a sample being answered "no target" when
    its argmax mask is empty or its score is under the threshold."""
    masks = foreground_masks(logits, labels.shape[-2:])
    intersections, unions = intersection_and_union(masks, labels)
    no_target = (~labels.flatten(1).any(dim=1)).numpy()
    mask_empty = ~masks.flatten(1).any(dim=1)
    table = {}
    for rule, scores in presence_rules(logits).items():
        table[rule] = []
        for threshold in THRESHOLDS:
            answered = (mask_empty | (scores < threshold)).numpy()
            found = compute_generalized_metrics(intersections, unions, no_target, answered)
            row = {name: round(found[key] / 100, 4) for name, key in REPORTED.items()}
            table[rule].append({"threshold": threshold, **row})
    return table


def train(model, data: dict[str, torch.Tensor], seconds: float, batch_size: int, seed: int) -> int:
    for name, param in model.named_parameters():
        param.requires_grad_("text_encoder." not in name)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    start, steps = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        for batch in torch.randperm(len(data["input_ids"]), generator=generator).split(batch_size):
            if len(batch) < batch_size or time.monotonic() - start >= seconds:
                continue
            loss = model(**{key: value[batch] for key, value in data.items()}).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            steps += 1
    model.eval()
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="presence_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True)
    parser.add_argument("--num_images", type=int, default=600)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--train_seconds", type=float, default=360)
    parser.add_argument("--no_target_per_image", type=int, default=2,
                        help="no-target samples per training image (0: trained as the original, targets only)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    text_encoder = offline_text_encoder()
    tokenizer = AutoTokenizer.from_pretrained(text_encoder)
    processor = LavtProcessor(LavtImageProcessor(size=args.image_size), tokenizer)
    with tempfile.TemporaryDirectory() as folder:
        generate_synthetic_refer(Path(folder) / "refer", Path(folder) / "images", num_images=args.num_images,
                                 seed=args.seed, image_size=(80, 64))
        splits = {split: load_refer_dataset(Path(folder) / "refer", "refcoco_unc", split,
                                            images_root=Path(folder) / "images")
                  for split in ("train", "val", "testA", "testB")}
        samples = {"train": build_samples(splits["train"], rng, args.no_target_per_image, all_sentences=True),
                   "val": build_samples(splits["val"], rng, 2, all_sentences=False),
                   "test": [sample for split in ("testA", "testB")
                            for sample in build_samples(splits[split], rng, 2, all_sentences=False)]}
        data = {name: encode(processor, group) for name, group in samples.items()}

    config = LavtConfig.from_preset("swin-tiny-window7", embed_dim=24, depths=[1, 1, 2, 1], num_heads=[1, 2, 3, 6],
                                    window_size=4, drop_path_rate=0.0, dice_weight=1.0)
    model = lavt_from_pretrained_parts(config, text_encoder=text_encoder)
    steps = train(model, data["train"], args.train_seconds, batch_size=args.batch_size, seed=args.seed)
    val = sweep(predict(model, data["val"]), data["val"]["labels"])
    test = sweep(predict(model, data["test"]), data["test"]["labels"])
    chosen = {}
    for rule in val:
        best = max(val[rule], key=lambda row: (row["gIoU"], -abs(row["threshold"] - 0.5)))
        chosen[rule] = {"threshold (chosen on val, best gIoU)": best["threshold"], "val": best,
                        "test": next(r for r in test[rule] if r["threshold"] == best["threshold"]),
                        "test at 0.5": next(r for r in test[rule] if r["threshold"] == 0.5)}
    record = {
        "command": "python -m lavt_hf.training.presence_study " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip() + f", torch {torch.__version__}",
        "data": {"num_images": args.num_images, "image_size": [80, 64], "model_input": args.image_size,
                 **{f"{name}_samples": len(group) for name, group in samples.items()},
                 "train_no_target_per_image": args.no_target_per_image,
                 "test_no_target": int((~data["test"]["labels"].flatten(1).any(1)).sum())},
        "training": {"seconds": args.train_seconds, "steps": steps, "batch_size": args.batch_size},
        "chosen": chosen, "sweep_test": test, "sweep_val": val,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(chosen, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
