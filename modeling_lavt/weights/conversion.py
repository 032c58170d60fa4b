# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Original LAVT checkpoints -> this package's parameter names and configuration (docs/conversion.md).

Tensors and `args` (a pickled `argparse.Namespace`, the one class allowed when unpickling) are read. Some of
`args` changes the function without showing in any tensor shape (`mha`, `img_size`), so it is read, checked
against the tensors, and a contradiction is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..configuration_lavt import _SWIN_SIZES, LavtConfig
from ..modeling_lavt import LavtForReferringSegmentation
from ..validation import check_finite_weights

# Swin keys of a stage, the same in LAVT's backbone, Microsoft's Swin checkpoints and ours.
_SWIN_STAGE_KEY = re.compile(r"blocks\.\d+\.((norm[12]|attn\.(qkv|proj)|mlp\.fc[12])\.(weight|bias)"
                             r"|attn\.relative_position_bias_table)|downsample\.(norm|reduction)\.(weight|bias)")
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


@dataclass(frozen=True)
class OriginalSettings:
    """How an original model was built, as its checkpoint's `args` records it (docs/conversion.md); None = not
    recorded."""

    fusion_num_heads: tuple[int, ...] | None = None  # `mha`: '' = 1 head per stage, 'a-b-c-d' otherwise
    window_size: int | None = None  # `window12`: 12, else 7
    swin_type: str | None = None  # `swin_type`: tiny / small / base / large
    model: str | None = None  # `model`: lavt (text encoder apart) or lavt_one (inside `model`)
    fusion_dropout: float | None = None  # `fusion_drop`
    image_size: int | None = None  # `img_size`: the square input side it was trained and evaluated at
    dataset: str | None = None  # `dataset`, e.g. refcoco
    split_by: str | None = None  # `splitBy`, e.g. unc
    text_model: str | None = None  # `ck_bert`: the BERT checkpoint (and tokenizer) it started from


# The released models' values of the settings that change the function, assumed (loudly) without `args`.
ASSUMED_WITHOUT_ARGS = {"fusion_num_heads": (1, 1, 1, 1), "image_size": 480}
# `args` fields read as they are: (name in `args`, OriginalSettings field, type).
_ARGS_FIELDS = (("swin_type", "swin_type", str), ("model", "model", str), ("fusion_drop", "fusion_dropout", float),
                ("img_size", "image_size", int), ("dataset", "dataset", str), ("splitBy", "split_by", str),
                ("ck_bert", "text_model", str))


def settings_from_args(args: argparse.Namespace | dict | None) -> OriginalSettings:
    """The settings an original `args` records; malformed values are an `UnsupportedCheckpointError`."""
    if args is None:
        return OriginalSettings()
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    found = {field: kind(values[name]) for name, field, kind in _ARGS_FIELDS if values.get(name) is not None}
    if "mha" in values:
        found["fusion_num_heads"] = _parse_mha(values["mha"])
    if "window12" in values:
        found["window_size"] = 12 if values["window12"] else 7
    if found.get("swin_type", "tiny") not in _SWIN_SIZES:
        raise UnsupportedCheckpointError(
            f"args.swin_type={found['swin_type']!r} is not one of {sorted(_SWIN_SIZES)}")
    if found.get("model", "lavt") not in ("lavt", "lavt_one"):
        raise UnsupportedCheckpointError(f"args.model={found['model']!r} is neither 'lavt' nor 'lavt_one'")
    if found.get("image_size", 1) < 1:
        raise UnsupportedCheckpointError(f"args.img_size={found['image_size']} is not a positive input size")
    return OriginalSettings(**found)


def _parse_mha(value: object) -> tuple[int, ...]:
    if value in ("", None):
        return (1, 1, 1, 1)
    parts = str(value).split("-")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UnsupportedCheckpointError(
            f"args.mha={value!r} is not '' or four positive head counts such as '2-2-2-2'")
    return tuple(int(p) for p in parts)


def resolve_settings(settings: OriginalSettings, source: str = "the checkpoint", **requested) -> OriginalSettings:
    """Merge settings the user asks for (None = not asked) into what the checkpoint records; a contradiction is
    an `UnsupportedCheckpointError` naming both values."""
    merged = {}
    for name, value in requested.items():
        if value is None:
            continue
        value = tuple(value) if isinstance(value, list) else value
        stored = getattr(settings, name)
        if stored is not None and stored != value:
            raise UnsupportedCheckpointError(
                f"{name}={_show(value)} was asked for, but {source} records {name}={_show(stored)} in its args; "
                f"drop the option to use the recorded value")
        merged[name] = value
    return dataclasses.replace(settings, **merged)


def _show(value: object) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def warn_about_assumed_settings(settings: OriginalSettings, source: str) -> OriginalSettings:
    """Fill what the checkpoint does not record with the released models' values, loudly."""
    assumed = {k: v for k, v in ASSUMED_WITHOUT_ARGS.items() if getattr(settings, k) is None}
    if assumed:
        warnings.warn(
            f"{source} does not record {', '.join(assumed)} (no original `args`); assuming the released models' "
            f"{', '.join(f'{k}={_show(v)}' for k, v in assumed.items())}. If the model was trained otherwise its "
            f"outputs will differ: give the right values (lavt-convert --fusion_num_heads / --image_size).",
            UserWarning, stacklevel=2,
        )
    return dataclasses.replace(settings, **assumed)


@dataclass
class OriginalCheckpoint:
    """What an original checkpoint file holds: the visual and text state dicts, and the recorded settings."""

    visual: dict[str, torch.Tensor]
    text: dict[str, torch.Tensor]
    settings: OriginalSettings
    layout: str  # "lavt" (text encoder in `bert_model`), "lavt_one" (inside `model`) or "safetensors"


def rename_swin_key(key: str) -> str | None:
    """Rename a key of the original (Microsoft) Swin layout below the backbone prefix; None = not a Swin key,
    "" = a buffer recomputed from the window size."""
    if key.startswith("patch_embed."):
        return key.replace("patch_embed.proj.", "patch_embed.projection.")
    match = re.fullmatch(r"layers\.(\d+)\.(.+)", key)
    if not match:
        return None
    stage, rest = match.groups()
    if _SWIN_STAGE_KEY.fullmatch(rest):
        return f"stages.{stage}.{rest}"
    return "" if re.fullmatch(r"blocks\.\d+\.(attn\.relative_position_index|attn_mask)", rest) else None


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
            f"{unknown[:5]}")
    return converted


def window_size_from_table(rows: int) -> int:
    """The relative position bias table has (2w - 1)^2 rows."""
    side = math.isqrt(rows)
    if side * side != rows or side % 2 == 0:
        raise UnsupportedCheckpointError(f"relative_position_bias_table with {rows} rows is not (2w-1)^2")
    return (side + 1) // 2


def infer_config(visual: dict[str, torch.Tensor], text_config: dict | None = None,
                 settings: OriginalSettings | None = None) -> LavtConfig:
    """The architecture read off the tensors and checked against `settings`, which give what no tensor shows
    (pixel-word attention heads, default 1 per stage; fusion dropout)."""
    settings = settings or OriginalSettings()
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
    # `window12` and `swin_type` must agree with the tensors, else the args belong to another model.
    if settings.window_size is not None and settings.window_size != window:
        raise UnsupportedCheckpointError(
            f"args.window12 says window {settings.window_size}, but the relative position bias tables are for "
            f"window {window}")
    expected = _SWIN_SIZES.get(settings.swin_type)
    if expected is not None and (embed_dim, tuple(depths), tuple(heads)) != expected:
        raise UnsupportedCheckpointError(
            f"args.swin_type={settings.swin_type!r} means embed_dim {expected[0]}, depths {list(expected[1])}, "
            f"heads {list(expected[2])}, but the tensors hold embed_dim {embed_dim}, depths {depths}, heads {heads}")
    fusion_heads = settings.fusion_num_heads or ASSUMED_WITHOUT_ARGS["fusion_num_heads"]
    for stage, count in enumerate(fusion_heads):
        if (embed_dim * 2**stage) % count:
            raise UnsupportedCheckpointError(
                f"args.mha asks for {count} pixel-word attention heads in stage {stage}, which do not divide its "
                f"{embed_dim * 2**stage} channels")
    text_config = dict(text_config or {})  # a BERT unless it names its model_type (LavtConfig's default)
    if text_config.get("hidden_size", text_width) != text_width:
        raise UnsupportedCheckpointError(
            f"the fusion reads {text_width}-wide words but the text config has hidden_size "
            f"{text_config['hidden_size']}")
    text_config["hidden_size"] = text_width
    return LavtConfig(
        embed_dim=embed_dim, depths=depths, num_heads=heads, window_size=window, mlp_ratio=mlp_hidden / embed_dim,
        decoder_hidden_size=decoder_hidden, fusion_num_heads=list(fusion_heads),
        fusion_dropout=settings.fusion_dropout or 0.0, text_config=text_config,
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


def load_original_checkpoint(path: str | Path) -> OriginalCheckpoint:
    """The state dicts and recorded settings of an original `.pth` checkpoint (unpickled with `weights_only`,
    allowing `argparse.Namespace`), or of a visual `.safetensors` file (no text encoder, no settings).

    Raises `FileNotFoundError` for a missing file and `UnsupportedCheckpointError` for a file that is not such a
    checkpoint, a refused pickle, or `args.model` contradicting the layout.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        return OriginalCheckpoint(read_safetensors(path), {}, OriginalSettings(), "safetensors")
    checkpoint = _unpickle_weights_only(path)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise UnsupportedCheckpointError(f"{path} is not an original LAVT checkpoint (expected a dict with 'model')")
    settings = settings_from_args(checkpoint.get("args"))
    visual, text = checkpoint["model"], checkpoint.get("bert_model")
    layout = "lavt"
    if text is None:  # lavt_one keeps the text encoder inside the model
        layout = "lavt_one"
        text = {k[len("text_encoder."):]: v for k, v in visual.items() if k.startswith("text_encoder.")}
        visual = {k: v for k, v in visual.items() if not k.startswith("text_encoder.")}
    if settings.model is not None and settings.model != layout:
        raise UnsupportedCheckpointError(
            f"{path}: args.model={settings.model!r}, but the checkpoint is laid out as {layout!r} (the text encoder "
            f"{'in bert_model' if layout == 'lavt' else 'inside model'})")
    return OriginalCheckpoint(visual, text, settings, layout)


def _unpickle_weights_only(path: Path) -> object:
    """torch.load with the allow-list; failures in our words (not torch's advice to turn the safety off)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
            if refused:
                raise UnsupportedCheckpointError(
                    f"{path} was refused: it asks to import {refused.group(1)}, which an original LAVT checkpoint "
                    f"does not hold (only tensors, plain containers and argparse.Namespace are allowed, because "
                    f"unpickling anything else can run code)") from None
            raise UnsupportedCheckpointError(
                f"{path} is not a PyTorch checkpoint that holds only tensors and settings "
                f"({_first_line(err)})") from None
        except (RuntimeError, EOFError, OSError, ValueError) as err:
            raise UnsupportedCheckpointError(
                f"{path} cannot be read as a PyTorch checkpoint: it is damaged or not a file saved with torch.save "
                f"({_first_line(err)})") from None


def _first_line(err: Exception) -> str:
    text = str(err).split("WeightsUnpickler error:", 1)[-1]
    return next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)[:200]


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a damaged file is an `UnsupportedCheckpointError` naming it."""
    try:
        return load_file(path)
    except SafetensorError as err:
        raise UnsupportedCheckpointError(
            f"{path} is not a readable safetensors file (truncated or not safetensors: {err})") from None


def check_tokenizer(tokenizer, settings: OriginalSettings) -> None:
    """Refuse a tokenizer that cases text otherwise than the recorded BERT (`ck_bert`): other word pieces."""
    name = (settings.text_model or "").lower()
    if "cased" not in name:
        return
    lowercases = tokenizer.tokenize("A") == tokenizer.tokenize("a")
    if lowercases != ("uncased" in name):
        raise UnsupportedCheckpointError(
            f"the model was trained with {settings.text_model} (args.ck_bert), but the tokenizer "
            f"{'lower-cases' if lowercases else 'keeps the case of'} its text; use the tokenizer of "
            f"{settings.text_model}")


def convert_original(visual: dict[str, torch.Tensor], text: dict[str, torch.Tensor],
                     text_config: dict | None = None, settings: OriginalSettings | None = None
                     ) -> LavtForReferringSegmentation:
    """A `LavtForReferringSegmentation` in eval mode holding an original checkpoint's weights; `settings` are
    what the checkpoint records (None = nothing).

    Raises `UnsupportedCheckpointError` when the tensors do not fit the inferred architecture or contradict the
    settings, and ValueError (naming them) when they hold NaN / inf.
    """
    if not text:
        raise UnsupportedCheckpointError("the checkpoint has no text encoder weights ('bert_model')")
    text_config = {**text_config_from_state_dict(text), **(text_config or {})}
    config = infer_config(visual, text_config, settings)
    model = LavtForReferringSegmentation(config)
    # BERT without its pooler, as in the original
    text = {f"text_encoder.{k}": v for k, v in text.items()
            if not k.startswith("pooler.") and not k.endswith("position_ids")}
    state_dict = {**convert_visual_state_dict(visual), **text}
    check_finite_weights(state_dict, "the checkpoint")
    # The text encoder and backbone live in the headless model (`model.lavt`), the decoder in the head.
    state_dict = {key if key.startswith("decoder.") else f"{model.base_model_prefix}.{key}": value
                  for key, value in state_dict.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in state_dict.items()
                  if k in expected and v.shape != expected[k].shape]
    if missing or unexpected or mismatched:
        raise UnsupportedCheckpointError(
            f"checkpoint does not fit the inferred architecture: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, shape mismatches {mismatched[:5]}")
    model.load_state_dict(state_dict, strict=False)
    return model.eval()
