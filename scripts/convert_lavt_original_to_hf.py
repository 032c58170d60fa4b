# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Convert an original LAVT checkpoint into a Hugging Face model folder (config.json + model.safetensors), with
the processor (--tokenizer) and, in one command, push it to the Hub with remote code and a model card.

Examples:
  lavt-convert --checkpoint refcoco.pth --output_dir lavt-refcoco --tokenizer bert-base-uncased
  lavt-convert --checkpoint refcoco.pth --output_dir lavt-refcoco --tokenizer bert-base-uncased \
      --push_to_hub me/lavt-refcoco --eval_results val/eval_results.json --eval_results testA/eval_results.json
  lavt-convert --checkpoint model.safetensors --text_checkpoint bert.safetensors --text_config bert.json \
      --output_dir out
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetensors.torch import load_file
from transformers import AutoTokenizer

from modeling_lavt.conversion import convert_original, load_original_checkpoint
from modeling_lavt.hub import HubPushError, card_evaluation, push_lavt_to_hub, write_model_card
from modeling_lavt.image_processing_lavt import LavtImageProcessor
from modeling_lavt.processing_lavt import LavtProcessor


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lavt-convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True,
                        help="original checkpoint: a .pth with 'model' and 'bert_model' (lavt) or 'model' with "
                             "'text_encoder.' keys (lavt_one), or the visual state dict as .safetensors")
    parser.add_argument("--text_checkpoint", help="text encoder weights as .safetensors when --checkpoint holds "
                                                  "only the visual model")
    parser.add_argument("--text_config", help="JSON file of the text encoder's config (default: a BERT config "
                                              "read off the tensors, 64-wide heads)")
    parser.add_argument("--fusion_num_heads", type=int, nargs=4, metavar="H",
                        help="pixel-word attention heads per stage (not stored in checkpoints; default 1 1 1 1)")
    parser.add_argument("--tokenizer", help="tokenizer folder or Hub id saved with the model as a LavtProcessor, "
                                            "e.g. bert-base-uncased")
    parser.add_argument("--output_dir", required=True, help="folder to write (created; must not hold a model)")
    parser.add_argument("--push_to_hub", metavar="REPO",
                        help="also push the folder to this Hub repo (created if needed) with remote code, the "
                             "pipeline definition and a model card (written to the folder as README.md too)")
    parser.add_argument("--hub_private", action="store_true", help="create the Hub repo as private")
    parser.add_argument("--eval_results", action="append", default=[], metavar="JSON",
                        help="eval_results.json of lavt-evaluate for the model card (repeat for each split); "
                             "the card has no results otherwise")
    return parser


def load_evaluations(paths: list[str]) -> list[dict]:
    """The evaluation JSONs, checked before any conversion work so that a bad one costs nothing."""
    evaluations = [json.loads(Path(path).read_text()) for path in paths]
    for evaluation in evaluations:
        card_evaluation(evaluation)
    return evaluations


def save_processor(tokenizer: str, max_length: int, output_dir: Path) -> None:
    """A LavtProcessor with the original's preprocessing (480x480, ImageNet statistics) and `tokenizer`."""
    processor = LavtProcessor(LavtImageProcessor(), AutoTokenizer.from_pretrained(tokenizer), max_length=max_length)
    processor.save_pretrained(output_dir)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output_dir = Path(args.output_dir)
    if (output_dir / "model.safetensors").exists():
        sys.exit(f"lavt-convert: {output_dir} already holds a model; choose an empty folder")
    try:
        evaluations = load_evaluations(args.eval_results)
        visual, text = load_original_checkpoint(args.checkpoint)
        if args.text_checkpoint:
            text = load_file(args.text_checkpoint)
        text_config = json.loads(Path(args.text_config).read_text()) if args.text_config else None
        model = convert_original(visual, text, text_config, args.fusion_num_heads)
    except (FileNotFoundError, ValueError) as err:  # ValueError: an unsupported checkpoint or a bad JSON
        sys.exit(f"lavt-convert: {err}")
    model.save_pretrained(output_dir)
    if args.tokenizer:
        save_processor(args.tokenizer, model.config.max_text_length, output_dir)
    if args.push_to_hub or evaluations:
        write_model_card(output_dir, model.config, evaluations, repo_id=args.push_to_hub,
                         converted_from=Path(args.checkpoint).name)
    summary = {"output_dir": str(output_dir), "window_size": model.config.window_size,
               "embed_dim": model.config.embed_dim, "depths": model.config.depths,
               "parameters": sum(p.numel() for p in model.parameters())}
    if args.push_to_hub:
        try:
            commit = push_lavt_to_hub(output_dir, args.push_to_hub, private=args.hub_private,
                                      commit_message=f"Convert {Path(args.checkpoint).name} with lavt-convert")
        except HubPushError as err:
            sys.exit(f"lavt-convert: {err} Retry with: python -c \"from modeling_lavt.hub import push_lavt_to_hub; "
                     f"push_lavt_to_hub('{output_dir}', '{args.push_to_hub}')\"")
        summary["commit_url"] = commit.commit_url
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
