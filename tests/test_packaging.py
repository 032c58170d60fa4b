# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""What `pip install` gives: the installed names (`modeling_lavt`, `lavt_hf`, nothing generic), inference without
the training stack (the core dependencies only), and the package list of pyproject.toml kept in step with the
folders."""

import importlib
import os
import re
import subprocess
import sys
import zipfile

import pytest
from PIL import Image
from transformers import AutoTokenizer

from lavt_hf import commands
from modeling_lavt import LavtImageProcessor, LavtProcessor
from tests.conftest import REPO_ROOT, TRAINING_STACK, spread_tiny_model

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
# The repository folders and the names they install as.
INSTALLED_AS = {"training": "lavt_hf.training", "scripts": "lavt_hf.scripts", "hub_cards": "lavt_hf.hub_cards"}
# The model's Swin blocks use timm's layers (DropPath, the relative-position index), and timm imports torchvision.
INFERENCE_LIBRARIES = ("torch", "transformers", "safetensors", "timm", "torchvision")


def test_pyproject_lists_every_package_under_its_installed_name():
    """Every folder of code or recipes, so that a wheel ships it and setuptools has nothing to warn about."""
    expected = set()
    for folder, name in {**INSTALLED_AS, "modeling_lavt": "modeling_lavt", "lavt_hf": "lavt_hf"}.items():
        for path in [REPO_ROOT / folder, *(REPO_ROOT / folder).rglob("*")]:
            if path.is_dir() and path.name != "__pycache__" and any(f.is_file() for f in path.iterdir()):
                expected.add(".".join([name, *path.relative_to(REPO_ROOT / folder).parts]))
    setuptools = PROJECT["tool"]["setuptools"]
    assert set(setuptools["packages"]) == expected
    assert setuptools["package-dir"] == {name: folder for folder, name in INSTALLED_AS.items()}


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower() for requirement in requirements}


def test_the_training_stack_is_an_extra_not_a_core_dependency():
    assert not requirement_names(PROJECT["project"]["dependencies"]) & set(TRAINING_STACK)
    assert set(INFERENCE_LIBRARIES) <= requirement_names(PROJECT["project"]["dependencies"])
    assert set(TRAINING_STACK) <= requirement_names(PROJECT["project"]["optional-dependencies"]["train"])


# The README's inference example, where the training stack and the repository's generic names cannot be imported.
INFERENCE_ONLY = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
import modeling_lavt  # registers LAVT with the Auto classes and the pipeline
from transformers import AutoModel, AutoProcessor, pipeline
from PIL import Image

model = AutoModel.from_pretrained({folder!r}).eval()
processor = AutoProcessor.from_pretrained({folder!r})
image = Image.open({image!r})
inputs = processor(images=image, text=["the red circle", "the big square on the left"], return_tensors="pt")
outputs = model(**inputs)
results = processor.image_processor.post_process_referring_segmentation(outputs, target_sizes=[image.size[::-1]] * 2)
segmenter = pipeline("referring-image-segmentation", model={folder!r})
mask = segmenter(image, text="the red circle")["mask"]
from lavt_hf.scripts import predict  # lavt-predict needs nothing more
print(len(results), mask.size)
"""


@pytest.mark.slow
def test_inference_runs_without_the_training_stack(bert_vocab_dir, tmp_path):
    folder = tmp_path / "model"
    spread_tiny_model().save_pretrained(folder)
    LavtProcessor(LavtImageProcessor(size=32), AutoTokenizer.from_pretrained(bert_vocab_dir)).save_pretrained(folder)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "image.png")
    code = INFERENCE_ONLY.format(blocked=(*TRAINING_STACK, *INSTALLED_AS), folder=str(folder),
                                 image=str(tmp_path / "image.png"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    process = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.split()[-3:] == ["2", "(40,", "30)"]


@pytest.mark.slow
def test_the_wheel_installs_no_generic_names(tmp_path):
    process = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                              str(tmp_path), str(REPO_ROOT)], capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "Warning" not in process.stderr, process.stderr[-3000:]  # a newcomer's install is quiet
    (wheel,) = tmp_path.glob("lavt_hf-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"modeling_lavt", "lavt_hf", wheel.name.split("-py3")[0]
                                                      + ".dist-info"}
    for data_file in ("lavt_hf/hub_cards/model_card.md", "lavt_hf/training/configs/demo.yaml",
                      "lavt_hf/training/accelerate/4gpu_bf16.yaml", "lavt_hf/training/metrics/refer_iou/refer_iou.py"):
        assert data_file in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    core = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not any(name in line for line in core for name in TRAINING_STACK), core


# The inference commands and the model package, where the training code cannot be imported.
INFERENCE_WITHOUT_TRAINING = """
import sys
sys.modules["lavt_hf.training"] = None
import modeling_lavt.onnx.export, modeling_lavt.onnx.runtime, modeling_lavt.sharing.hub
import modeling_lavt.sharing.visualization, modeling_lavt.weights.conversion, modeling_lavt.weights.pretrained
from lavt_hf.scripts import convert_lavt_original_to_hf, export, predict
sys.argv = ["lavt-predict", "--help"]
predict.main()
"""


def test_inference_imports_no_training_code(tmp_path):
    process = subprocess.run([sys.executable, "-c", INFERENCE_WITHOUT_TRAINING], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "usage: lavt-predict" in process.stdout


def test_no_module_edits_the_import_path():
    """One import name per module: nothing rewrites sys.path or a package's __path__."""
    edits = re.compile(r"sys\.path\b.*(=|insert|append)|__path__")
    for path in REPO_ROOT.rglob("*.py"):
        if not {".venv", "tests", "build"} & set(path.relative_to(REPO_ROOT).parts):
            assert not edits.search(path.read_text()), path


# Each command of the `train` extra, run where that extra's modules cannot be imported.
WITHOUT_EXTRA = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
from lavt_hf import commands
sys.exit(commands.{function}())
"""
TRAIN_COMMANDS = {"lavt-train": "train", "lavt-evaluate": "evaluate", "lavt-prepare-refcoco": "prepare_refcoco",
                  "lavt-benchmark": "benchmark", "lavt-compare": "compare"}


def test_every_console_script_resolves_to_a_function():
    for command, target in PROJECT["project"]["scripts"].items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), command
    for command, function in TRAIN_COMMANDS.items():
        assert PROJECT["project"]["scripts"][command] == f"lavt_hf.commands:{function}"


@pytest.mark.parametrize("command", sorted(TRAIN_COMMANDS))
def test_a_command_without_its_extra_says_what_to_install(command, tmp_path):
    code = WITHOUT_EXTRA.format(blocked=("accelerate", "datasets"), function=TRAIN_COMMANDS[command])
    process = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert process.returncode == 2, process.stderr[-2000:]
    assert process.stderr.strip() == (f"{command}: error: {command} needs the `train` extra (accelerate, datasets not "
                                      "installed): pip install 'lavt-hf[train]'")


def test_a_command_with_its_extra_runs_the_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["lavt-evaluate", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        commands.evaluate()
    assert exit_info.value.code == 0
    assert "--dataset" in capsys.readouterr().out


ONNX_MESSAGE = "needs the `onnx` extra (onnx, onnxruntime, onnxscript not installed): pip install 'lavt-hf[onnx]'"


@pytest.fixture
def without_onnx(monkeypatch):
    for name in commands.EXTRA_MODULES["onnx"]:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("argv", [
    ["lavt_hf.scripts.export", "--model", "m", "--output-dir", "out"],
    ["lavt_hf.scripts.predict", "--model", "m", "--backend", "onnx", "--image", "a.jpg", "--text", "x"],
    ["lavt_hf.scripts.benchmark", "onnx"],
])
def test_the_onnx_commands_without_their_extra_say_what_to_install(argv, without_onnx, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(argv[0]).main(argv[1:])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.endswith(ONNX_MESSAGE), line
    assert not (tmp_path / "out").exists()


def test_the_onnx_model_class_without_onnx_runtime_says_what_to_install(without_onnx, tmp_path):
    from modeling_lavt.onnx.runtime import LavtOnnxForReferringSegmentation

    with pytest.raises(ImportError, match=r"needs ONNX Runtime: pip install 'lavt-hf\[onnx\]'"):
        LavtOnnxForReferringSegmentation.from_pretrained(tmp_path)


@pytest.mark.slow
def test_the_editable_install_is_quiet(tmp_path):
    (line,) = [line for line in (REPO_ROOT / "Makefile").read_text().splitlines() if " -e " in line]
    quiet = [word for word in line.split() if word.startswith("-q")]
    # --ignore-installed: without it pip would first uninstall this venv's own editable install
    process = subprocess.run([sys.executable, "-m", "pip", "install", *quiet, "--ignore-installed", "--no-deps",
                              "--no-build-isolation", "--prefix", str(tmp_path), "-e", str(REPO_ROOT)],
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stderr == "", process.stderr[-3000:]  # `make setup` shows a newcomer a quiet first screen
