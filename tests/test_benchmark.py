# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""scripts/benchmark.py: every model subcommand runs on the tiny configuration and prints one JSON record with
the documented keys. No timing assertions: the speed targets are measured by `benchmark targets`, not here."""

import json
import platform
import sys
import time

import pytest
import torch

from lavt_hf.scripts.benchmark import build_parser, main
from lavt_hf.scripts.benchmarks.common import TINY_TEST_CONFIG, AllocatedPeak
from lavt_hf.training import memory
from modeling_lavt import LavtConfig

TIMING_KEYS = {"median_s", "min_s", "max_s", "samples_per_s", "repeats"}
RECORD_KEYS = {
    "benchmark", "preset", "device", "dtype", "batch_size", "image_size", "torch_threads",
    "peak_memory_mb", "setup_peak_memory_mb", "memory_kind", *TIMING_KEYS,
}
TINY = ["--preset", "tiny-test", "--image-size", "32", "--repeats", "2", "--warmup", "1", "--device", "cpu"]


def run_benchmark(capsys, *argv: str) -> dict:
    main(list(argv))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    return json.loads(lines[0])


def check_timing(record: dict) -> None:
    assert TIMING_KEYS <= set(record)
    assert 0 < record["min_s"] <= record["median_s"] <= record["max_s"] and record["samples_per_s"] > 0


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_train_step_record(capsys, monkeypatch, dtype):
    applied = []  # as lavt-train, a checkpointed step on CPU fixes malloc's threshold (not in this test process)
    monkeypatch.setattr(memory, "return_freed_blocks_to_system", lambda: applied.append(1) or 4 * 2**20)
    record = run_benchmark(capsys, "train-step", *TINY, "--batch-size", "2", "--dtype", dtype,
                           "--gradient-checkpointing")
    assert applied == [1] and record["malloc_mmap_threshold_mb"] == 4
    assert RECORD_KEYS | {"gradient_checkpointing", "parameters_mb", "optimizer_state_mb"} <= set(record)
    assert (record["benchmark"], record["dtype"], record["batch_size"]) == ("train-step", dtype, 2)
    assert record["gradient_checkpointing"] and record["repeats"] == 2
    assert record["optimizer_state_mb"] == pytest.approx(2 * record["parameters_mb"], abs=0.2)  # AdamW moments
    check_timing(record)
    if sys.platform == "linux":  # glibc's mallinfo2: what malloc handed out, at most what is resident
        assert record["parameters_mb"] < record["peak_allocated_mb"] <= record["peak_memory_mb"]


def test_allocated_peak_follows_live_memory():
    with AllocatedPeak(interval_s=0.001) as outside:
        pass
    with AllocatedPeak(interval_s=0.001) as inside:
        block = torch.ones(64 * 2**20, dtype=torch.uint8)  # 64 MiB, alive while the block runs
        time.sleep(0.05)
        del block
    if outside.peak_mb is None:
        pytest.skip("no mallinfo2 in this C library")
    assert inside.peak_mb - outside.peak_mb == pytest.approx(64, abs=8)


def test_inference_record(capsys):
    record = run_benchmark(capsys, "inference", *TINY, "--image-size", "40", "--dtype", "bf16")
    assert RECORD_KEYS <= set(record)
    assert (record["benchmark"], record["image_size"], record["compile"]) == ("inference", 40, False)
    assert record["peak_memory_mb"] >= record["setup_peak_memory_mb"] > 0
    check_timing(record)


def test_inference_compile_record(capsys):
    """The eager backend checks the plumbing (compiled vs eager, identical masks) without inductor's minutes."""
    record = run_benchmark(capsys, "inference", *TINY, "--compile", "--compile-backend", "eager")
    assert record["compile"] and record["masks_identical"] is True
    assert {"compile_s", "compiled_over_eager", "eager"} <= set(record)
    check_timing(record)
    check_timing(record["eager"])


def test_config_json_replaces_the_preset(capsys, tmp_path):
    path = tmp_path / "config.json"
    LavtConfig(**{**TINY_TEST_CONFIG, "embed_dim": 12}).to_json_file(path)
    record = run_benchmark(capsys, "inference", *TINY, "--config-json", str(path), "--repeats", "1")
    assert record["preset"] == str(path) and record["embed_dim"] == 12


@pytest.mark.slow
def test_targets_record(capsys):
    """All comparisons on the tiny model; the checkpointing one starts two train-step subprocesses."""
    record = run_benchmark(
        capsys, "targets", "--small-preset", "tiny-test", "--large-preset", "tiny-test", "--small-image-size", "32",
        "--large-image-size", "32", "--max-batch-size", "2", "--checkpointing-batch-size", "3", "--repeats", "1",
        "--warmup", "0",
        "--compile-backend", "eager", "--device", "cpu",
    )
    comparisons = record["comparisons"]
    assert set(comparisons) == {"bf16", "checkpointing", "resolution", "batch", "compile"}
    assert all(isinstance(c["met"], bool) and c["target"] for c in comparisons.values())
    assert record["all_met"] == all(c["met"] for c in comparisons.values())
    checkpointing = comparisons["checkpointing"]
    assert set(checkpointing["peak_memory_mb"]) == {"plain", "checkpointed"}
    assert checkpointing["subprocess_records"]["checkpointed"]["gradient_checkpointing"] is True
    assert checkpointing["batch_size"] == checkpointing["subprocess_records"]["plain"]["batch_size"] == 3
    records = checkpointing["subprocess_records"]
    assert checkpointing["slowdown"] == pytest.approx(
        records["checkpointed"]["median_s"] / records["plain"]["median_s"], abs=1e-3)
    if platform.libc_ver()[0] == "glibc" and memory.configured_mmap_threshold() is None:
        thresholds = {name: record["malloc_mmap_threshold_mb"] for name, record in records.items()}
        assert thresholds == {"plain": None, "checkpointed": 4}
    assert comparisons["bf16"]["batch_size"] == 1
    assert comparisons["compile"]["masks_identical"] is True


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in ("data-format", "train-step", "inference", "targets", "onnx", "onnx-accuracy"):
        assert name in text
    assert "peak RSS of one CPU inference path" in text  # each line says what the subcommand measures
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train-step", "--help"])
    assert "--gradient-checkpointing" in capsys.readouterr().out


def test_data_format_record(capsys):
    """The prepared format's size record: the image table holds each image once (so at most the images plus the
    annotations), far under one copy per object; the data path is timed from it map-style and streamed."""
    record = run_benchmark(capsys, "data-format", "--preset", "refcoco-like", "--num_images", "8", "--samples", "3",
                           "--repeats", "1")
    assert record["configs"] == ["refcoco_unc", "refcoco+_unc", "refcocog_umd"] and record["distinct_images"] == 8
    assert record["image_table_bytes"] + record["annotation_bytes"] <= record["prepared_bytes"]
    assert record["distinct_image_bytes"] <= record["image_table_bytes"] < record["embedded_format_bytes"] / 3
    assert record["size_ratio"] == round(record["prepared_bytes"] / record["distinct_image_bytes"], 4)
    for path in ("raw_files", "map_style", "streaming"):
        assert record[f"{path}_samples_per_s_per_core"] > 0
