# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Console-script entry points of the commands that need an extra (pyproject.toml `[project.scripts]`).

`pip install lavt-hf` brings what inference needs; training, evaluation, data preparation, the loss study and the
benchmarks need the `train` extra (README, "Install"; docs/design.md, "Modules"). Each entry point here checks that
its extra is installed before it imports the command, so a missing extra is one line naming the `pip install` that brings it,
with exit status 2, instead of an ImportError traceback from deep inside the command's imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

# The modules an extra brings that its commands import (the rest of each extra is pulled in by these).
EXTRA_MODULES = {
    "train": ("accelerate", "datasets", "evaluate", "pyarrow", "scipy", "matplotlib", "pycocotools"),
    "onnx": ("onnx", "onnxruntime", "onnxscript"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # `sys.modules[module] is None`: the import is blocked, as if not installed
        return False


def missing_extra_message(extra: str, what: str) -> str | None:
    """None when `extra`'s modules are importable, else the sentence that says what to install for `what`."""
    missing = [module for module in EXTRA_MODULES[extra] if not _installed(module)]
    if not missing:
        return None
    return (f"{what} needs the `{extra}` extra ({', '.join(missing)} not installed): "
            f"pip install 'lavt-hf[{extra}]'")


def _run(prog: str, extra: str, target: str) -> int:
    message = missing_extra_message(extra, prog)
    if message is not None:
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)()


def train() -> int:
    return _run("lavt-train", "train", "lavt_hf.training.train:main")


def evaluate() -> int:
    return _run("lavt-evaluate", "train", "lavt_hf.training.evaluation:main")


def prepare_refcoco() -> int:
    return _run("lavt-prepare-refcoco", "train", "lavt_hf.scripts.prepare_refcoco:main")


def benchmark() -> int:
    return _run("lavt-benchmark", "train", "lavt_hf.scripts.benchmark:main")


def compare() -> int:
    return _run("lavt-compare", "train", "lavt_hf.scripts.compare_losses:main")
