# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Configuration of LAVT (Language-Aware Vision Transformer) for referring image segmentation."""

from __future__ import annotations

import sys

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# Swin sizes of the original factory (docs/model.md, "Presets"): embed_dim, depths, heads.
_SWIN_SIZES = {
    "tiny": (96, (2, 2, 6, 2), (3, 6, 12, 24)),
    "small": (96, (2, 2, 18, 2), (3, 6, 12, 24)),
    "base": (128, (2, 2, 18, 2), (4, 8, 16, 32)),
    "large": (192, (2, 2, 18, 2), (6, 12, 24, 48)),
}
# The original factory's (Swin size, window) pairs.
PRESETS = {f"swin-{size}-window{window}": (size, window) for size, window in
           (("tiny", 7), ("small", 7), ("base", 7), ("base", 12), ("large", 7), ("large", 12))}


def _drop_pipelines_served_by_this_package(kwargs: dict) -> None:
    """Drop a pushed config's `custom_pipelines` entries for tasks this package serves with its own registered
    pipeline: `pipeline()` would demand `trust_remote_code` for them. The repo's copy of this file (remote code)
    lives in another package, so it keeps the entries."""
    registry = getattr(sys.modules.get("transformers.pipelines"), "PIPELINE_REGISTRY", None)
    if not kwargs.get("custom_pipelines") or registry is None:
        return
    package = __name__.rpartition(".")[0]
    kept = {task: info for task, info in kwargs.pop("custom_pipelines").items()
            if getattr(registry.supported_tasks.get(task, {}).get("impl"), "__module__", "").rpartition(".")[0]
            != package}
    if kept:
        kwargs["custom_pipelines"] = kept


class LavtConfig(PreTrainedConfig):
    """Configuration of [`LavtForReferringSegmentation`]; each field below says what it sets, beside its
    default. Stage i of the Swin encoder has `embed_dim * 2**i` channels."""

    model_type = "lavt"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    embed_dim: int = 96  # channels of the first Swin stage
    depths: list[int] | tuple[int, ...] = (2, 2, 6, 2)  # Swin blocks per stage
    num_heads: list[int] | tuple[int, ...] = (3, 6, 12, 24)  # attention heads per stage
    window_size: int = 7  # 7 for Swin-T/S, 12 for the released Swin-B
    mlp_ratio: float = 4.0  # hidden width of the Swin MLP relative to the stage width
    drop_path_rate: float = 0.3  # stochastic depth, increasing linearly over all blocks
    patch_size: int = 4  # side of the patch-embedding convolution
    num_channels: int = 3  # image channels
    fusion_num_heads: list[int] | tuple[int, ...] = (1, 1, 1, 1)  # pixel-word attention heads per stage
    fusion_dropout: float = 0.0  # dropout inside the pixel-word attention
    decoder_hidden_size: int | None = None  # decoder width; None: 4 * embed_dim
    text_config: dict | PreTrainedConfig | None = None  # a BERT-family encoder; None: BERT-base sized
    max_text_length: int = 20  # token positions the model reads (the original's cut)
    layer_norm_eps: float = 1e-5  # epsilon of the visual LayerNorms
    initializer_range: float = 0.02  # std of the truncated-normal init of linear layers
    # The loss (losses.py): weights of its terms (0 disables one) and their settings.
    ce_weight: float = 1.0  # the weighted cross-entropy
    ce_class_weights: list[float] | tuple[float, ...] = (0.9, 1.1)  # background, foreground
    perceptual_weight: float = 0.0
    perceptual_network: str = "vgg16"  # timm name of the frozen ImageNet CNN
    perceptual_layers: list[int] | tuple[int, ...] | None = None  # its feature stages compared; None: 0-3
    perceptual_layer_weights: list[float] | tuple[float, ...] | None = None  # one per layer; None: all 1
    perceptual_softmax: bool = True  # compare the softmax foreground probability, else the logit
    perceptual_channel_mapping: str = "replicate"  # the map copied to R, G and B
    perceptual_normalize: bool = True  # apply the CNN's ImageNet mean / std to its input
    perceptual_distance: str = "mse"  # per layer, "mse" or "l1"
    perceptual_pretrained: bool | str = True  # timm's ImageNet weights, a local file, or False
    dice_weight: float = 0.0  # the soft Dice term
    dice_smooth: float = 1.0  # additive smoothing of the Dice ratio

    def __post_init__(self, **kwargs):
        _drop_pipelines_served_by_this_package(kwargs)
        super().__post_init__(**kwargs)
        for name in ("depths", "num_heads", "fusion_num_heads", "ce_class_weights"):
            setattr(self, name, list(getattr(self, name)))
        if self.decoder_hidden_size is None:
            self.decoder_hidden_size = 4 * self.embed_dim
        if not (len(self.depths) == len(self.num_heads) == len(self.fusion_num_heads) == 4):
            raise ValueError(
                "LAVT has 4 stages: depths, num_heads and fusion_num_heads need 4 entries each, got "
                f"{self.depths}, {self.num_heads}, {self.fusion_num_heads}")
        sizes = {name: getattr(self, name) for name in
                 ("embed_dim", "window_size", "patch_size", "num_channels", "max_text_length", "mlp_ratio")}
        for name in ("depths", "num_heads", "fusion_num_heads"):
            sizes.update({f"{name}[{i}]": value for i, value in enumerate(getattr(self, name))})
        bad = [f"{name}={value!r}" for name, value in sizes.items()
               if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0]
        if bad:
            raise ValueError(f"LavtConfig sizes must be positive numbers, got {', '.join(bad)}")
        for i, (heads, width) in enumerate(zip(self.fusion_num_heads, self.stage_widths)):
            if width % heads:
                raise ValueError(f"fusion_num_heads[{i}]={heads} does not divide stage width {width}")
        if len(self.ce_class_weights) != 2:
            raise ValueError(f"ce_class_weights needs 2 entries (background, foreground), got {self.ce_class_weights}")

    @property
    def stage_widths(self) -> list[int]:
        return [self.embed_dim * 2**i for i in range(len(self.depths))]

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> LavtConfig:
        """A configuration matching the original factory, e.g. `LavtConfig.from_preset("swin-base-window12")`;
        keyword arguments override any field. ValueError for a name not in `PRESETS`."""
        if name not in PRESETS:
            raise ValueError(f"Unknown LAVT preset {name!r}; choose one of {sorted(PRESETS)}")
        size, window = PRESETS[name]
        embed_dim, depths, heads = _SWIN_SIZES[size]
        return cls(**{"embed_dim": embed_dim, "depths": list(depths), "num_heads": list(heads), "window_size": window,
                      **kwargs})


__all__ = ["LavtConfig", "PRESETS"]
