# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""LAVT on ONNX Runtime (CPU): an export folder (see export.py) behind the interface of the PyTorch model, so
that `LavtProcessor`, its post-processing, `evaluate_model` and the pipeline work unchanged
(docs/cpu_inference.md). Requires the `onnx` extra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..configuration_lavt import LavtConfig
from ..modeling_lavt import LavtReferringSegmentationOutput
from ..processing_lavt import LavtProcessor
from .folder import (
    EXPORT_INFO_NAME,
    INPUT_NAMES,
    ONNX_NAME,
    check_input_shapes,
    compare_settings,
    processor_settings,
    read_export_info,
)

PRECISIONS = ("float32", "int8")


class LavtOnnxForReferringSegmentation:
    """An ONNX Runtime session of a LAVT export, called like [`LavtForReferringSegmentation`] (for inference);
    `config` is the exported model's, `export_info` the folder's `onnx_export.json`."""

    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    training = False
    device = torch.device("cpu")
    dtype = torch.float32  # of the inputs and outputs; an INT8 model computes its linear layers in int8

    def __init__(self, session: Any, config: LavtConfig, export_info: dict[str, Any], path: Path):
        self.session, self.config, self.export_info, self.path = session, config, export_info, path

    @classmethod
    def from_pretrained(cls, path: str | Path, precision: str | None = None, num_threads: int | None = None
                        ) -> LavtOnnxForReferringSegmentation:
        """Load an export folder written by `lavt-export`. `precision` ("float32" or "int8") insists on one;
        `num_threads`: ONNX Runtime intra-op threads (None: one per physical core).

        Raises ImportError without ONNX Runtime, FileNotFoundError when `path` is not an export or lacks its
        ONNX file, and ValueError when the folder's precision is not `precision`, or the graph's input shapes,
        `onnx_export.json` and the saved processor disagree.
        """
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError(f"{cls.__name__} needs ONNX Runtime: pip install 'lavt-hf[onnx]'") from error

        path = Path(path)
        info = read_export_info(path)
        if precision not in (None, *PRECISIONS):
            raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
        if precision is not None and info["dtype"] != precision:
            advice = ("a quantized model cannot give float32 results; load a float32 export (lavt-export "
                      "without --quantize)" if precision == "float32" else
                      "quantize it with lavt-export --quantize dynamic")
            raise ValueError(f"{path} is an export in {info['dtype']}, but {precision} was asked for: "
                             f"{advice}")
        if not (path / ONNX_NAME).is_file():
            raise FileNotFoundError(f"{path} has {EXPORT_INFO_NAME} but no {ONNX_NAME}; export the model again")
        options = onnxruntime.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
        session = onnxruntime.InferenceSession(str(path / ONNX_NAME), options, providers=["CPUExecutionProvider"])
        # The graph's own input shapes and the saved processor's must be those onnx_export.json describes.
        shapes = {graph_input.name: graph_input.shape for graph_input in session.get_inputs()}
        if sorted(shapes) != sorted(INPUT_NAMES):
            raise ValueError(f"{path / ONNX_NAME} has inputs {sorted(shapes)}, expected {sorted(INPUT_NAMES)}")
        graph = {"image_size": [int(v) for v in shapes["pixel_values"][2:]],
                 "text_length": int(shapes["input_ids"][1])}
        compare_settings(f"{path / ONNX_NAME}", graph, info,
                         remedy=f"{EXPORT_INFO_NAME} does not describe this graph; export the model again")
        saved = processor_settings(LavtProcessor.from_pretrained(path))
        compare_settings(f"the processor saved in {path}", saved, info)
        return cls(session, LavtConfig.from_pretrained(path), info, path)

    def __call__(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None, original_sizes: Any = None, **kwargs: Any
                 ) -> LavtReferringSegmentationOutput:
        """pixel_values (batch, C, H, W) float, input_ids / attention_mask (batch, T) -> output whose `logits` are
        (batch, 2, ceil(H/4), ceil(W/4)) float32. `original_sizes` is accepted and not used, as by the PyTorch
        model, so that `model(**processor(...))` works.

        Raises ValueError when (H, W) or T differ from the export's, batches differ, or an option the graph
        does not have (labels, hidden states) is asked for."""
        unsupported = sorted(name for name, value in kwargs.items() if value is not None and value is not False)
        if unsupported:
            raise ValueError(f"the ONNX model returns logits only; it does not take {unsupported}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        check_input_shapes(f"the ONNX model in {self.path}", pixel_values, input_ids, attention_mask,
                           self.config.num_channels, self.export_info)
        tensors = zip(INPUT_NAMES, (pixel_values.float(), input_ids.long(), attention_mask.long()))
        (logits,) = self.session.run(None, {name: tensor.detach().cpu().numpy() for name, tensor in tensors})
        return LavtReferringSegmentationOutput(logits=torch.from_numpy(np.ascontiguousarray(logits)))

    forward = __call__

    # What the pipeline and evaluate_model call on a model.
    def to(self, device: Any = None, *args: Any, **kwargs: Any) -> LavtOnnxForReferringSegmentation:
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"the ONNX model runs on the CPU (ONNX Runtime), not on {device}; use device='cpu'")
        return self

    def eval(self) -> LavtOnnxForReferringSegmentation:
        return self

    def train(self, mode: bool = True) -> LavtOnnxForReferringSegmentation:
        if mode:
            raise ValueError("the ONNX model is for inference only; train the PyTorch model")
        return self

    def can_generate(self) -> bool:
        return False
