# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Convert an original LAVT checkpoint into a Hugging Face model folder (config.json + model.safetensors), with
the processor (--tokenizer) and, in one command, push it to the Hub with remote code and a model card.

Examples:
  lavt-convert --checkpoint refcoco.pth --output_dir lavt-refcoco --tokenizer bert-base-uncased \
      --push_to_hub me/lavt-refcoco --eval_results val/eval_results.json --eval_results testA/eval_results.json
  lavt-convert --checkpoint model.safetensors --text_checkpoint bert.safetensors --text_config bert.json \
      --output_dir out
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

from transformers import AutoTokenizer

from lavt_hf.cli import ArgumentParser, check_writable_dir, positive_int, usage_errors_exit
from modeling_lavt.image_processing_lavt import LavtImageProcessor
from modeling_lavt.processing_lavt import LavtProcessor
from modeling_lavt.sharing.hub import HubPushError, card_evaluation, push_lavt_to_hub, write_model_card
from modeling_lavt.validation import check_tokenizer_fits
from modeling_lavt.weights import conversion


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="lavt-convert", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="original checkpoint: a .pth with 'model' and 'bert_model' (lavt) or 'model' with "
                             "'text_encoder.' keys (lavt_one), or the visual state dict as .safetensors")
    parser.add_argument("--text_checkpoint", help="text encoder weights as .safetensors when --checkpoint holds "
                                                  "only the visual model")
    parser.add_argument("--text_config", help="JSON file of the text encoder's config (default: a BERT config "
                                              "read off the tensors, 64-wide heads)")
    parser.add_argument("--fusion_num_heads", type=positive_int, nargs=4, metavar="H",
                        help="pixel-word attention heads per stage, for a checkpoint without args (a .pth "
                             "records them as args.mha; a contradiction is an error). Default: 1 1 1 1")
    parser.add_argument("--image_size", type=positive_int, metavar="PIXELS",
                        help="square input side the model was trained at (the processor's size), for a "
                             "checkpoint without args.img_size. Default 480, with a warning")
    parser.add_argument("--tokenizer", help="tokenizer folder or Hub id saved with the model as a "
                                            "LavtProcessor: args.ck_bert's, e.g. bert-base-uncased")
    parser.add_argument("--output_dir", required=True,
                        help="folder to write; must not exist or be empty. It appears complete or not at all")
    parser.add_argument("--push_to_hub", metavar="REPO",
                        help="also push the folder to this Hub repo (created if needed) with remote code, the "
                             "pipeline definition and a model card (written to the folder as README.md too)")
    parser.add_argument("--hub_private", action="store_true", help="create the Hub repo as private")
    parser.add_argument("--eval_results", action="append", default=[], metavar="JSON",
                        help="eval_results.json of lavt-evaluate for the model card (repeat for each split)")
    return parser


def read_json(path: str, option: str):
    """A JSON file given on the command line; a missing or malformed one names the option and the file."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{option} {path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{option} {path} is not valid JSON ({err})") from None


def load_evaluation(path: str) -> dict:
    evaluation = read_json(path, "--eval_results")
    try:
        card_evaluation(evaluation)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"--eval_results {path} is not an eval_results.json of lavt-evaluate ({err})"
                         ) from None
    return evaluation


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_writable_dir(args.output_dir, "--output_dir", prog="lavt-convert")
    output_dir = Path(args.output_dir)
    # Everything that can fail is read before anything is written (ValueError: a bad checkpoint or JSON).
    with usage_errors_exit("lavt-convert", OSError, ValueError):
        if output_dir.is_dir() and (present := sorted(p.name for p in output_dir.iterdir())):
            raise FileExistsError(
                f"--output_dir {output_dir} already holds {present[:5]}; choose a new or empty folder")
        evaluations = [load_evaluation(path) for path in args.eval_results]
        checkpoint = conversion.load_original_checkpoint(args.checkpoint)
        if args.text_checkpoint:
            checkpoint.text = conversion.read_safetensors(args.text_checkpoint)
        text_config = read_json(args.text_config, "--text_config") if args.text_config else None
        settings = conversion.resolve_settings(
            checkpoint.settings, source=args.checkpoint, fusion_num_heads=args.fusion_num_heads,
            image_size=args.image_size)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            settings = conversion.warn_about_assumed_settings(settings, args.checkpoint)
        for warning in caught:
            print(f"lavt-convert: warning: {warning.message}", file=sys.stderr)
        tokenizer = None
        if args.tokenizer:
            try:
                tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
            except (OSError, ValueError) as err:
                raise OSError(f"--tokenizer {args.tokenizer} could not be loaded: {str(err).splitlines()[0]}"
                              ) from None
            conversion.check_tokenizer(tokenizer, settings)
        model = conversion.convert_original(checkpoint.visual, checkpoint.text, text_config, settings)
        if tokenizer is not None:
            check_tokenizer_fits(tokenizer, model.config)
    parent = output_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    # Written beside the output and renamed into place: the folder appears complete or not at all.
    with tempfile.TemporaryDirectory(prefix=f".{output_dir.name}.partial-", dir=parent) as scratch:
        staging = Path(scratch) / output_dir.name
        model.save_pretrained(staging)
        processor = LavtImageProcessor(size=settings.image_size)
        if tokenizer is not None:
            processor = LavtProcessor(processor, tokenizer, max_length=model.config.max_text_length)
        processor.save_pretrained(staging)
        if args.push_to_hub or evaluations:
            write_model_card(staging, model.config, evaluations, repo_id=args.push_to_hub,
                             converted_from=Path(args.checkpoint).name)
        staging.rename(output_dir)
    config = model.config
    summary = {"output_dir": str(output_dir), "window_size": config.window_size, "depths": config.depths,
               "embed_dim": config.embed_dim, "fusion_num_heads": config.fusion_num_heads,
               "image_size": settings.image_size, "parameters": sum(p.numel() for p in model.parameters())}
    if args.push_to_hub:
        try:
            commit = push_lavt_to_hub(output_dir, args.push_to_hub, private=args.hub_private,
                                      commit_message=f"Convert {Path(args.checkpoint).name} with lavt-convert")
        except HubPushError as err:
            sys.exit(f"lavt-convert: {err} Retry with: python -c \"from modeling_lavt.sharing.hub import push_lavt_to_hub; "
                     f"push_lavt_to_hub('{output_dir}', '{args.push_to_hub}')\"")
        summary["commit_url"] = commit.commit_url
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
