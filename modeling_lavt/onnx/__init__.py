# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""LAVT on ONNX: export, INT8 quantization and ONNX Runtime inference (needs the `onnx` extra)."""
