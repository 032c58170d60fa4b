# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Bad inputs at every entry point of the model (forward, processor, post-processing, pipeline, from_pretrained,
lavt-predict): each is refused with a message that names the problem, before any work is done."""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from modeling_lavt import LavtForReferringSegmentation, LavtModel
from tests.conftest import assert_predict_refuses, spread_tiny_model
from tests.test_pipeline import random_image, save_tiny_checkpoint, tiny_processor

POSITIONS = 64  # tiny_text_config's max_position_embeddings


@pytest.fixture(scope="module")
def model() -> LavtForReferringSegmentation:
    return spread_tiny_model()


def forward_inputs(**changes) -> dict:
    inputs = {"pixel_values": torch.randn(2, 3, 32, 32), "input_ids": torch.randint(1000, 2000, (2, 20)),
              "labels": torch.randint(0, 2, (2, 32, 32))}
    inputs.update(changes)
    return inputs


def with_value(tensor: torch.Tensor, value: float) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[5] = value
    return tensor


FORWARD_CASES = {
    "float-input-ids": (forward_inputs(input_ids=torch.ones(2, 20)), "must be integer token ids"),
    "bool-input-ids": (forward_inputs(input_ids=torch.ones(2, 20, dtype=torch.bool)), "must be integer token ids"),
    "more-tokens-than-positions": (forward_inputs(input_ids=torch.ones(2, POSITIONS + 1, dtype=torch.long)),
                                   "65 tokens per expression, more than the text encoder's 64 positions"),
    "no-tokens": (forward_inputs(input_ids=torch.ones(2, 0, dtype=torch.long)), "0 tokens"),
    "empty-batch": (forward_inputs(pixel_values=torch.randn(0, 3, 32, 32), input_ids=torch.ones(0, 20).long(),
                                   labels=None), "Empty batch"),
    "zero-size-image": (forward_inputs(pixel_values=torch.randn(2, 3, 0, 32), labels=None), "zero size"),
    "zero-size-labels": (forward_inputs(labels=torch.zeros(2, 0, 32, dtype=torch.long)), "labels has zero size"),
}


@pytest.mark.parametrize("case", FORWARD_CASES)
def test_forward_refuses(model, case):
    inputs, message = FORWARD_CASES[case]
    with pytest.raises(ValueError, match=message):
        model(**inputs)
    if "label" not in case:  # the headless LavtModel (model.lavt) takes no labels and checks the rest itself
        with pytest.raises(ValueError, match=message):
            model.lavt(**{key: value for key, value in inputs.items() if key != "labels"})


def test_forward_checks_its_inputs_once_per_call(model, monkeypatch):
    """LavtForReferringSegmentation checks (labels included) and tells its LavtModel not to check again; the
    LavtModel called on its own checks once."""
    from modeling_lavt.modeling_lavt import LavtPreTrainedModel

    calls = []
    original = LavtPreTrainedModel.check_inputs
    monkeypatch.setattr(LavtPreTrainedModel, "check_inputs",
                        lambda self, *args: calls.append(args[3]) or original(self, *args))
    inputs = forward_inputs()
    with torch.no_grad():
        model(**inputs)
        assert len(calls) == 1 and calls[0] is inputs["labels"]
        model.lavt(inputs["pixel_values"], inputs["input_ids"])
        assert len(calls) == 2 and calls[1] is None


def test_float64_pixels_are_cast_to_the_model_dtype(model):
    pixels, ids = torch.randn(1, 3, 32, 32), torch.randint(1000, 2000, (1, 20))
    with torch.no_grad():
        expected = model(pixels, ids).logits
        logits = model(pixels.double(), ids).logits
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, expected)


LOGITS = torch.randn(2, 2, 8, 8)
TARGET_SIZE_CASES = {
    "one-pair-for-a-batch-of-2": ((480, 640), r"single pair \(480, 640\) for a batch of 2"),
    "one-pair-as-tensor": (torch.tensor([480, 640]), "single pair"),
    "zero-height": ([(0, 5), (4, 4)], r"target_sizes\[0\] must have positive sides"),
    "negative-width": ([(4, 4), (4, -3)], r"target_sizes\[1\] must have positive sides"),
    "zero-in-tensor": (torch.tensor([[4, 4], [0, 0]]), "positive sides"),
    "three-sizes-for-two": ([(4, 4)] * 3, "Got 3 target sizes for a batch of 2"),
    "not-a-pair": ([(4,), (4, 4)], r"target_sizes\[0\] must be a \(height, width\) pair"),
    "fractional-side": ([(4.5, 4), (4, 4)], "pair of integers"),
}


@pytest.mark.parametrize("sizes, message", TARGET_SIZE_CASES.values(), ids=TARGET_SIZE_CASES.keys())
def test_post_processing_refuses_target_sizes(sizes, message):
    with pytest.raises(ValueError, match=message):
        tiny_processor_without_tokenizer().post_process_referring_segmentation(LOGITS, target_sizes=sizes)


def tiny_processor_without_tokenizer():
    from modeling_lavt import LavtImageProcessor

    return LavtImageProcessor(size=8)


def test_post_processing_accepts_tensors_and_integral_floats():
    processor = tiny_processor_without_tokenizer()
    from_tensor = processor.post_process_referring_segmentation(LOGITS, target_sizes=torch.tensor([[5, 6], [7, 8]]))
    from_floats = processor.post_process_referring_segmentation(LOGITS, target_sizes=[(5.0, 6.0), (7, 8)])
    assert [r["mask"].shape for r in from_tensor] == [(5, 6), (7, 8)]
    assert torch.equal(from_tensor[0]["mask"], from_floats[0]["mask"])


PROCESSOR_CASES = {
    "text-is-a-number": ({"text": 5}, "text must be a referring expression .* got int: 5"),
    "text-is-bytes": ({"text": b"a dog"}, "got bytes"),
    "zero-width-space": ({"text": "\u200b"}, "Referring expression 0 is empty after tokenization"),
    "second-text-only-soft-hyphen": ({"text": ["a dog", "\u00ad\u200b"]},
                                     "Referring expression 1 is empty after tokenization"),
    "number-in-list": ({"text": ["a dog", 3]}, "Referring expression 1 is empty or not a string: 3"),
    "blank": ({"text": " \t"}, "Referring expression 0 is empty or not a string"),
}


@pytest.mark.parametrize("kwargs, message", PROCESSOR_CASES.values(), ids=PROCESSOR_CASES.keys())
def test_processor_refuses(bert_vocab_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_processor(bert_vocab_dir)(images=random_image(8, 8), **kwargs)


class _ImageServer(BaseHTTPRequestHandler):
    """/image.png: a PNG; /page.html: HTML; anything else: 404."""

    def do_GET(self):
        if self.path == "/image.png":
            buffer = BytesIO()
            random_image(9, 7).save(buffer, format="PNG")
            self._answer(200, "image/png", buffer.getvalue())
        elif self.path == "/page.html":
            self._answer(200, "text/html", b"<html>not an image</html>")
        else:
            self._answer(404, "text/plain", b"not found")

    def _answer(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def image_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def pipe(bert_vocab_dir):
    from modeling_lavt import ReferringImageSegmentationPipeline

    return ReferringImageSegmentationPipeline(model=spread_tiny_model(), processor=tiny_processor(bert_vocab_dir),
                                              device="cpu")


PIPELINE_CASES = {
    "url-404": (lambda url: ((f"{url}/missing.jpg",), {"text": "a"}), r"/missing\.jpg: the server answered 404"),
    "url-unresolvable": (lambda url: (("http://nonexistent.invalid/x.jpg",), {"text": "a"}),
                         r"nonexistent\.invalid/x\.jpg: ConnectError"),
    "url-not-an-image": (lambda url: ((f"{url}/page.html",), {"text": "a"}),
                         r"page\.html did not return a readable image \(text/html\)"),
    "third-text-blank": (lambda url: ((random_image(8, 8),), {"text": ["a", "b", " "]}),
                         "Referring expression 2 is empty"),
    "second-text-zero-width": (lambda url: ((random_image(8, 8),), {"text": ["a", "\u200b"]}),
                               "Referring expression 1 is empty after tokenization"),
    "second-dict-empty": (lambda url: (([{"image": random_image(8, 8), "text": "a"},
                                         {"image": random_image(8, 8), "text": "\ufeff"}],), {}),
                          "Referring expression 1 is empty after tokenization"),
    "text-is-a-number": (lambda url: ((random_image(8, 8),), {"text": 5}), "text must be a referring expression"),
}


@pytest.mark.parametrize("call, message", PIPELINE_CASES.values(), ids=PIPELINE_CASES.keys())
def test_pipeline_refuses(pipe, image_server, call, message):
    args, kwargs = call(image_server)
    with pytest.raises(ValueError, match=message):
        pipe(*args, timeout=10, **kwargs)


def test_pipeline_reads_an_image_url(pipe, image_server):
    assert pipe(f"{image_server}/image.png", text="a", timeout=10)["mask"].size == (7, 9)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, bert_vocab_dir) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("saved") / "tiny-lavt", bert_vocab_dir)


def truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])


def drop_a_tensor(folder: Path) -> None:
    weights = load_file(folder / "model.safetensors")
    del weights["decoder.classifier.bias"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def edit_config(**changes):
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config.update(changes)
        (folder / "config.json").write_text(json.dumps(config))

    return edit


# How a saved folder is damaged, and what loading it must say.
FOLDER_CASES = {
    "truncated-safetensors": (truncate_weights, r"model\.safetensors is not a readable safetensors file .*truncated"),
    "tensor-missing": (drop_a_tensor, r"1 weights of the model are missing from the checkpoint "
                                      r"\(decoder\.classifier\.bias\)"),
    "config-deeper-than-weights": (edit_config(depths=[1, 2, 1, 3]),
                                   r"missing from the checkpoint \(lavt\.backbone\.stages\.3\.blocks\.2\."),
    "config-shallower-than-weights": (edit_config(depths=[1, 2, 1, 1]),
                                      r"weights of the model are in the checkpoint but not in the model "
                                      r"\(lavt\.backbone\.stages\.3\.blocks\.1\."),
    "config-window-differs": (edit_config(window_size=6),
                              "holds weights trained with window size 4, but window size 6 was requested"),
}


def damaged_copy(saved_model: Path, folder: Path, damage) -> Path:
    shutil.copytree(saved_model, folder)
    damage(folder)
    return folder


@pytest.mark.parametrize("damage, message", FOLDER_CASES.values(), ids=FOLDER_CASES.keys())
def test_from_pretrained_refuses(saved_model, tmp_path, damage, message):
    folder = damaged_copy(saved_model, tmp_path / "model", damage)
    with pytest.raises((ValueError, OSError), match=message) as error:
        LavtForReferringSegmentation.from_pretrained(folder)
    assert str(folder) in str(error.value)


@pytest.mark.parametrize("path", ["/nonexistent/lavt", "./no/such/../lavt-folder"])
def test_from_pretrained_of_a_missing_folder_says_not_found(path):
    with pytest.raises(FileNotFoundError, match=f"Model folder {path} not found"):
        LavtForReferringSegmentation.from_pretrained(path)


def test_from_pretrained_of_a_folder_without_weights_says_what_writes_one(saved_model, tmp_path):
    folder = tmp_path / "config-only"
    folder.mkdir()
    shutil.copy(saved_model / "config.json", folder)
    for model_class in (LavtForReferringSegmentation, LavtModel):
        with pytest.raises(FileNotFoundError, match=f"Model folder {folder} holds no weights \\(model.safetensors\\); "
                                                    "give a folder written by save_pretrained, lavt-train or lavt-convert"):
            model_class.from_pretrained(folder)


def test_window_size_keyword_differs(saved_model):
    with pytest.raises(ValueError, match="window size 4, but window size 6 was requested"):
        LavtForReferringSegmentation.from_pretrained(saved_model, window_size=6)


def test_strict_false_loads_a_checkpoint_with_missing_weights(saved_model, tmp_path):
    folder = damaged_copy(saved_model, tmp_path / "model", drop_a_tensor)
    model, info = LavtForReferringSegmentation.from_pretrained(folder, strict=False, output_loading_info=True)
    assert info["missing_keys"] == {"decoder.classifier.bias"}
    reference = LavtForReferringSegmentation.from_pretrained(saved_model)
    assert torch.equal(model.decoder.classifier.weight, reference.decoder.classifier.weight)
    assert "strict" not in model.config.to_dict()


# lavt-predict: (how the model folder is damaged or None, the texts, what the one error line must say).
PREDICT_CASES = {
    "model-not-found": ("missing", ["a"], "not found"),
    "truncated-safetensors": (truncate_weights, ["a"], "model.safetensors is not a readable safetensors file"),
    "tensor-missing": (drop_a_tensor, ["a"], "missing from the checkpoint (decoder.classifier.bias)"),
    "config-other-depths": (edit_config(depths=[1, 2, 1, 1]), ["a"], "in the checkpoint but not in the model"),
    "config-window-differs": (edit_config(window_size=6), ["a"], "window size 4, but window size 6"),
    "zero-width-text": (None, ["\u200b"], "--text: Referring expression 0 is empty after tokenization"),
    "second-text-zero-width": (None, ["a dog", "\u2060"], "Referring expression 1 is empty after tokenization"),
    "blank-text": (None, ["a", "  "], "--text: Referring expression 1 is empty"),
}


@pytest.mark.parametrize("damage, texts, message", PREDICT_CASES.values(), ids=PREDICT_CASES.keys())
def test_predict_prints_one_line_and_exits_2(saved_model, tmp_path, capsys, damage, texts, message):
    if damage == "missing":
        folder = tmp_path / "no-model"
    else:
        folder = saved_model if damage is None else damaged_copy(saved_model, tmp_path / "model", damage)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "image.png")
    argv = ["--model", str(folder), "--image", str(tmp_path / "image.png"), "--text", *texts,
            "--output-dir", str(tmp_path / "out")]
    assert_predict_refuses(argv, capsys, message, tmp_path / "out")
