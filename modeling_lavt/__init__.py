"""LAVT for referring image segmentation on the Hugging Face stack."""

from .configuration_lavt import PRESETS, LavtConfig

__all__ = ["LavtConfig", "PRESETS"]
