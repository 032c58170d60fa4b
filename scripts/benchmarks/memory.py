# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Peak memory of a benchmark: the process's peak RSS on CPU, the allocator's peak on CUDA, malloc's peak in use
(glibc) on CPU; and records measured in a fresh process, whose peak is the measured configuration's alone.

Run one configuration per process (as the command line does) so that one configuration's peak does not hide
another's."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import torch

from lavt_hf.training.memory import malloc_statistics


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: the process's peak resident set size on CPU, allocated tensor memory on CUDA."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    status = Path("/proc/self/status")
    if status.is_file():  # Linux: this process's own high-water mark. ru_maxrss is not: a child started by a big
        # parent (fork, then exec) keeps the parent's peak at the fork when that is higher.
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**10, 1)  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 2**10, 1)


class AllocatedPeak:
    """Peak of the bytes malloc has handed out and not yet taken back (glibc's mallinfo2: heap blocks in use plus
    mmapped blocks), sampled every 10 ms from a thread while the block runs: the CPU counterpart of CUDA's
    max_memory_allocated. RSS also counts the freed heap pages glibc keeps for reuse, which depend on the order of
    allocations as much as on what is alive. `peak_mb` is None where the C library has no mallinfo2."""

    def __init__(self, interval_s: float = 0.01):
        self.interval_s, self.peak_mb = interval_s, None
        self._mallinfo2 = malloc_statistics()
        self._stop = threading.Event()

    def _allocated_mb(self) -> float:
        info = self._mallinfo2()
        return (info.uordblks + info.hblkhd) / 2**20

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb or 0.0, self._allocated_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> AllocatedPeak:
        if self._mallinfo2 is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._mallinfo2 is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mb = round(max(self.peak_mb or 0.0, self._allocated_mb()), 1)


def memory_record(device: torch.device, setup_peak_mb: float) -> dict[str, Any]:
    """Peak memory of the run, and the peak before the first iteration (model, inputs, libraries)."""
    if device.type != "cuda":
        return {"peak_memory_mb": peak_memory_mb(device), "setup_peak_memory_mb": setup_peak_mb,
                "memory_kind": "process peak RSS (VmHWM on Linux, else ru_maxrss)"}
    # What nvidia-smi shows is the allocator's reserve (plus the CUDA context), a little above the tensors' peak.
    reserved = round(torch.cuda.max_memory_reserved(device) / 2**20, 1)
    return {"peak_memory_mb": peak_memory_mb(device), "peak_reserved_memory_mb": reserved,
            "setup_peak_memory_mb": setup_peak_mb, "memory_kind": "cuda max_memory_allocated"}



# In a checkout the repository root, from where `python -m lavt_hf...` finds this code (lavt_hf/__init__.py).
REPO_ROOT = Path(__file__).resolve().parents[2]


def record_in_fresh_process(argv: list[str]) -> dict[str, Any]:
    """The JSON record of `lavt-benchmark <argv>` run in a fresh process: its peak memory and its allocator
    settings are the configuration's own. Raises RuntimeError with the end of its stderr when it fails."""
    command = [sys.executable, "-m", "lavt_hf.scripts.benchmark", *argv]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
