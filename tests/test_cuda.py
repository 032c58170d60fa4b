# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The model on a CUDA device: the same function as on the CPU, and training under bf16 autocast.

These run only where CUDA is available (a developer's GPU machine; CI has none); the CPU suite pins the model
to the original's outputs, so agreeing with the CPU here pins the CUDA paths (fused attention kernels,
channels-last convolutions) to the original too.
"""

import copy

import pytest
import torch

from modeling_lavt import LavtForReferringSegmentation
from tests.conftest import tiny_lavt_config, tiny_text_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def exact_float32():
    """Plain float32 matrix products (no TF32) for the comparison with the CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def inputs(batch: int, height: int, width: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "pixel_values": torch.randn(batch, 3, height, width, generator=generator),
        "input_ids": torch.randint(1, 100, (batch, 20), generator=generator),
        "attention_mask": (torch.arange(20) < torch.tensor([[20], [7]])[:batch]).long(),
        "labels": torch.randint(0, 2, (batch, height, width), generator=generator),
    }
    return {name: tensor.to(device) for name, tensor in tensors.items()}


def model_with_windows() -> LavtForReferringSegmentation:
    """A small model whose windows exercise padding and the shift at every stage of a 75x90 input."""
    torch.manual_seed(0)
    text = tiny_text_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # same runs on both devices
    return LavtForReferringSegmentation(tiny_lavt_config(embed_dim=16, window_size=7, text_config=text))


def test_cuda_matches_cpu_in_float32(exact_float32):
    model = model_with_windows().eval()
    cpu_inputs = inputs(2, 75, 90)
    with torch.no_grad():
        expected = model(**cpu_inputs)
        got = copy.deepcopy(model).cuda()(**inputs(2, 75, 90, "cuda"))
    torch.testing.assert_close(got.logits.cpu(), expected.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.loss.cpu(), expected.loss, atol=1e-5, rtol=0)


def gradient_errors(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per parameter: |got - expected| / max(|expected|, 1e-3 |all expected|) (Frobenius norms). Some gradients
    are zero in exact arithmetic (biases before an instance norm or a softmax that ignores them) and only
    rounding noise in float32; the floor judges those against the model's gradient as a whole."""
    floor = 1e-3 * torch.stack([grad.norm() for grad in expected.values()]).norm()
    return {name: ((got[name].to(grad.device) - grad).norm() / torch.maximum(grad.norm(), floor)).item()
            for name, grad in expected.items()}


def test_cuda_gradients_match_cpu(exact_float32):
    """Random labels make each gradient a sum of nearly cancelling pixel terms, which magnifies rounding: CPU
    float32 against float64 differs by up to 3e-4 here, CUDA float32 against CPU float32 by 5.7e-3 (H200,
    memory-efficient attention kernels). A wrong backward pass is off by order 1."""
    model = model_with_windows().train()
    cuda_model = copy.deepcopy(model).cuda()
    model(**inputs(2, 75, 90)).loss.backward()
    cuda_model(**inputs(2, 75, 90, "cuda")).loss.backward()
    errors = gradient_errors({n: p.grad for n, p in cuda_model.named_parameters()},
                             {n: p.grad for n, p in model.named_parameters()})
    assert max(errors.values()) < 3e-2, sorted(errors.items(), key=lambda item: -item[1])[:5]


def test_cuda_checkpointing_gives_the_same_gradients(exact_float32):
    model = model_with_windows().cuda().train()
    batch = inputs(2, 75, 90, "cuda")

    def gradients() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model(**batch).loss.backward()
        return {name: param.grad.clone() for name, param in model.named_parameters()}

    plain = gradients()
    model.activation_checkpointing_enable()
    errors = gradient_errors(gradients(), plain)
    assert max(errors.values()) < 1e-3, sorted(errors.items(), key=lambda item: -item[1])[:5]


def test_cuda_bf16_training_step():
    """Under bf16 autocast the loss stays float32 and close to the float32 loss, and every gradient is finite."""
    model = model_with_windows().cuda().train()
    batch = inputs(2, 75, 90, "cuda")
    with torch.no_grad():
        float32_loss = model(**batch).loss
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(**batch)
    assert out.loss.dtype == torch.float32
    torch.testing.assert_close(out.loss, float32_loss, rtol=2e-2, atol=0)
    out.loss.backward()
    assert all(torch.isfinite(param.grad).all() for param in model.parameters())


def test_cuda_bf16_stored_weights_give_autocasts_outputs():
    from modeling_lavt.precision import store_weights_for_autocast

    model = model_with_windows().cuda().eval()
    stored = store_weights_for_autocast(copy.deepcopy(model), "bf16")
    batch = {name: tensor for name, tensor in inputs(2, 64, 64, "cuda").items() if name != "labels"}
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        assert torch.equal(stored(**batch).logits, model(**batch).logits)
