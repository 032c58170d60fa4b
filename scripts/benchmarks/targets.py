# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""``targets``: the performance targets of the project, each ratio measured within this one run (inference sides
interleaved in one process; the two training steps of the checkpointing target in one fresh subprocess each, so
that peak memory and allocator settings are each configuration's own)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch

from lavt_hf.cli import non_negative_int, positive_int

from .inference import compare_compiled, inference_workload
from .memory import record_in_fresh_process
from .models import (
    add_threads_argument,
    build_model,
    hardware_record,
    model_config,
    prepare_device,
    preset_choices,
    random_inputs,
)
from .timing import median_ratio, time_workloads, timing_record

# The project's performance targets (docs/benchmarks.md).
BF16_MIN_SPEEDUP = 1.5  # fp32 time / bf16-autocast time, inference
CHECKPOINTING_MIN_MEMORY_CUT = 0.40  # 1 - peak with / peak without gradient checkpointing, training step
CHECKPOINTING_MAX_SLOWDOWN = 1.35  # step time with / without gradient checkpointing
RESOLUTION_MAX_RATIO = 4.6  # time per sample at twice the side (4x the pixels) / at the side
BATCH_MAX_RATIO = 1.0  # time per sample at the largest batch / at batch 1
COMPILE_MAX_RATIO = 1.0  # compiled / eager inference time, with identical masks


def add_targets_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--comparisons", nargs="+", choices=list(COMPARISONS), default=list(COMPARISONS),
                        help="targets to measure (default: all); a Swin-B 480 checkpointing comparison alone "
                        "takes minutes on a CPU")
    parser.add_argument("--small-preset", "--small_preset", default="swin-tiny-window7", choices=preset_choices(),
                        help="model of the resolution, batch and compile comparisons (swin-tiny-window7)")
    parser.add_argument("--small-image-size", "--small_image_size", type=positive_int, default=224,
                        help="side of the small configuration; the resolution comparison doubles it (224)")
    parser.add_argument("--max-batch-size", "--max_batch_size", type=positive_int, default=8,
                        help="batch compared with batch 1 (8)")
    parser.add_argument("--large-preset", "--large_preset", default="swin-base-window12", choices=preset_choices(),
                        help="model of the bf16 and gradient checkpointing comparisons (swin-base-window12)")
    parser.add_argument("--large-image-size", "--large_image_size", type=positive_int, default=480,
                        help="side of the large configuration (480)")
    parser.add_argument("--large-batch-size", "--large_batch_size", type=positive_int, default=1,
                        help="batch of the bf16 comparison (1)")
    parser.add_argument("--checkpointing-batch-size", "--checkpointing_batch_size", type=positive_int, default=4,
                        help="batch of the gradient checkpointing comparison (4, the recipe's per-device batch "
                        "on smaller cards; at batch 1 the weights, gradients and AdamW state, which "
                        "checkpointing cannot touch, are most of the peak)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed iterations per configuration (3)")
    parser.add_argument("--warmup", type=non_negative_int, default=1, help="untimed iterations per configuration first (1)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (0)")
    parser.add_argument("--compile-backend", "--compile_backend", default="inductor",
                        help="torch.compile backend of the compile comparison (inductor)")
    add_threads_argument(parser)


def _preset_model(preset: str, device: torch.device, seed: int) -> tuple[Any, torch.nn.Module]:
    config = model_config(argparse.Namespace(preset=preset, config_json=None))
    return config, build_model(config, device, seed)


def compare_bf16(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """fp32 and bf16-autocast inference of the large configuration, interleaved on one model."""
    config, model = _preset_model(args.large_preset, device, args.seed)
    inputs = random_inputs(config, args.large_batch_size, args.large_image_size, device, args.seed)
    workloads = [inference_workload(dtype, model.eval(), inputs, dtype, device) for dtype in ("fp32", "bf16")]
    seconds = time_workloads(workloads, args.repeats, args.warmup, device)
    speedup = median_ratio(seconds, "fp32", "bf16")
    return {
        "target": f"bf16 autocast inference >= {BF16_MIN_SPEEDUP}x faster than fp32",
        "met": speedup >= BF16_MIN_SPEEDUP, "speedup": speedup, "preset": args.large_preset,
        "image_size": args.large_image_size, "batch_size": args.large_batch_size,
        **{dtype: timing_record(times, args.large_batch_size) for dtype, times in seconds.items()},
    }


def train_step_in_subprocess(args: argparse.Namespace, device: torch.device, checkpointing: bool
                             ) -> dict[str, Any]:
    """The ``train-step`` record of the large configuration from a fresh process, so that its peak memory and
    its allocator settings are its own."""
    argv = ["train-step", "--preset", args.large_preset,
            "--image-size", str(args.large_image_size), "--batch-size", str(args.checkpointing_batch_size),
            "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--device", str(device),
            "--seed", str(args.seed)]
    if checkpointing:
        argv.append("--gradient-checkpointing")
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    return record_in_fresh_process(argv)


def activation_memory_mb(record: dict[str, Any]) -> float:
    """Peak memory beyond the setup (model, inputs, libraries), the gradients (as large as the parameters) and
    the optimizer state: the part that gradient checkpointing can cut."""
    fixed = record["setup_peak_memory_mb"] + record["parameters_mb"] + record["optimizer_state_mb"]
    return round(record["peak_memory_mb"] - fixed, 1)


def compare_checkpointing(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Training steps of the large configuration with and without gradient checkpointing, each in a fresh
    process as lavt-train runs them (on CPU the checkpointed one returns freed blocks to the system, which costs
    time too): peak memories and median step times of the two records."""
    records = {name: train_step_in_subprocess(args, device, name == "checkpointed")
               for name in ("plain", "checkpointed")}
    slowdown = round(records["checkpointed"]["median_s"] / records["plain"]["median_s"], 3)
    peaks = {name: record["peak_memory_mb"] for name, record in records.items()}
    activations = {name: activation_memory_mb(record) for name, record in records.items()}
    cut = round(1 - peaks["checkpointed"] / peaks["plain"], 3)
    allocated = {name: record.get("peak_allocated_mb") for name, record in records.items()}
    allocated_cut = ({"peak_allocated_mb": allocated,
                      "peak_allocated_cut": round(1 - allocated["checkpointed"] / allocated["plain"], 3)}
                     if None not in allocated.values() else {})
    return {
        "target": f"peak memory cut >= {CHECKPOINTING_MIN_MEMORY_CUT:.0%}, step time <= "
                  f"{CHECKPOINTING_MAX_SLOWDOWN}x",
        "met": cut >= CHECKPOINTING_MIN_MEMORY_CUT and slowdown <= CHECKPOINTING_MAX_SLOWDOWN,
        "peak_memory_cut": cut, "slowdown": slowdown, "peak_memory_mb": peaks,
        "activation_memory_mb": activations,
        "activation_memory_cut": round(1 - activations["checkpointed"] / activations["plain"], 3),
        **allocated_cut,
        "memory_kind": records["plain"]["memory_kind"], "preset": args.large_preset,
        "image_size": args.large_image_size, "batch_size": args.checkpointing_batch_size, "subprocess_records": records,
    }


def compare_resolution(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Inference at the small side and at twice it (batch 1), interleaved on one model."""
    config, model = _preset_model(args.small_preset, device, args.seed)
    sizes = {"single": args.small_image_size, "double": 2 * args.small_image_size}
    workloads = [inference_workload(name, model.eval(), random_inputs(config, 1, size, device, args.seed),
                                    "fp32", device) for name, size in sizes.items()]
    seconds = time_workloads(workloads, args.repeats, args.warmup, device)
    ratio = median_ratio(seconds, "double", "single")
    return {
        "target": f"time per sample at 4x the pixels <= {RESOLUTION_MAX_RATIO}x",
        "met": ratio <= RESOLUTION_MAX_RATIO, "ratio": ratio, "preset": args.small_preset, "image_sizes": sizes,
        **{name: timing_record(times, 1) for name, times in seconds.items()},
    }


def compare_batch(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Inference at batch 1 and at the largest batch, interleaved on one model; per-sample times compared."""
    config, model = _preset_model(args.small_preset, device, args.seed)
    largest = f"batch_{args.max_batch_size}"
    batches = {"batch_1": 1, largest: args.max_batch_size}
    workloads = [
        inference_workload(name, model.eval(), random_inputs(config, batch, args.small_image_size, device,
                                                              args.seed), "fp32", device)
        for name, batch in batches.items()
    ]
    seconds = time_workloads(workloads, args.repeats, args.warmup, device)
    ratio = round(median_ratio(seconds, largest, "batch_1") / args.max_batch_size, 3)
    return {
        "target": f"time per sample at batch {args.max_batch_size} <= {BATCH_MAX_RATIO}x batch 1",
        "met": ratio <= BATCH_MAX_RATIO, "per_sample_ratio": ratio, "preset": args.small_preset,
        "image_size": args.small_image_size,
        **{name: timing_record(seconds[name], batch) for name, batch in batches.items()},
    }


def compare_compile(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Eager and compiled inference of the small configuration (batch 1)."""
    config, model = _preset_model(args.small_preset, device, args.seed)
    inputs = random_inputs(config, 1, args.small_image_size, device, args.seed)
    comparison = compare_compiled(model.eval(), inputs, "fp32", device, args.compile_backend, args.repeats,
                                  args.warmup)
    return {
        "target": f"identical masks, compiled time <= {COMPILE_MAX_RATIO}x eager",
        "met": comparison["masks_identical"] and comparison["compiled_over_eager"] <= COMPILE_MAX_RATIO,
        "preset": args.small_preset, "image_size": args.small_image_size, **comparison,
    }


COMPARISONS: dict[str, Callable[[argparse.Namespace, torch.device], dict[str, Any]]] = {
    "bf16": compare_bf16,
    "checkpointing": compare_checkpointing,
    "resolution": compare_resolution,
    "batch": compare_batch,
    "compile": compare_compile,
}


def run_targets(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the chosen targets one after the other; each ratio comes from this run only."""
    device = prepare_device(args)
    results = {name: COMPARISONS[name](args, device) for name in args.comparisons}
    return {
        "benchmark": "targets", "device": str(device), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), **hardware_record(device), "repeats": args.repeats,
        "warmup": args.warmup, "all_met": all(r["met"] for r in results.values()),
        "comparisons": results,
    }
