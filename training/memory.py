# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Host memory of CPU training: glibc serves blocks above its mmap threshold from mappings returned to the
system when freed, smaller ones from its heap, whose freed pages stay resident. The threshold rises with
each mapped block freed (up to 32 MiB), so the heap of checkpointed training keeps gigabytes of freed
activations; a fixed 4 MiB threshold returns them for a little more step time (docs/benchmarks.md)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

MMAP_THRESHOLD_BYTES = 4 * 2**20
ENVIRONMENT_VARIABLE = "MALLOC_MMAP_THRESHOLD_"
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h


class MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2`: `uordblks` heap bytes in use, `hblkhd` bytes in blocks of their own mappings."""
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def glibc_function(name: str) -> ctypes._CFuncPtr | None:
    """The C library's function `name`, or None where the C library is not glibc or lacks it."""
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def malloc_statistics() -> Callable[[], MallInfo2] | None:
    """glibc's `mallinfo2` (what malloc has handed out, by kind), or None where the C library has none."""
    mallinfo2 = glibc_function("mallinfo2")
    if mallinfo2 is not None:
        mallinfo2.restype = MallInfo2
    return mallinfo2


def configured_mmap_threshold() -> int | None:
    """The threshold set by the environment (`MALLOC_MMAP_THRESHOLD_`, read by glibc at start), else None."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    return int(value) if value.isdigit() else None


def return_freed_blocks_to_system() -> int | None:
    """From now on, blocks of `MMAP_THRESHOLD_BYTES` and more get mappings of their own (glibc's `mallopt`).
    Returns the threshold in effect in bytes: the environment's where set (the user's choice wins), else
    `MMAP_THRESHOLD_BYTES`; None where the C library is not glibc."""
    configured = configured_mmap_threshold()
    if configured is not None:
        return configured
    mallopt = glibc_function("mallopt")
    applied = mallopt is not None and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    return MMAP_THRESHOLD_BYTES if applied else None
