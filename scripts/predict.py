# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Segment the object each referring expression describes, and save the masks and overlays.

One image with any number of expressions, or image i with expression i. Per pair it writes
<n>_<image>_<words>_mask.png (0 / 255, at the image size) and ..._overlay.png (the mask tinted over the image,
under the expression), and prints a JSON list of {"image", "text", "mask_path", "overlay_path", "score" (the
mean foreground probability over the mask, 0 when empty), "box" ({"xmin", "ymin", "xmax", "ymax"}, inclusive,
in image pixels; null when empty), "presence_score" (the largest foreground probability: how sure the model is
that the expression names something), "no_target" (the mask is empty; with --presence-threshold T a presence
score below T empties it), "foreground_fraction"}. --word-maps also writes ..._words.png (the overlay, then a
labelled heatmap per token of where the pixel-word attention puts it) and adds "word_maps_path".

Examples:
  lavt-predict --model ./lavt-refcoco --image photo.jpg --text "the man on the left" "the red car"
  lavt-predict --model ./lavt-refcoco --image a.jpg b.png --text "left dog" "cup" --device cuda --dtype bf16
  lavt-predict --model ./lavt-refcoco --image photo.jpg --text "the red car on the left" --word-maps
  lavt-predict --model ./lavt-refcoco-onnx --backend onnx --image photo.jpg --text "the red car"
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lavt_hf.cli import ArgumentParser, check_writable_dir, model_folder, usage_errors_exit
from lavt_hf.commands import require_extra
from modeling_lavt.image_processing_lavt import open_image
from modeling_lavt.modeling_lavt import LavtForReferringSegmentation
from modeling_lavt.onnx.export import EXPORT_INFO_NAME
from modeling_lavt.onnx.runtime import LavtOnnxForReferringSegmentation
from modeling_lavt.pipeline_lavt import ReferringImageSegmentationPipeline
from modeling_lavt.precision import DTYPES, autocast, resolve_dtype, store_weights_for_autocast
from modeling_lavt.processing_lavt import LavtProcessor, pair_images_with_texts
from modeling_lavt.sharing.visualization import draw_overlay, draw_word_maps
from modeling_lavt.validation import check_processor_files, check_referring_expressions


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="lavt-predict", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=model_folder,
                        help="model folder or Hub id (model + LavtProcessor files)")
    parser.add_argument("--image", required=True, nargs="+", metavar="PATH", help="one or more image files")
    parser.add_argument("--text", required=True, nargs="+", metavar="EXPRESSION", help="the expressions")
    parser.add_argument("--output-dir", "--output_dir", default="predictions",
                        help="folder for the mask and overlay PNGs (created; default: %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to run; auto picks cuda when available (default: %(default)s)")
    parser.add_argument("--dtype", choices=("auto", *DTYPES), default="auto",
                        help="bf16 / fp16: autocast, with the linear and convolution weights stored in that "
                             "precision (same results, faster); auto (default): bf16 on a CPU with native "
                             "bfloat16 (AVX512-BF16 / AMX), else fp32; with --backend onnx, the export's own")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="torch: a PyTorch "
                        "model folder; onnx: a lavt-export folder, run by ONNX Runtime (CPU); default: torch")
    parser.add_argument("--threshold", type=float, help="foreground where its probability >= this value, in "
                                                        "[0, 1] (default: the argmax, as the original)")
    parser.add_argument("--presence-threshold", "--presence_threshold", type=float, help="answer 'no target' "
                        "(an empty mask) where the presence score is below this value, in [0, 1]")
    parser.add_argument("--word-maps", "--word_maps", action="store_true", help="also write, per pair, a "
                        "picture of where each word of the expression looks (the pixel-word attention)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend == "onnx":
        require_extra("onnx", parser.prog, "--backend onnx")
    check_writable_dir(args.output_dir, "--output-dir", prog="lavt-predict")
    with usage_errors_exit(parser.prog, ValueError, prefix="--text: "):
        check_referring_expressions(args.text)
    with usage_errors_exit(parser.prog, ValueError):
        pairs = pair_images_with_texts(args.image, args.text)
    for option, value in (("--threshold", args.threshold), ("--presence-threshold", args.presence_threshold)):
        if value is not None and not 0.0 <= value <= 1.0:
            parser.error(f"{option} must lie in [0, 1], got {value}")
    with usage_errors_exit(parser.prog, ValueError, prefix="--image: "):  # before the model loads
        images = {path: open_image(path) for path in dict.fromkeys(args.image)}
    if args.backend == "onnx":  # on the CPU, in the export's precision (fp32 insists on a float32 export)
        if args.word_maps:
            parser.error("--word-maps: the ONNX export returns logits only, not the attentions; "
                         "use --backend torch")
        if args.device == "cuda":
            parser.error("--device cuda: the onnx backend runs on the CPU (ONNX Runtime); "
                         "use --backend torch on a GPU")
        if args.dtype not in ("auto", "fp32"):
            parser.error(f"--dtype {args.dtype}: the onnx backend runs the export's own precision "
                         "(float32 or int8); use --dtype auto, or fp32 to insist on a float32 export")
        device, dtype = torch.device("cpu"), "fp32"
    else:
        if args.device == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available")
        available = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(available if args.device == "auto" else args.device)
        dtype = resolve_dtype(device, args.dtype)
    pipe = load_pipeline(parser, args.model, args.backend, device, args.dtype)
    store_weights_for_autocast(pipe.model, dtype)
    with usage_errors_exit(parser.prog, ValueError, prefix="--text: "):  # also one the tokenizer empties
        check_referring_expressions(args.text, pipe.tokenizer)

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with autocast(device, dtype):
        results = pipe([{"image": images[path], "text": text} for path, text in pairs],
                       threshold=args.threshold, presence_threshold=args.presence_threshold,
                       return_word_maps=args.word_maps)
    summary = [save_prediction(output_dir, index, path, images[path], text, result)
               for index, ((path, text), result) in enumerate(zip(pairs, results))]
    print(json.dumps(summary, indent=2))
    return 0


def load_pipeline(parser: argparse.ArgumentParser, name: str, backend: str, device: torch.device, dtype: str
                  ) -> ReferringImageSegmentationPipeline:
    """The pipeline of the model (a folder or Hub id; with backend onnx, a lavt-export folder)."""
    folder = Path(name)
    exported = (folder / EXPORT_INFO_NAME).is_file()
    if backend == "torch" and exported:
        parser.error(f"--model {name} is an ONNX export (lavt-export); run it with --backend onnx")
    if backend == "onnx" and not folder.is_dir():
        parser.error(f"--model {name}: no such folder; give a folder written by lavt-export")
    if backend == "onnx" and not exported and (folder / "config.json").is_file():
        parser.error(f"--model {name} is a PyTorch model folder, not an ONNX export: drop --backend onnx, "
                     f"or export it first (lavt-export --model {name} --output-dir NEW_FOLDER)")
    with usage_errors_exit(parser.prog, OSError, ValueError,
                           prefix=f"--model: cannot load the model and processor from {name}: "):
        check_processor_files(name)
        if backend == "onnx":
            precision = "float32" if dtype == "fp32" else None
            model = LavtOnnxForReferringSegmentation.from_pretrained(name, precision=precision)
        else:
            model = LavtForReferringSegmentation.from_pretrained(name).eval()
        processor = LavtProcessor.from_pretrained(name)
        return ReferringImageSegmentationPipeline(model=model, processor=processor, device=device)


def save_prediction(output_dir: Path, index: int, path: str, image: Image.Image, text: str,
                    result: dict[str, Any]) -> dict[str, Any]:
    """Write the mask and overlay PNGs of one pair; return its summary entry."""
    stem = f"{index:03d}_{slug(Path(path).stem)}_{slug(text)}"
    mask_path, overlay_path = output_dir / f"{stem}_mask.png", output_dir / f"{stem}_overlay.png"
    result["mask"].save(mask_path)
    draw_overlay(image, result["mask"], text).save(overlay_path)
    summary = {"image": path, "text": text, "mask_path": str(mask_path), "overlay_path": str(overlay_path),
               **{key: result[key] for key in ("score", "box", "presence_score", "no_target")},
               "foreground_fraction": float((np.asarray(result["mask"]) > 0).mean())}
    if "word_maps" in result:
        words_path = output_dir / f"{stem}_words.png"
        draw_word_maps(image, result["mask"], text, result["word_maps"]).save(words_path)
        summary["word_maps_path"] = str(words_path)
    return summary


def slug(text: str, max_length: int = 40) -> str:
    """A file-name-safe short form of `text`."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_length] or "x"


if __name__ == "__main__":
    sys.exit(main())
