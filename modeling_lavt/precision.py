# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Compute precision by name, shared by the command-line tools (predict, evaluate, benchmark)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, dtype: str) -> AbstractContextManager:
    """Autocast to `dtype` ("bf16" / "fp16") on `device`; "fp32" runs as is. The losses and the mask softmax
    leave autocast themselves, so they stay float32."""
    return nullcontext() if dtype == "fp32" else torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (x86 AVX512-BF16 or AMX), where bf16 autocast roughly
    halves inference time; elsewhere oneDNN emulates bfloat16 and it is slower than float32."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_dtype(device: torch.device, name: str) -> str:
    """`name`, with "auto" resolved: "bf16" on a CPU with native bfloat16 (its accuracy cost measured in the
    README's CPU table), else "fp32" (other CPUs, and GPUs, where auto makes no choice for you)."""
    if name != "auto":
        return name
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
