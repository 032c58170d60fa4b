# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""``train-step``: forward + backward + AdamW step of a randomly initialised model on random inputs, optionally
under bf16 / fp16 autocast and with gradient checkpointing; time and peak memory.

On CPU it also reports ``peak_allocated_mb``, the peak of what malloc has handed out (glibc), comparable with
CUDA's number: peak RSS also counts freed heap pages that glibc keeps. With gradient checkpointing on CPU it
(like lavt-train) returns freed blocks of 4 MiB and more to the system (``lavt_hf.training.memory``) and reports
the threshold as ``malloc_mmap_threshold_mb``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch

from lavt_hf.cli import non_negative_float
from lavt_hf.training import memory
from modeling_lavt.precision import autocast

from .memory import AllocatedPeak, memory_record, peak_memory_mb
from .models import add_model_arguments, base_record, build_model, model_config, prepare_device, random_inputs
from .timing import Workload, time_workloads, timing_record


def add_train_step_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--gradient-checkpointing", "--gradient_checkpointing", action="store_true",
                        help="recompute Swin and BERT layer activations in the backward pass")
    parser.add_argument("--learning-rate", "--learning_rate", type=non_negative_float, default=5e-5, help="AdamW lr (5e-5)")


def train_step_function(model: torch.nn.Module, inputs: dict[str, torch.Tensor], dtype: str,
                        device: torch.device, learning_rate: float
                        ) -> tuple[Callable[[], torch.Tensor], torch.optim.Optimizer]:
    """One training step (forward with labels, backward, AdamW step with a gradient scaler for fp16, gradients
    released) and its optimizer."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == "fp16")

    def step() -> torch.Tensor:
        with autocast(device, dtype):
            loss = model(**inputs).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step, optimizer


def state_sizes_mb(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Parameter and optimizer-state memory: what a training step holds whatever its activations (gradients
    take as much again as the parameters while the backward pass runs)."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    state = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values()
                if isinstance(v, torch.Tensor))
    return {"parameters_mb": round(params / 2**20, 1), "optimizer_state_mb": round(state / 2**20, 1)}


def run_train_step(args: argparse.Namespace) -> dict[str, Any]:
    """Time training steps of one configuration; its peak memory is this process's."""
    device = prepare_device(args)
    config = model_config(args)
    model = build_model(config, device, args.seed).train()
    on_cpu = device.type == "cpu"
    if on_cpu:  # as lavt-train: with checkpointing on CPU freed blocks of 4 MiB and more go back to the system
        threshold = (memory.return_freed_blocks_to_system() if args.gradient_checkpointing
                     else memory.configured_mmap_threshold())
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    inputs = random_inputs(config, args.batch_size, args.image_size, device, args.seed, labels=True)
    setup_peak = peak_memory_mb(device)
    step, optimizer = train_step_function(model, inputs, args.dtype, device, args.learning_rate)
    with AllocatedPeak() if on_cpu else nullcontext() as allocated:  # CUDA's allocator reports its own peak
        seconds = time_workloads([Workload("train-step", step)], args.repeats, args.warmup, device)["train-step"]
    # None: glibc's default, a threshold that rises with the blocks freed (or another C library)
    cpu_allocated = {"peak_allocated_mb": allocated.peak_mb,
                     "malloc_mmap_threshold_mb": threshold and threshold / 2**20} if on_cpu else {}
    return {
        **base_record("train-step", args, config, model, device),
        "gradient_checkpointing": args.gradient_checkpointing, **timing_record(seconds, args.batch_size),
        **memory_record(device, setup_peak), **cpu_allocated, **state_sizes_mb(model, optimizer),
    }
