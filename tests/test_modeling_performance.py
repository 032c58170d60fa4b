# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Properties of the model that cost nothing in exactness but matter for speed or memory: no denormal attention
weights, channels-last stage features, a visual path that compiles without graph breaks, and an MLP that keeps
one wide activation for the backward pass instead of two."""

import pytest
import torch
import torch.nn.functional as F

from modeling_lavt import LavtForReferringSegmentation
from modeling_lavt.modeling_lavt import (
    GeluLinearFunction,
    LavtMlp,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
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


def test_gelu_linear_gradients():
    shapes = [(2, 3, 8), (5, 8), (5,)]  # input, weight, bias
    inputs = tuple(torch.randn(*shape, dtype=torch.float64, requires_grad=True) for shape in shapes)
    assert torch.autograd.gradcheck(GeluLinearFunction.apply, inputs)


def saved_activations(mlp: LavtMlp, x: torch.Tensor) -> list[int]:
    """Element counts of the distinct storages the MLP keeps for its backward pass, weights left out."""
    saved, weights = {}, {mlp.fc1.weight.numel(), mlp.fc2.weight.numel()}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        elements = tensor.untyped_storage().nbytes() // tensor.element_size()
        if elements not in weights:
            saved[tensor.untyped_storage().data_ptr()] = elements
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        mlp(x)
    return sorted(saved.values())


@pytest.mark.parametrize("autocast", [False, True])
def test_mlp_recomputes_its_widest_activation(autocast):
    """Same output and gradients as fc2(gelu(fc1(x))) with plain linear layers, keeping the input and the
    pre-activation only (gelu's output, as wide, is recomputed in the backward pass)."""
    torch.manual_seed(0)
    mlp, x = LavtMlp(8, 32), torch.randn(2, 5, 8, requires_grad=True)

    def run(forward):
        mlp.zero_grad()
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = forward(x)
        out.float().square().sum().backward()
        return out, x.grad, mlp.fc1.weight.grad, mlp.fc2.weight.grad, mlp.fc2.bias.grad

    plain = run(lambda x: F.linear(F.gelu(mlp.fc1(x)), mlp.fc2.weight, mlp.fc2.bias))
    recomputing = run(mlp)
    torch.testing.assert_close(recomputing[0], plain[0])
    for ours, reference in zip(recomputing[1:], plain[1:]):
        torch.testing.assert_close(ours, reference, rtol=1e-2 if autocast else 1e-5, atol=1e-3 if autocast else 1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        assert saved_activations(mlp, x) == [2 * 5 * 8, 2 * 5 * 32]  # the input, the pre-activation
