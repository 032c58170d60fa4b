# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The loss-study tool: arms and checks, statistics and report on known numbers, a real tiny study that is
killed and resumed without redoing its finished run."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lavt_hf.scripts import compare_losses
from lavt_hf.training import compare, evaluation, train
from lavt_hf.training.arguments import merge_recipe
from lavt_hf.training.compare import launch
from lavt_hf.training.stats import paired_bootstrap_ci, paired_comparison, summarize
from tests.conftest import tiny_train_recipe

PERCEPTUAL_TINY = {"loss": {"perceptual_weight": 1.0, "perceptual_network": "resnet10t",
                            "perceptual_pretrained": False}}


def tiny_recipe(synthetic_data: Path, bert_vocab_dir: Path) -> dict:
    """The shared tiny recipe (2 epochs of 2 steps in seconds) on the first 8 objects."""
    return tiny_train_recipe(synthetic_data, bert_vocab_dir, max_train_objects=8)


def settings_for(study_dir: Path, recipe: dict, arms: dict[str, dict], seeds=(0, 1), **options):
    return compare.StudySettings(study_dir=study_dir, base_recipe=recipe,
                                 arms=[compare.Arm(n, o) for n, o in arms.items()], seeds=list(seeds), **options)


# ------------------------------------------------------------------------------------------ arms and checks


def test_arm_specs_and_recipe_merging(tmp_path):
    assert compare.parse_arm("ce_dice") == compare.Arm("ce_dice", compare.DEFAULT_ARMS["ce_dice"])
    assert compare.parse_arm("half={loss: {dice_weight: 0.5}}").override == {"loss": {"dice_weight": 0.5}}
    assert compare.parse_arm('j={"learning_rate": 0.001}').override == {"learning_rate": 0.001}
    with pytest.raises(ValueError, match="not a default arm"):
        compare.parse_arm("dice")
    with pytest.raises(ValueError, match="expected a mapping"):
        compare.parse_arm("x=[1, 2]")
    arms_file = tmp_path / "arms.yaml"
    arms_file.write_text("base:\nhigh_lr: {learning_rate: 0.01}\n")
    assert compare.load_arms_file(arms_file) == [compare.Arm("base", {}), compare.Arm("high_lr", {"learning_rate": 0.01})]

    # Mapping options merge key by key; other options are replaced.
    base = {"loss": {"ce_weight": 1.0, "ce_class_weights": [0.9, 1.1]}, "num_epochs": 40}
    merged = merge_recipe(base, {"loss": {"dice_weight": 1.0}, "num_epochs": 2})
    assert merged == {"loss": {"ce_weight": 1.0, "ce_class_weights": [0.9, 1.1], "dice_weight": 1.0}, "num_epochs": 2}
    assert compare.build_base_recipe(None, ["num_epochs=3", "loss={ce_weight: 0.5}"]) == {
        "num_epochs": 3, "loss": {"ce_weight": 0.5}}

    # Perceptual arms get the offline ImageNet EfficientNet-Lite0 unless they choose their own network.
    settings = settings_for(tmp_path / "study", {}, compare.DEFAULT_ARMS)
    filled = compare.with_perceptual_defaults(merge_recipe({}, compare.DEFAULT_ARMS["ce_perceptual"]), settings)
    assert filled["loss"]["perceptual_network"] == "tf_efficientnet_lite0"
    assert filled["loss"]["perceptual_pretrained"] == str(tmp_path / "study" / "perceptual" /
                                                          "tf_efficientnet_lite0.safetensors")
    assert compare.with_perceptual_defaults({"loss": {"ce_weight": 1.0}}, settings) == {"loss": {"ce_weight": 1.0}}
    assert compare.with_perceptual_defaults(PERCEPTUAL_TINY, settings) == PERCEPTUAL_TINY
    hub = settings_for(tmp_path, {}, compare.DEFAULT_ARMS, perceptual_network="vgg16", perceptual_weights="timm")
    assert compare.with_perceptual_defaults({"loss": {"perceptual_weight": 1.0}}, hub)["loss"] == {
        "perceptual_weight": 1.0, "perceptual_network": "vgg16", "perceptual_pretrained": True}
    offline_vgg = settings_for(tmp_path, {}, compare.DEFAULT_ARMS, perceptual_network="vgg16")
    with pytest.raises(ValueError, match="offline ImageNet weights exist only for tf_efficientnet_lite0"):
        compare.with_perceptual_defaults({"loss": {"perceptual_weight": 1.0}}, offline_vgg)


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to train fails the test: bad input must be refused before."""
    def refuse(argv):
        raise AssertionError(f"training started: {argv}")

    monkeypatch.setattr(train, "run", refuse)


@pytest.mark.parametrize("arms, seeds, message", [
    ({"ce": {}, "typo": {"learning_rte": 0.1}}, (0, 1), r"arm 'typo': unknown training option\(s\) \['learning_rte'\]"),
    ({"ce": {}, "typo": {"loss": {"perceptual_wieght": 1.0}}}, (0, 1), "unknown LavtConfig field.*perceptual_wieght"),
    ({"ce": {}, "bad": {"loss": {"ce_weight": 0.0}}}, (0, 1), "at least one > 0"),
    ({"ce": {}, "bad": {"loss": {"perceptual_weight": 1.0, "perceptual_network": "no_such_cnn",
                                    "perceptual_pretrained": False}}}, (0, 1),
     "not a timm model"),
    ({"ce": {}, "own": {"seed": 5}}, (0, 1), r"\['seed'\] cannot be set here"),
    ({"ce": {}, "other_data": {"eval_split": "testA"}}, (0, 1), r"\['eval_split'\] cannot be set here"),
    ({"ce": {}, "ce_dice": {}}, (0,), "a paired comparison needs at least 2 seeds"),
    ({"ce": {}}, (0, 1), "at least 2 arms"),
    ({"ce": {}, "bad name": {}}, (0, 1), "must be a folder name"),
])
def test_bad_input_is_refused_before_training(synthetic_data, bert_vocab_dir, tmp_path, no_training, arms, seeds,
                                              message):
    settings = settings_for(tmp_path / "study", tiny_recipe(synthetic_data, bert_vocab_dir), arms, seeds)
    with pytest.raises(ValueError, match=message):
        compare.run_study(settings)
    assert not (tmp_path / "study").exists()


def test_missing_dataset_is_refused_before_training(synthetic_data, bert_vocab_dir, tmp_path, no_training):
    arms = {"ce": {}, "ce_dice": compare.DEFAULT_ARMS["ce_dice"]}
    for missing in (str(tmp_path / "no" / "refer"), "no/such/refer/root"):
        recipe = {**tiny_recipe(synthetic_data, bert_vocab_dir), "dataset": missing}
        with pytest.raises(FileNotFoundError, match="does not exist|neither an existing local path|not found"):
            compare.run_study(settings_for(tmp_path / "study", recipe, arms))
    recipe = {**tiny_recipe(synthetic_data, bert_vocab_dir), "dataset_config": "refcoco+_unc"}
    with pytest.raises((FileNotFoundError, ValueError), match="cannot load split 'train'"):
        compare.run_study(settings_for(tmp_path / "study", recipe, arms))
    assert not (tmp_path / "study").exists()


def test_command_line_reports_bad_input_without_traceback(synthetic_data, bert_vocab_dir, tmp_path, no_training,
                                                          capsys):
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump(tiny_recipe(synthetic_data, bert_vocab_dir)))
    with pytest.raises(SystemExit) as exit_info:
        compare_losses.main(["--config", str(config), "--study-dir", str(tmp_path / "study"), "--seeds", "1"])
    assert exit_info.value.code == 2
    assert "lavt-compare: error: a paired comparison needs at least 2 seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare_losses.main(["--config", str(config), "--set", "output_dir=elsewhere"])
    assert "cannot be set here" in capsys.readouterr().err


def test_run_folder_with_other_settings_is_refused(synthetic_data, bert_vocab_dir, tmp_path, no_training):
    settings = settings_for(tmp_path / "study", tiny_recipe(synthetic_data, bert_vocab_dir),
                            {"ce": {}, "ce_dice": compare.DEFAULT_ARMS["ce_dice"]})
    run = compare.plan_study(settings)[1]
    run.directory.mkdir(parents=True)
    run.config_path.write_text(yaml.safe_dump({**run.recipe, "learning_rate": 0.5}))
    with pytest.raises(ValueError, match=r"written with other settings \(differing: \['learning_rate'\]\)"):
        compare.plan_study(settings)


# ------------------------------------------------------------------ orchestration and statistics on known numbers

ARM_OFFSETS = {"ce": 0.0, "better": 0.6, "worse": -1.0}  # per-sample IoU shift of each fake arm (x100)


def fake_numbers(arm: str, seed: int, num_samples: int = 40) -> np.ndarray:
    """Per-sample IoUs (0..1) of a fake run: a seed effect, an arm effect and sample noise."""
    rng = np.random.default_rng([seed, 7])
    base = rng.uniform(0.2, 0.9, num_samples)
    noise = np.random.default_rng([seed, len(arm)]).normal(0, 0.02, num_samples)
    return np.clip(base + ARM_OFFSETS[arm] / 100 + noise, 0, 1)


@pytest.fixture
def fake_pipeline(monkeypatch):
    """`train.run` and `lavt-evaluate` replaced by fakes that write what the real ones write, from known numbers;
    a run whose recipe has `max_grad_norm: 13` diverges."""
    trained = []

    def fake_train(argv):
        recipe = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text())
        run_dir = Path(recipe["output_dir"])
        trained.append(run_dir)
        if recipe.get("max_grad_norm") == 13:
            raise train.NonFiniteLossError("non-finite loss at step 3 (epoch 0)")
        (run_dir / "model").mkdir()
        history = [{"step": 2 * e, "epoch": e, "overall_iou": 10.0 * e + recipe["seed"], "mean_iou": 9.0 * e}
                   for e in (1, 2, 3)]
        (run_dir / "trainer_state.json").write_text(json.dumps({"history": history}))
        return {"state": {"history": history}, "final_dir": str(run_dir / "model")}

    def fake_evaluate(argv):
        out = Path(argv[argv.index("--output_dir") + 1])
        run_dir = out.parent
        ious = fake_numbers(run_dir.parent.name, int(run_dir.name.removeprefix("seed")))
        out.mkdir()
        records = [{"sample_id": i, "iou": float(v), "intersection": 0, "union": 0} for i, v in enumerate(ious)]
        (out / "per_sample.json").write_text(json.dumps(records))
        summary = {"overall_iou": 100 * float(ious.mean()) + 1.0, "mean_iou": 100 * float(ious.mean()),
                   **{f"precision@{k}": 100 * float((ious >= k).mean()) for k in (0.5, 0.6, 0.7, 0.8, 0.9)},
                   "num_samples": len(ious), "protocol": "model_input", "dataset": "fake", "dataset_config": "fake_unc",
                   "split": "val", "image_size": [32, 32]}
        (out / "eval_results.json").write_text(json.dumps(summary))
        return 0

    monkeypatch.setattr(train, "run", fake_train)
    monkeypatch.setattr(evaluation, "main", fake_evaluate)
    monkeypatch.setattr(launch, "release_memory", lambda: None)  # the fakes hold no tensors
    return trained


def table_rows(markdown: str, header_start: str) -> list[list[str]]:
    """The body rows of the markdown table whose header starts with `header_start`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_statistics_and_report_on_known_numbers(synthetic_data, bert_vocab_dir, tmp_path, fake_pipeline):
    seeds = (0, 1, 2)
    arms = {name: {"num_epochs": epochs} for epochs, name in enumerate(ARM_OFFSETS, 1)}
    settings = settings_for(tmp_path / "study", tiny_recipe(synthetic_data, bert_vocab_dir), arms, seeds,
                            bootstrap_resamples=2000)
    results = compare.run_study(settings)
    assert len(fake_pipeline) == 9
    saved = json.loads((tmp_path / "study" / "results.json").read_text())
    assert saved == json.loads(json.dumps(compare.json_safe(results)))

    mean_iou = {arm: [100 * fake_numbers(arm, s).mean() for s in seeds] for arm in arms}
    for arm in arms:  # the summary is numpy's / scipy's on the per-seed values
        entry = saved["summary"][arm]["metrics"]["mean_iou"]
        np.testing.assert_allclose(entry["values"], mean_iou[arm])
        assert (entry["mean"], entry["std"]) == pytest.approx(summarize(mean_iou[arm]))
    for arm in ("better", "worse"):
        comparison = saved["comparisons"][arm]
        assert comparison["baseline"] == "ce" and comparison["seeds"] == list(seeds)
        expected = paired_comparison(mean_iou[arm], mean_iou["ce"])
        got = comparison["metrics"]["mean_iou"]
        np.testing.assert_allclose(got["differences"], expected["differences"])
        assert (got["t_pvalue"], got["wilcoxon_pvalue"]) == pytest.approx((expected["t_pvalue"], expected["wilcoxon_pvalue"]))
        pooled = [np.mean([100 * fake_numbers(a, s) for s in seeds], axis=0) for a in (arm, "ce")]
        interval = paired_bootstrap_ci(*pooled, n_resamples=2000, seed=0)
        boot = comparison["bootstrap_mean_iou"]
        assert (boot["low"], boot["high"]) == pytest.approx((interval["low"], interval["high"]))
        assert boot["mean_difference"] == pytest.approx(expected["mean_difference"])  # pooled = mean of per-seed
        assert boot["low"] < ARM_OFFSETS[arm] < boot["high"]
        assert boot["num_samples"] == 40

    markdown = (tmp_path / "study" / "results.md").read_text()
    for row in table_rows(markdown, "| arm | overall IoU"):
        for cell, key in zip(row[1:], compare.METRICS):
            entry = saved["summary"][row[0]]["metrics"][key]
            assert cell == f"{entry['mean']:.2f} ± {entry['std']:.2f}"
    per_seed = table_rows(markdown, "| arm | seed |")
    assert len(per_seed) == 9
    for row, record in zip(per_seed, saved["runs"]):
        assert row[:3] == [record["arm"], str(record["seed"]), "ok"]
        assert [float(c) for c in row[3:8]] == pytest.approx([record["metrics"][k] for k in compare.METRICS], abs=0.005)
        assert row[8] == "3"  # the best validation epoch of the fake curve
    compared = table_rows(markdown, "| arm | metric |")
    assert [r[:2] for r in compared if r[1] == "mean IoU"] == [["better", "mean IoU"], ["worse", "mean IoU"]]
    assert "cannot give p below 0.25" in markdown
    assert (tmp_path / "study" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Everything is done: a rerun trains nothing and writes the same results (the bootstrap is seeded).
    compare.run_study(settings)
    assert len(fake_pipeline) == 9
    assert json.loads((tmp_path / "study" / "results.json").read_text()) == saved


def test_a_diverged_run_is_reported_and_not_retried(synthetic_data, bert_vocab_dir, tmp_path, fake_pipeline):
    arms = {"ce": {}, "better": {"max_grad_norm": 13.0}}
    settings = settings_for(tmp_path / "study", tiny_recipe(synthetic_data, bert_vocab_dir), arms)
    results = compare.run_study(settings)
    assert [r["status"] for r in results["runs"]] == ["ok", "ok", "diverged", "diverged"]
    assert "non-finite loss" in results["runs"][2]["error"]
    assert results["summary"]["better"]["failed_seeds"] == [0, 1]
    assert "only 0 seed(s) finished in both arms" in results["comparisons"]["better"]["skipped"]
    markdown = (tmp_path / "study" / "results.md").read_text()
    assert "| better | n/a |" in markdown and "## Diverged runs" in markdown
    compare.run_study(settings)
    assert len(fake_pipeline) == 4


# --------------------------------------------------------------------------------- a real study, killed once


class Killed(Exception):
    pass


@pytest.fixture
def one_torch_thread():
    """The tiny model gains nothing from threads, and on a busy machine OpenMP threads waiting for one another
    made this test 15 times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
def test_tiny_study_end_to_end_resumes_without_redoing_runs(synthetic_data, bert_vocab_dir, tmp_path, monkeypatch,
                                                            one_torch_thread):
    study = tmp_path / "study"
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump(tiny_recipe(synthetic_data, bert_vocab_dir)))
    argv = ["--config", str(config), "--study-dir", str(study), "--seeds", "2", "--arm", "ce",
            "--arm", f"ce_perceptual={json.dumps(PERCEPTUAL_TINY)}", "--bootstrap-resamples", "500"]
    real_train = train.run
    trained = []

    def killed_at_second_run(args):
        trained.append(args[args.index("--config") + 1])
        if len(trained) == 2:
            raise Killed
        return real_train(args)

    monkeypatch.setattr(train, "run", killed_at_second_run)
    with pytest.raises(Killed):
        compare_losses.main(argv)
    first = study / "runs" / "ce" / "seed0"
    assert (first / "DONE").is_file() and (first / "eval" / "per_sample.json").is_file()
    assert not (first / "checkpoints").exists()  # removed when the run was done; model/ is the selection
    assert (study / "runs" / "ce" / "seed1" / "config.yaml").is_file()
    assert not (study / "runs" / "ce" / "seed1" / "DONE").exists()
    stamps = {p: p.stat().st_mtime_ns for p in (first / "DONE", first / "model" / "model.safetensors")}

    def counted(args):
        trained.append(args[args.index("--config") + 1])
        return real_train(args)

    monkeypatch.setattr(train, "run", counted)
    assert compare_losses.main(argv) == 0
    assert [Path(p).parent.relative_to(study / "runs").as_posix() for p in trained[2:]] == [
        "ce/seed1", "ce_perceptual/seed0", "ce_perceptual/seed1"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    saved = json.loads((study / "results.json").read_text())
    assert [(r["arm"], r["seed"], r["status"]) for r in saved["runs"]] == [
        ("ce", 0, "ok"), ("ce", 1, "ok"), ("ce_perceptual", 0, "ok"), ("ce_perceptual", 1, "ok")]
    for record in saved["runs"]:
        run_dir = study / record["directory"]
        assert record["metrics"] == json.loads((run_dir / "eval" / "eval_results.json").read_text())
        assert record["config"] == yaml.safe_load((run_dir / "config.yaml").read_text())
        assert record["config"]["seed"] == record["seed"] and len(record["validation_curve"]) == 2
    assert saved["runs"][2]["config"]["loss"]["perceptual_network"] == "resnet10t"
    assert "bootstrap_mean_iou" in saved["comparisons"]["ce_perceptual"]

    markdown = (study / "results.md").read_text()
    for row in table_rows(markdown, "| arm | overall IoU"):
        numbers = [float(x) for x in re.findall(r"-?\d+\.\d+", " ".join(row[1:6]))]
        expected = [v for key in compare.METRICS for v in (saved["summary"][row[0]]["metrics"][key]["mean"],
                                                           saved["summary"][row[0]]["metrics"][key]["std"])]
        assert numbers == pytest.approx(expected, abs=0.005)
    assert (study / "curves.png").stat().st_size > 1000


# ------------------------------------------------------------------------------------ runs in launched processes

FAKE_LAUNCHER = """
import sys
print("launched", sys.argv[1:], flush=True)
if "crash" in sys.argv:
    sys.exit(1)
if "--config" in sys.argv:
    sys.exit("lavt_hf.training.train.NonFiniteLossError: non-finite loss at step 7 (epoch 1)")
"""


def test_launched_child_divergence_and_failure(tmp_path):
    launcher = [sys.executable, str(tmp_path / "launcher.py")]
    (tmp_path / "launcher.py").write_text(FAKE_LAUNCHER)
    log = tmp_path / "train.log"
    assert compare.launched("lavt_hf.training.train", ["--config", "c.yaml"], launcher, log) == (
        "diverged", "non-finite loss at step 7 (epoch 1)")
    assert log.read_text().startswith("$ ") and "-m lavt_hf.training.train --config c.yaml" in log.read_text()
    assert compare.launched("lavt_hf.training.evaluation", ["--model", "m"], launcher, tmp_path / "evaluate.log") == ("ok", None)
    with pytest.raises(RuntimeError, match="failed with exit code 1; see .*crash.log"):
        compare.launched("lavt_hf.training.train", ["--config", "crash"], launcher, tmp_path / "crash.log")


def test_study_refuses_to_run_on_several_ranks(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ValueError, match="must run as one process.*--launcher"):
        compare.plan_study(settings_for(tmp_path, {}, {"a": {}, "b": {}}))


@pytest.mark.slow
def test_a_run_through_a_launcher(synthetic_data, bert_vocab_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings = settings_for(tmp_path / "study", tiny_recipe(synthetic_data, bert_vocab_dir),
                            {"ce": {}, "ce_dice": compare.DEFAULT_ARMS["ce_dice"]}, launcher=[sys.executable])
    run = compare.plan_study(settings)[2]
    compare.execute_run(run, settings)
    assert compare.run_status(run) == "ok"
    assert "LAVT training" in (run.directory / "train.log").read_text()
    assert json.loads((run.eval_dir / "eval_results.json").read_text())["split"] == "val"
    assert (run.directory / "evaluate.log").is_file()


def test_synthetic_study_arms_file():
    """The README's study: CE + Dice is the baseline, the perceptual arms add only their term to it, and its plain
    cross-entropy arm is the default one (so runs of either study are the same runs)."""
    arms = compare.load_arms_file(compare.REPO_ROOT / "training" / "configs" / "arms" / "study_synthetic.yaml")
    by_name = {arm.name: arm.override for arm in arms}
    assert [arm.name for arm in arms][0] == "ce_dice"
    assert by_name["ce"] == compare.DEFAULT_ARMS["ce"]
    baseline = by_name["ce_dice"]["loss"]
    for name, softmax in (("ce_dice_perceptual", True), ("ce_dice_perceptual_nosoftmax", False)):
        loss = by_name[name]["loss"]
        assert loss == {**baseline, "perceptual_weight": 1.0, "perceptual_softmax": softmax}


def test_committed_study_report_is_what_the_tool_writes_and_the_docs_show_it():
    """docs/loss_study holds the study: its results.md is the report of its results.json, and the table of
    docs/loss_study.md is that report's table, character for character."""
    study = compare.REPO_ROOT / "docs" / "loss_study"
    report = (study / "results.md").read_text()
    assert compare.markdown_report(json.loads((study / "results.json").read_text())) == report
    table = report[report.index("| arm | overall IoU"):].split("\n\n")[0]
    assert table.count("\n") >= 5 and table in (compare.REPO_ROOT / "docs" / "loss_study.md").read_text()
