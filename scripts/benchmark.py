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

# name -> (add_arguments, run); the first line of run's docstring is the help. The onnx ones need the `onnx` extra.
SUBCOMMANDS = {
    "data-format": (data.add_data_format_arguments, data.run_data_format),
    "train-step": (model.add_train_step_arguments, model.run_train_step),
    "inference": (model.add_inference_arguments, model.run_inference),
    "targets": (model.add_targets_arguments, model.run_targets),
    "onnx": (cpu_paths.add_onnx_arguments, cpu_paths.run_onnx),
    "onnx-memory": (cpu_paths.add_onnx_memory_arguments, cpu_paths.run_onnx_memory),
    "onnx-accuracy": (cpu_paths.add_onnx_accuracy_arguments, cpu_paths.run_onnx_accuracy),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lavt-benchmark", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, run) in SUBCOMMANDS.items():
        text = run.__doc__.splitlines()[0]
        add_arguments(subparsers.add_parser(name, help=text, description=run.__doc__))
        subparsers.choices[name].set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command.startswith("onnx"):
        require_extra("onnx", parser.prog, f"{parser.prog} {args.command}")
    print(json.dumps(args.run(args)))


if __name__ == "__main__":
    main()
