# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Resuming lavt-train safely: damaged checkpoints are named and skipped, a checkpoint of another schedule or
another model is refused with each differing setting, and another run's checkpoint resumes into a new folder."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from accelerate.state import AcceleratorState

from lavt_hf.cli import UsageError
from lavt_hf.training import train
from tests.conftest import tiny_train_recipe

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
              pytest.mark.usefixtures("fresh_accelerator_state")]




def write_recipe(path: Path, synthetic_data: Path, bert_vocab_dir: Path, **overrides) -> Path:
    """The shared tiny recipe cut to 8 objects (2 steps per epoch), 2 epochs, a checkpoint every step."""
    recipe = tiny_train_recipe(synthetic_data, bert_vocab_dir, max_train_objects=8, max_eval_samples=4,
                               checkpointing_steps=1, checkpoints_total_limit=10, **overrides)
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def finished_run(synthetic_data, bert_vocab_dir, tmp_path_factory) -> dict[str, Path]:
    """A complete run with checkpoints 1 to 4 (read only: tests that damage one work on a copy)."""
    root = tmp_path_factory.mktemp("resume")
    recipe = write_recipe(root / "recipe.yaml", synthetic_data, bert_vocab_dir)
    AcceleratorState._reset_state(reset_partial_state=True)
    train.run(["--config", str(recipe), "--output_dir", str(root / "run")])
    return {"recipe": recipe, "run": root / "run", "checkpoints": root / "run" / "checkpoints"}


def main_output(capsys, argv: list[str]) -> tuple[int, str]:
    """Exit status and everything printed by `lavt-train argv`."""
    try:
        code = train.main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_checkpoints_record_schedule_model_and_file_sizes(finished_run):
    checkpoint = finished_run["checkpoints"] / "checkpoint-3"
    record = json.loads((checkpoint / train.CHECKPOINT_RECORD).read_text())
    assert record["schedule"]["per_device_batch_size"] == 4 and record["schedule"]["training_objects"] == 8
    assert record["model_settings"]["embed_dim"] == 8 and record["model_settings"]["text_config.hidden_size"] == 16
    assert record["files"]["optimizer.bin"] == (checkpoint / "optimizer.bin").stat().st_size
    assert (checkpoint / "best" / "model.safetensors").is_file()  # the best model as of step 3 (epoch 1's)


def test_latest_falls_back_past_a_damaged_checkpoint(finished_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run["run"], run_dir)
    shutil.rmtree(run_dir / "model")
    optimizer = run_dir / "checkpoints" / "checkpoint-4" / "optimizer.bin"
    optimizer.write_bytes(optimizer.read_bytes()[:100])  # a copy cut short
    code, out = main_output(capsys, ["--config", str(finished_run["recipe"]), "--output_dir", str(run_dir),
                                     "--resume_from_checkpoint", "latest"])
    assert code == 0, out
    assert f"checkpoint {run_dir / 'checkpoints' / 'checkpoint-4'} is damaged: {optimizer} has 100 bytes" in out
    assert f"resumed from {run_dir / 'checkpoints' / 'checkpoint-3'} at step 3" in out
    assert (run_dir / "model" / "model.safetensors").is_file()


def test_resolve_checkpoint_says_what_it_does(finished_run, tmp_path):
    said = []
    assert train.resolve_checkpoint("latest", tmp_path / "fresh", said.append) is None
    assert said == [f"--resume_from_checkpoint latest: no checkpoint in {tmp_path / 'fresh' / 'checkpoints'}; "
                    "starting from scratch"]

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run["checkpoints"], run_dir / "checkpoints")
    (run_dir / "checkpoints" / "checkpoint-2" / "model.safetensors").unlink()
    with pytest.raises(UsageError, match=r"checkpoint-2: the checkpoint is damaged: .*model.safetensors is missing"):
        train.resolve_checkpoint(str(run_dir / "checkpoints" / "checkpoint-2"), run_dir)
    for step in (1, 3, 4):
        (run_dir / "checkpoints" / f"checkpoint-{step}" / "custom_checkpoint_0.pkl").write_bytes(b"")
    with pytest.raises(UsageError, match="every checkpoint in .* is damaged"):
        train.resolve_checkpoint("latest", run_dir, said.append)
    assert len(said) == 5 and "checkpoint-4 is damaged" in said[1] and "custom_checkpoint_0.pkl has 0 bytes" in said[1]


def test_another_schedule_is_refused_naming_each_setting(finished_run, tmp_path, capsys):
    code, out = main_output(capsys, [
        "--config", str(finished_run["recipe"]), "--output_dir", str(tmp_path / "run"),
        "--resume_from_checkpoint", str(finished_run["checkpoints"] / "checkpoint-2"),
        "--per_device_batch_size", "2", "--num_epochs", "3"])
    line = out.strip().splitlines()[-1]
    assert code == 2 and line.startswith("lavt-train: error: --resume_from_checkpoint"), out
    assert "the schedule settings differ" in line
    assert "num_epochs: 2 in the checkpoint, 3 now" in line and "per_device_batch_size: 4 in the checkpoint, 2 now" in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_another_model_is_refused_naming_each_setting(finished_run, synthetic_data, bert_vocab_dir, tmp_path,
                                                      capsys):
    recipe = yaml.safe_load(finished_run["recipe"].read_text())
    recipe["model_overrides"]["embed_dim"] = 16
    recipe["text_config"]["hidden_size"] = 32
    (tmp_path / "wider.yaml").write_text(yaml.safe_dump(recipe))
    code, out = main_output(capsys, [
        "--config", str(tmp_path / "wider.yaml"), "--output_dir", str(tmp_path / "run"),
        "--resume_from_checkpoint", str(finished_run["checkpoints"] / "checkpoint-2")])
    line = out.strip().splitlines()[-1]
    assert code == 2 and "the model settings differ" in line, out
    assert "embed_dim: 8 in the checkpoint, 16 now" in line
    assert "text_config.hidden_size: 16 in the checkpoint, 32 now" in line


def test_another_runs_checkpoint_resumes_into_a_new_folder(finished_run, tmp_path, capsys):
    """The state's best score comes with the best model it belongs to (kept in the checkpoint)."""
    new_dir = tmp_path / "continued"
    code, out = main_output(capsys, ["--config", str(finished_run["recipe"]), "--output_dir", str(new_dir),
                                     "--resume_from_checkpoint", str(finished_run["checkpoints"] / "checkpoint-3")])
    assert code == 0, out
    assert {"model.safetensors", "config.json", "eval_results.json"} <= {p.name for p in (new_dir / "model").iterdir()}
    assert train.checkpoints_in(new_dir / "checkpoints")[-1].name == "checkpoint-4"
    state = json.loads((new_dir / "trainer_state.json").read_text())
    assert state["best_overall_iou"] >= json.loads(
        (finished_run["checkpoints"] / "checkpoint-3" / "trainer_state.json").read_text())["best_overall_iou"]


def test_a_checkpoint_without_its_best_model_chooses_the_best_anew(finished_run, tmp_path, capsys):
    """A checkpoint saved before the first evaluation (no best model yet), resumed into a new folder: said, and the
    run still ends with a model."""
    checkpoint = tmp_path / "old" / "checkpoint-3"
    shutil.copytree(finished_run["checkpoints"] / "checkpoint-3", checkpoint)
    shutil.rmtree(checkpoint / "best")
    record = json.loads((checkpoint / train.CHECKPOINT_RECORD).read_text())
    record["files"] = {name: size for name, size in record["files"].items() if not name.startswith("best/")}
    (checkpoint / train.CHECKPOINT_RECORD).write_text(json.dumps(record))
    code, out = main_output(capsys, ["--config", str(finished_run["recipe"]), "--output_dir", str(tmp_path / "new"),
                                     "--resume_from_checkpoint", str(checkpoint)])
    assert code == 0, out
    assert f"warning: {checkpoint} holds no best model" in out
    assert (tmp_path / "new" / "model" / "model.safetensors").is_file()
