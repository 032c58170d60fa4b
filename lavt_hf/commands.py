# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Console-script entry points of the commands that need the `train` extra (pyproject.toml
`[project.scripts]`): each checks the extra first, so a missing one is one line naming the `pip install` that
brings it, with exit status 2."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import partial

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


def _run(prog: str, module: str) -> int:
    message = missing_extra_message("train", prog)
    if message is not None:
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    return importlib.import_module(module).main()


train = partial(_run, "lavt-train", "lavt_hf.training.train")
evaluate = partial(_run, "lavt-evaluate", "lavt_hf.training.evaluation")
prepare_refcoco = partial(_run, "lavt-prepare-refcoco", "lavt_hf.scripts.prepare_refcoco")
benchmark = partial(_run, "lavt-benchmark", "lavt_hf.scripts.benchmark")
compare = partial(_run, "lavt-compare", "lavt_hf.scripts.compare_losses")
