"""The Space app without a browser: its prediction function, its refusals in words, its examples table, and the
`demo` extra it installs with (gradio is an optional extra: these tests need it)."""

import os
import subprocess
import sys

import pytest
from PIL import Image
from transformers import AutoTokenizer

from lavt_hf import commands
from modeling_lavt import LavtForReferringSegmentation, LavtImageProcessor, LavtProcessor
from tests.conftest import REPO_ROOT, TRAINING_STACK, tiny_lavt_config
from tests.test_dependencies import requirement_name

gr = pytest.importorskip("gradio", reason="the app needs the `demo` extra: pip install -c requirements.lock '.[demo]'")
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
import app  # noqa: E402  (after the skip: the app imports gradio)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, bert_vocab_dir):
    folder = tmp_path_factory.mktemp("model")
    LavtForReferringSegmentation(tiny_lavt_config()).save_pretrained(folder)
    LavtProcessor(LavtImageProcessor(size=32), AutoTokenizer.from_pretrained(bert_vocab_dir)).save_pretrained(folder)
    return str(folder)


def test_predict_returns_an_overlay_of_the_input_width_a_rounded_score_and_word_maps(model_dir):
    image = Image.new("RGB", (70, 50), (10, 200, 30))
    overlay, score, word_maps = app.predict(image, "the green square", model_dir)
    assert overlay.width == 70 and overlay.height > 50 and overlay.mode == "RGB"  # the image under its caption
    assert 0.0 <= score <= 1.0 and score == round(score, 3)
    zoom = -(-192 // 50)  # tiles enlarged to a 192-pixel shorter side
    # overlay + [CLS] the green square [SEP], each tile under a strip holding its label
    assert word_maps.width == 4 * 70 * zoom and 2 * 50 * zoom < word_maps.height < 2 * 60 * zoom


def test_examples_exist():
    for name, text in app.EXAMPLES:
        assert (app.EXAMPLES_DIR / name).is_file() and text.strip()


def test_the_examples_table_shows_the_image_and_the_expression_only(monkeypatch):
    monkeypatch.setattr(app, "DEFAULT_MODEL", "/private/folder/model")  # a path the table must not show
    examples = app.build_interface().examples_handler
    assert [component.label for component in examples.inputs_with_examples] == ["image", "expression"]
    assert len(examples.dataset.samples) == len(app.EXAMPLES)
    assert all(len(sample) == 2 for sample in examples.dataset.samples)
    assert "/private/folder/model" not in str(examples.dataset.samples)


@pytest.mark.parametrize(("image", "text", "message"), [
    (None, "the dog", "Upload an image first."),
    (Image.new("RGB", (8, 8)), "", "Type an expression"),
    (Image.new("RGB", (8, 8)), "   ", "Type an expression"),
    # No word the tokenizer keeps: the pipeline's own check, shown on the page.
    (Image.new("RGB", (8, 8)), "\u200b", "Referring expression 0 is empty after tokenization"),
])
def test_predict_refuses_bad_input_in_words(image, text, message, model_dir):
    with pytest.raises(gr.Error) as error:
        app.predict(image, text, model_dir)
    assert error.value.message.startswith(message), error.value.message


def test_predict_refuses_a_model_it_cannot_load_in_words(tmp_path):
    with pytest.raises(gr.Error) as error:
        app.predict(Image.new("RGB", (8, 8)), "the dog", str(tmp_path / "missing"))
    assert error.value.message.startswith(f"Cannot load the model '{tmp_path / 'missing'}': Model folder "
                                          f"{tmp_path / 'missing'} not found"), error.value.message


# The app's prediction where the modules of the other extras (those `demo` does not declare too) cannot be
# imported: what a Space installing `.[demo]` has.
DEMO_ONLY = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
from PIL import Image
import app

overlay, score, word_maps = app.predict(Image.open({image!r}), "the red circle", {folder!r})
print(overlay.size, score, word_maps.size)
"""


@pytest.mark.slow
def test_the_app_runs_with_the_demo_extra_alone(model_dir, tmp_path):
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    demo = {requirement_name(requirement) for requirement in project["optional-dependencies"]["demo"]}
    blocked = [name for name in (*TRAINING_STACK, *commands.EXTRA_MODULES["onnx"]) if name not in demo]
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "image.png")
    code = DEMO_ONLY.format(blocked=(*blocked, "lavt_hf.training"), image=str(tmp_path / "image.png"),
                            folder=model_dir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    process = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    overlay_size = process.stdout.strip().splitlines()[-1].split(") ")[0]
    assert overlay_size.startswith("(40, ") and int(overlay_size.split(", ")[1]) > 30  # the image under its caption
