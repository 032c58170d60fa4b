# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Properties of the model that cost nothing in exactness but matter for speed: no denormal attention weights,
channels-last stage features, and a visual path that compiles without graph breaks."""

import pytest
import torch

from modeling_lavt import LavtForReferringSegmentation
from modeling_lavt.modeling_lavt import shifted_window_mask, window_partition, window_reverse
from tests.conftest import tiny_lavt_config


def test_window_reverse_inverts_window_partition():
    x = torch.randn(2, 8, 12, 3)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 16, 3)
    assert torch.equal(windows[1], x[0, :4, 4:8].reshape(16, 3))  # row-major window order
    assert torch.equal(window_reverse(windows, 4, 8, 12), x)


def test_shifted_window_attention_weights_have_no_denormals():
    """Pairs of different regions get exactly zero weight. With the original's -100 they got exp(-100) / sum,
    a float32 denormal, on which x86 CPUs compute slowly (docs/model.md, "Swin block")."""
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    attention = model.lavt.backbone.stages[1].blocks[1].attn  # a shifted block's
    mask = shifted_window_mask(12, 12, 4, 2)
    assert set(mask.unique().tolist()) == {0.0, float("-inf")}
    torch.manual_seed(0)
    windows = torch.randn(mask.shape[0], mask.shape[1], attention.qkv.in_features)
    with torch.no_grad():
        qkv = attention.qkv(windows).view(*windows.shape[:2], 3, attention.num_heads, -1)
        query, key, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        logits = query @ key.transpose(-1, -2) * query.shape[-1] ** -0.5
        weights = torch.softmax(logits + attention.position_bias() + mask[:, None], -1)
    assert weights[weights != 0].min() >= torch.finfo(torch.float32).tiny  # no denormal anywhere
    assert (weights == 0).sum() == (mask != 0).sum() * attention.num_heads


@pytest.mark.parametrize("batch", [1, 2])
def test_decoder_reads_channels_last_features(batch):
    """The stage features are NHWC views of the token maps: the decoder's convolutions run channels-last
    without a copy. A `.contiguous()` would silently undo that, and so did features whose batch stride was not
    channels-last's at batch 1: upsampling turned them into NCHW, and every decoder convolution converted its
    output back."""
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    block_inputs = []
    for block in model.decoder.blocks:
        block.register_forward_pre_hook(lambda module, args: block_inputs.append(args[0]))
    with torch.no_grad():
        out = model(torch.randn(batch, 3, 64, 64), torch.randint(1, 100, (batch, 20)), output_hidden_states=True)
    for features in out.stage_features:
        assert features.is_contiguous(memory_format=torch.channels_last)
        _, channels, height, width = features.shape
        assert features.stride() == (height * width * channels, 1, width * channels, channels)
    assert len(block_inputs) == 3
    assert all(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() for x in block_inputs)


@pytest.mark.parametrize("training", [False, True])
def test_no_graph_breaks(training):
    model = LavtForReferringSegmentation(tiny_lavt_config()).train(training)
    pixels, ids = torch.randn(2, 3, 37, 50), torch.randint(1, 100, (2, 20))
    labels = torch.randint(0, 2, (2, 37, 50)) if training else None
    with torch.set_grad_enabled(training):
        explanation = torch._dynamo.explain(model)(pixels, ids, labels=labels)
    assert explanation.graph_break_count == 0, [b.reason for b in explanation.break_reasons]


def test_no_graph_breaks_in_the_checkpointed_visual_path():
    """With gradient checkpointing the text encoder (transformers' code) logs a warning, which breaks its graph;
    the visual path (backbone with checkpointed Swin blocks and pixel-word attention) stays one graph."""
    model = LavtForReferringSegmentation(tiny_lavt_config()).train()
    model.activation_checkpointing_enable()
    pixels, words, word_mask = torch.randn(2, 3, 37, 50), torch.randn(2, 20, 32), torch.ones(2, 20)
    explanation = torch._dynamo.explain(model.lavt.backbone)(pixels, words, word_mask)
    assert explanation.graph_break_count == 0, [b.reason for b in explanation.break_reasons]
