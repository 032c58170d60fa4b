# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Benchmarks of the project, one subcommand each; every run prints one JSON record on stdout.

Subcommands register themselves in :data:`SUBCOMMANDS` (name -> help, argument setup, run function), so a
new benchmark is one function pair and one entry. Model benchmarks share one timing helper
(:func:`time_workloads`: warm-up, then repeats in alternating order, median / min / max) and one record layout.

``data``: throughput of the training transform (row read, JPEG decode, RLE decode, resize to the processor's
size, normalise, tokenize) in one process with one torch thread, i.e. samples per second per core.

``train-step``: forward + backward + AdamW step of a randomly initialised model on random inputs, optionally
under bf16 / fp16 autocast and with gradient checkpointing.

``inference``: forward + mask post-processing under ``torch.inference_mode``; ``--compile`` times the
``torch.compile``-d model against eager in the same run and checks that the masks are identical.

``eval``: ``lavt_hf.training.evaluation.evaluate_model`` over a synthetic refer split (decode, resize, tokenize in the
data loader, batched forward, IoU counts, metrics): evaluated samples per second.

``targets``: the performance targets of the project, each ratio measured within this one run (inference sides
interleaved in one process; the two training steps of the checkpointing target in one fresh subprocess each, so
that peak memory and allocator settings are each configuration's own).

``onnx``: the CPU inference paths side by side (eager float32, eager bf16 autocast with float32 or stored bf16
weights, ONNX Runtime float32, INT8 dynamic and INT8 static, timed interleaved on the same inputs; ``--paths``
chooses) at Swin-B 480 batch 1 and Swin-T 224 batch 2 on 2 threads, with export and quantization times, ONNX file
sizes and each path's peak RSS (``onnx-memory``, one fresh subprocess per path). ``onnx-accuracy``: the same paths with a trained model over a refer split (IoU, mask agreement).

Memory: ``peak_memory_mb`` is the process's peak resident set size (``VmHWM`` on Linux, else ``ru_maxrss``) on
CPU, which includes the Python runtime and libraries, and ``torch.cuda.max_memory_allocated`` on CUDA. Run one configuration per
process (as the command line does) so that one configuration's peak does not hide another's. ``train-step`` on CPU
also reports ``peak_allocated_mb``, the peak of what malloc has handed out (glibc), comparable with CUDA's number:
peak RSS also counts freed heap pages that glibc keeps. With gradient checkpointing on CPU, ``train-step`` (like
lavt-train) returns freed blocks of 4 MiB and more to the system (``lavt_hf.training.memory``) and reports the threshold as
``malloc_mmap_threshold_mb``; ``MALLOC_MMAP_THRESHOLD_=<bytes>`` in the environment sets it for any run.

Examples:
  python -m lavt_hf.scripts.benchmark inference --preset swin-base-window12 --image-size 480 --dtype bf16
  python -m lavt_hf.scripts.benchmark train-step --preset swin-tiny-window7 --batch-size 2 --gradient-checkpointing
  python -m lavt_hf.scripts.benchmark targets --comparisons bf16 resolution batch compile
  python -m lavt_hf.scripts.benchmark onnx --repeats 5 > docs/benchmarks/cpu_onnx.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lavt_hf.commands import missing_extra_message
from lavt_hf.scripts.benchmarks import (
    data,
    data_format,
    evaluation,
    inference,
    onnx_accuracy,
    onnx_paths,
    targets,
    train_step,
)


@dataclass(frozen=True)
class Subcommand:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]
    extra: str | None = None  # the extra beyond `train` that it needs (lavt_hf.commands.EXTRA_MODULES)


SUBCOMMANDS: dict[str, Subcommand] = {
    "data": Subcommand(
        help="training-transform throughput (decode + mask + resize + normalise + tokenize), samples/s per core",
        add_arguments=data.add_data_arguments,
        run=data.run_data,
    ),
    "train-step": Subcommand(
        help="training step (forward, backward, AdamW) of a random model on random inputs: time and peak memory",
        add_arguments=train_step.add_train_step_arguments,
        run=train_step.run_train_step,
    ),
    "inference": Subcommand(
        help="inference (forward + masks) of a random model on random inputs; --compile compares with eager",
        add_arguments=inference.add_inference_arguments,
        run=inference.run_inference,
    ),
    "eval": Subcommand(
        help="batched evaluate_model over a synthetic refer split (data loading and metrics included)",
        add_arguments=evaluation.add_eval_arguments,
        run=evaluation.run_eval,
    ),
    "data-format": Subcommand(
        help="prepared parquet: size against its distinct images, and the data path from it (map-style, streamed)",
        add_arguments=data_format.add_arguments,
        run=data_format.run,
    ),
    "targets": Subcommand(
        help="the project's performance targets (bf16, checkpointing, resolution, batch, compile) in one run",
        add_arguments=targets.add_targets_arguments,
        run=targets.run_targets,
    ),
    "onnx": Subcommand(
        help="CPU inference paths side by side: eager fp32, eager bf16 autocast, ONNX Runtime fp32, INT8 dynamic "
        "and INT8 static (export time, file sizes, peak RSS per path)",
        add_arguments=onnx_paths.add_onnx_arguments,
        run=onnx_paths.run_onnx,
        extra="onnx",
    ),
    "onnx-memory": Subcommand(
        help="(used by onnx) peak RSS of one CPU inference path in this process",
        add_arguments=onnx_paths.add_onnx_memory_arguments,
        run=onnx_paths.run_onnx_memory,
        extra="onnx",
    ),
    "onnx-accuracy": Subcommand(
        help="the CPU inference paths with a trained model over a refer split: IoU and mask agreement with fp32",
        add_arguments=onnx_accuracy.add_onnx_accuracy_arguments,
        run=onnx_accuracy.run_onnx_accuracy,
        extra="onnx",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, subcommand in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=subcommand.help, description=subcommand.help)
        subcommand.add_arguments(sub)
        sub.set_defaults(run=subcommand.run, extra=subcommand.extra)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    missing = args.extra and missing_extra_message(args.extra, f"benchmark {args.command}")
    if missing:
        parser.error(missing)
    print(json.dumps(args.run(args)))


if __name__ == "__main__":
    main()
