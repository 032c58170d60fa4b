# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Timing of the model benchmarks: warm-up, then repeats in alternating order; median / min / max seconds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Workload:
    """One configuration to time; ``step`` runs one iteration and returns its result."""

    name: str
    step: Callable[[], Any]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_workloads(workloads: Sequence[Workload], repeats: int, warmup: int, device: torch.device
                   ) -> dict[str, list[float]]:
    """Seconds per iteration of each workload, after ``warmup`` untimed iterations each.

    Repeats alternate the order (A B, B A, ...) so that a change of load on a shared machine, or a cache left
    warm by the previous workload, falls on every workload alike: compare workloads only within one call.
    """
    for workload in workloads:
        for _ in range(warmup):
            workload.step()
    seconds: dict[str, list[float]] = {workload.name: [] for workload in workloads}
    for repeat in range(repeats):
        for workload in workloads if repeat % 2 == 0 else workloads[::-1]:
            synchronize(device)
            start = time.perf_counter()
            workload.step()
            synchronize(device)
            seconds[workload.name].append(time.perf_counter() - start)
    return seconds


def timing_record(seconds: Sequence[float], samples_per_iteration: int) -> dict[str, float]:
    """Median and spread of seconds per iteration, and samples per second at the median."""
    median = statistics.median(seconds)
    return {"median_s": round(median, 4), "min_s": round(min(seconds), 4), "max_s": round(max(seconds), 4),
            "samples_per_s": round(samples_per_iteration / median, 3), "repeats": len(seconds)}


def median_ratio(seconds: dict[str, list[float]], numerator: str, denominator: str) -> float:
    return round(statistics.median(seconds[numerator]) / statistics.median(seconds[denominator]), 3)
