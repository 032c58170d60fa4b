# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Initialise LAVT for training from pretrained parts: Swin from timm or a Microsoft checkpoint, BERT from a
folder or Hub id. The fusion modules, gates and decoder start from the model's own initialisation."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from timm.layers import resize_rel_pos_bias_table_simple
from transformers import AutoConfig, AutoModel

from ..configuration_lavt import LavtConfig
from ..modeling_lavt import LavtForReferringSegmentation
from .conversion import read_safetensors, rename_swin_key, window_size_from_table


def resize_position_bias_table(table: torch.Tensor, window: int) -> torch.Tensor:
    """Bicubic resize (timm's, in float32) of a ((2w-1)^2, heads) relative position bias table to another window
    size, as Swin fine-tuning at a new window does.

    Raises `UnsupportedCheckpointError` when the table's rows are not (2w-1)^2 for a whole w.
    """
    window_size_from_table(table.shape[0])  # timm's resize would round a non-square table silently
    new_shape = ((2 * window - 1) ** 2, table.shape[1])
    return resize_rel_pos_bias_table_simple(table.float(), (window, window), new_shape).to(table.dtype)


def read_swin_state_dict(source: str | Path, pretrained: bool = True) -> dict[str, torch.Tensor]:
    """Swin weights in Microsoft's layout from a file (`.pth` with a 'model' entry, or `.safetensors`) or a timm
    model name."""
    path = Path(source)
    if path.suffix == ".safetensors" and path.is_file():
        return read_safetensors(path)
    if path.is_file():
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        return state_dict.get("model", state_dict)
    import timm

    if not timm.is_model(str(source).split(".")[0]):
        raise ValueError(f"{source!r} is neither a file nor a timm model name (e.g. swin_base_patch4_window12_384)")
    state_dict = timm.create_model(str(source), pretrained=pretrained).state_dict()
    # timm merges patches at the start of the next stage, Microsoft (and we) at the end of a stage
    return {re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", k): v
            for k, v in state_dict.items()}


def load_swin_backbone(model: LavtForReferringSegmentation, source: str | Path, pretrained: bool = True
                       ) -> list[str]:
    """Copy Swin weights into `model.lavt.backbone`, resizing the relative position bias tables to the config's
    window; returns the parameter names loaded. The classification head and final norm are ignored; any other
    mismatch raises a ValueError."""
    source_state = read_swin_state_dict(source, pretrained)
    target = model.lavt.backbone.state_dict()
    loaded = {}
    for key, tensor in source_state.items():
        new_key = rename_swin_key(key)
        if key.startswith(("head.", "norm.")) or new_key == "":
            continue
        if new_key is None or new_key not in target:
            raise ValueError(f"Swin weight {key!r} from {source} has no place in this LAVT backbone "
                             f"(depths {model.config.depths}, embed_dim {model.config.embed_dim})")
        if new_key.endswith("relative_position_bias_table"):
            tensor = resize_position_bias_table(tensor, model.config.window_size)
        if tensor.shape != target[new_key].shape:
            raise ValueError(f"Swin weight {key!r} from {source} has shape {tuple(tensor.shape)}, the backbone "
                             f"expects {tuple(target[new_key].shape)}: is it the same Swin size as the config?")
        loaded[new_key] = tensor
    swin_keys = [k for k in target if not re.search(r"\.(fusion|gate|output_norm)\.", k)]
    missing = [k for k in swin_keys if k not in loaded]
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} Swin weights, e.g. {missing[:3]}")
    model.lavt.backbone.load_state_dict(loaded, strict=False)
    return sorted(loaded)


def lavt_from_pretrained_parts(config: LavtConfig, swin: str | Path | None = None,
                               text_encoder: str | Path | None = None, swin_pretrained: bool = True
                               ) -> LavtForReferringSegmentation:
    """A model for training: Swin weights from `swin` (timm name or file), the text encoder (config and weights)
    from `text_encoder` (local folder or Hub id), everything else freshly initialised."""
    if text_encoder is not None:
        config.text_config = AutoConfig.from_pretrained(text_encoder)
    model = LavtForReferringSegmentation(config)
    if text_encoder is not None:
        pretrained_text = AutoModel.from_pretrained(text_encoder, add_pooling_layer=False)
        model.lavt.text_encoder.load_state_dict(pretrained_text.state_dict())
    if swin is not None:
        load_swin_backbone(model, swin, swin_pretrained)
    return model
