# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""``inference``: forward + mask post-processing under ``torch.inference_mode``; ``--compile`` times the
``torch.compile``-d model against eager in the same run and checks that the masks are identical."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

from modeling_lavt.precision import autocast

from .memory import memory_record, peak_memory_mb
from .models import add_model_arguments, base_record, build_model, model_config, prepare_device, random_inputs
from .timing import Workload, median_ratio, synchronize, time_workloads, timing_record


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--compile", action="store_true",
                        help="time torch.compile(model) against eager in the same run and compare their masks "
                        "(the first compiled call, compilation included, is reported as compile_s)")
    parser.add_argument("--compile-backend", "--compile_backend", default="inductor",
                        help="torch.compile backend (inductor; 'eager' or 'aot_eager' only test the plumbing)")


def inference_workload(name: str, model: Callable[..., Any], inputs: dict[str, torch.Tensor], dtype: str,
                       device: torch.device) -> Workload:
    """Forward under inference mode, then the processor's post-processing: masks at the input size."""
    from modeling_lavt.image_processing_lavt import LavtImageProcessor

    post_processor = LavtImageProcessor()
    sizes = [tuple(inputs["pixel_values"].shape[-2:])] * inputs["pixel_values"].shape[0]

    def step() -> torch.Tensor:
        with torch.inference_mode(), autocast(device, dtype):
            outputs = model(**inputs)
        results = post_processor.post_process_referring_segmentation(outputs, target_sizes=sizes)
        return torch.stack([result["mask"] for result in results])

    return Workload(name, step)


def compare_compiled(model: torch.nn.Module, inputs: dict[str, torch.Tensor], dtype: str, device: torch.device,
                     backend: str, repeats: int, warmup: int) -> dict[str, Any]:
    """Eager and ``torch.compile``-d inference of the same model on the same inputs, timed interleaved; the
    masks of both must be identical. The first compiled call (compilation included) is ``compile_s``."""
    eager = inference_workload("eager", model, inputs, dtype, device)
    compiled = inference_workload("compiled", torch.compile(model, backend=backend), inputs, dtype, device)
    start = time.perf_counter()
    compiled_masks = compiled.step()
    synchronize(device)
    compile_seconds = time.perf_counter() - start
    masks_identical = torch.equal(eager.step(), compiled_masks)
    seconds = time_workloads([eager, compiled], repeats, warmup, device)
    batch = inputs["pixel_values"].shape[0]
    return {
        "compile_backend": backend, "compile_s": round(compile_seconds, 1), "masks_identical": masks_identical,
        "eager": timing_record(seconds["eager"], batch), "compiled": timing_record(seconds["compiled"], batch),
        "compiled_over_eager": median_ratio(seconds, "compiled", "eager"),
    }


def run_inference(args: argparse.Namespace) -> dict[str, Any]:
    """Time inference of one configuration; with --compile, eager and compiled interleaved in this run (the
    top-level timing is then the compiled model's)."""
    device = prepare_device(args)
    config = model_config(args)
    model = build_model(config, device, args.seed).eval()
    inputs = random_inputs(config, args.batch_size, args.image_size, device, args.seed)
    setup_peak = peak_memory_mb(device)
    record = {**base_record("inference", args, config, model, device), "compile": args.compile}
    if args.compile:
        comparison = compare_compiled(model, inputs, args.dtype, device, args.compile_backend, args.repeats,
                                      args.warmup)
        return {**record, **comparison.pop("compiled"), **memory_record(device, setup_peak), **comparison}
    eager = inference_workload("eager", model, inputs, args.dtype, device)
    seconds = time_workloads([eager], args.repeats, args.warmup, device)["eager"]
    return {**record, **timing_record(seconds, args.batch_size), **memory_record(device, setup_peak)}
