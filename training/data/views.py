# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Training and evaluation views of a referring-segmentation dataset, as torch datasets: map-style over a
``datasets.Dataset``, iterable over a streamed ``datasets.IterableDataset``. Training (docs/training.md): one
item per object, its sentence drawn from (seed, epoch, index) alone, so a resumed run or another worker layout
sees the same sentences. Evaluation (docs/evaluation.md): one item per (object, sentence) pair. Images and
masks are decoded and resized item by item, by the project's processor.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from datasets import Dataset, IterableDataset
from datasets import Image as ImageFeature
from PIL import Image

from modeling_lavt.validation import is_finite

from .refer import decode_mask

_ROW_COLUMNS = ["image", "mask", "sentences", "ref_id", "no_target"]
_TENSOR_KEYS = ("pixel_values", "input_ids", "attention_mask", "labels")


def choose_sentence_index(seed: int, epoch: int, index: int, num_sentences: int) -> int:
    """The training sentence of object ``index`` at ``epoch``: a pure function of its arguments."""
    return int(np.random.default_rng([seed, epoch, index]).integers(num_sentences))


def open_rgb(value: dict) -> Image.Image:
    """Decode an undecoded ``datasets.Image`` value (bytes or path) now, to an RGB PIL image (which the
    processor resizes as it is, with no round trip through an array)."""
    source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"]
    with Image.open(source) as image:
        image.load()  # decodes now, so that a corrupt image fails here, and closes a file opened by name
        return image if image.mode == "RGB" else image.convert("RGB")


def open_image(value: dict) -> np.ndarray:
    """Decode an undecoded ``datasets.Image`` value (bytes or path) to an (H, W, 3) uint8 RGB array."""
    return np.asarray(open_rgb(value))


def stream_num_rows(hf_stream: IterableDataset) -> int | None:
    """The number of rows of a streamed split as its split info records it (``load_refer_dataset`` records it
    for prepared parquet, from the parquet footers), or None where the source does not say."""
    splits = hf_stream.info.splits
    if splits and hf_stream.split is None and len(splits) == 1:  # one split made into a stream has no split name
        return next(iter(splits.values())).num_examples or None
    found = splits.get(str(hf_stream.split)) if splits else None
    return found.num_examples if found is not None and found.num_examples else None


class _View:
    """Shared by the views: the rows (images left as bytes/paths, so that decoding happens here, once), and a
    row -> (RGB image, binary mask) -> processor tensors for one sentence."""

    def __init__(self, hf_dataset: Dataset | IterableDataset, processor: Any) -> None:
        name, streamed = type(self).__name__, isinstance(self, torch.utils.data.IterableDataset)
        if not isinstance(hf_dataset, IterableDataset if streamed else Dataset):
            wanted = ("a datasets.IterableDataset (load with streaming=True)" if streamed else
                      "a map-style datasets.Dataset (load without streaming=True)")
            other = name.replace("Stream", "Dataset") if streamed else name.replace("Dataset", "Stream")
            raise TypeError(f"{name} needs {wanted}, got {type(hf_dataset).__name__}; use {other}")
        self.rows = hf_dataset.select_columns(_ROW_COLUMNS).cast_column("image", ImageFeature(decode=False))
        self.processor = processor

    def _image_and_mask(self, row: dict) -> tuple[Image.Image, np.ndarray]:
        """The row's image and mask; an image that does not decode or does not fit its mask is an error
        naming the ref (PIL alone names neither the ref nor, for embedded bytes, any file)."""
        name = row["image"].get("path") or "embedded image"
        try:
            image = open_rgb(row["image"])
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"the image of ref_id {row['ref_id']} ({name}) does not decode: {error}; replace it "
                             "with the COCO original (prepared parquet: prepare the folder again)") from error
        height, width = row["mask"]["size"]  # compared before decoding: a huge size would fill the memory
        if (image.height, image.width) != (height, width):
            raise ValueError(f"the image of ref_id {row['ref_id']} ({name}) is {image.width}x{image.height} "
                             f"(width x height) but its mask is {width}x{height}: the image is not "
                             "the one the annotation was made on; use the COCO train2014 original")
        mask = decode_mask(row["mask"])
        if mask.any() == bool(row["no_target"]):  # an empty mask is the answer "no target", and only that
            raise ValueError(f"ref_id {row['ref_id']} ({name}) has "
                             + ("no_target set but a non-empty mask" if row["no_target"] else
                                "an empty mask but is not marked no_target")
                             + ": a target's mask must cover a pixel and a no-target row's none; fix the source")
        return image, mask

    def _process(self, **inputs: Any) -> dict[str, torch.Tensor]:
        """Run the processor on one sample and drop the batch axis. Images are in the raw pixel layout of
        their annotations, so EXIF orientation is not applied (as in the original)."""
        if "images" in inputs:
            inputs.update(apply_exif_orientation=False)
        features = self.processor(**inputs, return_tensors="pt")
        item = {key: features[key][0] for key in _TENSOR_KEYS if key in features}
        check_sample_values(item)
        return item


def check_sample_values(item: dict[str, torch.Tensor]) -> None:
    """Check what the model's forward does not, once per sample: finite pixels, labels 0 / 1 (the loss has no
    ignore index). Other values come from a processor set up wrong (a zero image_std, masks not binarised).

    Raises:
        ValueError: naming the input and the processor setting to fix.
    """
    pixels, labels = item.get("pixel_values"), item.get("labels")
    if pixels is not None and not is_finite(pixels):
        raise ValueError(f"the processor gave {int((~torch.isfinite(pixels)).sum())} NaN or infinite pixel values; "
                         "check its image_mean and image_std")
    if labels is not None and not bool(((labels == 0) | (labels == 1)).all()):
        others = torch.unique(labels[(labels != 0) & (labels != 1)])[:5].tolist()
        raise ValueError(f"the processor gave labels other than 0 (background) and 1 (the referred object): "
                         f"{others}; the loss has no ignore index, so the masks must be binarised (LavtProcessor "
                         "does)")


class _Training(_View):
    """Shared by the training views: an item's sentence is drawn from (seed, epoch, a key of its object)."""

    def __init__(self, hf_dataset: Dataset | IterableDataset, processor: Any, seed: int = 0) -> None:
        super().__init__(hf_dataset, processor)
        self.seed = int(seed)
        self.epoch = 0

    def _item(self, row: dict, key: int) -> dict[str, torch.Tensor]:
        sentence = row["sentences"][choose_sentence_index(self.seed, self.epoch, key, len(row["sentences"]))]
        image, mask = self._image_and_mask(row)
        return self._process(images=[image], text=[sentence], masks=[mask])


class ReferTrainDataset(_Training, torch.utils.data.Dataset):
    """One item per referred object; its sentence is drawn from (seed, epoch, index). Call ``set_epoch``."""

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def sentence_index(self, index: int, num_sentences: int) -> int:
        return choose_sentence_index(self.seed, self.epoch, index, num_sentences)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self._item(self.rows[index], index)


class ReferTrainStream(_Training, torch.utils.data.IterableDataset):
    """Streamed training items: every object once per epoch, in stream order, its sentence drawn from (seed,
    epoch, ref_id); ``state_dict`` / ``load_state_dict`` resume mid-epoch. Call ``set_epoch``. ``num_rows``
    (the objects of the stream) gives it a length, so that a DataLoader knows its number of batches."""

    def __init__(self, hf_stream: IterableDataset, processor: Any, seed: int = 0, num_rows: int | None = None
                 ) -> None:
        super().__init__(hf_stream, processor, seed)
        self.num_rows = num_rows

    def __len__(self) -> int:
        if self.num_rows is None:
            raise TypeError("this stream's number of objects is unknown (no num_rows given)")
        return self.num_rows

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.rows.set_epoch(self.epoch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "rows": self.rows.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.set_epoch(state["epoch"])
        self.rows.load_state_dict(state["rows"])

    def __iter__(self):
        for row in self.rows:
            yield self._item(row, row["ref_id"])


class _EvalPairs(_View):
    """Shared by both evaluation views: an object's image-side tensors, computed once for all its sentences,
    and the item of one (object, sentence) pair."""

    return_original_mask: bool

    def _object_items(self, row: dict) -> dict[str, Any]:
        image, mask = self._image_and_mask(row)
        items = self._process(images=[image], masks=[mask])
        items["original_size"] = torch.tensor(mask.shape, dtype=torch.int64)
        items["ref_id"] = torch.tensor(row["ref_id"], dtype=torch.int64)
        items["no_target"] = torch.tensor(bool(row["no_target"]))
        if self.return_original_mask:
            items["original_mask"] = torch.from_numpy(np.ascontiguousarray(mask))
        return items

    def _pair_item(self, items: dict[str, Any], sentence: str, sample_id: int, sentence_index: int
                   ) -> dict[str, torch.Tensor]:
        return {**items, **self._process(text=[sentence]),
                "sample_id": torch.tensor(sample_id, dtype=torch.int64),
                "sentence_index": torch.tensor(sentence_index, dtype=torch.int64)}


class ReferEvalDataset(_EvalPairs, torch.utils.data.Dataset):
    """One item per (object, sentence) pair, objects in dataset order and their sentences in order.
    Consecutive pairs share an object, so its image-side tensors are kept for the next.
    ``return_original_mask`` adds the mask at the original image size (the original-resolution protocol)."""

    def __init__(self, hf_dataset: Dataset, processor: Any, return_original_mask: bool = False) -> None:
        super().__init__(hf_dataset, processor)
        self.return_original_mask = return_original_mask
        counts = np.asarray([len(s) for s in self.rows["sentences"]], dtype=np.int64)
        self.pair_row = np.repeat(np.arange(len(counts)), counts)
        self.pair_sentence = np.arange(len(self.pair_row)) - np.repeat(np.cumsum(counts) - counts, counts)
        self._cached_row: int | None = None
        self._cached: tuple[dict[str, Any], list[str]] = ({}, [])

    def __len__(self) -> int:
        return len(self.pair_row)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row_index, sentence_index = int(self.pair_row[index]), int(self.pair_sentence[index])
        if row_index != self._cached_row:
            row = self.rows[row_index]
            self._cached_row, self._cached = row_index, (self._object_items(row), row["sentences"])
        items, sentences = self._cached
        return self._pair_item(items, sentences[sentence_index], index, sentence_index)

    def pairs(self) -> list[tuple[int, int, str]]:
        """(ref_id, sentence_index, sentence) of every item, by sample id."""
        ref_ids, sentences = self.rows["ref_id"], self.rows["sentences"]
        return [(int(ref_ids[r]), int(j), sentences[r][j]) for r, j in zip(self.pair_row, self.pair_sentence)]

    def samples(self, sample_ids: Sequence[int]) -> dict[int, tuple[dict[str, torch.Tensor], dict]]:
        """sample id -> (its item, its object's row with the image undecoded)."""
        return {int(i): (self[int(i)], self.rows[int(self.pair_row[int(i)])]) for i in sample_ids}


class ReferEvalStream(_EvalPairs, torch.utils.data.IterableDataset):
    """Streamed evaluation items: those of :class:`ReferEvalDataset` over the same rows, with the same sample
    ids, which count the pairs in stream order: a DataLoader over it takes at most one worker.
    ``max_samples`` stops after that many pairs."""

    def __init__(self, hf_stream: IterableDataset, processor: Any, return_original_mask: bool = False,
                 max_samples: int | None = None) -> None:
        super().__init__(hf_stream, processor)
        self.return_original_mask = return_original_mask
        self.max_samples = max_samples

    def _objects(self, rows: IterableDataset) -> Iterator[tuple[dict, list[tuple[int, int, str]]]]:
        """Each row with its (sample id, sentence index, sentence) pairs, cut at ``max_samples`` pairs."""
        first, limit = 0, math.inf if self.max_samples is None else self.max_samples
        for row in rows:
            if first >= limit:
                return
            yield row, [(first + j, j, s) for j, s in enumerate(row["sentences"]) if first + j < limit]
            first += len(row["sentences"])

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.num_workers > 1:
            raise ValueError("ReferEvalStream numbers its pairs in stream order: read it with at most one "
                             f"DataLoader worker, not {worker.num_workers}")
        for row, pairs in self._objects(self.rows):
            items = self._object_items(row)
            for sample_id, index, sentence in pairs:
                yield self._pair_item(items, sentence, sample_id, index)

    def pairs(self) -> list[tuple[int, int, str]]:
        """(ref_id, sentence_index, sentence) of every item, by sample id (a pass over the annotations)."""
        rows = self.rows.select_columns(["ref_id", "sentences"])
        return [(int(row["ref_id"]), j, s) for row, pairs in self._objects(rows) for _, j, s in pairs]

    def samples(self, sample_ids: Sequence[int]) -> dict[int, tuple[dict[str, torch.Tensor], dict]]:
        """sample id -> (its item, its object's row with the image undecoded): one pass over the stream that
        decodes only the objects of the wanted samples."""
        wanted, found = {int(i) for i in sample_ids}, {}
        for row, pairs in self._objects(self.rows):
            chosen = [(i, j, s) for i, j, s in pairs if i in wanted]
            if chosen:
                items = self._object_items(row)
                found.update({i: (self._pair_item(items, s, i, j), row) for i, j, s in chosen})
            if len(found) == len(wanted):
                break
        return found


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors of equal shape into a batch; keep anything else (e.g. original-size masks) as a list."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        stackable = all(isinstance(v, torch.Tensor) and v.shape == values[0].shape for v in values)
        batch[key] = torch.stack(values) if stackable else values
    return batch
