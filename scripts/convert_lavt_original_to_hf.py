# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Convert an original LAVT checkpoint into a Hugging Face model folder (config.json + model.safetensors).

Examples:
  lavt-convert --checkpoint refcoco.pth --output_dir lavt-refcoco --tokenizer bert-base-uncased
  lavt-convert --checkpoint model.safetensors --text_checkpoint bert.safetensors --text_config bert.json \
      --output_dir out
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetensors.torch import load_file

from modeling_lavt.conversion import UnsupportedCheckpointError, convert_original, load_original_checkpoint


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output_dir = Path(args.output_dir)
    if (output_dir / "model.safetensors").exists():
        sys.exit(f"lavt-convert: {output_dir} already holds a model; choose an empty folder")
    try:
        visual, text = load_original_checkpoint(args.checkpoint)
        if args.text_checkpoint:
            text = load_file(args.text_checkpoint)
        text_config = json.loads(Path(args.text_config).read_text()) if args.text_config else None
        model = convert_original(visual, text, text_config, args.fusion_num_heads)
    except (FileNotFoundError, UnsupportedCheckpointError) as err:
        sys.exit(f"lavt-convert: {err}")
    model.save_pretrained(output_dir)
    print(json.dumps({"output_dir": str(output_dir), "window_size": model.config.window_size,
                      "embed_dim": model.config.embed_dim, "depths": model.config.depths,
                      "parameters": sum(p.numel() for p in model.parameters())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
