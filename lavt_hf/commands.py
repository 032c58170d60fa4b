# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Console-script entry points of the commands that need the `train` extra: each checks the extra first, so
a missing one is one line naming the `pip install` that brings it, with exit status 2."""

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


def require_extra(extra: str, prog: str, what: str) -> None:
    """Unless every module of `extra` imports, exit 2 after one line naming them and the `pip install`."""
    # None in sys.modules blocks the import (and makes find_spec raise): as if not installed
    missing = [module for module in EXTRA_MODULES[extra]
               if sys.modules.get(module, False) is None or importlib.util.find_spec(module) is None]
    if missing:
        print(f"{prog}: error: {what} needs the `{extra}` extra ({', '.join(missing)} not installed): "
              f"pip install 'lavt-hf[{extra}]'", file=sys.stderr)
        sys.exit(2)


def _run(prog: str, module: str) -> int:
    require_extra("train", prog, prog)
    return importlib.import_module(module).main()


train = partial(_run, "lavt-train", "lavt_hf.training.train")
evaluate = partial(_run, "lavt-evaluate", "lavt_hf.training.evaluation")
prepare_refcoco = partial(_run, "lavt-prepare-refcoco", "lavt_hf.scripts.prepare_refcoco")
benchmark = partial(_run, "lavt-benchmark", "lavt_hf.scripts.benchmark")
compare = partial(_run, "lavt-compare", "lavt_hf.scripts.compare_losses")
