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


# The layers whose weights autocast casts to its low precision on every call (torch's autocast op lists: linear,
# conv1d, conv2d run in the low precision).
AUTOCAST_WEIGHT_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)


def store_weights_for_autocast(model: torch.nn.Module, dtype: str) -> torch.nn.Module:
    """For inference under `autocast(device, dtype)`: store the weights and biases of the layers autocast runs in
    `dtype` (Linear, Conv1d, Conv2d) in that precision, in place; "fp32" leaves the model as is.

    Autocast rounds those weights to `dtype` on every forward call anyway, so the outputs under autocast are
    bit-identical (tests/test_precision.py); what goes is that cast, a read and a write of every such weight per
    call (timings in docs/benchmarks/cpu_onnx_eager_paths.json), and their memory halves. Norms, embeddings and the position-bias tables stay float32, as autocast runs them.
    The model then runs only under autocast to `dtype`, and not for training (an optimizer would step
    low-precision weights): LAVT models (`check_inputs`, head and headless) record the dtype and raise
    ValueError otherwise (`check_stored_weights_autocast`). Returns `model`.

    Raises:
        ValueError: the weights are already stored in another precision (storing again would round them twice).
    """
    if dtype == "fp32":
        return model
    stored = {getattr(module, "weights_stored_for_autocast", None) for module in model.modules()} - {None}
    if stored and stored != {DTYPES[dtype]}:
        # Storing again would round weights already rounded to the other precision: other results than autocast's.
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
    """Raise ValueError, saying what to do, when `model`'s weights were stored for autocast
    (`store_weights_for_autocast`) but it is called outside autocast to that dtype on `device_type` (its
    float32 layers would meet low-precision weights: a dtype error deep inside, or other results than
    autocast's), or to train (with gradients, in training mode). A cast of the whole model (`model.float()`,
    `model.to(torch.bfloat16)`) ends that: the model then runs in its one precision, as any other."""
    name = stored_weights_dtype(model)
    if name is None:
        return
    stored = DTYPES[name]
    if not torch.is_autocast_enabled(device_type) or torch.get_autocast_dtype(device_type) != stored:
        raise ValueError(
            f"this model's linear and convolution weights are stored in {name} for autocast "
            f"(store_weights_for_autocast); call it under torch.autocast({device_type!r}, dtype={stored}), or "
            "load the model again to run it in another precision"
        )
    if model.training and torch.is_grad_enabled():
        raise ValueError(
            f"this model's weights are stored in {name} for inference (store_weights_for_autocast): an optimizer "
            "would step the rounded weights; load the model again to train it"
        )


def check_stored_weights_not_saved(model: torch.nn.Module) -> None:
    """Raise ValueError when `model` holds weights stored for autocast: saved, they would load (`from_pretrained`)
    as a float32 model whose linear and convolution weights are rounded, with nothing to say so."""
    name = stored_weights_dtype(model)
    if name is not None:
        raise ValueError(
            f"this model's linear and convolution weights are stored in {name} for autocast "
            "(store_weights_for_autocast): saved, they would load as a float32 model with rounded weights; save "
            "the model before storing its weights"
        )


def stored_weights_dtype(model: torch.nn.Module) -> str | None:
    """The precision ("bf16", "fp16") `store_weights_for_autocast` stored `model`'s weights in, while its autocast
    layers still hold that precision beside other weights of another (a cast of the whole model ends it), judged
    by the first parameter of each kind; None otherwise."""
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
    """Whether this CPU multiplies bfloat16 in hardware (x86 AVX512-BF16 or AMX), where bf16 autocast is faster
    than float32; elsewhere oneDNN emulates bfloat16 and it is slower."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_dtype(device: torch.device, name: str) -> str:
    """`name`, with "auto" resolved: "bf16" on a CPU with native bfloat16, else "fp32" (other CPUs, and GPUs,
    where auto makes no choice for you). The accuracy cost of bf16: docs/cpu_inference.md, "The paths side by side"."""
    if name != "auto":
        return name
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
