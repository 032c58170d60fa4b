# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""LAVT: Language-Aware Vision Transformer for referring image segmentation (Yang et al., CVPR 2022), as
written down in `docs/model.md`: a Swin Transformer whose four stages each end with a pixel-word attention module
(PWAM) and a language gate, a BERT-family text encoder, and a convolutional decoder of 1/4-resolution logits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, gen_relative_position_index
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_lavt import LavtConfig
from .losses import LavtLoss
from .precision import check_stored_weights_autocast, stored_weights_dtype
from .resize import upsample_logits
from .validation import CheckedLoadingMixin


@dataclass
class LavtModelOutput(ModelOutput):
    """Output of [`LavtModel`]: the language-aware multi-scale features (docs/model.md, "Data flow").

    Args:
        stage_features: the four normalised fused maps the decoder reads, (batch, C_i, H_i, W_i) with
            C_i = embed_dim * 2**i and H_i = ceil(H / 2**(i + 2)) (W_i likewise); always present.
        text_hidden_states: the text encoder's last hidden state, (batch, T, text hidden size).
        vision_hidden_states: per stage, its last Swin block's output, (batch, H_i * W_i, C_i).
        fused_hidden_states: per stage, the pixel-word attention output, (batch, H_i * W_i, C_i).
        attentions: per stage, the pixel-word attention weights, (batch, fusion heads, T, H_i, W_i), at every
            pixel a softmax over the T tokens (~0 for padding), which `post_process_word_attention` turns into word
            heatmaps; with `output_attentions` (the three above with `output_hidden_states`).
    """

    stage_features: tuple[torch.Tensor, ...] | None = None
    text_hidden_states: torch.Tensor | None = None
    vision_hidden_states: tuple[torch.Tensor, ...] | None = None
    fused_hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class LavtReferringSegmentationOutput(ModelOutput):
    """Output of [`LavtForReferringSegmentation`].

    Args:
        loss: float32 weighted sum of the configured loss terms, when `labels` are given.
        logits: (batch, 2, ceil(H/4), ceil(W/4)) class scores, class 1 = the referred object (the original
            upsamples them to (H, W), bilinear with `align_corners=True`, as the post-processing does).
        loss_terms: each loss term before weighting, e.g. `{"ce": ..., "perceptual": ...}`.
        stage_features, text_hidden_states, vision_hidden_states, fused_hidden_states, attentions: as in
            [`LavtModelOutput`], the stage features too only with `output_hidden_states` (in all about 14 MB per
            480x480 sample for Swin-B).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    loss_terms: dict[str, torch.Tensor] | None = None
    stage_features: tuple[torch.Tensor, ...] | None = None
    text_hidden_states: torch.Tensor | None = None
    vision_hidden_states: tuple[torch.Tensor, ...] | None = None
    fused_hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def eager_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0,
                            **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(query key^T * scaling + mask) value with transformers' attention interface, returning the output
    (B, Nq, heads, d) and the weights (B, heads, Nq, Nk) for query (B, heads, Nq, d), key and value (B, heads, Nk, d)."""
    scores = query @ key.transpose(-1, -2) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = F.dropout(scores.softmax(dim=-1), p=dropout, training=module.training)
    return (weights @ value).transpose(1, 2), weights


def attention_function(config: LavtConfig, need_weights: bool):
    """The configured attention implementation ("sdpa" by default), or eager when the weights are asked for."""
    if need_weights:
        return eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * num_windows, window * window, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """(B * num_windows, window * window, C) -> (B, H, W, C), the inverse of `window_partition`."""
    c = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)


def shifted_window_mask(height: int, width: int, window: int, shift: int,
                        device: torch.device | None = None) -> torch.Tensor:
    """(num_windows, window^2, window^2) additive mask keeping attention inside each pre-shift region of the
    padded (height, width) map; built on `device` so that a compiled graph holds no CPU-to-device copy."""
    labels = torch.zeros(height, width, device=device)
    region = 0
    for rows in (slice(0, height - window), slice(height - window, height - shift), slice(height - shift, height)):
        for cols in (slice(0, width - window), slice(width - window, width - shift), slice(width - shift, width)):
            labels[rows, cols] = region
            region += 1
    windows = window_partition(labels[None, :, :, None], window).squeeze(-1)
    different = windows[:, :, None] != windows[:, None, :]
    # The original adds -100, which gives the same float32 weights but as denormals, slow on x86 CPUs.
    return torch.zeros(different.shape, device=device).masked_fill(different, float("-inf"))


class LavtPatchEmbeddings(nn.Module):
    """Non-overlapping 4x4 patches -> tokens; the image is zero-padded to a multiple of the patch size."""

    def __init__(self, config: LavtConfig):
        super().__init__()
        self.patch_size = config.patch_size
        self.projection = nn.Conv2d(config.num_channels, config.embed_dim, config.patch_size, config.patch_size)
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        pad_h, pad_w = (-pixel_values.shape[2]) % self.patch_size, (-pixel_values.shape[3]) % self.patch_size
        if pad_h or pad_w:
            pixel_values = F.pad(pixel_values, (0, pad_w, 0, pad_h))
        x = self.projection(pixel_values)
        height, width = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), height, width


class LavtWindowAttention(nn.Module):
    """Window self-attention with a learned relative position bias (docs/model.md, "Swin block")."""

    is_causal = False

    def __init__(self, config: LavtConfig, dim: int, num_heads: int, window: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.window = window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        # (window^2, window^2) rows into the table: (dy + w - 1) * (2w - 1) + (dx + w - 1) for the offset (dy, dx).
        self.register_buffer("relative_position_index", gen_relative_position_index((window, window)),
                             persistent=False)

    def position_bias(self) -> torch.Tensor:
        """(heads, window^2, window^2) bias gathered from the table."""
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(self.window**2, self.window**2, -1).permute(2, 0, 1)

    def forward(self, windows: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """windows: (B * nW, N, C); mask: (nW, N, N) additive or None."""
        batch_windows, tokens, dim = windows.shape
        qkv = self.qkv(windows).view(batch_windows, tokens, 3, self.num_heads, dim // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.position_bias().to(query.dtype)[None]
        if mask is not None:  # one mask per window position, the same for every image of the batch
            bias = (bias + mask.to(query.dtype)[:, None]).repeat(batch_windows // mask.shape[0], 1, 1, 1)
        attention = attention_function(self.config, need_weights=False)
        out, _ = attention(self, query, key, value, bias, scaling=query.shape[-1] ** -0.5)
        return self.proj(out.reshape(batch_windows, tokens, dim))


class GeluLinearFunction(torch.autograd.Function):
    """linear(gelu(x), weight, bias), saving x only and recomputing gelu(x) in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return F.linear(F.gelu(x), weight, bias)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, weight = ctx.saved_tensors
        grad_rows = grad_output.reshape(-1, grad_output.shape[-1])
        grad_weight = grad_rows.t() @ F.gelu(x).reshape(-1, x.shape[-1])
        grad_x = torch.ops.aten.gelu_backward(grad_output @ weight, x)
        return grad_x, grad_weight, grad_rows.sum(0)


class GeluLinear(nn.Linear):
    """nn.Linear applied to gelu(input); in training it keeps one MLP-wide activation instead of two, which
    lowers the peak memory of a training step (docs/benchmarks/swin_block.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return super().forward(F.gelu(x))
        # The casts autocast makes for a linear layer: the function computes in the dtype it is given.
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        return GeluLinearFunction.apply(x.to(dtype), self.weight.to(dtype), self.bias.to(dtype))


class LavtMlp(nn.Module):
    """fc2(GELU(fc1(x))), GeluLinear applying the GELU."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = GeluLinear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class LavtSwinBlock(GradientCheckpointingLayer):
    """A Swin block. Padding to the window grid happens after norm1 and before the cyclic shift, and padded
    tokens are not masked (they hold zeros, so their keys and values are the qkv bias), as in the original.
    The shift is kept even when the map fits in one window."""

    def __init__(self, config: LavtConfig, dim: int, num_heads: int, shift: int, drop_path_rate: float):
        super().__init__()
        self.window = config.window_size
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = LavtWindowAttention(config, dim, num_heads, self.window)
        self.drop_path = DropPath(drop_path_rate)  # stochastic depth: the residual branch dropped per sample
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = LavtMlp(dim, int(dim * config.mlp_ratio))

    def forward(self, hidden_states: torch.Tensor, height: int, width: int, mask: torch.Tensor) -> torch.Tensor:
        """hidden_states (B, H * W, C); mask: the stage's `shifted_window_mask`, used when this block shifts."""
        batch, _, channels = hidden_states.shape
        pad_h, pad_w = (-height) % self.window, (-width) % self.window
        x = self.norm1(hidden_states).view(batch, height, width, channels)
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = self.attn(window_partition(x, self.window), mask if self.shift else None)
        x = window_reverse(windows, self.window, height + pad_h, width + pad_w)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x[:, :height, :width].reshape(batch, height * width, channels)
        hidden_states = hidden_states + self.drop_path(x)
        return hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states)))


def instance_norm_tokens(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """InstanceNorm1d without affine over the token axis of a (B, N, C) tensor, in train and eval alike."""
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps)


class LavtPixelWordAttention(GradientCheckpointingLayer):
    """PWAM (docs/model.md): every pixel attends over the words; the attended language feature modulates the
    visual one. A checkpointing layer, so that gradient checkpointing recomputes its dozen per-pixel maps."""

    is_causal = False

    def __init__(self, config: LavtConfig, dim: int, num_heads: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.scale = dim**-0.5  # the full width, not the head width (as in the original)
        text_dim = config.text_config.hidden_size
        self.vision_projection = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(text_dim, dim)
        self.value = nn.Linear(text_dim, dim)
        self.attended_projection = nn.Linear(dim, dim)
        self.output_projection = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(config.fusion_dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, pixels: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """pixels (B, N, C), words (B, T, Dt), word_mask (B, T) of 0/1 -> fused (B, N, C) and, with
        `output_attentions`, the attention weights (B, heads, N, T) (a softmax over the T words per pixel)."""
        mask = word_mask.to(pixels.dtype)
        vision = F.gelu(self.vision_projection(pixels))
        query = self.split_heads(instance_norm_tokens(self.query(pixels)))
        key = self.split_heads(self.key(words) * mask[:, :, None])
        value = self.split_heads(self.value(words) * mask[:, :, None])
        word_bias = (1e4 * mask - 1e4)[:, None, None, :]  # the original's additive mask: padding gets ~0 weight
        attention = attention_function(self.config, need_weights=output_attentions)
        attended, weights = attention(self, query, key, value, word_bias, scaling=self.scale)
        attended = instance_norm_tokens(self.attended_projection(attended.flatten(2)))
        return self.dropout(F.gelu(self.output_projection(vision * attended))), weights


class LavtLanguageGate(nn.Module):
    """How much of the fused feature flows back into the visual stream, per token and channel."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim, bias=False)
        self.fc2 = nn.Linear(dim, dim, bias=False)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc2(F.relu(self.fc1(fused))))


class LavtPatchMerging(nn.Module):
    """2x2 neighbourhood -> one token with twice the channels; odd sizes are zero-padded first."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, int, int]:
        batch, _, channels = x.shape
        x = F.pad(x.view(batch, height, width, channels), (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        new_h, new_w = x.shape[1:3]
        return self.reduction(self.norm(x.view(batch, new_h * new_w, 4 * channels))), new_h, new_w


@dataclass
class LavtStageOutput:
    hidden_states: torch.Tensor  # input of the next stage
    height: int
    width: int
    features: torch.Tensor  # LayerNorm(F_i) as (B, C, H_i, W_i), what the decoder reads
    blocks_output: torch.Tensor
    fused: torch.Tensor
    attentions: torch.Tensor | None  # (B, fusion heads, T, H_i, W_i) when asked for


class LavtStage(nn.Module):
    """Swin blocks, then pixel-word attention, the language gate and patch merging (docs/model.md, "Data flow")."""

    def __init__(self, config: LavtConfig, index: int, drop_path_rates: list[float]):
        super().__init__()
        dim = config.stage_widths[index]
        is_last = index == len(config.depths) - 1
        self.window = config.window_size
        self.blocks = nn.ModuleList(
            LavtSwinBlock(config, dim, config.num_heads[index], shift=(self.window // 2) * (i % 2), drop_path_rate=rate)
            for i, rate in enumerate(drop_path_rates)
        )
        self.fusion = LavtPixelWordAttention(config, dim, config.fusion_num_heads[index])
        # The last stage's gated output would feed nothing (the original computes and discards it).
        self.gate = None if is_last else LavtLanguageGate(dim)
        self.downsample = None if is_last else LavtPatchMerging(dim, config.layer_norm_eps)
        self.output_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor, height: int, width: int, words: torch.Tensor,
                word_mask: torch.Tensor, output_attentions: bool = False) -> LavtStageOutput:
        # One mask for the stage's shifted blocks, over the map padded to the window grid.
        window = self.window
        mask = shifted_window_mask(height + (-height) % window, width + (-width) % window, window, window // 2,
                                   hidden_states.device)
        for block in self.blocks:
            hidden_states = block(hidden_states, height, width, mask)
        blocks_output = hidden_states
        fused, weights = self.fusion(hidden_states, words, word_mask, output_attentions)
        if weights is not None:  # (B, heads, H * W, T) -> one map per token: (B, heads, T, H, W)
            weights = weights.transpose(-1, -2).reshape(*weights.shape[:2], -1, height, width)
        # A channels-last view with the batch stride H * W * C at every batch size (batch 1 included), so that
        # upsampling keeps channels-last and the decoder's convolutions need no conversion.
        features = self.output_norm(fused).view(fused.shape[0], height, width, -1).permute(0, 3, 1, 2)
        out_h, out_w = height, width
        if self.gate is not None:
            hidden_states = hidden_states + self.gate(fused) * fused
            hidden_states, out_h, out_w = self.downsample(hidden_states, height, width)
        return LavtStageOutput(hidden_states, out_h, out_w, features, blocks_output, fused, weights)


class LavtBackbone(nn.Module):
    """The language-aware Swin encoder: patch embedding and four stages, callable one by one."""

    def __init__(self, config: LavtConfig):
        super().__init__()
        self.patch_embed = LavtPatchEmbeddings(config)
        rates = torch.linspace(0, config.drop_path_rate, sum(config.depths)).split(config.depths)
        self.stages = nn.ModuleList(LavtStage(config, i, stage_rates.tolist()) for i, stage_rates in enumerate(rates))

    def forward(self, pixel_values: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor,
                output_attentions: bool = False) -> list[LavtStageOutput]:
        hidden_states, height, width = self.patch_embed(pixel_values)
        outputs = []
        for stage in self.stages:
            out = stage(hidden_states, height, width, words, word_mask, output_attentions)
            outputs.append(out)
            hidden_states, height, width = out.hidden_states, out.height, out.width
        return outputs


class LavtConvBlock(nn.Sequential):
    """Two 3x3 conv -> BatchNorm -> ReLU layers."""

    def __init__(self, in_channels: int, hidden: int):
        super().__init__(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
        )


class LavtDecoder(nn.Module):
    """Top-down decoding: upsample, concatenate the next finer stage, two conv blocks; 1x1 to two classes."""

    def __init__(self, config: LavtConfig):
        super().__init__()
        hidden, widths = config.decoder_hidden_size, config.stage_widths
        self.blocks = nn.ModuleList(
            LavtConvBlock(coarse + fine, hidden) for coarse, fine in zip((widths[3], hidden, hidden), widths[2::-1])
        )
        self.classifier = nn.Conv2d(hidden, 2, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[3]
        for block, skip in zip(self.blocks, (features[2], features[1], features[0])):
            x = block(torch.cat([upsample_logits(x, skip.shape[-2:]), skip], dim=1))
        return self.classifier(x)


class LavtPreTrainedModel(CheckedLoadingMixin, PreTrainedModel):
    config_class = LavtConfig
    base_model_prefix = "lavt"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["LavtSwinBlock", "LavtPixelWordAttention", "BertLayer"]
    # The Swin windows, the pixel-word attention and the text encoder all honour "sdpa" (the default) and "eager".
    _supports_sdpa = True

    def check_inputs(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor | None, labels: torch.Tensor | None) -> None:
        """Clear errors for inputs that would fail deep inside a convolution or attention, and for weights stored
        for autocast run outside it: ValueError naming the input, the problem and what to do. Shapes and dtypes
        only, so that a call never waits for the device; values are checked where data enters."""
        channels, positions = self.config.num_channels, self.config.text_config.max_position_embeddings
        shape, ids = tuple(pixel_values.shape), tuple(input_ids.shape)
        if pixel_values.ndim != 4 or shape[1] != channels:
            raise ValueError(f"pixel_values must have shape (batch, {channels}, height, width), got {shape}")
        if not pixel_values.is_floating_point():
            raise ValueError(f"pixel_values must be a floating-point tensor (normalised image), got "
                             f"{pixel_values.dtype}; use LavtImageProcessor to prepare images")
        if shape[0] == 0:
            raise ValueError("Empty batch: pixel_values holds 0 images; give at least one (image, expression) pair")
        if shape[2] == 0 or shape[3] == 0:
            raise ValueError(f"pixel_values has zero size {shape[2:]} (height, width)")
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must have shape (batch, tokens), got {ids}")
        if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
            raise ValueError(f"input_ids must be integer token ids (torch.long), got {input_ids.dtype}; use "
                             "LavtProcessor to tokenize the expressions")
        if ids[0] != shape[0]:
            raise ValueError(f"batch size mismatch: {shape[0]} images but {ids[0]} expressions; repeat the image "
                             "once per expression (LavtProcessor does this)")
        if ids[1] == 0:
            raise ValueError("input_ids has 0 tokens per expression; give at least [CLS] and [SEP]")
        if ids[1] > positions:
            raise ValueError(f"input_ids has {ids[1]} tokens per expression, more than the text encoder's "
                             f"{positions} positions; tokenize with max_length <= {positions} (the model reads "
                             f"{self.config.max_text_length})")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids {ids}")
        if labels is not None and (labels.ndim != 3 or labels.shape[0] != shape[0]):
            raise ValueError(f"labels must have shape (batch, height, width), got {tuple(labels.shape)}")
        if labels is not None and labels.numel() == 0:
            raise ValueError(f"labels has zero size {tuple(labels.shape)}; give one (height, width) mask per image")
        check_stored_weights_autocast(self, pixel_values.device.type)

    def save_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        """`PreTrainedModel.save_pretrained`; ValueError for weights stored for autocast, which would load as a
        float32 model with rounded weights and nothing to say so."""
        name = stored_weights_dtype(self)
        if name is not None:
            raise ValueError(f"this model's linear and convolution weights are stored in {name} for autocast "
                             "(store_weights_for_autocast): saved, they would load as a float32 model with rounded "
                             "weights; save the model before storing its weights")
        return super().save_pretrained(*args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, LavtWindowAttention):
            init.trunc_normal_(module.relative_position_bias_table, std=std)
            init.copy_(module.relative_position_index, gen_relative_position_index((module.window, module.window)))
        else:
            super()._init_weights(module)


class LavtModel(LavtPreTrainedModel):
    """The headless LAVT: the text encoder and the language-aware Swin encoder, returning the four feature maps a
    segmentation head reads. `LavtForReferringSegmentation` holds one as `model.lavt`; `LavtModel.from_pretrained`
    loads that part of a saved `LavtForReferringSegmentation`. Inputs come from [`LavtProcessor`].
    """

    # A saved LavtForReferringSegmentation also holds its segmentation head, which the headless model leaves out.
    _keys_to_ignore_on_load_unexpected = [r"^decoder\."]

    def __init__(self, config: LavtConfig):
        super().__init__(config)
        self.text_encoder = AutoModel.from_config(config.text_config, add_pooling_layer=False)
        self.backbone = LavtBackbone(config)
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                check_inputs: bool = True) -> LavtModelOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, 3, height, width)`): normalised images, cast to the
            model's dtype unless autocast is on.
        input_ids (`torch.LongTensor` of shape `(batch, tokens)`): the referring expressions (one per image).
        attention_mask (`torch.LongTensor` of shape `(batch, tokens)`): 1 for kept tokens.
        output_attentions (`bool`, defaults to `config.output_attentions`): also return the pixel-word attention
            weights of every stage (computed eagerly).
        output_hidden_states (`bool`, defaults to `config.output_hidden_states`): also return the text hidden
            states and the per-stage intermediate tensors.
        return_dict (`bool`, defaults to `config.return_dict`): `False` returns a tuple of the non-`None` fields.
        check_inputs (`bool`, defaults to `True`): `False` skips `check_inputs` (and its ValueErrors), for a
            caller that made them.
        """
        if check_inputs:
            self.check_inputs(pixel_values, input_ids, attention_mask, None)
        if not torch.is_autocast_enabled(pixel_values.device.type):  # else autocast picks the compute dtype
            pixel_values = pixel_values.to(self.dtype)  # e.g. float64 images for a float32 model
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # An encoder keeps no cache (saying so also spares a warning under gradient checkpointing).
        words = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        stages = self.backbone(pixel_values, words, attention_mask, output_attentions)
        return LavtModelOutput(
            stage_features=tuple(stage.features for stage in stages),
            text_hidden_states=words if output_hidden_states else None,
            vision_hidden_states=tuple(s.blocks_output for s in stages) if output_hidden_states else None,
            fused_hidden_states=tuple(s.fused for s in stages) if output_hidden_states else None,
            attentions=tuple(s.attentions for s in stages) if output_attentions else None,
        )


class LavtForReferringSegmentation(LavtPreTrainedModel):
    """LAVT: segments the object a sentence refers to. Inputs come from [`LavtProcessor`]; [`LavtModel`] (as
    `self.lavt`) computes the language-aware features, [`LavtDecoder`] the 2-class logits."""

    def __init__(self, config: LavtConfig):
        super().__init__(config)
        self.lavt = LavtModel(config)
        self.decoder = LavtDecoder(config)
        self.criterion = LavtLoss(config)
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None,
                original_sizes: Sequence[tuple[int, int]] | torch.Tensor | None = None) -> LavtReferringSegmentationOutput:
        r"""
        pixel_values, input_ids, attention_mask, output_attentions, return_dict: as in [`LavtModel.forward`],
            checked by `check_inputs` (ValueError) as `labels` are.
        labels (`torch.LongTensor` of shape `(batch, H, W)`): 1 on the referred object, 0 elsewhere; the logits
            are upsampled to the label size for the loss.
        original_sizes: returned by the processor and accepted so that `model(**processor(...))` works; unused
            here (post-processing takes them as `target_sizes`).
        output_hidden_states (`bool`, defaults to `config.output_hidden_states`): also return the stage features,
            the text hidden states and the per-stage intermediate tensors.
        """
        self.check_inputs(pixel_values, input_ids, attention_mask, labels)
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        outputs = self.lavt(pixel_values, input_ids, attention_mask, output_attentions=output_attentions,
                            output_hidden_states=output_hidden_states, check_inputs=False, return_dict=True)
        logits = self.decoder(outputs.stage_features)
        loss, loss_terms = self.criterion(logits, labels) if labels is not None else (None, None)
        # The stage features are always computed (the decoder reads them) but returned only when asked for.
        return LavtReferringSegmentationOutput(
            loss=loss, logits=logits, loss_terms=loss_terms,
            stage_features=outputs.stage_features if output_hidden_states else None,
            **{name: value for name, value in outputs.items() if name != "stage_features"},
        )


__all__ = ["LavtForReferringSegmentation", "LavtModel", "LavtModelOutput", "LavtPreTrainedModel",
           "LavtReferringSegmentationOutput"]
