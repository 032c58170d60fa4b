# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Original LAVT checkpoints -> this package's parameter names and configuration.

The original stores `{model, bert_model, optimizer, epoch, args, lr_scheduler}` (or, for `lavt_one`, a single
`model` dict whose text encoder sits under `text_encoder.`). Only tensors are read; `args` is a pickled
`argparse.Namespace`, the one class allowed when unpickling.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import torch

from .configuration_lavt import LavtConfig

# Swin parts shared by LAVT's backbone and Microsoft's Swin checkpoints: original suffix -> ours.
_BLOCK_PARTS = ("norm1", "norm2", "attn.qkv", "attn.proj", "attn.relative_position_bias_table", "mlp.fc1", "mlp.fc2")
_FUSION_PARTS = {
    "fusion.vis_project.0": "fusion.vision_projection",
    "fusion.image_lang_att.f_query.0": "fusion.query",
    "fusion.image_lang_att.f_key.0": "fusion.key",
    "fusion.image_lang_att.f_value.0": "fusion.value",
    "fusion.image_lang_att.W.0": "fusion.attended_projection",
    "fusion.project_mm.0": "fusion.output_projection",
}
# Decoder: the original names its layers by the stage they fuse into (4 = coarsest).
_DECODER_BLOCK = {"4": 0, "3": 1, "2": 2}
_DECODER_LAYER = {"conv1": 0, "bn1": 1, "conv2": 3, "bn2": 4}


class UnsupportedCheckpointError(ValueError):
    """The checkpoint holds something this converter does not understand."""


def rename_swin_key(key: str) -> str | None:
    """Rename a key of the original (Microsoft) Swin layout below the backbone prefix; None = not a Swin key.

    Buffers that are recomputed from the window size (`relative_position_index`, `attn_mask`) map to "".
    """
    if key.startswith("patch_embed."):
        return key.replace("patch_embed.proj.", "patch_embed.projection.")
    match = re.fullmatch(r"layers\.(\d+)\.(.+)", key)
    if not match:
        return None
    stage, rest = match.groups()
    block = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias|relative_position_bias_table)", rest)
    if block and (block.group(2) in _BLOCK_PARTS or rest.endswith("relative_position_bias_table")):
        return f"stages.{stage}.{rest}"
    if re.fullmatch(r"blocks\.\d+\.(attn\.relative_position_index|attn_mask)", rest):
        return ""
    if re.fullmatch(r"downsample\.(norm|reduction)\.(weight|bias)", rest):
        return f"stages.{stage}.{rest}"
    return None


def rename_lavt_visual_key(key: str, num_stages: int = 4) -> str | None:
    """Rename one key of `checkpoint['model']`; "" = drop it on purpose, None = unknown."""
    if key.startswith("backbone."):
        rest = key[len("backbone."):]
        swin = rename_swin_key(rest)
        if swin is not None:
            return swin and f"backbone.{swin}"
        if match := re.fullmatch(r"norm(\d)\.(weight|bias)", rest):
            return f"backbone.stages.{match.group(1)}.output_norm.{match.group(2)}"
        if match := re.fullmatch(r"layers\.(\d+)\.(fusion\..+)\.(weight|bias)", rest):
            stage, part, kind = match.groups()
            return f"backbone.stages.{stage}.{_FUSION_PARTS[part]}.{kind}" if part in _FUSION_PARTS else None
        if match := re.fullmatch(r"layers\.(\d+)\.res_gate\.([02])\.weight", rest):
            stage, index = match.groups()
            if int(stage) == num_stages - 1:
                return ""  # the last stage's gate feeds nothing in the original
            return f"backbone.stages.{stage}.gate.fc{1 if index == '0' else 2}.weight"
        return None
    if match := re.fullmatch(r"classifier\.(conv|bn)([12])_([1-4])\.(.+)", key):
        kind, layer, stage, param = match.groups()
        if (kind, layer, stage) == ("conv", "1", "1"):
            return f"decoder.classifier.{param}"
        if stage in _DECODER_BLOCK:
            return f"decoder.blocks.{_DECODER_BLOCK[stage]}.{_DECODER_LAYER[kind + layer]}.{param}"
    return None


def convert_visual_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map `checkpoint['model']` onto our names; 1x1 Conv1d weights of the fusion become Linear weights."""
    num_stages = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"backbone\.layers\.(\d+)\.", k)))
    converted, unknown = {}, []
    for key, tensor in state_dict.items():
        new_key = rename_lavt_visual_key(key, num_stages)
        if new_key is None:
            unknown.append(key)
        elif new_key:
            if ".fusion." in new_key and new_key.endswith("weight") and tensor.ndim == 3:
                tensor = tensor.squeeze(-1)
            converted[new_key] = tensor
    if unknown:
        raise UnsupportedCheckpointError(
            f"{len(unknown)} keys of the visual model are not part of LAVT as this converter knows it, e.g. "
            f"{unknown[:5]}"
        )
    return converted


def convert_text_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BERT weights (without pooler, as in the original) under our `text_encoder.` prefix."""
    return {f"text_encoder.{k}": v for k, v in state_dict.items()
            if not k.startswith("pooler.") and not k.endswith("position_ids")}


def window_size_from_table(rows: int) -> int:
    """The relative position bias table has (2w - 1)^2 rows."""
    side = math.isqrt(rows)
    if side * side != rows or side % 2 == 0:
        raise UnsupportedCheckpointError(f"relative_position_bias_table with {rows} rows is not (2w-1)^2")
    return (side + 1) // 2


def infer_config(visual: dict[str, torch.Tensor], text_config: dict | None = None,
                 fusion_num_heads: list[int] | None = None) -> LavtConfig:
    """Read the architecture off the tensors: widths, depths, heads and window size are not stored."""
    try:
        embed_dim = visual["backbone.patch_embed.proj.weight"].shape[0]
        depths, heads = [], []
        for stage in range(4):
            blocks = {int(m.group(1)) for k in visual
                      if (m := re.match(rf"backbone\.layers\.{stage}\.blocks\.(\d+)\.", k))}
            depths.append(len(blocks))
            heads.append(visual[f"backbone.layers.{stage}.blocks.0.attn.relative_position_bias_table"].shape[1])
        window = window_size_from_table(visual["backbone.layers.0.blocks.0.attn.relative_position_bias_table"].shape[0])
        mlp_hidden = visual["backbone.layers.0.blocks.0.mlp.fc1.weight"].shape[0]
        decoder_hidden = visual["classifier.conv1_1.weight"].shape[1]
        text_width = visual["backbone.layers.0.fusion.image_lang_att.f_key.0.weight"].shape[1]
    except KeyError as err:
        raise UnsupportedCheckpointError(f"not an original LAVT visual state dict: missing {err}") from None
    text_config = dict(text_config or {})
    text_config.setdefault("model_type", "bert")
    if text_config.get("hidden_size", text_width) != text_width:
        raise UnsupportedCheckpointError(
            f"the fusion reads {text_width}-wide words but the text config has hidden_size "
            f"{text_config['hidden_size']}"
        )
    text_config["hidden_size"] = text_width
    return LavtConfig(
        embed_dim=embed_dim, depths=depths, num_heads=heads, window_size=window, mlp_ratio=mlp_hidden / embed_dim,
        decoder_hidden_size=decoder_hidden, fusion_num_heads=fusion_num_heads or [1, 1, 1, 1],
        text_config=text_config,
    )


def text_config_from_state_dict(state_dict: dict[str, torch.Tensor]) -> dict:
    """A BERT config whose shapes fit the tensors (head count assumes BERT's 64-wide heads)."""
    hidden = state_dict["embeddings.word_embeddings.weight"].shape[1]
    layers = {int(m.group(1)) for k in state_dict if (m := re.match(r"encoder\.layer\.(\d+)\.", k))}
    return dict(
        model_type="bert", vocab_size=state_dict["embeddings.word_embeddings.weight"].shape[0], hidden_size=hidden,
        num_hidden_layers=len(layers), num_attention_heads=max(hidden // 64, 1),
        intermediate_size=state_dict["encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=state_dict["embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state_dict["embeddings.token_type_embeddings.weight"].shape[0],
    )


def load_original_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """(visual state dict, text state dict) from an original `.pth` checkpoint or a pair of safetensors files.

    `.pth` files are unpickled with `weights_only=True`, allowing only `argparse.Namespace` besides tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path), {}
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # the unpickler's message names the refused global
            raise UnsupportedCheckpointError(f"{path} cannot be read as a weights-only LAVT checkpoint: {err}") from err
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise UnsupportedCheckpointError(f"{path} is not an original LAVT checkpoint (expected a dict with 'model')")
    visual = checkpoint["model"]
    text = checkpoint.get("bert_model")
    if text is None:  # lavt_one keeps the text encoder inside the model
        text = {k[len("text_encoder."):]: v for k, v in visual.items() if k.startswith("text_encoder.")}
        visual = {k: v for k, v in visual.items() if not k.startswith("text_encoder.")}
    return visual, text


def convert_original(visual: dict[str, torch.Tensor], text: dict[str, torch.Tensor],
                     text_config: dict | None = None, fusion_num_heads: list[int] | None = None):
    """Build a `LavtForReferringSegmentation` holding an original checkpoint's weights, in eval mode."""
    from .modeling_lavt import LavtForReferringSegmentation

    if not text:
        raise UnsupportedCheckpointError("the checkpoint has no text encoder weights ('bert_model')")
    text_config = {**text_config_from_state_dict(text), **(text_config or {})}
    config = infer_config(visual, text_config, fusion_num_heads)
    model = LavtForReferringSegmentation(config)
    state_dict = {**convert_visual_state_dict(visual), **convert_text_state_dict(text)}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in state_dict.items()
                  if k in expected and v.shape != expected[k].shape]
    if missing or unexpected or mismatched:
        raise UnsupportedCheckpointError(
            f"checkpoint does not fit the inferred architecture: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, shape mismatches {mismatched[:5]}"
        )
    model.load_state_dict(state_dict, strict=False)
    return model.eval()
