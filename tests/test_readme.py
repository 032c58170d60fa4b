# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The README is a guide a new user pastes from: short, and every file, command and module its examples name
exists in the repository (the examples run from the repository root)."""

import importlib.metadata
import importlib.util
import re

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
CODE_BLOCKS = "\n".join(re.findall(r"```(?:bash|python)\n(.*?)```", README, re.DOTALL))


def test_readme_is_at_most_200_lines():
    assert len(README.splitlines()) <= 200


def test_files_the_examples_name_exist():
    named = set(re.findall(r"\b((?:docs|training|scripts|modeling_lavt)/[\w./-]+\.(?:jpg|png|yaml|py))", README))
    assert any(path.startswith("docs/examples/") for path in named)  # the examples use the shipped pictures
    missing = sorted(path for path in named if not (REPO_ROOT / path).is_file())
    assert not missing, missing


def test_commands_and_modules_the_examples_name_exist():
    scripts = {entry.name for entry in importlib.metadata.entry_points(group="console_scripts")}
    commands = set(re.findall(r"^\s*(lavt-[a-z-]+)", CODE_BLOCKS, re.MULTILINE))
    assert commands and commands <= scripts, commands - scripts
    modules = re.findall(r"(?:-m|^from|^import) ([\w.]+)", CODE_BLOCKS, re.MULTILINE)
    assert "lavt_hf.training.evaluation" in modules
    missing = [name for name in modules if name != "pip" and importlib.util.find_spec(name) is None]
    assert not missing, missing
