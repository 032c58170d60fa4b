# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Checks of what users hand to LAVT: model inputs, texts, target sizes, image URLs and model folders.

Every check raises before any work is done, with a message that names the input, what is wrong with it and what
to do, instead of an error from deep inside torch, PIL, safetensors or huggingface_hub, or a silent wrong answer
(NaN logits, a mask for an empty sentence, a model with randomly initialised weights). The entry points call
them with one line each: the model's `forward` and `from_pretrained`, the processor, the image processor's
post-processing, the pipeline and `lavt-predict`.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import math
import numbers
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import httpx, validate_repo_id
from PIL import Image, UnidentifiedImageError
from safetensors import SafetensorError, safe_open
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

# Whether the `from_pretrained` call in progress accepts weights missing from, or left over in, the checkpoint.
_STRICT_LOADING: contextvars.ContextVar[bool] = contextvars.ContextVar("lavt_strict_loading", default=True)
_BIAS_TABLE = "relative_position_bias_table"
_LISTED_KEYS = 5  # missing / unexpected weight names quoted in an error; the rest are counted


def skip_data_checks() -> bool:
    """Whether checks that read tensor values (one host-device sync) must be skipped: while tracing for
    torch.compile, TorchScript or ONNX export, or capturing a CUDA graph, where a value cannot be read."""
    return (
        torch.compiler.is_compiling()
        or torch.jit.is_tracing()
        or torch.onnx.is_in_onnx_export()
        or (torch.cuda.is_available() and torch.cuda.is_current_stream_capturing())
    )


def check_forward_inputs(config: Any, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                         labels: torch.Tensor | None) -> None:
    """Refuse inputs of `LavtForReferringSegmentation.forward` that would fail deep inside the model or compute
    a wrong answer without a word. Shapes must already be checked (pixel_values (B, C, H, W), input_ids (B, T),
    labels (B, H', W')).

    Checked from shapes and dtypes alone: an empty batch, image or mask, no tokens, float `input_ids`, more tokens
    than the text encoder has positions (`text_config.max_position_embeddings`). Checked from values, with one
    host-device sync for all of them and skipped while tracing or compiling (`skip_data_checks`): NaN or inf
    in `pixel_values`, ids outside the vocabulary (`text_config.vocab_size`), labels other than 0 and 1 (the
    loss has no ignore index: every pixel counts as background or object).

    Raises:
        ValueError: naming the input, the offending values and what to do.
    """
    if pixel_values.shape[0] == 0:
        raise ValueError("Empty batch: pixel_values holds 0 images; give at least one (image, expression) pair")
    if pixel_values.shape[2] == 0 or pixel_values.shape[3] == 0:
        raise ValueError(f"pixel_values has zero size {tuple(pixel_values.shape[2:])} (height, width)")
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise ValueError(
            f"input_ids must be integer token ids (torch.long), got {input_ids.dtype}; use LavtProcessor to "
            "tokenize the expressions"
        )
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids has 0 tokens per expression; give at least [CLS] and [SEP]")
    text_config = config.text_config
    positions = getattr(text_config, "max_position_embeddings", None)
    if positions is not None and input_ids.shape[1] > positions:
        raise ValueError(
            f"input_ids has {input_ids.shape[1]} tokens per expression, more than the text encoder's "
            f"{positions} positions; tokenize with max_length <= {positions} (the model reads "
            f"{config.max_text_length})"
        )
    if labels is not None and labels.numel() == 0:
        raise ValueError(f"labels has zero size {tuple(labels.shape)}; give one (height, width) mask per image")
    if skip_data_checks():
        return
    # Reductions rather than elementwise masks: a sum propagates NaN and inf and reads the batch once.
    lowest_id, highest_id = torch.aminmax(input_ids)
    flags = [~torch.isfinite(pixel_values.sum(dtype=torch.float32)),
             (lowest_id < 0) | (highest_id >= text_config.vocab_size)]
    if labels is not None and labels.dtype != torch.bool:
        flags.append(_labels_not_binary(labels))
    non_finite, bad_ids, *bad_labels = torch.stack(flags).tolist()  # the one sync for all value checks
    count = int((~torch.isfinite(pixel_values)).sum()) if non_finite else 0  # 0: the sum of finite values overflowed
    if count:
        raise ValueError(
            f"pixel_values holds {count} NaN or infinite values; check the image and the normalisation "
            "(LavtImageProcessor refuses such images)"
        )
    if bad_ids:
        raise ValueError(
            f"input_ids holds ids outside the text encoder's vocabulary 0..{text_config.vocab_size - 1} "
            f"(min {int(lowest_id)}, max {int(highest_id)}); use the tokenizer the model was trained "
            "with"
        )
    if bad_labels and bad_labels[0]:
        values = torch.unique(labels[(labels != 0) & (labels != 1)])[:_LISTED_KEYS].tolist()
        raise ValueError(
            f"labels must be 0 (background) or 1 (the referred object), got also {values}; the loss has no "
            "ignore index, so binarise the masks first (LavtImageProcessor does)"
        )


def _labels_not_binary(labels: torch.Tensor) -> torch.Tensor:
    """Whether any label is other than 0 and 1 (a 0-d bool tensor; no sync)."""
    if labels.is_floating_point():
        return ((labels != 0) & (labels != 1)).any()
    lowest, highest = torch.aminmax(labels)
    return (lowest < 0) | (highest > 1)


def pixel_values_in_model_dtype(pixel_values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`pixel_values` cast to the model's dtype (e.g. float64 images for a float32 model), unless autocast
    chooses the compute dtype. Casting the input, not the weights, is what a mixed-dtype call can only mean;
    without it the first convolution fails with "Input type (double) and bias type (float) should be the same".
    """
    if pixel_values.dtype == dtype or torch.is_autocast_enabled(pixel_values.device.type):
        return pixel_values
    return pixel_values.to(dtype)


def check_target_sizes(target_sizes: Any, batch_size: int) -> list[tuple[int, int]] | None:
    """`target_sizes` of post-processing as one `(height, width)` pair of positive ints per sample.

    Raises:
        ValueError: a bare `(h, w)` pair instead of one pair per sample, another count than the batch size, an
            entry that is not a pair, or a side that is zero or negative.
    """
    if target_sizes is None:
        return None
    if isinstance(target_sizes, torch.Tensor):
        target_sizes = target_sizes.tolist()
    sizes = list(target_sizes)
    if len(sizes) == 2 and all(isinstance(v, int | float) for v in sizes):
        raise ValueError(
            f"target_sizes must hold one (height, width) pair per sample, got the single pair {tuple(sizes)} for "
            f"a batch of {batch_size}; pass [{tuple(sizes)}] * {batch_size}"
        )
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
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def check_text_argument(text: Any) -> None:
    """`text` of the processor must be one referring expression (a string) or an iterable of them.

    Raises:
        ValueError: for anything else (a number, bytes, None inside a call that needs text).
    """
    if isinstance(text, str):
        return
    if isinstance(text, bytes | bytearray) or not isinstance(text, Iterable):
        raise ValueError(
            f"text must be a referring expression (a string) or a list of them, got {type(text).__name__}: "
            f"{text!r}"
        )


def check_referring_expressions(texts: Sequence[Any], tokenizer: Any = None) -> None:
    """Every expression must be a string with at least one word piece (without a tokenizer: a non-blank string).

    A blank string, or one of characters the tokenizer drops (e.g. a zero-width space "\\u200b"), would be
    encoded as [CLS][SEP] alone and still get a mask.

    Raises:
        ValueError: "Referring expression {index} is empty ...", index = position in `texts`.
    """
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
                "tokenizer keeps"
            )


def load_image_url(url: str, timeout: float | None = None) -> Image.Image:
    """Download and decode the image at an http(s) `url`.

    Raises:
        ValueError: naming the URL and the cause: the server's answer (e.g. 404 Not Found), a host that does not
            resolve or answer, a timeout, or content that is not an image.
    """
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPStatusError as error:
        raise ValueError(
            f"Cannot download the image {url}: the server answered {error.response.status_code} "
            f"{error.response.reason_phrase}"
        ) from error
    except httpx.HTTPError as error:
        raise ValueError(
            f"Cannot download the image {url}: {type(error).__name__}: {error} (check the address and the "
            "network)"
        ) from error
    try:
        image = Image.open(io.BytesIO(response.content))
        image.load()
    except (UnidentifiedImageError, OSError) as error:
        kind = response.headers.get("content-type", "unknown type")
        raise ValueError(f"{url} did not return a readable image ({kind}): {error}") from error
    return image


def is_hub_repo_id(name: str | os.PathLike | None, owner_required: bool = False) -> bool:
    """Whether `name` can only mean a Hub repo: huggingface_hub's own repo-id rule holds, no local file or folder
    has that name, and it does not start like a path ('.', '/', '~'). The one rule for every "local path or Hub
    id" argument of the project; `owner_required` asks for the `owner/name` form (what card metadata links)."""
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
    """A model to load must be an existing local folder or file, or a valid Hub repo id.

    Raises:
        FileNotFoundError: "Model folder ... not found" for a path that exists neither locally nor as a repo id
            (huggingface_hub would only say "Repo id must be in the form ...").
    """
    if not isinstance(name, str | os.PathLike) or os.path.exists(name) or is_hub_repo_id(name):
        return
    raise FileNotFoundError(
        f"Model folder {os.fspath(name)} not found (it is neither a local folder nor a Hub repo id); check the path"
    )


# The weight files `from_pretrained` reads from a local folder (single file or sharded; safetensors or pickle).
WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)


def check_model_weights_present(folder: str | os.PathLike) -> None:
    """A local model folder must hold weights.

    Raises:
        FileNotFoundError: naming the folder and what writes one, for a folder without any of `WEIGHT_FILES`
            (transformers would only say "Error no file named model.safetensors ... found").
    """
    if not isinstance(folder, str | os.PathLike) or not os.path.isdir(folder):
        return
    if not any(os.path.isfile(os.path.join(folder, name)) for name in WEIGHT_FILES):
        raise FileNotFoundError(
            f"Model folder {os.fspath(folder)} holds no weights (model.safetensors); give a folder written by "
            "save_pretrained, lavt-train or lavt-convert (an original LAVT checkpoint needs lavt-convert first)"
        )


@contextlib.contextmanager
def loading_strictness(strict: bool) -> Iterator[None]:
    """Within the block, `check_loaded_weights` refuses (strict) or lets through missing and unexpected
    weights."""
    token = _STRICT_LOADING.set(bool(strict))
    try:
        yield
    finally:
        _STRICT_LOADING.reset(token)


@contextlib.contextmanager
def readable_checkpoint_files(checkpoint_files: Sequence[str] | None) -> Iterator[None]:
    """Turn a safetensors decoding error raised in the block into one that names the damaged file.

    Raises:
        OSError: "<file> is not a readable safetensors file ...: truncated or corrupt".
    """
    try:
        yield
    except SafetensorError as error:
        files = list(checkpoint_files or [])
        damaged = next((file for file in files if not _opens_as_safetensors(file)), " or ".join(files))
        raise OSError(
            f"{damaged} is not a readable safetensors file ({error}): it is truncated or corrupt; save or "
            "download it again"
        ) from error


def _opens_as_safetensors(file: str) -> bool:
    try:
        with safe_open(file, framework="pt"):
            return True
    except (SafetensorError, OSError):
        return False


def check_loaded_weights(model: Any, source: str | os.PathLike, loading_info: Any) -> None:
    """After the checkpoint was read into `model`, before missing weights are initialised: refuse a
    checkpoint whose weights do not fit the model.

    `loading_info` is transformers' `LoadStateDictInfo` (missing, unexpected and shape-mismatched keys). A
    window-size mismatch (the relative position bias tables) is always refused, with the window the weights were
    trained with. Missing or unexpected weights (e.g. a config.json with other depths than the weights hold, or a
    file that lacks tensors) are refused unless `from_pretrained(..., strict=False)` asked for them (they are
    then listed in transformers' load report and missing ones are initialised at random).

    Raises:
        ValueError: naming the checkpoint, the window sizes or the missing / unexpected weights.
    """
    model._adjust_missing_and_unexpected_keys(loading_info)  # the model's own ignore rules, as the report uses
    for key, saved_shape, model_shape in sorted(loading_info.mismatched_keys):
        if key.endswith(_BIAS_TABLE):
            raise ValueError(
                f"{source} holds weights trained with window size {_table_window(saved_shape)}, but window size "
                f"{_table_window(model_shape)} was requested (config.json, window_size= or config=); load it with "
                "its own window size (to move a Swin backbone to another window, use "
                "modeling_lavt.weights.pretrained.load_swin_backbone, which resizes the tables)"
            )
    if not _STRICT_LOADING.get():
        return
    problems = [
        f"{len(keys)} weights of the model are {what} ({_key_list(keys)})"
        for keys, what in ((loading_info.missing_keys, "missing from the checkpoint"),
                           (loading_info.unexpected_keys, "in the checkpoint but not in the model"))
        if keys
    ]
    if problems:
        raise ValueError(
            f"{source} does not match its configuration: {'; '.join(problems)}. Check that config.json (depths, "
            "widths, text encoder) belongs to these weights; pass strict=False to load anyway with missing weights "
            "initialised at random"
        )


def _table_window(shape: Sequence[int]) -> int:
    """Window size of a (2w - 1)^2-row relative position bias table."""
    return (math.isqrt(int(shape[0])) + 1) // 2


def _key_list(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    listed = ", ".join(keys[:_LISTED_KEYS])
    return listed if len(keys) <= _LISTED_KEYS else f"{listed}, ... {len(keys) - _LISTED_KEYS} more"


class CheckedLoadingMixin:
    """`from_pretrained` with the checks above: a model folder that does not exist, a damaged safetensors file,
    and weights that do not fit the configuration are clear errors. Mixed into the LAVT model classes before
    `PreTrainedModel`; the two hooks are the steps of `PreTrainedModel.from_pretrained` that read the files and
    that report missing and unexpected weights (transformers 5)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, strict: bool = True, **kwargs):
        """As `PreTrainedModel.from_pretrained`; `strict=False` accepts a checkpoint that lacks weights of the
        model or holds others (missing ones are initialised at random, as transformers does by default)."""
        check_model_location(pretrained_model_name_or_path)
        if not kwargs.get("subfolder"):
            check_model_weights_present(pretrained_model_name_or_path)
        with loading_strictness(strict):
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    @classmethod
    def _load_pretrained_model(cls, model, state_dict, checkpoint_files, load_config, *args, **kwargs):
        with readable_checkpoint_files(checkpoint_files):
            return super()._load_pretrained_model(model, state_dict, checkpoint_files, load_config, *args, **kwargs)

    @classmethod
    def _finalize_model_loading(cls, model, load_config, loading_info):
        check_loaded_weights(model, load_config.pretrained_model_name_or_path, loading_info)
        return super()._finalize_model_loading(model, load_config, loading_info)


__all__ = [
    "CheckedLoadingMixin",
    "check_forward_inputs",
    "check_loaded_weights",
    "check_model_location",
    "check_model_weights_present",
    "check_probability_threshold",
    "check_referring_expressions",
    "check_target_sizes",
    "check_text_argument",
    "load_image_url",
    "pixel_values_in_model_dtype",
]

