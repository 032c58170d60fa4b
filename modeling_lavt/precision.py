# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Compute precision by name, shared by the command-line tools (predict, evaluate, benchmark)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, dtype: str) -> AbstractContextManager:
    """Autocast to `dtype` ("bf16" / "fp16") on `device`; "fp32" runs as is (the losses stay float32 anyway)."""
    return nullcontext() if dtype == "fp32" else torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


# The layers whose weights autocast casts to its low precision on every call (torch's autocast op lists).
AUTOCAST_WEIGHT_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)


def store_weights_for_autocast(model: torch.nn.Module, dtype: str) -> torch.nn.Module:
    """For inference under `autocast(device, dtype)`: store the weights and biases of the layers autocast runs in
    `dtype` (Linear, Conv1d, Conv2d) in that precision, in place, and return `model`; "fp32" leaves it as is.

    Autocast rounds those weights on every call anyway, so the outputs are bit-identical; what goes is that cast
    (docs/benchmarks/cpu_onnx_eager_paths.json), and their memory halves; norms, embeddings and bias tables stay
    float32. LAVT models then run only under autocast to `dtype` and not for training. ValueError when the
    weights are already stored in another precision (storing again would round them twice).
    """
    if dtype == "fp32":
        return model
    stored = {getattr(module, "weights_stored_for_autocast", None) for module in model.modules()} - {None}
    if stored and stored != {DTYPES[dtype]}:
        names = sorted(name for name, value in DTYPES.items() if value in stored)
        raise ValueError(f"this model's weights are already stored in {', '.join(names)} for autocast; load the "
                         f"model again to store them in {dtype}")
    for module in model.modules():
        if isinstance(module, AUTOCAST_WEIGHT_LAYERS):
            module.to(DTYPES[dtype])
        elif hasattr(module, "check_inputs"):
            module.weights_stored_for_autocast = DTYPES[dtype]
    return model


def check_stored_weights_autocast(model: torch.nn.Module, device_type: str) -> None:
    """Raise ValueError, saying what to do, when `model`'s weights were stored for autocast but it runs outside
    autocast to that dtype on `device_type` (other results than autocast's, or a dtype error deep inside), or
    trains. A cast of the whole model (`model.float()`) ends that."""
    name = stored_weights_dtype(model)
    if name is None:
        return
    stored = DTYPES[name]
    if not torch.is_autocast_enabled(device_type) or torch.get_autocast_dtype(device_type) != stored:
        raise ValueError(f"this model's linear and convolution weights are stored in {name} for autocast "
                         f"(store_weights_for_autocast); call it under torch.autocast({device_type!r}, dtype={stored}), "
                         "or load the model again to run it in another precision")
    if model.training and torch.is_grad_enabled():
        raise ValueError(f"this model's weights are stored in {name} for inference (store_weights_for_autocast): an "
                         "optimizer would step the rounded weights; load the model again to train it")


def stored_weights_dtype(model: torch.nn.Module) -> str | None:
    """The precision ("bf16", "fp16") `store_weights_for_autocast` stored `model`'s weights in while they still
    differ from its other weights (judged by the first of each kind); None otherwise."""
    stored = getattr(model, "weights_stored_for_autocast", None)
    if stored is None:
        return None
    layer = next(module for module in model.modules() if isinstance(module, AUTOCAST_WEIGHT_LAYERS))
    other = next(param for module in model.modules() if not isinstance(module, AUTOCAST_WEIGHT_LAYERS)
                 for param in module.parameters(recurse=False))
    if not layer.weight.dtype == stored != other.dtype:
        return None
    return next(name for name, value in DTYPES.items() if value == stored)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is slower."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_dtype(device: torch.device, name: str) -> str:
    """`name`, with "auto" resolved: "bf16" on a CPU with native bfloat16, else "fp32" (docs/cpu_inference.md)."""
    if name != "auto":
        return name
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
