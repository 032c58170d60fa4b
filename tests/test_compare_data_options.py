# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""A loss study reads the data as its training recipe says: the dataset check and each run's evaluation get the
recipe's sentence field and columns, not the defaults."""

from lavt_hf.training import compare, evaluation
from lavt_hf.training.compare import launch, plan

DATA_OPTIONS = {"dataset": "my/data", "sentence_field": "sent", "image_column": "picture", "mask_column": "region",
                "text_column": "caption"}


def test_a_run_is_evaluated_with_the_recipes_data_options(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(evaluation, "main", seen.append)
    monkeypatch.setattr(launch, "release_memory", lambda: None)
    launch.evaluate_run(compare.Run("ce", 0, tmp_path, DATA_OPTIONS), "model_input", launcher=None)
    argv = seen[0]
    for name, value in DATA_OPTIONS.items():
        assert argv[argv.index(f"--{name}") + 1] == value


def test_the_dataset_check_loads_with_the_recipes_data_options(monkeypatch):
    calls = []
    monkeypatch.setattr(plan, "load_refer_dataset", lambda *args, **kwargs: calls.append(kwargs))
    plan.check_dataset(DATA_OPTIONS)
    assert len(calls) == 2
    for name in ("sentence_field", "image_column", "mask_column", "text_column"):
        assert all(kwargs[name] == DATA_OPTIONS[name] for kwargs in calls)
