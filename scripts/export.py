# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Export a LAVT model folder to ONNX for ONNX Runtime (`lavt-predict --backend onnx`), optionally INT8.

The output folder holds model.onnx, config.json, the processor files and onnx_export.json. The batch is
dynamic; the image size is the processor's (or --image-size), the text length the model's max_text_length.
--quantize on an export folder quantizes it without exporting again: dynamic quantizes the linear layers;
static the convolutions too, with activation ranges from --calibration DIR (images and expressions.json,
which maps each image's file name to its expression(s)) or --calibration-size generated images (8).

Examples:
  lavt-export --model ./lavt-refcoco --output-dir ./lavt-refcoco-onnx
  lavt-export --model ./lavt-refcoco-onnx --output-dir ./lavt-refcoco-onnx-int8 --quantize dynamic
  lavt-export --model ./lavt-refcoco-onnx --output-dir ./lavt-refcoco-onnx-static --quantize static \
      --calibration ./calibration-samples
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lavt_hf.cli import ArgumentParser, check_writable_dir, model_folder, positive_int, usage_errors_exit
from lavt_hf.commands import require_extra
from modeling_lavt import LavtForReferringSegmentation, LavtProcessor
from modeling_lavt.onnx.export import QUANTIZATIONS, export_onnx, quantize_export
from modeling_lavt.onnx.folder import EXPORT_INFO_NAME, read_export_info


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="lavt-export", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=model_folder,
                        help="model folder (weights + LavtProcessor files), or an ONNX export folder to quantize")
    parser.add_argument("--output-dir", "--output_dir", required=True, help="a new folder for the export")
    parser.add_argument("--quantize", choices=QUANTIZATIONS,
                        help="dynamic: ONNX Runtime dynamic quantization of the linear layers; static: "
                        "static INT8 (QDQ) of the convolutions and linear layers, calibrated (default: float32)")
    parser.add_argument("--calibration", help="with --quantize static: a folder of calibration samples, "
                                              "images and expressions.json (default: generated images)")
    parser.add_argument("--calibration-size", "--calibration_size", type=positive_int,
                        help="with --quantize static and no --calibration: how many generated images (8)")
    parser.add_argument("--image-size", "--image_size", type=positive_int, nargs=2, metavar=("H", "W"),
                        help="input size of the graph (default: the processor's size); the saved processor gets it")
    # torch's exporter writes opset 18 (a lower one is silently ignored); from 23 it writes an Attention node
    # that ONNX Runtime's CPU kernel fails on.
    parser.add_argument("--opset", type=int, choices=range(18, 23), metavar="{18..22}",
                        help="ONNX opset (default: torch's exporter default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    require_extra("onnx", parser.prog, parser.prog)
    output_dir = Path(args.output_dir)
    if output_dir.exists():
        parser.error(f"--output-dir {output_dir} already exists; choose a new folder (an export never overwrites)")
    check_writable_dir(output_dir, "--output-dir", prog="lavt-export")  # before the minutes of export
    # The calibration options in the command's own words (the library's name its keyword arguments).
    given = [flag for flag, value in (("--calibration", args.calibration),
                                      ("--calibration-size", args.calibration_size)) if value is not None]
    if given and args.quantize != "static":
        parser.error(f"{' and '.join(given)}: a calibration set is for static quantization only; add --quantize "
                     "static (dynamic quantization measures its ranges on every call)")
    if len(given) == 2:
        parser.error("--calibration-size sets the number of generated images; a --calibration folder is used "
                     "whole: give one of the two")
    calibration = {"calibration": args.calibration, "calibration_size": args.calibration_size}
    with usage_errors_exit(parser.prog, FileNotFoundError, ValueError):
        if (Path(args.model) / EXPORT_INFO_NAME).is_file():
            if args.quantize is None or args.image_size is not None or args.opset is not None:
                parser.error(f"--model {args.model} is already an ONNX export: it can only be quantized "
                             "(--quantize dynamic or static); export the PyTorch model for another size or "
                             "opset")
            quantize_export(args.model, output_dir, args.quantize, **calibration)
        else:
            if not Path(args.model).is_dir():
                parser.error(f"--model {args.model}: no such folder")
            with usage_errors_exit(parser.prog, OSError, ValueError,
                                   prefix=f"cannot load the model and processor from {args.model}: "):
                model = LavtForReferringSegmentation.from_pretrained(args.model).eval()
                processor = LavtProcessor.from_pretrained(args.model)
            if args.image_size is not None:
                processor.image_processor.size = {"height": args.image_size[0], "width": args.image_size[1]}
            export_onnx(model, processor, output_dir, opset=args.opset, quantize=args.quantize, **calibration)
    print(json.dumps({"output_dir": str(output_dir), **read_export_info(output_dir)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
