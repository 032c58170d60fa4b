# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Raw refer -> parquet + dataset card -> reload gives identical rows; failures leave no output."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from datasets import Image as ImageFeature
from datasets import load_dataset
from huggingface_hub import DatasetCard

from lavt_hf.scripts import prepare_refcoco
from lavt_hf.scripts.prepare_refcoco import main
from lavt_hf.scripts.prepare_refcoco import prepare_refcoco as prepare
from lavt_hf.training.data import load_refer_dataset
from lavt_hf.training.data.synthetic import generate_synthetic_refer
from tests.conftest import refs_texts
from tests.local_hub import local_hub as local_hub_fixture
from tests.local_hub import run_client

local_hub = local_hub_fixture
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    generate_synthetic_refer(root / "refer", root / "images", num_images=24, seed=2, image_size=(80, 60))
    # Like the real refcoco+, a second dataset over the same images (same seed: the same image files).
    generate_synthetic_refer(root / "refer", root / "images", num_images=24, seed=2, image_size=(80, 60),
                             dataset="refcoco+")
    return root


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
    output = tmp_path_factory.mktemp("prepared") / "refcoco-parquet"
    prepare(raw / "refer", raw / "images", output, configs=["refcoco_unc"], max_shard_bytes=20_000)
    return output


def _raw(raw, split, config="refcoco_unc", **kwargs):
    return load_refer_dataset(raw / "refer", config, split, images_root=raw / "images", **kwargs)


def _stored(raw, split, config="refcoco_unc", **kwargs):
    """The rows as stored: the raw texts in `sentences`, the normalised ones in `sentences_sent`."""
    sent = _raw(raw, split, config, sentence_field="sent", **kwargs)["sentences"]
    return [dict(row, sentences_sent=texts) for row, texts in zip(_rows(_raw(raw, split, config, **kwargs)), sent)]


def _rows(dataset):
    """Rows with the image as its bytes, so that path-based and embedded images compare equal (map-style or
    streamed)."""
    rows = list(dataset.cast_column("image", ImageFeature(decode=False)))
    for row in rows:
        image = row["image"]
        row["image"] = image["bytes"] if image["bytes"] is not None else Path(image["path"]).read_bytes()
    return rows


@pytest.mark.parametrize("split", ["train", "val", "testA", "testB"])
def test_reload_gives_identical_rows(raw, prepared, tmp_path, split):
    reloaded = load_refer_dataset(prepared, "refcoco_unc", split, cache_dir=str(tmp_path / "cache"))
    assert _rows(reloaded) == _rows(_raw(raw, split))


def test_shards_and_streaming(raw, prepared):
    shards = sorted((prepared / "images").glob("images-*.parquet"))
    assert len(shards) > 1 and re.fullmatch(rf"images-00000-of-{len(shards):05d}-[0-9a-f]{{12}}\.parquet", shards[0].name)
    streamed = load_dataset(str(prepared), "refcoco_unc", split="train", streaming=True)
    stored = _stored(raw, "train")
    images = {row["image_id"]: row.pop("image") for row in stored}
    assert list(streamed.take(5)) == stored[:5]
    table = load_dataset(str(prepared), "images", split="train").cast_column("image", ImageFeature(decode=False))
    assert images.items() <= {row["image_id"]: row["image"]["bytes"] for row in table}.items()


@pytest.mark.parametrize("sentence_field", ["raw", "sent"])
def test_streamed_objects_join_their_images(raw, prepared, sentence_field):
    """A streamed epoch sees every object once, in order, with the rows of the map-style load."""
    streamed = load_refer_dataset(prepared, "refcoco_unc", "val", sentence_field=sentence_field, streaming=True)
    assert _rows(streamed) == _rows(_raw(raw, "val", sentence_field=sentence_field))


def test_each_image_is_stored_once(raw, tmp_path):
    """refcoco and refcoco+ over the same images: one image table holds each image once, and the card tells the
    bytes of the images and of the annotations."""
    output = prepare(raw / "refer", raw / "images", tmp_path / "both")
    table = pq.read_table(sorted((output / "images").glob("*.parquet")), columns=["image_id"])
    image_ids = table.column("image_id").to_pylist()
    used = {i for config in ("refcoco_unc", "refcoco+_unc") for split in ("train", "val", "testA", "testB")
            for i in _raw(raw, split, config)["image_id"]}
    assert sorted(image_ids) == image_ids and set(image_ids) == used and len(image_ids) == len(used)
    image_bytes = sum((raw / "images" / "train2014" / f"COCO_train2014_{i:012d}.jpg").stat().st_size for i in used)
    text = DatasetCard.load(output / "README.md").text
    assert f"The image files themselves hold {image_bytes} bytes" in text
    assert "| images (configuration `images`" in text and "| annotations (objects of" in text


def test_card_maps_configurations(prepared):
    card = DatasetCard.load(prepared / "README.md")
    config = card.data.configs[0]
    assert config["config_name"] == "refcoco_unc"
    assert [f["split"] for f in config["data_files"]] == ["train", "val", "testA", "testB"]
    assert card.data.mask_rule == "original"
    assert "| `refcoco_unc` | `val` |" in card.text


def test_missing_split_names_the_real_ones(prepared, tmp_path):
    with pytest.raises(ValueError, match=r"'test'.*\['train', 'val', 'testA', 'testB'\]"):
        load_refer_dataset(prepared, "refcoco_unc", "test", cache_dir=str(tmp_path / "cache"))


def test_command_line_with_plus_config_and_union(raw, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--push_to_hub" in capsys.readouterr().out
    output = tmp_path / "out"
    main(["--refer_root", str(raw / "refer"), "--images_root", str(raw / "images"), "--output_dir", str(output),
          "--mask_rule", "union"])
    card = DatasetCard.load(output / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["refcoco_unc", "refcoco+_unc", "images"]
    assert card.data.mask_rule == "union"
    reloaded = load_dataset(str(output), "refcoco+_unc", split="val", cache_dir=str(tmp_path / "cache"))
    stored = _stored(raw, "val", "refcoco+_unc", mask_rule="union")
    assert reloaded.to_list() == [{k: v for k, v in row.items() if k != "image"} for row in stored]
    joined = load_refer_dataset(output, "refcoco+_unc", "val", cache_dir=str(tmp_path / "cache"))
    assert _rows(joined) == _rows(_raw(raw, "val", "refcoco+_unc", mask_rule="union"))


def test_raw_and_sent_texts_survive_preparation(typed_data, tmp_path):
    """The prepared folder stores both texts; the loader reads raw by default, sent on request."""
    output = tmp_path / "typed-parquet"
    main(["--refer_root", str(typed_data / "refer"), "--images_root", str(typed_data / "images"),
          "--output_dir", str(output)])
    for split in ("train", "val"):
        raw_texts, sent_texts = (refs_texts(typed_data / "refer", split, f) for f in ("raw", "sent"))
        assert raw_texts != sent_texts
        assert load_refer_dataset(output, "refcoco_unc", split)["sentences"][:] == raw_texts
        assert load_refer_dataset(output, None, split, sentence_field="sent")["sentences"][:] == sent_texts
        loaded = load_dataset(str(output), "refcoco_unc", split=split, cache_dir=str(tmp_path / "cache"))
        assert (loaded["sentences"][:], loaded["sentences_sent"][:]) == (raw_texts, sent_texts)
    for field, texts in (("raw", raw_texts), ("sent", sent_texts)):  # streamed: the same texts and image bytes
        streamed = load_refer_dataset(output, "refcoco_unc", "val", sentence_field=field, streaming=True)
        rows = list(streamed.cast_column("image", ImageFeature(decode=False)))
        assert [row["sentences"] for row in rows] == texts
        assert [row["image"]["bytes"] for row in rows] == [row["image"] for row in _rows(_raw(typed_data, "val"))]
    assert "`sentences_sent`" in DatasetCard.load(output / "README.md").text


def test_same_folder_name_elsewhere_loads_its_own_rows(raw, typed_data, tmp_path):
    """The cache must not confuse a/refcoco-parquet with b/refcoco-parquet (same base name and config)."""
    cache = str(tmp_path / "cache")
    prepare(raw / "refer", raw / "images", tmp_path / "a" / "refcoco-parquet", configs=["refcoco_unc"])
    prepare(typed_data / "refer", typed_data / "images", tmp_path / "b" / "refcoco-parquet")
    a = load_refer_dataset(tmp_path / "a" / "refcoco-parquet", "refcoco_unc", "train", cache_dir=cache)
    b = load_refer_dataset(tmp_path / "b" / "refcoco-parquet", "refcoco_unc", "train", cache_dir=cache)
    assert a["sentences"][:] == refs_texts(raw / "refer", "train", "raw")
    assert b["sentences"][:] == refs_texts(typed_data / "refer", "train", "raw") != a["sentences"][:]


def test_prepared_again_in_place_loads_the_new_masks(raw, tmp_path):
    cache, output = str(tmp_path / "cache"), tmp_path / "refcoco-parquet"
    args = ["--refer_root", str(raw / "refer"), "--images_root", str(raw / "images"), "--output_dir", str(output),
            "--configs", "refcoco_unc"]
    main(args)
    before = load_refer_dataset(output, "refcoco_unc", "train", cache_dir=cache)["mask"][:]
    main([*args, "--overwrite", "--mask_rule", "union"])
    after = load_refer_dataset(output, "refcoco_unc", "train", cache_dir=cache)["mask"][:]
    assert after == _raw(raw, "train", mask_rule="union")["mask"][:] != before


def test_failure_leaves_no_output(raw, tmp_path, monkeypatch):
    output = tmp_path / "out"

    def broken_card(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(prepare_refcoco, "render_card", broken_card)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare(raw / "refer", raw / "images", output, configs=["refcoco_unc"])
    assert list(tmp_path.iterdir()) == []


def test_missing_image_fails_before_writing(raw, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(raw / "images", images)
    victim = sorted((images / "train2014").glob("*.jpg"))[-1]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=victim.name):
        prepare(raw / "refer", images, tmp_path / "out", configs=["refcoco_unc"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_unknown_config_and_existing_output(raw, prepared, tmp_path):
    with pytest.raises(ValueError, match=r"refcocog_umd.*found: \['refcoco_unc', 'refcoco\+_unc'\]"):
        prepare(raw / "refer", raw / "images", tmp_path / "out", configs=["refcocog_umd"])
    with pytest.raises(FileExistsError, match="overwrite"):
        prepare(raw / "refer", raw / "images", prepared, configs=["refcoco_unc"])


def test_overwrite_replaces_output(raw, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "stale.txt").write_text("old")
    prepare(raw / "refer", raw / "images", output, configs=["refcoco+_unc"], overwrite=True)
    assert not (output / "stale.txt").exists()
    assert (output / "data" / "refcoco_plus_unc").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.slow
def test_push_then_load_by_hub_id_and_streaming(raw, prepared, local_hub, tmp_path):
    """The real clients against the local Hub: upload the folder, then load it back by id, both ways."""
    env = {"PYTHONPATH": str(REPO_ROOT)}
    run_client(f"""
        from lavt_hf.scripts.prepare_refcoco import push_to_hub
        push_to_hub({str(prepared)!r}, "tester/refcoco-lavt")
        """, local_hub, tmp_path / "producer", extra_env=env)
    process = run_client("""
        import hashlib, json
        from datasets import Image
        from lavt_hf.training.data import FEATURES, load_refer_dataset, stream_num_rows

        def summary(rows):
            return [[r["ref_id"], r["mask"]["counts"], hashlib.sha256(r["image"]["bytes"]).hexdigest()]
                    for r in rows]

        full = load_refer_dataset("tester/refcoco-lavt", "refcoco_unc", "val")
        from types import SimpleNamespace
        from lavt_hf.training.data.prepared import _hub_num_rows
        no_split_sizes = SimpleNamespace(info=SimpleNamespace(splits=None))  # a card without them
        footer_rows = _hub_num_rows(no_split_sizes, "tester/refcoco-lavt", "refcoco_unc", "val", {})
        streamed = load_refer_dataset("tester/refcoco-lavt", "refcoco_unc", "val", streaming=True)
        undecoded = Image(decode=False)
        print(json.dumps({"full": summary(full.cast_column("image", undecoded)),
                          "streamed": summary(streamed.cast_column("image", undecoded).take(3)),
                          "streamed_rows": stream_num_rows(streamed),
                          "footer_rows": footer_rows}))
        """, local_hub, tmp_path / "consumer", extra_env=env)
    loaded = json.loads(process.stdout.strip().splitlines()[-1])
    expected = [[r["ref_id"], r["mask"]["counts"], hashlib.sha256(r["image"]).hexdigest()]
                for r in _rows(_raw(raw, "val"))]
    assert loaded["full"] == expected
    assert loaded["streamed"] == expected[:3]
    # A streamed schedule's length: from the split sizes, or where a card lacks them from the parquet footers.
    assert loaded["streamed_rows"] == loaded["footer_rows"] == len(expected)


def test_training_streams_the_prepared_folder(prepared, bert_vocab_dir):
    """The streamed training view over the image table: each object once, the same image and mask tensors as the
    map-style view, each image decoded once per item."""
    from transformers import AutoTokenizer

    from lavt_hf.training.data import ReferTrainDataset, ReferTrainStream
    from modeling_lavt.image_processing_lavt import LavtImageProcessor
    from modeling_lavt.processing_lavt import LavtProcessor

    processor = LavtProcessor(LavtImageProcessor(size=32), AutoTokenizer.from_pretrained(bert_vocab_dir))
    mapped = ReferTrainDataset(load_refer_dataset(prepared, "refcoco_unc", "val"), processor)
    streamed = list(ReferTrainStream(load_refer_dataset(prepared, "refcoco_unc", "val", streaming=True), processor))
    assert len(streamed) == len(mapped)
    for index, item in enumerate(streamed):
        for key in ("pixel_values", "labels"):
            assert torch.equal(item[key], mapped[index][key])


def test_configurations_that_disagree_on_an_image_are_refused(raw, tmp_path):
    """One image table serves every configuration, so an image_id must name one file in all of them."""
    refer = tmp_path / "refer"
    shutil.copytree(raw / "refer", refer)
    instances = json.loads((refer / "refcoco+" / "instances.json").read_text())
    first, second = instances["images"][0], instances["images"][1]
    first["file_name"], second["file_name"] = second["file_name"], first["file_name"]
    (refer / "refcoco+" / "instances.json").write_text(json.dumps(instances))
    with pytest.raises(ValueError, match=rf"image_id {first['id']} is .*{second['file_name']} in refcoco_unc but "
                                         rf".*{first['file_name']} in refcoco\+_unc"):
        prepare(refer, raw / "images", tmp_path / "out")
    assert not (tmp_path / "out").exists()
