# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Export LAVT to ONNX (the whole forward: text encoder, backbone, decoder) and quantize the export to INT8
(dynamic, or static with a calibration set).

An export folder holds `model.onnx`, the model's `config.json`, the processor files (tokenizer, image processor)
and `onnx_export.json`, which says what the ONNX graph expects: the opset, the fixed image size and text length
(the processor's settings at export time), that the batch is dynamic, the weights' dtype and the quantization.
`LavtOnnxForReferringSegmentation` (runtime.py) loads such a folder and refuses one whose graph,
description and processor disagree.

Why a fixed image size: the Swin blocks' padding, window grid and shifted-window mask are computed from the map
size in Python, so a graph traced at one size holds that size's shapes and mask; the processor resizes every
image to its one `size`, so one size is all a deployment needs. The text length is fixed as well (the processor
pads every expression to `max_length`, the model's `max_text_length`). Requires the `onnx` extra
(`pip install "lavt-hf[onnx]"`: onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..validation import check_finite_weights
from .calibration import (
    DEFAULT_GENERATED_SAMPLES,
    check_inputs,
    folder_samples,
    generated_samples,
    processed_inputs,
)
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

# Largest |exported - eager| logit difference accepted from a float32 export (the project's float32 tolerance).
FLOAT32_TOLERANCE = 1e-4
# Dynamic INT8 quantization: weights of the linear layers (MatMul / Gemm with a constant weight) in int8, their
# input activations quantized to uint8 per call from the observed range (ONNX Runtime's U8S8 kernels, VNNI / AMX).
INT8_OP_TYPES = ("MatMul", "Gemm")
# Static INT8 quantization (QDQ format): the convolutions too (patch embeddings, decoder), and every MatMul
# (the attention products as well as the linear layers); weights int8 per output channel, activations uint8 with
# ranges fixed by calibration (ONNX Runtime fuses each DequantizeLinear -> op -> QuantizeLinear into an int8 kernel).
STATIC_OP_TYPES = ("Conv", "MatMul", "Gemm")
QUANTIZATIONS = ("dynamic", "static")
EXAMPLE_BATCH = 2  # torch.export specializes a dimension of size 1, so the traced batch is 2 (and stays dynamic)


class _SkippedFoldingWarnings(logging.Filter):
    """Drops onnxscript's "Evaluation failed: ..." warnings while the exporter's optimizer runs: it gives up
    constant-folding a node (for example a reshape of the dynamic batch), keeps the node, and the graph stays
    exact (checked against eager below); the warning only made users think the export had gone wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Evaluation failed")


@contextmanager
def _without_skipped_folding_warnings() -> Iterator[None]:
    logger, quiet = logging.getLogger("onnxscript.optimizer._constant_folding"), _SkippedFoldingWarnings()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class _LogitsOnly(nn.Module):
    """The model as the graph sees it: three tensors in, the logits out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> torch.Tensor:
        return self.model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask).logits


def example_inputs(config: Any, settings: dict[str, Any], batch: int = EXAMPLE_BATCH, seed: int = 0
                   ) -> dict[str, torch.Tensor]:
    """Random inputs of the export's shapes: (batch, C, H, W) pixels, (batch, T) ids, masks of varied lengths."""
    generator = torch.Generator().manual_seed(seed)
    height, width = settings["image_size"]
    tokens = settings["text_length"]
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
            "remove the old one"
        )


def _check_text_length(config: Any, settings: dict[str, Any]) -> None:
    if settings["text_length"] != config.max_text_length:
        raise ValueError(
            f"the processor pads text to {settings['text_length']} tokens but the model reads "
            f"max_text_length={config.max_text_length}; save the processor with max_length="
            f"{config.max_text_length}"
        )


def export_onnx(model: nn.Module, processor: Any, output_dir: str | Path, *, opset: int | None = None,
                quantize: str | None = None, calibration: str | Path | Sequence[dict[str, torch.Tensor]] | None = None,
                calibration_size: int | None = None) -> Path:
    """Write an ONNX export folder of `model` for inputs prepared by `processor`; returns the folder.

    The graph takes `pixel_values` (batch, C, H, W) float32, `input_ids` and `attention_mask` (batch, T) int64,
    and returns `logits` (batch, 2, ceil(H/4), ceil(W/4)); batch is dynamic, (H, W) and T are the processor's
    size and max_length. Traced with `torch.onnx.export(dynamo=True)`; attention is traced through PyTorch's
    math kernel (the CPU flash kernel's decomposition breaks the exporter) and the graph then goes through the
    exporter's optimizer. The float32 graph is checked against eager PyTorch on random inputs before anything
    is written (`FLOAT32_TOLERANCE`). `quantize="dynamic"` / `"static"`: the folder holds the INT8
    model instead (`quantize_export`, which takes `calibration` and `calibration_size`); a static calibration
    set is read and checked before the export starts.

    Raises:
        FileExistsError: `output_dir` exists.
        FileNotFoundError: a calibration folder or a file it names is missing.
        ValueError: weights holding NaN or inf (named), the processor's text length differs from the model's
            `max_text_length`, an unknown `quantize`, or a bad calibration set.
        RuntimeError: the exported graph disagrees with the eager model (an exporter bug: nothing is written).
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    output_dir = Path(output_dir)
    _require_new_folder(output_dir)
    method = _quantization_method(quantize, calibration, calibration_size)
    model = model.eval()
    check_finite_weights(model.state_dict(), "the model")
    settings = processor_settings(processor)
    _check_text_length(model.config, settings)
    if method == "static":  # the calibration set's faults before the minutes of tracing
        calibration, source = calibration_set(processor, settings, model.config.num_channels, calibration,
                                              calibration_size)
    inputs = example_inputs(model.config, settings)
    with torch.no_grad():  # the reference first: tracing must not be the first call to build the model's caches
        expected = model(**inputs).logits
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), warnings.catch_warnings(), _without_skipped_folding_warnings():
        # torch names the one batch dimension of the three inputs once and says so for the others
        warnings.filterwarnings("ignore", message=".*axis name: batch will not be used")
        program = torch.onnx.export(
            _LogitsOnly(model).eval(), tuple(inputs[name] for name in INPUT_NAMES), dynamo=True, opset_version=opset,
            input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
            dynamic_shapes={name: {0: batch} for name in INPUT_NAMES}, optimize=True, verbose=False,
        )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    # Built in a sibling folder and renamed at the end: an interrupted export leaves no half-written folder.
    with tempfile.TemporaryDirectory(dir=output_dir.parent, prefix=f".{output_dir.name}.") as scratch:
        folder = Path(scratch) / "float32"
        folder.mkdir()
        program.save(str(folder / ONNX_NAME))
        model.config.save_pretrained(folder)
        processor.save_pretrained(folder)
        info = {
            "format_version": FORMAT_VERSION, "opset": _opset_of(folder / ONNX_NAME),
            "input_names": list(INPUT_NAMES), "output_names": list(OUTPUT_NAMES), "batch": "dynamic",
            "image_size": settings["image_size"], "text_length": settings["text_length"], "dtype": "float32",
            "quantization": None, "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
        }
        write_export_info(folder, info)
        check_float32_parity(folder, inputs, expected)
        if method is None:
            folder.rename(output_dir)
        elif method == "dynamic":
            quantize_export(folder, output_dir)
        else:
            _quantize(folder, output_dir, info, "static", calibration, source)
    return output_dir


def _quantization_method(quantize: str | None, calibration: Any, calibration_size: int | None) -> str | None:
    """"dynamic", "static" or None (float32) for a `quantize` option; calibration options need "static"."""
    if quantize not in (None, *QUANTIZATIONS):
        raise ValueError(f"unknown quantization {quantize!r}; choose one of {QUANTIZATIONS}")
    if quantize != "static" and (calibration is not None or calibration_size is not None):
        raise ValueError("a calibration set is for static quantization only (quantize='static'); dynamic "
                         "quantization measures its ranges on every call")
    return quantize


def calibration_set(processor: Any, settings: dict[str, Any], num_channels: int,
                    calibration: str | Path | Sequence[dict[str, torch.Tensor]] | None,
                    calibration_size: int | None = None) -> tuple[list[dict[str, torch.Tensor]], str]:
    """The calibration inputs of static quantization, checked against the graph's `settings` (image size, text
    length), and a description of their source (calibration.py): the samples of a folder, given model
    inputs, or `calibration_size` generated images (None: 8), prepared by `processor`."""
    if calibration is None:
        count = DEFAULT_GENERATED_SAMPLES if calibration_size is None else calibration_size
        inputs, source = processed_inputs(processor, generated_samples(count)), "generated images (modeling_lavt/onnx/calibration.py)"
    elif calibration_size is not None:
        raise ValueError("calibration_size sets the number of generated images; a calibration folder or list is "
                         "used whole")
    elif isinstance(calibration, (str, Path)):
        inputs, source = processed_inputs(processor, folder_samples(calibration)), f"folder {calibration}"
    else:
        inputs, source = list(calibration), "model inputs given to quantize_export"
    check_inputs(inputs, num_channels, settings)
    return inputs, source


def _opset_of(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))


def quantize_export(float_dir: str | Path, output_dir: str | Path, method: str = "dynamic",
                    calibration: str | Path | Sequence[dict[str, torch.Tensor]] | None = None,
                    calibration_size: int | None = None) -> Path:
    """Write an INT8 copy of a float32 export folder; returns `output_dir`. Its `onnx_export.json` says how
    (`quantization`), with the calibration set's source and size for static quantization.

    `method="dynamic"`: ONNX Runtime dynamic quantization of the linear layers (`INT8_OP_TYPES` with
    constant weights: int8 weights per output channel, uint8 activations quantized per call); the convolutions
    of the patch embedding and the decoder stay float32.

    `method="static"`: ONNX Runtime static quantization in QDQ format of the convolutions and every MatMul / Gemm
    (`STATIC_OP_TYPES`): int8 weights per output channel, uint8 activations whose ranges are the min / max seen
    on the calibration set (calibration.py). `calibration`: a folder of samples (images and
    `expressions.json`), or model inputs of the export's shapes (dicts of `pixel_values`, `input_ids`,
    `attention_mask`); None: `calibration_size` generated images (8 by default), prepared by the export's
    processor. The graph first goes through ONNX Runtime's quantization pre-processing (shape inference and
    graph optimization), as ONNX Runtime recommends.

    Raises:
        FileExistsError: `output_dir` exists.
        FileNotFoundError: a calibration folder or a file it names is missing.
        ValueError: `float_dir` is not a float32 export, an unknown `method`, calibration options with dynamic
            quantization, or a bad calibration set (empty, or inputs of other shapes than the export's).
    """
    from ..configuration_lavt import LavtConfig
    from ..processing_lavt import LavtProcessor

    float_dir, output_dir = Path(float_dir), Path(output_dir)
    _require_new_folder(output_dir)
    method = _quantization_method(method, calibration, calibration_size)
    if method is None:
        raise ValueError(f"quantize_export needs a method, one of {QUANTIZATIONS}")
    info = read_export_info(float_dir)
    if info["quantization"] is not None:
        raise ValueError(f"{float_dir} is already quantized ({info['dtype']}); quantize a float32 export")
    inputs, source = None, None
    if method == "static":
        inputs, source = calibration_set(LavtProcessor.from_pretrained(float_dir), info,
                                         LavtConfig.from_pretrained(float_dir).num_channels, calibration,
                                         calibration_size)
    return _quantize(float_dir, output_dir, info, method, inputs, source)


def _quantize(float_dir: Path, output_dir: Path, info: dict[str, Any], method: str,
              inputs: list[dict[str, torch.Tensor]] | None, source: str | None) -> Path:
    """Write the quantized folder (arguments checked by the callers), through a scratch folder renamed at the
    end."""
    with tempfile.TemporaryDirectory(dir=output_dir.parent, prefix=f".{output_dir.name}.") as scratch:
        folder = Path(scratch) / "int8"
        shutil.copytree(float_dir, folder, ignore=shutil.ignore_patterns(ONNX_NAME, ONNX_NAME + ".data"))
        if method == "dynamic":
            quantization = _quantize_dynamic(float_dir / ONNX_NAME, folder / ONNX_NAME)
        else:
            quantization = _quantize_static(float_dir / ONNX_NAME, folder / ONNX_NAME, inputs, Path(scratch))
            quantization["calibration"] = {"source": source, "samples": len(inputs), "method": "MinMax"}
        write_export_info(folder, {**info, "dtype": "int8", "quantization": quantization})
        folder.rename(output_dir)
    return output_dir


def _quantize_dynamic(source: Path, target: Path) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(source, target, op_types_to_quantize=list(INT8_OP_TYPES), per_channel=True,
                     weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
    return {"method": "onnxruntime dynamic", "op_types": list(INT8_OP_TYPES), "weights": "int8 per channel",
            "activations": "uint8, range measured per call", "float32_ops": "everything else (convolutions)"}


def _quantize_static(source: Path, target: Path, inputs: list[dict[str, torch.Tensor]], scratch: Path
                     ) -> dict[str, Any]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self._feeds = iter([{name: sample[name].numpy() for name in INPUT_NAMES} for sample in inputs])

        def get_next(self) -> dict[str, Any] | None:
            return next(self._feeds, None)

    prepared = scratch / "prepared.onnx"
    # Symbolic shape inference is for models with symbolic dimensions other than the batch; ONNX's own suffices.
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared), str(target), Feeds(), quant_format=QuantFormat.QDQ, op_types_to_quantize=list(STATIC_OP_TYPES),
        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    prepared.unlink()
    return {"method": "onnxruntime static", "format": "QDQ", "op_types": list(STATIC_OP_TYPES),
            "weights": "int8 per channel", "activations": "uint8, ranges calibrated (min / max on the calibration set)",
            "float32_ops": "everything else (layer norms, softmax, GELU, additions, the text embeddings)"}


def check_float32_parity(folder: str | Path, inputs: dict[str, torch.Tensor], expected: torch.Tensor,
                         tolerance: float = FLOAT32_TOLERANCE) -> float:
    """Largest |ONNX Runtime - eager| logit difference of a float32 export on `inputs`, which must stay within
    `tolerance` (1e-4 by default); returns it.

    Raises:
        ValueError: the export is quantized (an INT8 model approximates float32; it cannot match it within
            float32 tolerance: compare masks instead).
        RuntimeError: the difference exceeds the tolerance.
    """
    from .runtime import LavtOnnxForReferringSegmentation

    info = read_export_info(folder)
    if info["quantization"] is not None:
        raise ValueError(
            f"{folder} holds an {info['dtype'].upper()} model; float32 parity within {tolerance} cannot be asked "
            "of a quantized model: compare its masks with the float32 model's instead"
        )
    logits = LavtOnnxForReferringSegmentation.from_pretrained(folder)(**inputs).logits
    difference = (logits.double() - expected.double()).abs().max().item()
    if not difference <= tolerance:  # also catches NaN
        raise RuntimeError(
            f"the ONNX export in {folder} differs from the eager model by {difference:.3g} (> {tolerance}) on "
            "random inputs; this is an exporter bug, please report it with your torch and onnxscript versions"
        )
    return difference


__all__ = ["export_onnx", "quantize_export", "calibration_set", "check_float32_parity", "read_export_info", "example_inputs",
           "processor_settings", "EXPORT_INFO_NAME", "ONNX_NAME", "FLOAT32_TOLERANCE"]
