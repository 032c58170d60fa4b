"""The Space app's prediction function, without a browser (gradio is an optional extra)."""

import pytest
from PIL import Image
from transformers import AutoTokenizer

import app
from modeling_lavt import LavtForReferringSegmentation, LavtImageProcessor, LavtProcessor
from tests.conftest import tiny_lavt_config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, bert_vocab_dir):
    folder = tmp_path_factory.mktemp("model")
    LavtForReferringSegmentation(tiny_lavt_config()).save_pretrained(folder)
    LavtProcessor(LavtImageProcessor(size=32), AutoTokenizer.from_pretrained(bert_vocab_dir)).save_pretrained(folder)
    return str(folder)


def test_predict_returns_an_overlay_of_the_input_width_and_word_maps(model_dir):
    image = Image.new("RGB", (70, 50), (10, 200, 30))
    overlay, score, word_maps = app.predict(image, "the green square", model_dir)
    assert overlay.width == 70 and overlay.height > 50 and overlay.mode == "RGB"  # the image under its caption
    assert 0.0 <= score <= 1.0
    zoom = -(-192 // 50)  # tiles enlarged to a 192-pixel shorter side
    # overlay + [CLS] the green square [SEP], each tile under a strip holding its label
    assert word_maps.width == 4 * 70 * zoom and 2 * 50 * zoom < word_maps.height < 2 * 60 * zoom


def test_examples_exist():
    for name, text in app.EXAMPLES:
        assert (app.EXAMPLES_DIR / name).is_file() and text.strip()


def test_predict_refuses_missing_inputs(model_dir):
    with pytest.raises(ValueError, match="expression"):
        app.predict(Image.new("RGB", (8, 8)), "  ", model_dir)
    with pytest.raises(ValueError, match="image"):
        app.predict(None, "the dog", model_dir)
