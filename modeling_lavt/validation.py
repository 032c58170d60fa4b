# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Checks of what users hand to LAVT, run once where data enters (`from_pretrained`, the processors, the
pipeline, the CLIs, the training and evaluation views): each raises before any work is done, naming the input,
what is wrong and what to do, instead of an error from deep inside a library or a silent wrong answer. The
model's `forward` checks shapes and dtypes only, so it reads no value and never waits for the device.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import httpx, validate_repo_id
from PIL import Image, UnidentifiedImageError
from safetensors import SafetensorError, safe_open
from transformers import PretrainedConfig
from transformers import initialization as init
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

_BIAS_TABLE = "relative_position_bias_table"
_PATCH_EMBEDDING = "patch_embed.projection.weight"
_LISTED_KEYS = 5  # weight names quoted in an error; the rest are counted


def check_target_sizes(target_sizes: Any, batch_size: int) -> list[tuple[int, int]] | None:
    """`target_sizes` of post-processing as one `(height, width)` pair of positive ints per sample; ValueError
    for a bare `(h, w)` pair, another count than the batch size, or an entry that is not such a pair."""
    if target_sizes is None:
        return None
    sizes = target_sizes.tolist() if isinstance(target_sizes, torch.Tensor) else list(target_sizes)
    if len(sizes) == 2 and all(isinstance(v, int | float) for v in sizes):
        raise ValueError(
            f"target_sizes must hold one (height, width) pair per sample, got the single pair {tuple(sizes)} for "
            f"a batch of {batch_size}; pass [{tuple(sizes)}] * {batch_size}")
    if len(sizes) != batch_size:
        raise ValueError(f"Got {len(sizes)} target sizes for a batch of {batch_size} logits")
    pairs = []
    for index, size in enumerate(sizes):
        pair = tuple(size) if isinstance(size, Sequence) else (size,)
        if len(pair) != 2 or not all(isinstance(v, int) or float(v).is_integer() for v in pair):
            raise ValueError(f"target_sizes[{index}] must be a (height, width) pair of integers, got {size!r}")
        height, width = (int(v) for v in pair)
        if height <= 0 or width <= 0:
            raise ValueError(f"target_sizes[{index}] must have positive sides, got (height, width) = {pair}")
        pairs.append((height, width))
    return pairs


def check_probability_threshold(name: str, value: Any) -> None:
    """A threshold on a probability: `None` (not used) or a real number in [0, 1]."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                              or not 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def check_text_argument(text: Any) -> None:
    """`text` must be one referring expression (a string) or an iterable of them, else a ValueError."""
    if isinstance(text, bytes | bytearray) or not isinstance(text, Iterable):
        raise ValueError(
            f"text must be a referring expression (a string) or a list of them, got {type(text).__name__}: "
            f"{text!r}")


def check_referring_expressions(texts: Sequence[Any], tokenizer: Any = None) -> None:
    """Every expression must be a string with at least one word piece (without a tokenizer: non-blank); a
    blank one, or one of characters the tokenizer drops ("\\u200b"), would still get a mask. ValueError
    "Referring expression {index} is empty ...", index = position in `texts`."""
    for index, expression in enumerate(texts):
        if not isinstance(expression, str) or not expression.strip():
            raise ValueError(f"Referring expression {index} is empty or not a string: {expression!r}")
    if tokenizer is None:
        return
    word_pieces = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    for index, (expression, pieces) in enumerate(zip(texts, word_pieces)):
        if not pieces:
            raise ValueError(
                f"Referring expression {index} is empty after tokenization: {expression!r} holds no word the "
                "tokenizer keeps")


def check_tokenizer_fits(tokenizer: Any, config: Any) -> None:
    """A tokenizer with more entries than `config.text_config.vocab_size` (another BERT, added tokens) would
    give ids the text encoder has no embedding for: a ValueError naming both sizes."""
    size, vocabulary = len(tokenizer), config.text_config.vocab_size
    if size > vocabulary:
        raise ValueError(
            f"The tokenizer has {size} entries but the model's text encoder knows {vocabulary} "
            "(text_config.vocab_size): its ids beyond that have no embedding; use the tokenizer the model was "
            "trained with (the LavtProcessor saved beside it)")


def load_image_url(url: str, timeout: float | None = None) -> Image.Image:
    """Download and decode the image at an http(s) `url`; ValueError naming the URL and the cause: the
    server's answer (e.g. 404 Not Found), a host that does not resolve or answer, a timeout, or no image."""
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPStatusError as error:
        raise ValueError(
            f"Cannot download the image {url}: the server answered {error.response.status_code} "
            f"{error.response.reason_phrase}") from error
    except httpx.HTTPError as error:
        raise ValueError(
            f"Cannot download the image {url}: {type(error).__name__}: {error} (check the address and the "
            "network)") from error
    try:
        image = Image.open(io.BytesIO(response.content))
        image.load()
    except (UnidentifiedImageError, OSError) as error:
        kind = response.headers.get("content-type", "unknown type")
        raise ValueError(f"{url} did not return a readable image ({kind}): {error}") from error
    return image


def is_hub_repo_id(name: str | os.PathLike | None, owner_required: bool = False) -> bool:
    """Whether `name` can only mean a Hub repo: a valid repo id that is no local path and does not start like
    one ('.', '/', '~'). `owner_required` asks for the `owner/name` form (what card metadata links)."""
    if not name:
        return False
    name = os.fspath(name)
    if os.path.exists(name) or name.startswith((".", "/", "~")) or (owner_required and "/" not in name):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def check_model_location(name: str | os.PathLike) -> None:
    """A model to load must be an existing local path or a valid Hub repo id, else a FileNotFoundError "Model
    folder ... not found" (huggingface_hub would only say "Repo id must be in the form ...")."""
    if not isinstance(name, str | os.PathLike) or os.path.exists(name) or is_hub_repo_id(name):
        return
    raise FileNotFoundError(f"Model folder {os.fspath(name)} not found (it is neither a local folder nor a "
                            "Hub repo id); check the path")


def _holds_any(folder: str | os.PathLike, names: Iterable[str]) -> bool:
    return any(os.path.isfile(os.path.join(folder, name)) for name in names)


# What `LavtProcessor.from_pretrained` reads from a model folder, by the name an error gives it.
_PROCESSOR_FILES = {"processor_config.json": ("processor_config.json", "preprocessor_config.json"),
                    "tokenizer files (tokenizer.json or vocab.txt)": ("tokenizer.json", "vocab.txt")}


def check_processor_files(folder: str | os.PathLike) -> None:
    """A local model folder must hold its processor's settings and tokenizer (transformers would only say it
    cannot build a tokenizer), else a FileNotFoundError naming the folder, the missing files and how to add
    them."""
    if not os.path.isdir(folder):
        return
    missing = [what for what, names in _PROCESSOR_FILES.items() if not _holds_any(folder, names)]
    if missing:
        raise FileNotFoundError(
            f"Model folder {os.fspath(folder)} lacks {' and '.join(missing)}: convert with lavt-convert --tokenizer "
            "bert-base-uncased (the text encoder's tokenizer), or save the processor into it with "
            f"LavtProcessor(LavtImageProcessor(size=...), AutoTokenizer.from_pretrained(...)).save_pretrained(DIR)"
        )


def is_finite(tensor: torch.Tensor) -> bool:
    """Whether a non-empty floating-point tensor holds no NaN or inf: exact from its minimum and maximum, and
    some ten times faster on a CPU than `torch.isfinite(tensor).all()`."""
    lowest, highest = torch.aminmax(tensor)
    return bool(torch.isfinite(lowest) & torch.isfinite(highest))


def check_finite_weights(tensors: Mapping[str, torch.Tensor], source: str | os.PathLike | None) -> None:
    """Refuse weights that hold NaN or inf (the model would predict empty masks without a word): a ValueError
    "{source}: N weight tensors hold NaN or inf values (their names)"."""
    bad = [name for name, tensor in tensors.items()
           if tensor.is_floating_point() and tensor.numel() and tensor.device.type != "meta" and not is_finite(tensor)]
    if bad:
        raise ValueError(
            f"{source}: {len(bad)} weight tensors hold NaN or inf values ({_key_list(bad)}); the training run that "
            "wrote them diverged or the file is damaged: use an earlier checkpoint")


def _checkpoint_shapes(folder: str) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the safetensors weights `from_pretrained` reads from a local folder
    (model.safetensors, or the shards its index names), from the headers alone; {} without them. OSError for
    a truncated or corrupt file."""
    files = [os.path.join(folder, SAFE_WEIGHTS_NAME)]
    index = os.path.join(folder, SAFE_WEIGHTS_INDEX_NAME)
    if not os.path.isfile(files[0]):
        if not os.path.isfile(index):
            return {}
        with open(index, encoding="utf-8") as file:
            shards = sorted(set(json.load(file)["weight_map"].values()))
        files = [os.path.join(folder, shard) for shard in shards]
    shapes = {}
    for file in files:
        try:
            with safe_open(file, framework="pt") as weights:
                shapes.update({name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()})
        except (SafetensorError, OSError) as error:
            raise OSError(
                f"{file} is not a readable safetensors file ({error}): it is truncated or corrupt; save or download "
                "it again") from error
    return shapes


def model_shapes(model_class: type, config: PretrainedConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every weight of `model_class(config)`, built on the meta device (no memory, no
    initialisation): what `from_pretrained` expects in the checkpoint."""
    # meta_device_safe_creation_ops keeps the few tensors __init__ reads (the drop-path schedule) on the CPU,
    # as transformers' own loading does.
    with torch.device("meta"), init.meta_device_safe_creation_ops():
        model = model_class(config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def check_checkpoint_fits(model_class: type, config: PretrainedConfig, saved: Mapping[str, Sequence[int]],
                          source: str, strict: bool) -> None:
    """Pair the checkpoint's tensors (`saved`, name -> shape) with those `model_class(config)` expects as
    `from_pretrained` does (with or without the "lavt." prefix, ignoring what the class ignores) and refuse
    what does not fit (`refuse_unfit_checkpoint`)."""
    prefix = f"{model_class.base_model_prefix}."
    expected = {name.removeprefix(prefix): (name, shape) for name, shape in model_shapes(model_class, config).items()}
    held = {name.removeprefix(prefix): (name, tuple(shape)) for name, shape in saved.items()}
    ignored = [re.compile(pattern) for pattern in model_class._keys_to_ignore_on_load_unexpected or []]
    mismatched = [(expected[key][0], held[key][1], expected[key][1]) for key in sorted(held.keys() & expected.keys())
                  if held[key][1] != expected[key][1]]
    missing = [expected[key][0] for key in expected.keys() - held.keys()]
    unexpected = [held[key][0] for key in held.keys() - expected.keys()
                  if not any(pattern.search(key) for pattern in ignored)]
    refuse_unfit_checkpoint(source, missing, unexpected, mismatched, strict)


def refuse_unfit_checkpoint(source: str, missing: Iterable[str], unexpected: Iterable[str],
                            mismatched: Sequence[tuple[str, Sequence[int], Sequence[int]]], strict: bool) -> None:
    """Refuse a checkpoint whose weights do not fit the model its configuration describes: tensors of other
    shapes (`mismatched`: name, shape in the checkpoint, shape in the model) always, naming the window size or
    width config.json contradicts (transformers would re-initialise them); missing or unexpected weights
    unless `strict` is False (missing ones are then initialised at random, as transformers does).

    Raises:
        ValueError: naming the checkpoint, the window sizes, the widths or the weights.
    """
    for key, saved_shape, model_shape in mismatched:
        if key.endswith(_BIAS_TABLE):
            raise ValueError(
                f"{source} holds weights trained with window size {_table_window(saved_shape)}, but window size "
                f"{_table_window(model_shape)} was requested (config.json, window_size= or config=); load it with "
                "its own window size (to move a Swin backbone to another window, use "
                "modeling_lavt.weights.pretrained.load_swin_backbone, which resizes the tables)")
    for key, saved_shape, model_shape in mismatched:
        if key.endswith(_PATCH_EMBEDDING):
            raise ValueError(
                f"{source}: config.json says embed_dim {model_shape[0]} but the weights have width {saved_shape[0]} "
                f"({key}); use the config.json saved with these weights")
    if mismatched:
        key, saved_shape, model_shape = mismatched[0]
        raise ValueError(
            f"{source}: config.json does not fit the weights: {len(mismatched)} tensors have other shapes, e.g. "
            f"{key} is {tuple(saved_shape)} in the weights but {tuple(model_shape)} in the model config.json "
            "describes; use the config.json saved with these weights")
    problems = [
        f"{len(keys)} weights of the model are {what} ({_key_list(keys)})"
        for keys, what in ((list(missing), "missing from the checkpoint"),
                           (list(unexpected), "in the checkpoint but not in the model"))
        if keys
    ]
    if strict and problems:
        raise ValueError(
            f"{source} does not match its configuration: {'; '.join(problems)}. Check that config.json (depths, "
            "widths, text encoder) belongs to these weights; pass strict=False to load anyway with missing weights "
            "initialised at random")


def _table_window(shape: Sequence[int]) -> int:
    """Window size of a (2w - 1)^2-row relative position bias table."""
    return (math.isqrt(int(shape[0])) + 1) // 2


def _key_list(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    listed = ", ".join(keys[:_LISTED_KEYS])
    return listed if len(keys) <= _LISTED_KEYS else f"{listed}, ... {len(keys) - _LISTED_KEYS} more"


def _loading_config(model_class: type, source: str, kwargs: Mapping[str, Any]) -> PretrainedConfig:
    """The configuration `model_class.from_pretrained(source, **kwargs)` builds its model from: `config=` (an
    object, or a folder to read), else source's config.json, with the keyword arguments naming its fields."""
    config = kwargs.get("config")
    if isinstance(config, PretrainedConfig):
        return config
    fields = model_class.config_class().to_dict().keys()
    overrides = {key: value for key, value in kwargs.items() if key in fields}
    return model_class.config_class.from_pretrained(config or source, subfolder=kwargs.get("subfolder") or "",
                                                    **overrides)


# Loading options under which the files or tensor names differ from a plain folder's: not checked beforehand.
_REMAPPED_LOADING = frozenset({"key_mapping", "variant", "gguf_file", "state_dict"})


class CheckedLoadingMixin:
    """`from_pretrained` that names the problem where transformers would load a wrong model: a local folder's
    safetensors headers are compared with the model built on the meta device before anything is loaded, then
    the missing and unexpected weights of any source, and the loaded weights must be finite. Mixed in before
    `PreTrainedModel`."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, strict: bool = True,
                        output_loading_info: bool = False, **kwargs):
        """As `PreTrainedModel.from_pretrained`; `strict=False` accepts a checkpoint that lacks weights of the
        model or holds others (missing ones are initialised at random, as transformers does by default).

        Raises:
            FileNotFoundError: the folder does not exist (and is no Hub repo id), or holds no weights.
            OSError: a safetensors file is truncated or corrupt (named).
            ValueError: config.json contradicts the weights (window size, embed_dim, other shapes), weights are
                missing or unexpected (unless `strict=False`), or weights hold NaN or inf (named).
        """
        source = pretrained_model_name_or_path
        if isinstance(source, str | os.PathLike):
            source = os.fspath(source)
            check_model_location(source)
            subfolder = kwargs.get("subfolder") or ""
            weight_files = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
            if not subfolder and os.path.isdir(source) and not _holds_any(source, weight_files):
                raise FileNotFoundError(
                    f"Model folder {source} holds no weights (model.safetensors); give a folder written by "
                    "save_pretrained, lavt-train or lavt-convert (an original LAVT checkpoint needs lavt-convert"
                    " first)")
            folder = os.path.join(source, subfolder)
            shapes = {} if _REMAPPED_LOADING & kwargs.keys() else _checkpoint_shapes(folder)
            if shapes:
                check_checkpoint_fits(cls, _loading_config(cls, source, kwargs), shapes, source, strict)
        try:
            model, info = super().from_pretrained(pretrained_model_name_or_path, *model_args, output_loading_info=True,
                                                  **kwargs)
        except SafetensorError as error:  # a damaged file downloaded from the Hub
            raise OSError(
                f"A weight file of {source} is not a readable safetensors file ({error}): it is truncated or corrupt; "
                "download it again (force_download=True)") from error
        refuse_unfit_checkpoint(source, info["missing_keys"], info["unexpected_keys"], [], strict)
        check_finite_weights(model.state_dict(), source)
        return (model, info) if output_loading_info else model


__all__ = ["CheckedLoadingMixin", "check_finite_weights", "check_model_location", "check_processor_files",
           "check_probability_threshold", "check_referring_expressions", "check_target_sizes",
           "check_text_argument", "check_tokenizer_fits", "is_finite", "is_hub_repo_id", "load_image_url",
           "model_shapes"]
