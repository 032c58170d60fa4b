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
