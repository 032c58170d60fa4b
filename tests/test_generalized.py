# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Expressions that name several objects or none (the gRefCOCO layout): the reader, the row format's
`no_target`, the views, the generalized metrics, and the whole path on synthetic generalized data (a short
training, lavt-evaluate with the presence threshold, the model card)."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from accelerate.state import AcceleratorState
from transformers import AutoTokenizer

from lavt_hf.scripts.prepare_refcoco import prepare_refcoco
from lavt_hf.training import evaluation as lavt_evaluate
from lavt_hf.training import train
from lavt_hf.training.data import (
    ReferEvalDataset,
    ReferTrainDataset,
    available_configs,
    decode_mask,
    encode_mask,
    load_refer_dataset,
    segmentation_mask,
)
from lavt_hf.training.data.refer import FEATURES, RawRefer
from lavt_hf.training.data.synthetic import generate_synthetic_refer
from lavt_hf.training.metrics import compute_generalized_metrics, compute_refer_metrics
from lavt_hf.training.metrics.refer_iou.refer_iou import GENERALIZED_CONFIG
from modeling_lavt.image_processing_lavt import LavtImageProcessor
from modeling_lavt.processing_lavt import LavtProcessor
from tests.conftest import tiny_lavt_config, tiny_train_recipe

pytestmark = pytest.mark.usefixtures("fresh_accelerator_state")


@pytest.fixture(scope="module")
def generalized(tmp_path_factory) -> Path:
    """Synthetic data in the gRefCOCO layout: `refer/grefcoco/grefs(unc).json`, `images/`."""
    root = tmp_path_factory.mktemp("generalized")
    generate_synthetic_refer(root / "refer", root / "images", num_images=16, seed=3, image_size=64, generalized=True)
    return root


@pytest.fixture(scope="module")
def processor(bert_vocab_dir) -> LavtProcessor:
    return LavtProcessor(LavtImageProcessor(size=32), AutoTokenizer.from_pretrained(bert_vocab_dir))


def grefs(root: Path) -> list[dict]:
    return json.loads((root / "refer" / "grefcoco" / "grefs(unc).json").read_text())


# The layout and the reader


def test_generator_writes_the_grefcoco_layout_with_the_classic_refs_inside(generalized, tmp_path):
    """Every classic ref is there unchanged (ann_id as a one-element list), plus no-target refs (one per image,
    ann_id [-1]) and multi-target ones; the classic output does not change with the option's existence."""
    refs = grefs(generalized)
    assert available_configs(generalized / "refer") == ["grefcoco_unc"]
    generate_synthetic_refer(tmp_path / "refer", tmp_path / "images", num_images=16, seed=3, image_size=64)
    with open(tmp_path / "refer" / "refcoco" / "refs(unc).p", "rb") as f:
        classic = pickle.load(f)
    single = [r for r in refs if len(r["ann_id"]) == 1 and r["ann_id"] != [-1]]
    texts = [(r["ann_id"], [(s["raw"], s["sent"]) for s in r["sentences"]]) for r in single]
    assert texts == [([r["ann_id"]], [(s["raw"], s["sent"]) for s in r["sentences"]]) for r in classic]
    no_target = [r for r in refs if r["ann_id"] == [-1]]
    assert len(no_target) == 16 and all(r["no_target"] for r in no_target)
    assert any(len(r["ann_id"]) > 1 for r in refs)
    assert any(s["sent"].startswith("both ") for r in refs for s in r["sentences"])
    assert (tmp_path / "images" / "train2014").is_dir() and not (tmp_path / "refer" / "grefcoco").exists()


def test_rows_of_several_objects_are_the_union_and_of_none_are_empty(generalized):
    refer = RawRefer(generalized / "refer", generalized / "images", "grefcoco", "unc")
    rows = {row["ref_id"]: row for row in refer.rows("train")}
    by_ref = {r["ref_id"]: r for r in grefs(generalized)}
    seen = {"none": 0, "several": 0, "one": 0}
    for ref_id, row in rows.items():
        ids = by_ref[ref_id]["ann_id"]
        mask = decode_mask(row["mask"])
        info = refer.images[row["image_id"]]
        if ids == [-1]:
            seen["none"] += 1
            assert row["no_target"] and not mask.any() and row["ann_id"] == -1 and row["category_id"] == -1
            assert row["bbox"] == [0.0, 0.0, 0.0, 0.0]
            continue
        union = np.zeros_like(mask)
        for ann_id in ids:
            union |= segmentation_mask(refer.annotations[ann_id]["segmentation"], info["height"], info["width"])
        assert not row["no_target"] and np.array_equal(mask, union)
        assert row["ann_id"] == (ids[0] if len(ids) == 1 else -1)
        seen["several" if len(ids) > 1 else "one"] += 1
    assert min(seen.values()) > 0


def write_layout(root: Path, refs: list[dict], annotations: list[dict], name: str = "grefs(unc).json") -> Path:
    """A one-image gRefCOCO folder (64x48 image) with the given refs and annotations."""
    from PIL import Image

    folder = root / "refer" / "grefcoco"
    folder.mkdir(parents=True)
    (root / "images" / "train2014").mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(root / "images" / "train2014" / "COCO_train2014_000000000001.jpg")
    instances = {"images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": 48, "width": 64}],
                 "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    (folder / "instances.json").write_text(json.dumps(instances))
    if name.endswith(".json"):
        (folder / name).write_text(json.dumps(refs))
    else:
        with open(folder / name, "wb") as f:
            pickle.dump(refs, f, protocol=2)
    return root


def annotation(ann_id: int, x0: float, segmentation=None, iscrowd: int = 0) -> dict:
    square = [x0, 4.0, x0 + 10, 4.0, x0 + 10, 14.0, x0, 14.0]
    return {"id": ann_id, "image_id": 1, "category_id": 1, "segmentation": segmentation or [square],
            "bbox": [x0, 4.0, 10.0, 10.0], "iscrowd": iscrowd}


def ref(ref_id: int, ann_id, **extra) -> dict:
    sentence = {"raw": "the things", "sent": "the things", "tokens": ["the", "things"], "sent_id": ref_id}
    return {"ref_id": ref_id, "ann_id": ann_id, "image_id": 1, "category_id": 1, "split": "val",
            "sentences": [sentence], **extra}


def test_multi_target_refs_skip_crowds_and_degenerate_polygons(tmp_path):
    """As the gRefCOCO reader: in a multi-target ref a crowd annotation and a polygon of fewer than 3 points are
    left out; an old-style int ann_id is a one-element list; a pickle grefs file is read too."""
    crowd = {"size": [48, 64], "counts": [0, 48 * 64]}  # uncompressed RLE covering everything
    annotations = [annotation(1, 2), annotation(2, 30, [[30, 4, 40, 4, 40, 14, 30, 14], [1, 1, 2, 2]]),
                   annotation(3, 0, crowd, iscrowd=1)]
    root = write_layout(tmp_path, [ref(1, [1, 2, 3]), ref(2, 1)], annotations, name="grefs(unc).p")
    rows = load_refer_dataset(root / "refer", "grefcoco_unc", "val", images_root=root / "images")
    union = decode_mask(rows[0]["mask"])
    assert union.sum() == 2 * decode_mask(rows[1]["mask"]).sum() > 0
    assert rows[1]["ann_id"] == 1 and rows[0]["ann_id"] == -1


def test_grefs_pickle_holding_json_is_read(tmp_path):
    root = write_layout(tmp_path, [ref(1, [-1], no_target=True)], [annotation(1, 2)], name="grefs(unc).json")
    folder = root / "refer" / "grefcoco"
    (folder / "grefs(unc).json").rename(folder / "grefs(unc).p")
    rows = load_refer_dataset(root / "refer", "grefcoco_unc", "val", images_root=root / "images")
    assert rows["no_target"] == [True]


def test_a_truncated_grefs_file_is_an_error_naming_it(tmp_path):
    root = write_layout(tmp_path, [ref(1, [1])], [annotation(1, 2)])
    path = root / "refer" / "grefcoco" / "grefs(unc).json"
    path.write_text(path.read_text()[:-20])
    with pytest.raises(ValueError, match=r"grefs\(unc\)\.json is not a readable JSON refs file .*expected layout"):
        load_refer_dataset(root / "refer", "grefcoco_unc", "val", images_root=root / "images")


@pytest.mark.parametrize(("refs", "annotations", "message"), [
    ([ref(1, [-1, 1])], [annotation(1, 2)], r"ref_id 1 .*ann_id \[-1, 1\].*ann_id \[-1\]"),
    ([ref(1, [1], no_target=True)], [annotation(1, 2)], r"ref_id 1 .*no_target True"),
    ([ref(1, [1, 7])], [annotation(1, 2)], r"point at annotations or images .*first ref_ids: \[1\]"),
    ([ref(1, [1, 2])], [annotation(1, 0, {"size": [48, 64], "counts": [0, 3072]}, 1),
                        annotation(2, 0, [[1, 1, 2, 2]])], r"ann_id \[1, 2\] \(ref_id 1\) .*no drawable target"),
])
def test_bad_generalized_refs_are_errors_naming_the_ref(tmp_path, refs, annotations, message):
    root = write_layout(tmp_path, refs, annotations)
    with pytest.raises(ValueError, match=message):
        load_refer_dataset(root / "refer", "grefcoco_unc", "val", images_root=root / "images")


# The views


def test_views_accept_an_empty_mask_exactly_when_no_target(generalized, processor):
    rows = load_refer_dataset(generalized / "refer", split="train", images_root=generalized / "images")
    first_none = rows["no_target"].index(True)
    item = ReferTrainDataset(rows, processor)[first_none]
    assert item["labels"].sum() == 0  # all background for the loss
    from modeling_lavt import LavtForReferringSegmentation

    torch.manual_seed(0)
    model = LavtForReferringSegmentation(tiny_lavt_config(dice_weight=1.0))
    loss = model(**{k: v[None] for k, v in item.items()}).loss
    assert torch.isfinite(loss) and loss > 0
    eval_view = ReferEvalDataset(rows, processor)
    flags = [bool(eval_view[i]["no_target"]) for i in range(len(eval_view))]
    assert sum(flags) == sum(len(s) for s, n in zip(rows["sentences"], rows["no_target"]) if n)

    mask = decode_mask(rows[first_none]["mask"])
    wrong = rows.map(lambda row, i: {"no_target": False} if i == first_none else {}, with_indices=True)
    with pytest.raises(ValueError, match=f"ref_id {rows[first_none]['ref_id']} .*an empty mask but is not marked"):
        ReferTrainDataset(wrong, processor)[first_none]
    full = encode_mask(np.ones_like(mask))
    wrong = rows.map(lambda row, i: {"mask": full} if i == first_none else {}, with_indices=True)
    with pytest.raises(ValueError, match="no_target set but a non-empty mask"):
        ReferEvalDataset(wrong, processor)[ReferEvalDataset(rows, processor).pair_row.tolist().index(first_none)]


def test_prepared_parquet_keeps_no_target(generalized, tmp_path):
    prepared = prepare_refcoco(generalized / "refer", generalized / "images", tmp_path / "prepared")
    raw = load_refer_dataset(generalized / "refer", split="val", images_root=generalized / "images")
    loaded = load_refer_dataset(prepared, "grefcoco_unc", "val")
    assert loaded.features == FEATURES and loaded["no_target"] == raw["no_target"] and any(raw["no_target"])
    assert loaded["mask"] == raw["mask"]



# The generalized metrics


def test_generalized_metrics_follow_the_gres_rules():
    # (I, U, no-target, predicted no-target): a hit 1/2; a targeted sample called no-target; a recognised
    # no-target; a missed no-target whose predicted area is 5.
    intersections, unions = [1, 3, 0, 0], [2, 4, 0, 5]
    no_target, predicted = [False, False, True, True], [False, True, True, False]
    found = compute_generalized_metrics(intersections, unions, no_target, predicted)
    assert found["giou"] == pytest.approx(100 * (0.5 + 0 + 1 + 0) / 4)
    assert found["ciou"] == pytest.approx(100 * 1 / (2 + 4 + 0 + 5))
    assert found["n_acc"] == pytest.approx(50.0) and found["t_acc"] == pytest.approx(50.0)
    assert found["generalized_precision@0.5"] == pytest.approx(50.0)  # targeted samples only: 0.5 and 0
    assert found["generalized_precision@0.6"] == 0.0 and found["num_no_target"] == 2
    none = compute_generalized_metrics([1], [2], [False], [False])
    assert none["n_acc"] == none["t_acc"] == 0.0  # the evaluator's rule without no-target samples
    with pytest.raises(ValueError, match="no-target sample has a nonzero intersection"):
        compute_generalized_metrics([1], [2], [True], [False])
    with pytest.raises(ValueError, match="1 samples but 2 no_target"):
        compute_generalized_metrics([1], [2], [True, False], [False])


def test_the_evaluate_module_has_a_generalized_configuration_and_the_classic_one_is_unchanged():
    import evaluate

    from lavt_hf.training.metrics import REFER_IOU_DIR

    classic = evaluate.load(str(REFER_IOU_DIR), keep_in_memory=True)
    assert classic.compute(intersection=[1, 3, 0], union=[2, 4, 0]) == compute_refer_metrics([1, 3, 0], [2, 4, 0])
    module = evaluate.load(str(REFER_IOU_DIR), GENERALIZED_CONFIG, keep_in_memory=True)
    module.add_batch(intersection=[1, 3], union=[2, 4], no_target=[False, False], predicted_no_target=[False, True])
    found = module.compute(intersection=[0, 0], union=[0, 5], no_target=[True, True],
                           predicted_no_target=[True, False])
    expected = compute_generalized_metrics([1, 3, 0, 0], [2, 4, 0, 5], [False, False, True, True],
                                           [False, True, True, False])
    assert found == {**compute_refer_metrics([1, 3, 0, 0], [2, 4, 0, 5]), **expected}


# The whole path: generalized data, a short training, the presence threshold, the generalized report




@pytest.fixture(scope="module")
def trained(generalized, bert_vocab_dir, tmp_path_factory) -> Path:
    """A tiny model trained a few steps on the generalized data (evaluated on its val split during training)."""
    output_dir = tmp_path_factory.mktemp("trained") / "run"
    recipe = tiny_train_recipe(generalized, bert_vocab_dir, output_dir=str(output_dir), dataset_config="grefcoco_unc",
                               num_epochs=1, max_train_objects=16)
    path = output_dir.parent / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    AcceleratorState._reset_state(reset_partial_state=True)
    result = train.run(["--config", str(path)])
    AcceleratorState._reset_state(reset_partial_state=True)
    return Path(result["final_dir"])


def test_training_on_generalized_data_reports_the_generalized_metrics(trained):
    from huggingface_hub import ModelCard

    evaluated = json.loads((trained / "eval_results.json").read_text())
    assert {"giou", "ciou", "n_acc", "t_acc", "overall_iou"} <= evaluated.keys()
    assert evaluated["presence_threshold"] == 0.5 and evaluated["num_no_target"] > 0
    card = ModelCard.load(trained / "README.md")
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert values["giou"] == pytest.approx(evaluated["giou"], abs=1e-4) and {"ciou", "n_acc", "t_acc"} <= values.keys()
    assert "| gIoU | cIoU | N-acc | T-acc |" in card.text and "the threshold (0.5)" in card.text


def evaluate_cli(generalized: Path, model: Path, output_dir: Path, *extra: str) -> tuple[dict, list[dict]]:
    argv = ["--model", str(model), "--dataset", str(generalized / "refer"), "--images_root",
            str(generalized / "images"), "--num_workers", "0", "--batch_size", "8", "--num_overlays", "1",
            "--output_dir", str(output_dir), *extra]
    assert lavt_evaluate.main(argv) == 0
    summary = json.loads((output_dir / "eval_results.json").read_text())
    return summary, json.loads((output_dir / summary["per_sample_file"]).read_text())


def test_lavt_evaluate_reports_the_generalized_metrics_at_the_presence_threshold(generalized, trained, tmp_path,
                                                                                capsys):
    summary, per_sample = evaluate_cli(generalized, trained, tmp_path / "default")
    printed = capsys.readouterr().out
    assert "gIoU" in printed and "N-acc" in printed and "T-acc" in printed
    flags = [s["no_target"] for s in per_sample]
    predicted = [s["presence"] < 0.5 for s in per_sample]
    expected = compute_generalized_metrics([s["intersection"] for s in per_sample],
                                           [s["union"] for s in per_sample], flags, predicted)
    assert {k: summary[k] for k in expected} == pytest.approx(expected)
    assert summary["presence_threshold"] == 0.5 and summary["num_no_target"] == sum(flags) > 0
    # At 0.5 'no target' is an empty argmax mask: a no-target sample's union is its predicted area.
    assert all((s["union"] == 0) == (s["presence"] < 0.5) for s in per_sample if s["no_target"])

    # Threshold 0: nothing is called no-target, so N-acc is 0, T-acc 100, and gIoU is the targeted IoUs' sum
    # over every sample.
    zero, per_sample = evaluate_cli(generalized, trained, tmp_path / "zero", "--presence_threshold", "0")
    assert zero["n_acc"] == 0.0 and zero["t_acc"] == 100.0 and zero["presence_threshold"] == 0.0
    assert zero["giou"] == pytest.approx(100 * sum(s["iou"] for s in per_sample if not s["no_target"]) / len(per_sample))
    assert zero["overall_iou"] == summary["overall_iou"]  # the classic metrics do not depend on the threshold


def test_classic_data_keeps_its_report(synthetic_data, trained, tmp_path):
    """No no-target sample: the classic metrics only, as before, and the threshold recorded."""
    argv = ["--model", str(trained), "--dataset", str(synthetic_data / "refer"), "--images_root",
            str(synthetic_data / "images"), "--num_workers", "0", "--num_overlays", "0", "--output_dir",
            str(tmp_path / "out")]
    assert lavt_evaluate.main(argv) == 0
    summary = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert "giou" not in summary and "overall_iou" in summary and summary["presence_threshold"] == 0.5


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_presence_threshold_outside_zero_one_is_refused(generalized, trained, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli(generalized, trained, tmp_path / "out", "--presence_threshold", value)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "--presence_threshold" in stderr and "Traceback" not in stderr
