# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""LAVT for referring image segmentation on the Hugging Face stack.

Importing this package registers LAVT with the Auto classes, so `AutoConfig` / `AutoModel` load saved folders
and Hub repos without `trust_remote_code`. Saved folders also carry the code (remote code) for environments
without this package.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

from .configuration_lavt import PRESETS, LavtConfig
from .image_processing_lavt import LavtImageProcessor
from .modeling_lavt import (
    LavtForReferringSegmentation,
    LavtModel,
    LavtModelOutput,
    LavtPreTrainedModel,
    LavtReferringSegmentationOutput,
)
from .pipeline_lavt import ReferringImageSegmentationPipeline, register_pipeline
from .processing_lavt import LavtProcessor

AutoConfig.register("lavt", LavtConfig, exist_ok=True)
AutoModel.register(LavtConfig, LavtForReferringSegmentation, exist_ok=True)
# One class serves both backends: the image processor is plain PIL + numpy.
AutoImageProcessor.register(
    LavtConfig, image_processor_classes={"pil": LavtImageProcessor, "torchvision": LavtImageProcessor}, exist_ok=True
)
AutoProcessor.register(LavtConfig, LavtProcessor, exist_ok=True)
# Saved folders copy these modules and point `auto_map` at them (remote code).
LavtConfig.register_for_auto_class()
LavtForReferringSegmentation.register_for_auto_class("AutoModel")
LavtImageProcessor.register_for_auto_class("AutoImageProcessor")
LavtProcessor.register_for_auto_class("AutoProcessor")
register_pipeline()  # pipeline("referring-image-segmentation", model=...)

__all__ = ["PRESETS", "LavtConfig", "LavtImageProcessor", "LavtProcessor", "LavtForReferringSegmentation", "LavtModel",
           "LavtModelOutput", "LavtPreTrainedModel", "LavtReferringSegmentationOutput",
           "ReferringImageSegmentationPipeline"]
