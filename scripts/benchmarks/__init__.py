# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The benchmarks behind `lavt-benchmark` (scripts/benchmark.py)."""
