# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The benchmarks behind `lavt-benchmark` (scripts/benchmark.py is the command line), one module per job.

Shared: `timing` (warm-up, interleaved repeats, medians), `memory` (peak RSS / CUDA peak, malloc's peak, records
from a fresh process), `models` (presets, random weights and inputs, common options and record fields).
Subcommands: `data`, `data_format`, `train_step`, `inference`, `evaluation` (eval), `targets`, `onnx_paths` (onnx,
onnx-memory), `onnx_accuracy`.
"""
