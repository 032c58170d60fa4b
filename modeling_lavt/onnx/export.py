# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Export LAVT to ONNX (the whole forward) and quantize the export to INT8 (dynamic, or static, calibrated).
An export folder holds `model.onnx`, `config.json`, the processor files and `onnx_export.json` (folder.py).

The image size is fixed: the Swin blocks' padding, window grid and shifted-window mask are computed from the
map size in Python, so a graph traced at one size holds that size's shapes and mask, and the processor resizes
every image to its one size anyway. The text length is fixed too (the model's `max_text_length`). Requires the
`onnx` extra.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..configuration_lavt import LavtConfig
from ..processing_lavt import LavtProcessor
from ..validation import check_finite_weights
from .calibration import calibration_set
from .folder import (
    EXPORT_INFO_NAME,
    FORMAT_VERSION,
    INPUT_NAMES,
    ONNX_NAME,
    OUTPUT_NAMES,
    processor_settings,
    read_export_info,
    write_export_info,
)
from .runtime import LavtOnnxForReferringSegmentation

# Largest |exported - eager| logit difference accepted from a float32 export (the project's float32 tolerance).
FLOAT32_TOLERANCE = 1e-4
# Dynamic INT8: the linear layers (MatMul / Gemm with a constant weight); activations quantized per call.
INT8_OP_TYPES = ("MatMul", "Gemm")
# Static INT8 (QDQ): the convolutions and every MatMul too, with activation ranges fixed by calibration.
STATIC_OP_TYPES = ("Conv", "MatMul", "Gemm")
QUANTIZATIONS = ("dynamic", "static")
EXAMPLE_BATCH = 2  # torch.export specializes a dimension of size 1, so the traced batch is 2 (and stays dynamic)


def _not_skipped_folding(record: logging.LogRecord) -> bool:
    """False for onnxscript's "Evaluation failed" warnings: its optimizer gave up folding a node and kept it,
    so the graph stays exact (checked against eager), but the warning reads as a failed export."""
    return not record.getMessage().startswith("Evaluation failed")


class _LogitsOnly(nn.Module):
    """The model as the graph sees it: three tensors in, the logits out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> torch.Tensor:
        return self.model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask).logits


def example_inputs(config: Any, settings: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Random inputs of the export's shapes: (batch, C, H, W) pixels, (batch, T) ids, masks of varied lengths."""
    generator = torch.Generator().manual_seed(0)
    (height, width), tokens, batch = settings["image_size"], settings["text_length"], EXAMPLE_BATCH
    lengths = torch.randint(2, tokens + 1, (batch, 1), generator=generator)
    return {
        "pixel_values": torch.randn(batch, config.num_channels, height, width, generator=generator),
        "input_ids": torch.randint(1, config.text_config.vocab_size, (batch, tokens), generator=generator),
        "attention_mask": (torch.arange(tokens) < lengths).long(),
    }


def _require_new_folder(output_dir: Path) -> None:
    if output_dir.exists():
        raise FileExistsError(
            f"{output_dir} already exists; an export never overwrites a folder: choose a new output folder or "
            "remove the old one")


def export_onnx(model: nn.Module, processor: Any, output_dir: str | Path, *, opset: int | None = None,
                quantize: str | None = None, calibration: str | Path | Sequence[dict[str, torch.Tensor]] | None = None,
                calibration_size: int | None = None) -> Path:
    """Write an ONNX export folder of `model` for inputs prepared by `processor`; returns the folder.

    The graph takes `pixel_values` (batch, C, H, W) float32, `input_ids` and `attention_mask` (batch, T) int64,
    and returns `logits` (batch, 2, ceil(H/4), ceil(W/4)); batch is dynamic, (H, W) and T are the processor's
    size and max_length. The float32 graph is checked against eager PyTorch (`FLOAT32_TOLERANCE`) before
    anything is written. With `quantize` (and `calibration`, `calibration_size`) the folder holds the INT8
    model instead (see `quantize_export`).

    Raises FileExistsError when `output_dir` exists; FileNotFoundError / ValueError for a bad calibration set;
    ValueError for weights holding NaN or inf, a processor text length other than the model's
    `max_text_length`, or an unknown `quantize`; RuntimeError when the graph disagrees with the eager model.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    output_dir = Path(output_dir)
    _require_new_folder(output_dir)
    method = _quantization_method(quantize, calibration, calibration_size)
    model = model.eval()
    check_finite_weights(model.state_dict(), "the model")
    settings = processor_settings(processor)
    if settings["text_length"] != model.config.max_text_length:
        raise ValueError(
            f"the processor pads text to {settings['text_length']} tokens but the model reads "
            f"max_text_length={model.config.max_text_length}; save the processor with max_length="
            f"{model.config.max_text_length}")
    # The calibration set's faults before the minutes of tracing.
    calibration_inputs = calibration_set(processor, settings, model.config.num_channels, calibration,
                                         calibration_size) if method == "static" else None
    inputs = example_inputs(model.config, settings)
    with torch.no_grad():  # the reference first: tracing must not be the first call to build the model's caches
        expected = model(**inputs).logits
    batch = torch.export.Dim("batch", min=1)
    folding_log = logging.getLogger("onnxscript.optimizer._constant_folding")
    folding_log.addFilter(_not_skipped_folding)
    try:
        # Attention through the math kernel: the CPU flash kernel's decomposition breaks the exporter.
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), warnings.catch_warnings():
            # torch names the one batch dimension of the three inputs once and says so for the others
            warnings.filterwarnings("ignore", message=".*axis name: batch will not be used")
            program = torch.onnx.export(
                _LogitsOnly(model).eval(), tuple(inputs[name] for name in INPUT_NAMES), dynamo=True,
                opset_version=opset, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                dynamic_shapes={name: {0: batch} for name in INPUT_NAMES}, optimize=True, verbose=False)
    finally:
        folding_log.removeFilter(_not_skipped_folding)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    # Built in a sibling folder and renamed at the end: an interrupted export leaves no half-written folder.
    with tempfile.TemporaryDirectory(dir=output_dir.parent, prefix=f".{output_dir.name}.") as scratch:
        folder = Path(scratch) / "float32"
        folder.mkdir()
        program.save(str(folder / ONNX_NAME))
        model.config.save_pretrained(folder)
        processor.save_pretrained(folder)
        info = {
            "format_version": FORMAT_VERSION, "opset": program.model.opset_imports[""],
            "input_names": list(INPUT_NAMES), "output_names": list(OUTPUT_NAMES), "batch": "dynamic",
            "image_size": settings["image_size"], "text_length": settings["text_length"], "dtype": "float32",
            "quantization": None, "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
        }
        write_export_info(folder, info)
        check_float32_parity(folder, inputs, expected)
        if method is None:
            folder.rename(output_dir)
        else:
            _quantize(folder, output_dir, info, method, calibration_inputs)
    return output_dir


def _quantization_method(quantize: str | None, calibration: Any, calibration_size: int | None) -> str | None:
    """"dynamic", "static" or None (float32) for a `quantize` option; calibration options need "static"."""
    if quantize not in (None, *QUANTIZATIONS):
        raise ValueError(f"unknown quantization {quantize!r}; choose one of {QUANTIZATIONS}")
    if quantize != "static" and (calibration is not None or calibration_size is not None):
        raise ValueError("a calibration set is for static quantization only (quantize='static'); dynamic "
                         "quantization measures its ranges on every call")
    return quantize


def quantize_export(float_dir: str | Path, output_dir: str | Path, method: str = "dynamic",
                    calibration: str | Path | Sequence[dict[str, torch.Tensor]] | None = None,
                    calibration_size: int | None = None) -> Path:
    """Write an INT8 copy of a float32 export folder; returns `output_dir`. Its `onnx_export.json` says how
    (`quantization`, with the calibration set's source and size).

    `method="dynamic"`: ONNX Runtime dynamic quantization of `INT8_OP_TYPES` (int8 weights per output channel,
    uint8 activations quantized per call). `method="static"`: ONNX Runtime static quantization (QDQ) of
    `STATIC_OP_TYPES`, activation ranges the min / max seen on the calibration set: a folder of samples, model
    inputs of the export's shapes, or (None) `calibration_size` generated images (calibration.py).

    Raises FileExistsError when `output_dir` exists; FileNotFoundError / ValueError for a bad calibration set;
    ValueError when `float_dir` is not a float32 export, for an unknown `method`, or calibration options with
    dynamic quantization."""
    float_dir, output_dir = Path(float_dir), Path(output_dir)
    _require_new_folder(output_dir)
    method = _quantization_method(method, calibration, calibration_size)
    if method is None:
        raise ValueError(f"quantize_export needs a method, one of {QUANTIZATIONS}")
    info = read_export_info(float_dir)
    if info["quantization"] is not None:
        raise ValueError(f"{float_dir} is already quantized ({info['dtype']}); quantize a float32 export")
    calibration_inputs = calibration_set(LavtProcessor.from_pretrained(float_dir), info,
                                         LavtConfig.from_pretrained(float_dir).num_channels, calibration,
                                         calibration_size) if method == "static" else None
    return _quantize(float_dir, output_dir, info, method, calibration_inputs)


def _quantize(float_dir: Path, output_dir: Path, info: dict[str, Any], method: str,
              calibration: tuple[list[dict[str, torch.Tensor]], str] | None) -> Path:
    """Write the quantized folder (arguments checked by the callers) through a scratch folder."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=output_dir.parent, prefix=f".{output_dir.name}.") as scratch:
        folder = Path(scratch) / "int8"
        shutil.copytree(float_dir, folder, ignore=shutil.ignore_patterns(ONNX_NAME, ONNX_NAME + ".data"))
        source, target = float_dir / ONNX_NAME, folder / ONNX_NAME
        if method == "dynamic":
            quantize_dynamic(source, target, op_types_to_quantize=list(INT8_OP_TYPES), per_channel=True,
                             weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
            quantization = {"method": "onnxruntime dynamic", "op_types": list(INT8_OP_TYPES),
                            "weights": "int8 per channel", "activations": "uint8, range measured per call",
                            "float32_ops": "everything else (convolutions)"}
        else:
            inputs, origin = calibration
            feeds = ({name: sample[name].numpy() for name in INPUT_NAMES} for sample in inputs)

            class Feeds(CalibrationDataReader):
                def get_next(self) -> dict[str, Any] | None:
                    return next(feeds, None)

            prepared = Path(scratch) / "prepared.onnx"
            # Symbolic shape inference is for symbolic dimensions other than the batch; ONNX's own suffices.
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(target), Feeds(), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(STATIC_OP_TYPES), per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            quantization = {
                "method": "onnxruntime static", "format": "QDQ", "op_types": list(STATIC_OP_TYPES),
                "weights": "int8 per channel",
                "activations": "uint8, ranges calibrated (min / max on the calibration set)",
                "float32_ops": "everything else (layer norms, softmax, GELU, additions, the text embeddings)",
                "calibration": {"source": origin, "samples": len(inputs), "method": "MinMax"}}
        write_export_info(folder, {**info, "dtype": "int8", "quantization": quantization})
        folder.rename(output_dir)
    return output_dir


def check_float32_parity(folder: str | Path, inputs: dict[str, torch.Tensor], expected: torch.Tensor
                         ) -> float:
    """Largest |ONNX Runtime - eager| logit difference of a float32 export on `inputs`; returns it. Raises
    ValueError for a quantized export (compare masks instead) and RuntimeError above `FLOAT32_TOLERANCE`."""
    info, tolerance = read_export_info(folder), FLOAT32_TOLERANCE
    if info["quantization"] is not None:
        raise ValueError(
            f"{folder} holds an {info['dtype'].upper()} model; float32 parity within {tolerance} cannot be asked "
            "of a quantized model: compare its masks with the float32 model's instead")
    logits = LavtOnnxForReferringSegmentation.from_pretrained(folder)(**inputs).logits
    difference = (logits.double() - expected.double()).abs().max().item()
    if not difference <= tolerance:  # also catches NaN
        raise RuntimeError(
            f"the ONNX export in {folder} differs from the eager model by {difference:.3g} (> {tolerance}) on "
            "random inputs; this is an exporter bug, please report it with your torch and onnxscript versions"
        )
    return difference


# Also what the command-line tools read of an export folder.
__all__ = ["export_onnx", "quantize_export", "check_float32_parity", "example_inputs", "read_export_info",
           "processor_settings", "EXPORT_INFO_NAME"]
