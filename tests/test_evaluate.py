# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""`lavt-evaluate` end to end on a tiny random model and a synthetic refer dataset: outputs, one process
against two real processes, and clean errors."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer

from lavt_hf.training import evaluation as lavt_evaluate
from lavt_hf.training.data import decode_mask, load_refer_dataset
from lavt_hf.training.data.synthetic import generate_synthetic_refer
from modeling_lavt import LavtForReferringSegmentation
from modeling_lavt.image_processing_lavt import LavtImageProcessor
from modeling_lavt.processing_lavt import LavtProcessor
from modeling_lavt.sharing.hub import write_model_card
from tests.conftest import REPO_ROOT, recorded_texts, refs_texts, tiny_lavt_config
from tests.launch import accelerate_launch

pytestmark = pytest.mark.usefixtures("fresh_accelerator_state")

ORIGINAL_SIZE = (80, 60)  # (width, height) of the synthetic images; the model sees 64x64
SUBPROCESS_TIMEOUT = 240


@pytest.fixture(scope="module")
def setup(tmp_path_factory, bert_vocab_dir) -> dict[str, Path]:
    """A 12-image synthetic refer dataset and a tiny random model folder saved as users get it."""
    root = tmp_path_factory.mktemp("evaluate")
    generate_synthetic_refer(root / "refer", root / "images", num_images=12, seed=0, image_size=ORIGINAL_SIZE)
    torch.manual_seed(0)
    LavtForReferringSegmentation(tiny_lavt_config()).save_pretrained(root / "model")
    processor = LavtProcessor(LavtImageProcessor(size=64), AutoTokenizer.from_pretrained(bert_vocab_dir))
    processor.save_pretrained(root / "model")
    return {"root": root, "refer": root / "refer", "images": root / "images", "model": root / "model"}




def cli_args(setup: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    return ["--model", str(setup["model"]), "--dataset", str(setup["refer"]), "--dataset_config", "refcoco_unc",
            "--images_root", str(setup["images"]), "--num_workers", "0", "--batch_size", "4",
            "--output_dir", str(output_dir), *extra]


def run_cli(setup: dict[str, Path], output_dir: Path, *extra: str) -> tuple[dict, list[dict]]:
    assert lavt_evaluate.main(cli_args(setup, output_dir, *extra)) == 0
    return read_outputs(output_dir)


def read_outputs(output_dir: Path) -> tuple[dict, list[dict]]:
    summary = json.loads((output_dir / "eval_results.json").read_text())
    return summary, json.loads((output_dir / summary["per_sample_file"]).read_text())


def pairs_of_split(setup: dict[str, Path], split: str) -> list[tuple[int, int, str]]:
    """(ref_id, sentence_index, sentence) of every pair of the split, read from the refs pickle itself."""
    with open(setup["refer"] / "refcoco" / "refs(unc).p", "rb") as f:
        refs = pickle.load(f)
    return [(r["ref_id"], i, s["raw"]) for r in refs if r["split"] == split for i, s in enumerate(r["sentences"])]


def recomputed_metrics(per_sample: list[dict]) -> dict:
    """docs/evaluation.md's metrics written out again from the per-sample counts, independently of the metric module."""
    ious = [s["intersection"] / s["union"] if s["union"] else 0.0 for s in per_sample]
    total_union = sum(s["union"] for s in per_sample)
    metrics = {"overall_iou": 100 * sum(s["intersection"] for s in per_sample) / total_union,
               "mean_iou": 100 * sum(ious) / len(ious), "num_samples": len(ious)}
    for k in (0.5, 0.6, 0.7, 0.8, 0.9):
        metrics[f"precision@{k}"] = 100 * sum(iou >= k for iou in ious) / len(ious)
    return metrics


def check_outputs(summary: dict, per_sample: list[dict], pairs: list[tuple[int, int, str]]) -> None:
    assert summary["num_samples"] == len(per_sample) == len(pairs)
    assert [(s["ref_id"], s["sentence_index"], s["sentence"]) for s in per_sample] == pairs
    assert [s["sample_id"] for s in per_sample] == list(range(len(pairs)))
    for sample in per_sample:
        assert 0 <= sample["intersection"] <= sample["union"]
        assert sample["iou"] == pytest.approx(sample["intersection"] / sample["union"] if sample["union"] else 0)
    for key, value in recomputed_metrics(per_sample).items():
        assert summary[key] == pytest.approx(value, abs=1e-9), key


def test_cli_writes_results_per_sample_numbers_and_overlays(setup, tmp_path, capsys):
    summary, per_sample = run_cli(setup, tmp_path / "out", "--num_overlays", "2")
    check_outputs(summary, per_sample, pairs_of_split(setup, "val"))
    assert {k: summary[k] for k in ("protocol", "split", "dataset_config", "image_size", "num_processes")} == {
        "protocol": "model_input", "split": "val", "dataset_config": "refcoco_unc", "image_size": [64, 64],
        "num_processes": 1}
    assert summary["model"] == str(setup["model"]) and summary["dataset"] == str(setup["refer"])
    printed = capsys.readouterr().out
    assert "overall IoU" in printed and str(tmp_path / "out" / "eval_results.json") in printed

    best = sorted(per_sample, key=lambda s: (-s["iou"], s["sample_id"]))[:2]
    worst = sorted(per_sample, key=lambda s: (s["iou"], s["sample_id"]))[:2]
    expected = [f"{tag}_{rank:02d}_sample{s['sample_id']:06d}.png"
                for tag, chosen in (("best", best), ("worst", worst)) for rank, s in enumerate(chosen, 1)]
    overlays = sorted((tmp_path / "out" / "overlays").iterdir())
    assert [p.name for p in overlays] == sorted(expected)
    for path in overlays:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            # The original image under a strip holding the caption.
            assert (image.format, image.mode, image.width) == ("PNG", "RGB", ORIGINAL_SIZE[0])
            assert image.height > ORIGINAL_SIZE[1]


@pytest.mark.parametrize("field", ["raw", "sent"])
def test_sentence_field_is_what_is_tokenized_and_recorded(setup, typed_data, tmp_path, monkeypatch, field):
    """raw by default (the original's reading), sent with --sentence_field sent: in the tokenized texts,
    per_sample.json, eval_results.json and the model card made from it."""
    tokenized = recorded_texts(monkeypatch)
    args = ["--model", str(setup["model"]), "--dataset", str(typed_data / "refer"), "--images_root",
            str(typed_data / "images"), "--num_workers", "0", "--num_overlays", "0", "--output_dir", str(tmp_path)]
    summary, per_sample = run_cli_args([*args, *([] if field == "raw" else ["--sentence_field", "sent"])], tmp_path)
    expected = [t for texts in refs_texts(typed_data / "refer", "val", field) for t in texts]
    assert tokenized == [s["sentence"] for s in per_sample] == expected
    assert summary["sentence_field"] == field
    card = write_model_card(tmp_path, tiny_lavt_config(), [summary])
    assert f"| model_input | {field} |" in card.text


def run_cli_args(argv: list[str], output_dir: Path) -> tuple[dict, list[dict]]:
    assert lavt_evaluate.main(argv) == 0
    return read_outputs(output_dir)


def original_size_counts(setup: dict[str, Path], split: str, image_size: int) -> list[tuple[int, int]]:
    """(intersection, union) of every pair at the original image size, computed one pair at a time through
    the processor's own post-processing instead of the evaluation loop."""
    model = LavtForReferringSegmentation.from_pretrained(setup["model"]).eval()
    processor = LavtProcessor.from_pretrained(setup["model"])
    rows = load_refer_dataset(setup["refer"], "refcoco_unc", split, images_root=setup["images"])
    counts = []
    for row in rows:
        truth = decode_mask(row["mask"]).astype(bool)
        for sentence in row["sentences"]:
            inputs = processor(images=row["image"], text=sentence, size=image_size, return_tensors="pt")
            with torch.no_grad():
                logits = model(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"],
                               attention_mask=inputs["attention_mask"]).logits
            mask = processor.image_processor.post_process_referring_segmentation(
                logits, target_sizes=[truth.shape])[0]["mask"].numpy().astype(bool)
            counts.append((int((mask & truth).sum()), int((mask | truth).sum())))
    return counts


def test_original_protocol_counts_at_the_image_size(setup, tmp_path):
    summary, per_sample = run_cli(setup, tmp_path / "out", "--protocol", "original", "--split", "testA",
                                  "--image_size", "32", "--num_overlays", "0")
    check_outputs(summary, per_sample, pairs_of_split(setup, "testA"))
    assert (summary["protocol"], summary["image_size"]) == ("original", [32, 32])
    assert [(s["intersection"], s["union"]) for s in per_sample] == original_size_counts(setup, "testA", 32)
    assert not (tmp_path / "out" / "overlays").exists()


def test_bf16_autocast(setup, tmp_path):
    summary, per_sample = run_cli(setup, tmp_path / "out", "--dtype", "bf16", "--max_samples", "3",
                                  "--num_overlays", "1")
    check_outputs(summary, per_sample, pairs_of_split(setup, "val")[:3])
    assert summary["dtype"] == "bf16" and len(list((tmp_path / "out" / "overlays").iterdir())) == 2


@pytest.fixture(scope="module")
def prepared(setup) -> Path:
    """The setup's dataset in the prepared parquet format, in shards of a few objects."""
    from lavt_hf.scripts.prepare_refcoco import prepare_refcoco

    prepare_refcoco(setup["refer"], setup["images"], setup["root"] / "prepared", configs=["refcoco_unc"],
                    max_shard_bytes=1_000)
    return setup["root"] / "prepared"


def prepared_args(setup: dict[str, Path], prepared: Path, output_dir: Path, *extra: str) -> list[str]:
    argv = cli_args(setup, output_dir, *extra)
    argv[argv.index("--dataset") + 1] = str(prepared)
    return argv


@pytest.mark.parametrize("extra", [
    ["--num_overlays", "2", "--num_workers", "2"],
    ["--protocol", "original", "--split", "testA", "--max_samples", "9", "--num_overlays", "1"],
], ids=["model_input", "original_max_samples"])
def test_streamed_evaluation_gives_the_numbers_of_the_map_style_one(setup, prepared, tmp_path, extra):
    """The same samples in the same order: equal oIoU, mIoU, precisions, per-sample counts and overlays."""
    mapped, mapped_per_sample = run_cli_args(prepared_args(setup, prepared, tmp_path / "map", *extra), tmp_path / "map")
    streamed, streamed_per_sample = run_cli_args(
        prepared_args(setup, prepared, tmp_path / "stream", *extra, "--streaming"), tmp_path / "stream")
    split = extra[extra.index("--split") + 1] if "--split" in extra else "val"
    check_outputs(streamed, streamed_per_sample, pairs_of_split(setup, split)[:9 if "--max_samples" in extra else None])
    assert streamed_per_sample == mapped_per_sample
    assert streamed == mapped
    overlays = sorted(p.name for p in (tmp_path / "map" / "overlays").iterdir())
    assert overlays and sorted(p.name for p in (tmp_path / "stream" / "overlays").iterdir()) == overlays
    for name in overlays:
        with Image.open(tmp_path / "map" / "overlays" / name) as a, Image.open(tmp_path / "stream" / "overlays" / name) as b:
            assert a.tobytes() == b.tobytes()


def test_streamed_original_protocol_needs_one_process(setup, prepared, tmp_path, capsys, monkeypatch):
    from accelerate import Accelerator

    monkeypatch.setattr(Accelerator, "num_processes", property(lambda self: 2))
    assert_clean_exit(capsys, prepared_args(setup, prepared, tmp_path / "out", "--streaming", "--protocol", "original"),
                      "lavt-evaluate: error: --streaming with --protocol original runs on one process only, not 2")


@pytest.mark.slow
def test_two_processes_stream_the_numbers_of_one(setup, prepared, tmp_path):
    """A streamed evaluation on 2 processes (the main one reads, Accelerate dispatches; 13 pairs in batches of 4:
    the padding of the last one goes) gives the map-style numbers of one process."""
    args = ["--split", "train", "--max_samples", "13", "--num_overlays", "0"]
    one, one_per_sample = run_cli_args(prepared_args(setup, prepared, tmp_path / "one", *args), tmp_path / "one")
    accelerate_launch(["-m", "lavt_hf.training.evaluation",
                       *prepared_args(setup, prepared, tmp_path / "two", *args, "--streaming")], cwd=tmp_path)
    two, two_per_sample = read_outputs(tmp_path / "two")
    assert two["num_processes"] == 2 and two_per_sample == one_per_sample
    assert {k: v for k, v in two.items() if k != "num_processes"} == {
        k: v for k, v in one.items() if k != "num_processes"}


@pytest.mark.slow
def test_two_processes_give_the_numbers_of_one(setup, tmp_path):
    # 13 training pairs in batches of 4: the last batch is padded by the sampler and the padding must go.
    args = ["--split", "train", "--max_samples", "13", "--num_overlays", "1"]
    one, one_per_sample = run_cli(setup, tmp_path / "one", *args)
    accelerate_launch(["-m", "lavt_hf.training.evaluation", *cli_args(setup, tmp_path / "two", *args)], cwd=tmp_path)
    two, two_per_sample = read_outputs(tmp_path / "two")

    assert two["num_processes"] == 2  # `--cpu --num_processes 2` would silently run one (stack notes)
    assert one["num_samples"] == 13
    assert two_per_sample == one_per_sample
    assert {k: v for k, v in two.items() if k != "num_processes"} == {
        k: v for k, v in one.items() if k != "num_processes"}
    assert sorted(p.name for p in (tmp_path / "two" / "overlays").iterdir()) == sorted(
        p.name for p in (tmp_path / "one" / "overlays").iterdir())


@pytest.mark.slow
def test_runs_as_a_file(setup, tmp_path):
    """`accelerate launch training/evaluation.py` runs the file with training/ first on sys.path: nothing there
    may shadow a library it imports (the `evaluate` package)."""
    command = [sys.executable, str(REPO_ROOT / "training" / "evaluation.py"),
               *cli_args(setup, tmp_path / "out", "--max_samples", "3", "--num_overlays", "0")]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert read_outputs(tmp_path / "out")[0]["num_samples"] == 3


def assert_clean_exit(capsys, argv: list[str], message: str) -> None:
    """A non-zero exit with `message` on stderr and no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        lavt_evaluate.main(argv)
    assert exit_info.value.code != 0
    stderr = capsys.readouterr().err
    assert message in stderr and "Traceback" not in stderr, stderr


def test_bad_inputs_fail_cleanly_before_any_work(setup, tmp_path, capsys):
    out = tmp_path / "out"
    assert_clean_exit(capsys, cli_args(setup, out, "--protocol", "resized"), "invalid choice: 'resized'")
    with pytest.raises(ValueError, match="unknown protocol 'resized'"):
        lavt_evaluate.evaluate_model(None, None, None, protocol="resized")
    assert_clean_exit(capsys, cli_args(setup, out, "--split", "test"),
                      "split 'test' does not exist in")
    assert_clean_exit(capsys, cli_args(setup, out, "--split", "test"),
                      "available splits: ['train', 'val', 'testA', 'testB']")
    missing = cli_args(setup, out)
    missing[missing.index("--model") + 1] = str(tmp_path / "no-such-model")
    assert_clean_exit(capsys, missing, f"--model {tmp_path / 'no-such-model'}: no such model folder")
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    missing[missing.index("--model") + 1] = str(empty)
    assert_clean_exit(capsys, missing, f"cannot load the model and processor from {empty}")
    assert not out.exists()
