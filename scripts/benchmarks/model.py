# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The model benchmarks: `train-step`, `inference` and `targets` (performance targets, each in one run)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch

from lavt_hf.cli import positive_int
from lavt_hf.training import memory
from modeling_lavt import LavtImageProcessor
from modeling_lavt.precision import autocast

from . import common
from .common import median_ratio, timing_record

# The project's performance targets (docs/benchmarks.md).
BF16_MIN_SPEEDUP = 1.5  # fp32 time / bf16-autocast time, inference
CHECKPOINTING_MIN_MEMORY_CUT = 0.40  # 1 - peak with / peak without gradient checkpointing, training step
CHECKPOINTING_MAX_SLOWDOWN = 1.35  # step time with / without gradient checkpointing
RESOLUTION_MAX_RATIO = 4.6  # time per sample at twice the side (4x the pixels) / at the side
BATCH_MAX_RATIO = 1.0  # time per sample at the largest batch / at batch 1
COMPILE_MAX_RATIO = 1.0  # compiled / eager inference time, with identical masks


def random_setup(args: argparse.Namespace, training: bool) -> tuple[torch.device, Any, Any, dict]:
    """The device, config, random model and inputs (labels for training) of `train-step` / `inference`."""
    device = common.prepare_device(args)
    config, model = common.random_model(args.preset, device, args.config_json)
    inputs = common.random_inputs(config, args.batch_size, args.image_size, device, labels=training)
    return device, config, model.train(training), inputs


def add_train_step_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_model_arguments(parser)
    parser.add_argument("--gradient-checkpointing", "--gradient_checkpointing", action="store_true",
                        help="recompute Swin and BERT layer activations in the backward pass")


def run_train_step(args: argparse.Namespace) -> dict[str, Any]:
    """Training step (forward, backward, AdamW) of a random model: time and peak memory.

    A gradient scaler is used for fp16. On CPU also `peak_allocated_mb` (malloc's peak, comparable with CUDA's number) and, as lavt-train does with
    checkpointing, freed blocks of 4 MiB and more go back to the system (`malloc_mmap_threshold_mb`)."""
    device, config, model, inputs = random_setup(args, training=True)
    on_cpu = device.type == "cpu"
    if on_cpu:
        threshold = (memory.return_freed_blocks_to_system() if args.gradient_checkpointing
                     else memory.configured_mmap_threshold())
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    setup_peak = common.peak_memory_mb(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    scaler = torch.amp.GradScaler(device.type, enabled=args.dtype == "fp16")

    def step() -> None:
        with autocast(device, args.dtype):
            loss = model(**inputs).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    with common.AllocatedPeak() if on_cpu else nullcontext() as allocated:  # CUDA's allocator has its own peak
        seconds = common.time_workloads({"step": step}, args.repeats, args.warmup, device)["step"]
    # None: glibc's default, a threshold that rises with the blocks freed (or another C library)
    cpu_allocated = {"peak_allocated_mb": allocated.peak_mb,
                     "malloc_mmap_threshold_mb": threshold and threshold / 2**20} if on_cpu else {}
    state = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values()
                if isinstance(v, torch.Tensor))
    return {
        **common.base_record("train-step", args, config, model, device),
        "gradient_checkpointing": args.gradient_checkpointing, **timing_record(seconds, args.batch_size),
        **common.memory_record(device, setup_peak), **cpu_allocated,
        # what a step holds whatever its activations (gradients take as much again as the parameters)
        "parameters_mb": round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 1),
        "optimizer_state_mb": round(state / 2**20, 1),
    }


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_model_arguments(parser)
    parser.add_argument("--compile", action="store_true", help="time torch.compile(model) against eager, same run")
    parser.add_argument("--compile-backend", "--compile_backend", default="inductor",
                        help="torch.compile backend (inductor; 'eager' or 'aot_eager' only test the plumbing)")


def inference_step(model: Callable[..., Any], inputs: dict[str, torch.Tensor], dtype: str, device: torch.device
                   ) -> Callable[[], torch.Tensor]:
    """Forward under inference mode, then the processor's post-processing: the masks at the input size."""
    post_processor = LavtImageProcessor()
    sizes = [tuple(inputs["pixel_values"].shape[-2:])] * inputs["pixel_values"].shape[0]

    def step() -> torch.Tensor:
        with torch.inference_mode(), autocast(device, dtype):
            outputs = model(**inputs)
        results = post_processor.post_process_referring_segmentation(outputs, target_sizes=sizes)
        return torch.stack([result["mask"] for result in results])

    return step


def compare_compiled(args: argparse.Namespace, model: torch.nn.Module, inputs: dict[str, torch.Tensor],
                     dtype: str, device: torch.device) -> dict[str, Any]:
    """Eager and `torch.compile`-d (`args.compile_backend`) inference timed interleaved; their masks must be
    identical. The first compiled call (compilation included) is `compile_s`."""
    compiled = torch.compile(model, backend=args.compile_backend)
    steps = {"eager": inference_step(model, inputs, dtype, device),
             "compiled": inference_step(compiled, inputs, dtype, device)}
    start = time.perf_counter()
    compiled_masks = steps["compiled"]()
    common.synchronize(device)
    compile_seconds = time.perf_counter() - start
    masks_identical = torch.equal(steps["eager"](), compiled_masks)
    seconds = common.time_workloads(steps, args.repeats, args.warmup, device)
    batch = inputs["pixel_values"].shape[0]
    return {
        "compile_backend": args.compile_backend, "compile_s": round(compile_seconds, 1),
        "masks_identical": masks_identical, "compiled_over_eager": median_ratio(seconds, "compiled", "eager"),
        "eager": timing_record(seconds["eager"], batch), "compiled": timing_record(seconds["compiled"], batch),
    }


def run_inference(args: argparse.Namespace) -> dict[str, Any]:
    """Inference (forward + masks) of a random model; --compile compares with eager."""
    device, config, model, inputs = random_setup(args, training=False)
    setup_peak = common.peak_memory_mb(device)
    record = {**common.base_record("inference", args, config, model, device), "compile": args.compile}
    if args.compile:
        comparison = compare_compiled(args, model, inputs, args.dtype, device)
        compiled = comparison.pop("compiled")
        return {**record, **compiled, **common.memory_record(device, setup_peak), **comparison}
    step = inference_step(model, inputs, args.dtype, device)
    seconds = common.time_workloads({"eager": step}, args.repeats, args.warmup, device)["eager"]
    return {**record, **timing_record(seconds, args.batch_size), **common.memory_record(device, setup_peak)}


def add_targets_arguments(parser: argparse.ArgumentParser) -> None:
    presets = common.PRESET_CHOICES
    parser.add_argument("--comparisons", nargs="+", choices=list(COMPARISONS), default=list(COMPARISONS))
    parser.add_argument("--small-preset", "--small_preset", default="swin-tiny-window7", choices=presets,
                        help="model of the resolution, batch and compile comparisons (%(default)s)")
    parser.add_argument("--small-image-size", "--small_image_size", type=positive_int, default=224,
                        help="side of the small configuration; the resolution comparison doubles it (224)")
    parser.add_argument("--max-batch-size", "--max_batch_size", type=positive_int, default=8,
                        help="batch compared with batch 1 (8)")
    parser.add_argument("--large-preset", "--large_preset", default="swin-base-window12", choices=presets,
                        help="model of the bf16 (batch 1) and gradient checkpointing comparisons (%(default)s)")
    parser.add_argument("--large-image-size", "--large_image_size", type=positive_int, default=480,
                        help="side of the large configuration (480)")
    parser.add_argument("--checkpointing-batch-size", "--checkpointing_batch_size", type=positive_int, default=4,
                        help="batch of the gradient checkpointing comparison (4)")
    parser.add_argument("--compile-backend", "--compile_backend", default="inductor",
                        help="torch.compile backend of the compile comparison (inductor)")
    common.add_run_arguments(parser, repeats=3)


def timed_inference(args: argparse.Namespace, device: torch.device, preset: str,
                    cases: dict[str, tuple[int, int, str]]) -> tuple[dict[str, list[float]], dict[str, dict]]:
    """Inference of one random `preset` model for each case name -> (batch, side, dtype), timed interleaved:
    the seconds and the timing record of each case."""
    config, model = common.random_model(preset, device)
    steps = {name: inference_step(model, common.random_inputs(config, batch, side, device), dtype, device)
             for name, (batch, side, dtype) in cases.items()}
    seconds = common.time_workloads(steps, args.repeats, args.warmup, device)
    return seconds, {name: timing_record(seconds[name], batch) for name, (batch, _, _) in cases.items()}


def compare_bf16(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    cases = {dtype: (1, args.large_image_size, dtype) for dtype in ("fp32", "bf16")}
    seconds, records = timed_inference(args, device, args.large_preset, cases)
    speedup = median_ratio(seconds, "fp32", "bf16")
    return {"target": f"bf16 autocast inference >= {BF16_MIN_SPEEDUP}x faster than fp32",
            "met": speedup >= BF16_MIN_SPEEDUP, "speedup": speedup, "preset": args.large_preset,
            "image_size": args.large_image_size, "batch_size": 1, **records}


def compare_checkpointing(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Training steps with and without gradient checkpointing, each in a fresh process, as lavt-train runs."""
    argv = ["train-step", "--preset", args.large_preset, "--image-size", str(args.large_image_size),
            "--batch-size", str(args.checkpointing_batch_size), "--repeats", str(args.repeats),
            "--warmup", str(args.warmup), "--device", str(device),
            *(["--threads", str(args.threads)] if args.threads is not None else [])]
    records = {"plain": common.record_in_fresh_process(argv),
               "checkpointed": common.record_in_fresh_process([*argv, "--gradient-checkpointing"])}
    slowdown = round(records["checkpointed"]["median_s"] / records["plain"]["median_s"], 3)
    peaks = {name: record["peak_memory_mb"] for name, record in records.items()}
    # Beyond the setup, the gradients (as large as the parameters) and the optimizer state: what checkpointing cuts
    activations = {name: round(r["peak_memory_mb"] - r["setup_peak_memory_mb"] - r["parameters_mb"]
                               - r["optimizer_state_mb"], 1) for name, r in records.items()}
    cut = round(1 - peaks["checkpointed"] / peaks["plain"], 3)
    allocated = {name: record.get("peak_allocated_mb") for name, record in records.items()}
    allocated_cut = ({"peak_allocated_mb": allocated,
                      "peak_allocated_cut": round(1 - allocated["checkpointed"] / allocated["plain"], 3)}
                     if None not in allocated.values() else {})
    return {
        "target": f"peak memory cut >= {CHECKPOINTING_MIN_MEMORY_CUT:.0%}, step time <= "
                  f"{CHECKPOINTING_MAX_SLOWDOWN}x",
        "met": cut >= CHECKPOINTING_MIN_MEMORY_CUT and slowdown <= CHECKPOINTING_MAX_SLOWDOWN,
        "peak_memory_cut": cut, "slowdown": slowdown, "peak_memory_mb": peaks, "activation_memory_mb": activations,
        "activation_memory_cut": round(1 - activations["checkpointed"] / activations["plain"], 3), **allocated_cut,
        "memory_kind": records["plain"]["memory_kind"], "preset": args.large_preset,
        "image_size": args.large_image_size, "batch_size": args.checkpointing_batch_size,
        "subprocess_records": records,
    }


def compare_resolution(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    sizes = {"single": args.small_image_size, "double": 2 * args.small_image_size}
    cases = {name: (1, side, "fp32") for name, side in sizes.items()}
    seconds, records = timed_inference(args, device, args.small_preset, cases)
    ratio = median_ratio(seconds, "double", "single")
    return {"target": f"time per sample at 4x the pixels <= {RESOLUTION_MAX_RATIO}x",
            "met": ratio <= RESOLUTION_MAX_RATIO, "ratio": ratio, "preset": args.small_preset,
            "image_sizes": sizes, **records}


def compare_batch(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    largest = f"batch_{args.max_batch_size}"
    batches = {"batch_1": 1, largest: args.max_batch_size}
    cases = {name: (batch, args.small_image_size, "fp32") for name, batch in batches.items()}
    seconds, records = timed_inference(args, device, args.small_preset, cases)
    ratio = round(median_ratio(seconds, largest, "batch_1") / args.max_batch_size, 3)
    return {"target": f"time per sample at batch {args.max_batch_size} <= {BATCH_MAX_RATIO}x batch 1",
            "met": ratio <= BATCH_MAX_RATIO, "per_sample_ratio": ratio, "preset": args.small_preset,
            "image_size": args.small_image_size, **records}


def compare_compile(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    config, model = common.random_model(args.small_preset, device)
    inputs = common.random_inputs(config, 1, args.small_image_size, device)
    comparison = compare_compiled(args, model, inputs, "fp32", device)
    return {"target": f"identical masks, compiled time <= {COMPILE_MAX_RATIO}x eager",
            "met": comparison["masks_identical"] and comparison["compiled_over_eager"] <= COMPILE_MAX_RATIO,
            "preset": args.small_preset, "image_size": args.small_image_size, **comparison}


COMPARISONS = {"bf16": compare_bf16, "checkpointing": compare_checkpointing, "resolution": compare_resolution,
               "batch": compare_batch, "compile": compare_compile}


def run_targets(args: argparse.Namespace) -> dict[str, Any]:
    """The project's performance targets (bf16, checkpointing, resolution, batch, compile) in one run.

    The chosen targets are measured one after the other; each ratio comes from this run only."""
    device = common.prepare_device(args)
    results = {name: COMPARISONS[name](args, device) for name in args.comparisons}
    return {
        "benchmark": "targets", "device": str(device), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), **common.hardware_record(device), "repeats": args.repeats,
        "warmup": args.warmup, "all_met": all(r["met"] for r in results.values()), "comparisons": results,
    }
