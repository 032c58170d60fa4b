# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Benchmarks of the project, one subcommand each; every run prints one JSON record on stdout (the commands
behind the recorded numbers: docs/benchmarks.md, docs/cpu_inference.md). Model benchmarks time a warm-up, then
repeats in alternating order (median / min / max). `peak_memory_mb` is the process's peak resident set size on
CPU (the Python runtime and libraries included) and torch.cuda.max_memory_allocated on CUDA."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lavt_hf.commands import require_extra
from lavt_hf.scripts.benchmarks import cpu_paths, data, model

# name -> (help, add_arguments, run); the onnx ones also need the `onnx` extra
SUBCOMMANDS = {
    "data-format": ("prepared parquet: its size against its distinct images, and the data path read from it",
                    data.add_data_format_arguments, data.run_data_format),
    "train-step": ("training step (forward, backward, AdamW) of a random model: time and peak memory",
                   model.add_train_step_arguments, model.run_train_step),
    "inference": ("inference (forward + masks) of a random model; --compile compares with eager",
                  model.add_inference_arguments, model.run_inference),
    "targets": ("the project's performance targets (bf16, checkpointing, resolution, batch, compile) in one run",
                model.add_targets_arguments, model.run_targets),
    "onnx": ("CPU inference paths side by side: eager fp32 and bf16, ONNX Runtime fp32 and INT8",
             cpu_paths.add_onnx_arguments, cpu_paths.run_onnx),
    "onnx-memory": ("(used by onnx) peak RSS of one CPU inference path in this process",
                    cpu_paths.add_onnx_memory_arguments, cpu_paths.run_onnx_memory),
    "onnx-accuracy": ("the CPU inference paths with a trained model over a refer split: IoU, agreement",
                      cpu_paths.add_onnx_accuracy_arguments, cpu_paths.run_onnx_accuracy),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchmark", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, add_arguments, run) in SUBCOMMANDS.items():
        add_arguments(subparsers.add_parser(name, help=text, description=text))
        subparsers.choices[name].set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command.startswith("onnx"):
        require_extra("onnx", parser.prog, f"benchmark {args.command}")
    print(json.dumps(args.run(args)))


if __name__ == "__main__":
    main()
