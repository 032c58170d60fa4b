# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Paired benchmark, in one process: today's plain Swin block against the fast form it replaced (index-table
window layout, attention-bias cache, GELU-recomputing MLP), read from the git commit that last had it.

One LavtForReferringSegmentation (random weights) runs with either backbone; the two backbones share their
weights, so only the Swin code differs. Inference forwards (no grad) and training steps (forward + backward) are
timed in alternating order (wall and CPU seconds), with the peak of malloc's bytes in use (glibc) of each call and
the bytes a training step keeps for its backward pass. Results: docs/benchmarks/swin_block.md. Run from the
repository root (needs git and the train extra):

    nice .venv/bin/python docs/benchmarks/swin_block_plain_vs_fast.py --threads 1 \
        --output docs/benchmarks/swin_block_plain_vs_fast.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

from lavt_hf.scripts.benchmarks.memory import AllocatedPeak
from lavt_hf.scripts.benchmarks.models import random_inputs
from lavt_hf.scripts.benchmarks.timing import Workload, median_ratio, time_workloads, timing_record
from modeling_lavt import LavtConfig, LavtForReferringSegmentation


def fast_module(commit: str):
    """modeling_lavt/modeling_lavt.py as of `commit`, imported inside the package (its relative imports)."""
    text = subprocess.run(["git", "show", f"{commit}:modeling_lavt/modeling_lavt.py"], capture_output=True,
                          text=True, check=True).stdout
    name = "modeling_lavt.modeling_lavt_fast"
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    module.__package__ = "modeling_lavt"
    sys.modules[name] = module
    exec(compile(text, f"{commit}:modeling_lavt/modeling_lavt.py", "exec"), module.__dict__)
    return module


def cpu_model() -> str:
    """The CPU's model name (Linux), else the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


def git_head() -> str:
    """The checked-out commit, with "+changes" when the working tree differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "modeling_lavt"]).returncode
    return head.stdout.strip() + ("+changes" if dirty else "")


def saved_for_backward_mb(step) -> float:
    """MiB of the distinct storages autograd keeps for the backward pass during `step` (parameters included;
    0 without grad)."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return round(sum(storages.values()) / 2**20, 1)


def measured(step, peaks: list[float], cpu_seconds: list[float]):
    """`step`, appending the peak of malloc's bytes in use and the process's CPU seconds of each call. On a
    shared machine CPU time leaves out the time the process waited for a core."""
    def run():
        with AllocatedPeak() as peak:
            start = time.process_time()
            step()
            cpu_seconds.append(round(time.process_time() - start, 3))
        peaks.append(peak.peak_mb)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="swin-base-window12")
    parser.add_argument("--image-size", type=int, default=480)
    parser.add_argument("--fast-commit", default="e051886")
    parser.add_argument("--repeats", type=int, default=4, help="timed inference forwards per form (0: none)")
    parser.add_argument("--train-repeats", type=int, default=3, help="timed training steps per form (0: none)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--output", help="JSON file to add this run to")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = LavtConfig.from_preset(args.preset)
    torch.manual_seed(0)
    model = LavtForReferringSegmentation(config)
    plain = model.lavt.backbone
    fast = fast_module(args.fast_commit).LavtBackbone(config)
    fast.load_state_dict(plain.state_dict(), assign=True)  # the same weight tensors
    inputs = random_inputs(config, 1, args.image_size, torch.device("cpu"), seed=0, labels=True)
    unlabelled = {name: value for name, value in inputs.items() if name != "labels"}

    def inference(backbone):
        def step():
            model.lavt.backbone = backbone
            model.eval()
            with torch.no_grad():
                return model(**unlabelled).logits
        return step

    def training(backbone):
        def step():
            model.lavt.backbone = backbone
            model.train()
            torch.manual_seed(1)  # the same stochastic-depth draws for both forms
            model(**inputs).loss.backward()
            model.zero_grad(set_to_none=True)
        return step

    forms = {"plain": plain, "fast": fast}
    assert torch.equal(inference(plain)(), inference(fast)())  # also the fast form's warm-up: caches built
    record = {"preset": args.preset, "image_size": args.image_size, "batch_size": 1, "dtype": "fp32",
              "plain_form": f"git {git_head()}", "fast_form": f"git {args.fast_commit}", "date": date.today().isoformat(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "machine": cpu_model(),
              "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    for kind, make, repeats in (("inference", inference, args.repeats), ("train_step", training, args.train_repeats)):
        if not repeats:
            continue
        peaks: dict[str, list[float]] = {name: [] for name in forms}
        cpu: dict[str, list[float]] = {name: [] for name in forms}
        saved = {name: saved_for_backward_mb(make(b)) for name, b in forms.items()}  # the warm-up step

        seconds = time_workloads([Workload(name, measured(make(b), peaks[name], cpu[name])) for name, b in forms.items()], repeats,
                                 0, torch.device("cpu"))
        result = {name: timing_record(values, 1) | {"seconds": [round(s, 3) for s in values],
                                                    "cpu_seconds": cpu[name], "peak_allocated_mb": peaks[name]}
                  for name, values in seconds.items()}
        if kind == "train_step":
            for name in forms:
                result[name]["saved_for_backward_mb"] = saved[name]
        result["plain_over_fast_median"] = median_ratio(seconds, "plain", "fast")
        result["plain_over_fast_min"] = round(min(seconds["plain"]) / min(seconds["fast"]), 3)
        # Each repeat times both forms back to back: the ratio within a repeat cancels slow changes of load.
        paired = [p / f for p, f in zip(seconds["plain"], seconds["fast"])]
        result["plain_over_fast_paired"] = [round(r, 3) for r in paired]
        result["plain_over_fast_paired_median"] = round(statistics.median(paired), 3)
        result["plain_over_fast_cpu_median"] = round(statistics.median(cpu["plain"]) / statistics.median(cpu["fast"]), 3)
        result["plain_over_fast_cpu_min"] = round(min(cpu["plain"]) / min(cpu["fast"]), 3)
        record[kind] = result
        print(json.dumps({kind: result}, indent=1), flush=True)
    if args.output:  # runs accumulate in the file, the newest last
        output = Path(args.output)
        runs = json.loads(output.read_text())["runs"] if output.exists() else []
        output.write_text(json.dumps({"runs": [*runs, record]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
