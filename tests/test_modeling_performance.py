# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The model's fast paths compute exactly what the straightforward definitions do (docs/model.md, "Swin block"), and the
visual path compiles without graph breaks."""

import pytest
import torch
import torch.nn.functional as F

from modeling_lavt import LavtForReferringSegmentation
from modeling_lavt.modeling_lavt import (
    GeluLinearFunction,
    LavtMlp,
    shifted_window_mask,
    window_layout,
    window_partition,
)
from tests.conftest import tiny_lavt_config

GEOMETRIES = [(8, 8, 4, 0), (8, 8, 4, 2), (7, 9, 4, 2), (5, 3, 4, 2), (14, 14, 7, 3), (15, 15, 12, 6), (2, 1, 4, 2)]


def reference_windows(x: torch.Tensor, height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """docs/model.md's order: zero-pad right / bottom to the window grid, roll by (-s, -s), cut into windows."""
    x = x.view(x.shape[0], height, width, -1)
    x = F.pad(x, (0, 0, 0, (-width) % window, 0, (-height) % window))
    return window_partition(torch.roll(x, shifts=(-shift, -shift), dims=(1, 2)), window)


def reference_tokens(windows: torch.Tensor, height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """docs/model.md's order back: merge the windows, roll by (s, s), crop to (H, W)."""
    padded_h, padded_w = height + (-height) % window, width + (-width) % window
    channels = windows.shape[-1]
    x = windows.view(-1, padded_h // window, padded_w // window, window, window, channels)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, padded_h, padded_w, channels)
    x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
    return x[:, :height, :width].reshape(x.shape[0], height * width, channels)


@pytest.mark.parametrize("height,width,window,shift", GEOMETRIES)
def test_window_layout_is_pad_roll_partition_and_back(height, width, window, shift):
    layout = window_layout(height, width, window, shift, torch.device("cpu"))
    x = torch.randn(2, height * width, 3)
    padded = F.pad(x, (0, 0, 0, 1)) if layout.padded else x
    windows = padded.index_select(1, layout.gather).view(-1, window * window, 3)
    assert torch.equal(windows, reference_windows(x, height, width, window, shift))
    assert layout.padded == (height % window != 0 or width % window != 0)
    processed = windows * 2 + 1
    back = processed.view(2, -1, 3).index_select(1, layout.scatter)
    assert torch.equal(back, reference_tokens(processed, height, width, window, shift))
    if shift:
        expected = shifted_window_mask(height + (-height) % window, width + (-width) % window, window, shift)
        assert torch.equal(layout.mask, expected)
    else:
        assert layout.mask is None


def test_shifted_window_attention_weights_have_no_denormals():
    """Pairs of different regions get exactly zero weight. With the original's -100 they got exp(-100) / sum,
    about 1e-44: a float32 denormal, on which x86 CPUs compute slowly (ONNX Runtime's float32 graph ran at 0.62x
    eager at Swin-B 480, the softmax 5x and matrix products after it up to 40x slower)."""
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    block = model.lavt.backbone.stages[1].blocks[1]  # a shifted block
    mask = block.layout(12, 12, torch.device("cpu")).mask
    assert mask is not None and set(mask.unique().tolist()) == {0.0, float("-inf")}
    torch.manual_seed(0)
    windows = torch.randn(mask.shape[0], mask.shape[1], block.attn.qkv.in_features)
    with torch.no_grad():
        qkv = block.attn.qkv(windows).view(*windows.shape[:2], 3, block.attn.num_heads, -1)
        query, key, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        logits = query @ key.transpose(-1, -2) * query.shape[-1] ** -0.5
        weights = torch.softmax(logits + block.attn.attention_bias(mask, torch.float32), -1)
    assert weights[weights != 0].min() >= torch.finfo(torch.float32).tiny  # no denormal anywhere
    assert (weights == 0).sum() == (mask != 0).sum() * block.attn.num_heads


def test_cached_attention_bias_follows_the_weights():
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    block = model.lavt.backbone.stages[1].blocks[1]
    attention, mask = block.attn, block.layout(8, 8, torch.device("cpu")).mask
    with torch.no_grad():
        first = attention.cached_attention_bias(mask, torch.float32)
        assert attention.cached_attention_bias(mask, torch.float32) is first
        assert torch.equal(first, attention.attention_bias(mask, torch.float32))
        attention.relative_position_bias_table.add_(1.0)  # like an optimizer step between two evaluations
        updated = attention.cached_attention_bias(mask, torch.float32)
        # Recomputed from the new table (not first + 1, which can round differently).
        assert torch.equal(updated, attention.attention_bias(mask, torch.float32))
    torch.testing.assert_close(updated, first + 1.0)
    assert attention.cached_attention_bias(mask, torch.float32).requires_grad  # with grad: never the cache


def test_inference_with_the_cache_follows_the_weights():
    """Cached no-grad forwards repeat the first one exactly, and see weight updates made between them."""
    torch.manual_seed(0)
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    pixels, ids = torch.randn(2, 3, 37, 50), torch.randint(1, 100, (2, 20))
    with torch.no_grad():
        first, second = model(pixels, ids).logits, model(pixels, ids).logits
        for name, parameter in model.named_parameters():
            if name.endswith("relative_position_bias_table"):
                parameter.mul_(-2.0)
        updated = model(pixels, ids).logits
        fresh = LavtForReferringSegmentation(tiny_lavt_config()).eval()
        fresh.load_state_dict(model.state_dict())
        expected = fresh(pixels, ids).logits
    with torch.inference_mode():
        third = model(pixels, ids).logits
    assert torch.equal(first, second)
    assert torch.equal(updated, expected) and torch.equal(third, expected)
    assert not torch.equal(updated, first)


@pytest.mark.parametrize("batch", [1, 2])
def test_decoder_reads_channels_last_features(batch):
    """The stage features are NHWC views of the token maps: the decoder's convolutions run channels-last
    (measurably faster on CPU) without a copy. A `.contiguous()` would silently undo that, and so did features
    whose batch stride was not channels-last's at batch 1: upsampling turned them into NCHW, and every decoder
    convolution converted its output back (about 10% of a bf16 Swin-B 480 inference)."""
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


def test_training_after_inference_mode():
    """Window layouts first built under torch.inference_mode are normal tensors a backward pass can save."""
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    pixels, ids = torch.randn(2, 3, 37, 50), torch.randint(1, 100, (2, 20))
    with torch.inference_mode():
        model(pixels, ids)
    model.train()
    model(pixels, ids, labels=torch.randint(0, 2, (2, 37, 50))).loss.backward()
    assert model.lavt.backbone.stages[0].blocks[0].attn.qkv.weight.grad is not None


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
    torch.testing.assert_close(recomputing[0], plain[0])  # the same operations (kernels may vary with alignment)
    for ours, reference in zip(recomputing[1:], plain[1:]):
        torch.testing.assert_close(ours, reference, rtol=1e-2 if autocast else 1e-5, atol=1e-3 if autocast else 1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        assert saved_activations(mlp, x) == [2 * 5 * 8, 2 * 5 * 32]  # the input, the pre-activation
