# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""LAVT for referring image segmentation on the Hugging Face stack.

Importing this package registers LAVT with the Auto classes, so `AutoConfig` / `AutoModel` load saved folders
and Hub repos without `trust_remote_code`. Saved folders also carry the code (remote code) for environments
without this package.
"""

from transformers import AutoConfig, AutoModel

from .configuration_lavt import PRESETS, LavtConfig
from .modeling_lavt import LavtForReferringSegmentation, LavtPreTrainedModel, LavtReferringSegmentationOutput

AutoConfig.register("lavt", LavtConfig, exist_ok=True)
AutoModel.register(LavtConfig, LavtForReferringSegmentation, exist_ok=True)
# Saved folders copy these modules and point `auto_map` at them (remote code).
LavtConfig.register_for_auto_class()
LavtForReferringSegmentation.register_for_auto_class("AutoModel")

__all__ = [
    "PRESETS",
    "LavtConfig",
    "LavtForReferringSegmentation",
    "LavtPreTrainedModel",
    "LavtReferringSegmentationOutput",
]
