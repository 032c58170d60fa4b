# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""LAVT on ONNX: export and INT8 quantization (export.py), calibration sets (calibration.py), the export folder's
format and input rules (folder.py), and ONNX Runtime inference behind the PyTorch model's interface (runtime.py).
Needs the `onnx` extra."""
