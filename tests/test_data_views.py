# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Training / evaluation views: deterministic sentence choice, full evaluation expansion, lazy transforms."""


import numpy as np
import pytest
import torch
from datasets import Image as ImageFeature
from PIL import Image

from lavt_hf.training.data import (
    ReferEvalDataset,
    ReferEvalStream,
    ReferTrainDataset,
    ReferTrainStream,
    collate,
    decode_mask,
    load_refer_dataset,
)
from lavt_hf.training.data.synthetic import generate_synthetic_refer
from lavt_hf.training.data.views import choose_sentence_index, open_image

SIZE = 64


@pytest.fixture(scope="module")
def processor(bert_vocab_dir):
    from transformers import AutoTokenizer

    from modeling_lavt.image_processing_lavt import LavtImageProcessor
    from modeling_lavt.processing_lavt import LavtProcessor

    return LavtProcessor(LavtImageProcessor(size=SIZE), AutoTokenizer.from_pretrained(bert_vocab_dir))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    generate_synthetic_refer(root / "refer", root / "images", num_images=30, seed=1, image_size=(90, 70))
    return {split: load_refer_dataset(root / "refer", "refcoco_unc", split, images_root=root / "images")
            for split in ("train", "val")}


def _tokens(processor, sentence):
    return processor(text=[sentence], return_tensors="pt")["input_ids"][0]


def test_train_item_matches_the_processor(data, processor):
    view = ReferTrainDataset(data["train"], processor, seed=0)
    assert len(view) == len(data["train"])
    item = view[3]
    assert set(item) == {"pixel_values", "input_ids", "attention_mask", "labels"}
    assert item["pixel_values"].shape == (3, SIZE, SIZE) and item["pixel_values"].dtype == torch.float32
    assert item["labels"].shape == (SIZE, SIZE) and item["labels"].dtype == torch.int64
    assert item["input_ids"].shape == item["attention_mask"].shape == (20,)
    row = data["train"][3]
    expected = processor(images=[row["image"]], masks=[decode_mask(row["mask"])], return_tensors="pt",
                         apply_exif_orientation=False)
    torch.testing.assert_close(item["pixel_values"], expected["pixel_values"][0], rtol=0, atol=0)
    torch.testing.assert_close(item["labels"], expected["labels"][0], rtol=0, atol=0)
    assert item["labels"].sum() > 0
    chosen = row["sentences"][view.sentence_index(3, len(row["sentences"]))]
    torch.testing.assert_close(item["input_ids"], _tokens(processor, chosen))


def test_view_items_are_the_processor_on_the_decoded_array(data, processor):
    """The views hand the processor the decoded PIL image; every tensor they give is bit for bit what the
    processor gives for the decoded (H, W, 3) uint8 array and the RLE-decoded mask (its documented path)."""
    rows = data["train"].cast_column("image", ImageFeature(decode=False))
    train, evaluation = ReferTrainDataset(data["train"], processor, seed=5), ReferEvalDataset(data["train"], processor)
    train.set_epoch(2)
    for index in (0, 7):
        row = rows[index]
        sentence = row["sentences"][train.sentence_index(index, len(row["sentences"]))]
        expected = processor(images=[open_image(row["image"])], text=[sentence], masks=[decode_mask(row["mask"])],
                             return_tensors="pt", apply_exif_orientation=False, input_data_format="channels_last")
        item = train[index]
        assert set(item) == {"pixel_values", "input_ids", "attention_mask", "labels"}
        for key, value in item.items():
            assert value.dtype == expected[key].dtype and torch.equal(value, expected[key][0]), key
        pair = evaluation[int(np.flatnonzero(evaluation.pair_row == index)[0])]
        for key in ("pixel_values", "labels"):
            assert torch.equal(pair[key], expected[key][0]), key


def test_sentence_choice_is_a_function_of_seed_epoch_index(data, processor):
    counts = [len(s) for s in data["train"]["sentences"]]

    def choices(seed, epoch):
        view = ReferTrainDataset(data["train"], processor, seed=seed)
        view.set_epoch(epoch)
        return [view.sentence_index(i, n) for i, n in enumerate(counts)]

    assert choices(0, 2) == choices(0, 2) == [choose_sentence_index(0, 2, i, n) for i, n in enumerate(counts)]
    assert choices(0, 0) != choices(0, 1)
    assert choices(0, 0) != choices(1, 0)
    assert all(0 <= c < n for c, n in zip(choices(0, 5), counts))
    picked = {choose_sentence_index(0, epoch, 0, 3) for epoch in range(30)}
    assert picked == {0, 1, 2}


def test_resumed_view_sees_the_same_sentences(data, processor):
    first = ReferTrainDataset(data["train"], processor, seed=7)
    first.set_epoch(3)
    resumed = ReferTrainDataset(data["train"], processor, seed=7)
    resumed.set_epoch(3)
    for index in (0, 5, 9):
        torch.testing.assert_close(first[index]["input_ids"], resumed[index]["input_ids"])


def test_eval_expands_every_sentence(data, processor):
    dataset = data["val"]
    view = ReferEvalDataset(dataset, processor, return_original_mask=True)
    total = sum(len(s) for s in dataset["sentences"])
    assert len(view) == total
    items = [view[i] for i in range(total)]
    expected_pairs = [(row["ref_id"], j, sentence) for row in dataset for j, sentence in enumerate(row["sentences"])]
    for index, (item, (ref_id, sentence_index, sentence)) in enumerate(zip(items, expected_pairs)):
        assert (int(item["sample_id"]), int(item["ref_id"]), int(item["sentence_index"])) == (
            index, ref_id, sentence_index)
        torch.testing.assert_close(item["input_ids"], _tokens(processor, sentence))
        assert item["original_size"].tolist() == [70, 90]
    last = dataset[len(dataset) - 1]
    np.testing.assert_array_equal(items[-1]["original_mask"].numpy(), decode_mask(last["mask"]))


def test_eval_cache_does_not_change_items(data, processor):
    sequential = ReferEvalDataset(data["val"], processor)
    shuffled = ReferEvalDataset(data["val"], processor)
    order = np.random.default_rng(0).permutation(len(sequential))
    in_order = {i: sequential[i] for i in range(len(sequential))}
    for i in order[:12]:
        for key, value in shuffled[int(i)].items():
            torch.testing.assert_close(value, in_order[int(i)][key], rtol=0, atol=0)


def test_collate_and_dataloader(data, processor):
    loader = torch.utils.data.DataLoader(ReferEvalDataset(data["val"], processor), batch_size=4, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["pixel_values"].shape == (4, 3, SIZE, SIZE)
    assert batch["labels"].shape == (4, SIZE, SIZE)
    assert batch["sample_id"].tolist() == [0, 1, 2, 3]
    ragged = collate([{"m": torch.zeros(2, 3), "x": torch.ones(2)}, {"m": torch.zeros(4, 5), "x": torch.ones(2)}])
    assert isinstance(ragged["m"], list) and ragged["x"].shape == (2, 2)


def test_views_need_a_map_style_dataset(data, processor):
    with pytest.raises(TypeError, match="streaming"):
        ReferTrainDataset(data["train"].to_iterable_dataset(), processor)


def test_grayscale_images_become_rgb(tmp_path, processor):
    generate_synthetic_refer(tmp_path / "r", tmp_path / "i", num_images=4, seed=0, image_size=(40, 30))
    for path in (tmp_path / "i" / "train2014").glob("*.jpg"):
        Image.open(path).convert("L").save(path)
    dataset = load_refer_dataset(tmp_path / "r", "refcoco_unc", "train", images_root=tmp_path / "i")
    item = ReferTrainDataset(dataset, processor)[0]
    channels = item["pixel_values"]
    assert channels.shape[0] == 3 and not torch.equal(channels[0], channels[1])  # normalised per channel


def _streamed_expectation(dataset, processor, seed, epoch):
    """Per object, in order: the input_ids of its (seed, epoch, ref_id) sentence and its map-style pixels."""
    view = ReferTrainDataset(dataset, processor, seed=seed)
    expected = []
    for index, row in enumerate(dataset.select_columns(["sentences", "ref_id"])):
        sentence = row["sentences"][choose_sentence_index(seed, epoch, row["ref_id"], len(row["sentences"]))]
        ids = processor(text=[sentence], return_tensors="pt")["input_ids"][0]
        expected.append((ids, view[index]["pixel_values"], view[index]["labels"]))
    return expected


def _signature(input_ids, pixels, labels) -> tuple:
    return (*input_ids.tolist(), round(float(pixels.sum()), 2), int(labels.sum()))


def test_stream_sees_every_object_once_with_its_sentence(data, processor):
    """Epoch 0 in the stream's order with the map-style pixels; a later epoch (shards in another order, as
    `datasets` shuffles them per epoch) still sees each object once, with its (seed, epoch, ref_id) sentence."""
    stream = ReferTrainStream(data["train"].to_iterable_dataset(num_shards=3), processor, seed=5)
    items = list(stream)
    expected = _streamed_expectation(data["train"], processor, 5, 0)
    assert len(items) == len(expected)
    for item, (ids, pixels, labels) in zip(items, expected):
        torch.testing.assert_close(item["input_ids"], ids)
        torch.testing.assert_close(item["pixel_values"], pixels)
        torch.testing.assert_close(item["labels"], labels)
    stream.set_epoch(2)
    seen = sorted(_signature(item["input_ids"], item["pixel_values"], item["labels"]) for item in stream)
    assert seen == sorted(_signature(*e) for e in _streamed_expectation(data["train"], processor, 5, 2))


def test_stream_resumes_where_it_left_off(data, processor):
    stream = ReferTrainStream(data["train"].to_iterable_dataset(num_shards=3), processor, seed=5)
    stream.set_epoch(1)
    full = [item["input_ids"] for item in stream]
    partial = iter(stream)
    for _ in range(7):
        next(partial)
    state = stream.state_dict()
    resumed = ReferTrainStream(data["train"].to_iterable_dataset(num_shards=3), processor, seed=5)
    resumed.load_state_dict(state)
    assert resumed.epoch == 1
    rest = [item["input_ids"] for item in resumed]
    assert len(rest) == len(full) - 7
    for got, want in zip(rest, full[7:]):
        torch.testing.assert_close(got, want)


def test_stream_in_two_workers_sees_every_object_once(data, processor):
    stream = ReferTrainStream(data["train"].to_iterable_dataset(num_shards=4), processor, seed=5)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    seen = sorted(_signature(item["input_ids"], item["pixel_values"], item["labels"]) for item in loader)
    assert seen == sorted(_signature(*e) for e in _streamed_expectation(data["train"], processor, 5, 0))


def test_stream_needs_a_stream(data, processor):
    with pytest.raises(TypeError, match="streaming=True.*ReferTrainDataset"):
        ReferTrainStream(data["train"], processor)


def test_eval_stream_gives_the_map_style_items(data, processor):
    """Every (object, sentence) pair once, in the map-style order with its sample id, across shards; pairs() and
    samples() name and rebuild the same items; max_samples cuts inside an object's sentences."""
    mapped = ReferEvalDataset(data["val"], processor, return_original_mask=True)
    stream = ReferEvalStream(data["val"].to_iterable_dataset(num_shards=3), processor, return_original_mask=True)
    items = list(stream)
    assert len(items) == len(mapped)
    for index, item in enumerate(items):
        expected = mapped[index]
        assert item.keys() == expected.keys()
        for key in item:
            torch.testing.assert_close(item[key], expected[key], rtol=0, atol=0, msg=key)
    assert stream.pairs() == mapped.pairs()
    chosen = [0, len(mapped) - 1, 4]
    streamed, by_index = stream.samples(chosen), mapped.samples(chosen)
    assert streamed.keys() == by_index.keys() == set(chosen)
    for index in chosen:
        (got, got_row), (want, want_row) = streamed[index], by_index[index]
        assert got_row["ref_id"] == want_row["ref_id"] and got_row["image"] == want_row["image"]
        torch.testing.assert_close(got["input_ids"], want["input_ids"])
    first_count = len(data["val"][0]["sentences"])
    cut = ReferEvalStream(data["val"].to_iterable_dataset(), processor, max_samples=first_count + 1)
    assert [int(i["sample_id"]) for i in cut] == list(range(first_count + 1))
    assert cut.pairs() == mapped.pairs()[: first_count + 1]


def test_eval_stream_is_read_by_one_worker(data, processor):
    stream = ReferEvalStream(data["val"].to_iterable_dataset(num_shards=2), processor)
    assert len(list(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=1))) == len(
        ReferEvalDataset(data["val"], processor))
    with pytest.raises(ValueError, match="at most one DataLoader worker, not 2"):
        list(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2))
    with pytest.raises(TypeError, match="streaming=True.*ReferEvalDataset"):
        ReferEvalStream(data["val"], processor)
