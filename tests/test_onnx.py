# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""ONNX export and ONNX Runtime inference: exported vs eager logits, INT8, pipeline, CLIs and bad inputs.

Exporting takes tens of seconds even for the tiny model, so one export (through lavt-export) serves the module.
"""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install '.[onnx]')")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install '.[onnx]')")

from lavt_hf.scripts import benchmark, export, predict  # noqa: E402
from modeling_lavt.image_processing_lavt import LavtImageProcessor  # noqa: E402
from modeling_lavt.onnx.calibration import EXPRESSIONS_NAME  # noqa: E402
from modeling_lavt.onnx.export import (  # noqa: E402
    EXPORT_INFO_NAME,
    check_float32_parity,
    example_inputs,
    export_onnx,
    processor_settings,
    quantize_export,
)
from modeling_lavt.onnx.runtime import LavtOnnxForReferringSegmentation  # noqa: E402
from modeling_lavt.pipeline_lavt import ReferringImageSegmentationPipeline  # noqa: E402
from modeling_lavt.precision import resolve_dtype  # noqa: E402
from modeling_lavt.processing_lavt import LavtProcessor  # noqa: E402
from modeling_lavt.weights.conversion import convert_original  # noqa: E402
from tests.conftest import spread_tiny_model  # noqa: E402
from tests.test_modeling import CASES, load_case  # noqa: E402
from tests.test_pipeline import INPUT_SIZE, random_image, save_tiny_checkpoint, tiny_processor  # noqa: E402
from tests.test_processing import register_auto_classes  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, bert_vocab_dir) -> Path:
    register_auto_classes()
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny-lavt", bert_vocab_dir)


@pytest.fixture(scope="module")
def onnx_dir(model_dir, tmp_path_factory) -> Path:
    """The tiny model exported by lavt-export (float32)."""
    folder = tmp_path_factory.mktemp("export") / "tiny-onnx"
    assert export.main(["--model", str(model_dir), "--output-dir", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def int8_dir(onnx_dir, tmp_path_factory) -> Path:
    """The export quantized by lavt-export (an export folder as --model: quantized without exporting again)."""
    folder = tmp_path_factory.mktemp("export") / "tiny-onnx-int8"
    assert export.main(["--model", str(onnx_dir), "--output-dir", str(folder), "--quantize", "dynamic"]) == 0
    return folder


@pytest.fixture(scope="module")
def static_dir(onnx_dir, tmp_path_factory) -> Path:
    """The export quantized by lavt-export --quantize static, calibrated on a folder of six random images like
    those the tests feed (static ranges are those of the calibration set: it must resemble the inputs)."""
    samples = write_calibration_folder(tmp_path_factory.mktemp("calibration") / "samples",
                                       {f"{n}.png": ["a", "the cat", "a dog on the left"][n % 3] for n in range(6)})
    folder = tmp_path_factory.mktemp("export") / "tiny-onnx-static"
    assert export.main(["--model", str(onnx_dir), "--output-dir", str(folder), "--quantize", "static",
                        "--calibration", str(samples)]) == 0
    return folder


def model_inputs(processor, images, texts) -> dict[str, torch.Tensor]:
    encoded = processor(images=images, text=texts, return_tensors="pt")
    return {name: encoded[name] for name in ("pixel_values", "input_ids", "attention_mask")}


def eager_logits(inputs) -> torch.Tensor:
    with torch.no_grad():
        return spread_tiny_model()(**inputs).logits


def test_export_folder_describes_the_graph(onnx_dir):
    names = {path.name for path in onnx_dir.iterdir()}
    assert {"model.onnx", "config.json", EXPORT_INFO_NAME, "processor_config.json", "tokenizer.json"} <= names
    info = json.loads((onnx_dir / EXPORT_INFO_NAME).read_text())
    assert info["image_size"] == [INPUT_SIZE["height"], INPUT_SIZE["width"]]
    assert info["text_length"] == 20 and info["batch"] == "dynamic"
    assert info["dtype"] == "float32" and info["quantization"] is None and isinstance(info["opset"], int)
    assert not [path for path in onnx_dir.parent.iterdir() if path.name.startswith(".")]  # no scratch left


@pytest.mark.parametrize("batch", [1, 3])
def test_exported_logits_match_eager(onnx_dir, bert_vocab_dir, batch):
    processor = tiny_processor(bert_vocab_dir)
    texts = ["the dog", "a red car on the left of the tree", "x"][:batch]
    inputs = model_inputs(processor, [random_image(30 + 7 * i, 41, seed=i) for i in range(batch)], texts)
    model = LavtOnnxForReferringSegmentation.from_pretrained(onnx_dir)
    logits, expected = model(**inputs).logits, eager_logits(inputs)
    assert logits.dtype == torch.float32 and logits.shape == expected.shape
    assert (logits - expected).abs().max().item() < 1e-4
    masks = [r["mask"] for r in processor.post_process_referring_segmentation(logits)]
    expected_masks = [r["mask"] for r in processor.post_process_referring_segmentation(expected)]
    assert all(torch.equal(a, b) for a, b in zip(masks, expected_masks))
    assert 0.0 < float(torch.stack(masks).float().mean()) < 1.0  # a mask with both classes, not a trivial one


def test_ort_model_through_the_pipeline(onnx_dir, bert_vocab_dir):
    ort_pipe = ReferringImageSegmentationPipeline(
        model=LavtOnnxForReferringSegmentation.from_pretrained(onnx_dir),
        processor=LavtProcessor.from_pretrained(onnx_dir), device="cpu",
    )
    eager_pipe = ReferringImageSegmentationPipeline(
        model=spread_tiny_model(), processor=tiny_processor(bert_vocab_dir), device="cpu"
    )
    image, texts = random_image(37, 53), ["the left one", "a thing in the middle"]
    results = ort_pipe(image, text=texts, batch_size=2)
    expected = eager_pipe(image, text=texts)
    for result, reference in zip(results, expected):
        assert result["mask"].size == image.size
        assert np.array_equal(np.asarray(result["mask"]), np.asarray(reference["mask"]))
        assert result["score"] == pytest.approx(reference["score"], abs=1e-4)


def test_export_never_overwrites(model_dir, onnx_dir, bert_vocab_dir, capsys):
    with pytest.raises(FileExistsError, match="already exists; an export never overwrites"):
        export_onnx(spread_tiny_model(), tiny_processor(bert_vocab_dir), onnx_dir)
    with pytest.raises(SystemExit) as exit_info:
        export.main(["--model", str(model_dir), "--output-dir", str(onnx_dir)])
    assert exit_info.value.code == 2
    assert f"--output-dir {onnx_dir} already exists" in capsys.readouterr().err


def test_export_prints_no_skipped_folding_warnings(model_dir, tmp_path, capfd, caplog):
    """onnxscript's optimizer printed "Evaluation failed: cannot reshape array ..." on every export, which read as
    a failed export; the node it could not fold stays in the graph, which the float32 check proves exact."""
    with caplog.at_level(logging.WARNING):
        assert export.main(["--model", str(model_dir), "--output-dir", str(tmp_path / "quiet")]) == 0
    assert "Evaluation failed" not in capfd.readouterr().err + caplog.text
    assert logging.getLogger("onnxscript.optimizer._constant_folding").filters == []  # removed after the export


def test_export_refuses_a_processor_of_another_text_length(bert_vocab_dir, tmp_path):
    processor = tiny_processor(bert_vocab_dir)
    processor.max_length = 16
    with pytest.raises(ValueError, match="pads text to 16 tokens but the model reads max_text_length=20"):
        export_onnx(spread_tiny_model(), processor, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def copy_with_processor(onnx_dir: Path, folder: Path, processor: LavtProcessor) -> Path:
    """The export with another processor saved over its own."""
    shutil.copytree(onnx_dir, folder)
    processor.save_pretrained(folder)
    return folder


def test_a_processor_that_does_not_match_the_graph_is_refused(onnx_dir, bert_vocab_dir, tmp_path):
    other_size = LavtProcessor(LavtImageProcessor(size={"height": 32, "width": 32}), tiny_processor(bert_vocab_dir)
                               .tokenizer)
    with pytest.raises(ValueError, match=r"set for 32x32 images, but the ONNX model was exported for 64x48"):
        LavtOnnxForReferringSegmentation.from_pretrained(copy_with_processor(onnx_dir, tmp_path / "a", other_size))
    other_length = tiny_processor(bert_vocab_dir)
    other_length.max_length = 12
    with pytest.raises(ValueError, match="set for 12 tokens per expression, but the ONNX model was exported for 20"):
        LavtOnnxForReferringSegmentation.from_pretrained(copy_with_processor(onnx_dir, tmp_path / "b", other_length))

    model = LavtOnnxForReferringSegmentation.from_pretrained(onnx_dir)
    with pytest.raises(ValueError, match=r"pixel_values of shape \(1, 3, 32, 32\), but the export takes \(batch, 3, 64, 48\)"):
        model(**model_inputs(other_size, [random_image(20, 20)], ["a cat"]))
    with pytest.raises(ValueError, match=r"input_ids of shape \(1, 12\), but the export takes \(batch, 20\)"):
        model(**model_inputs(other_length, [random_image(20, 20)], ["a cat"]))


def test_the_onnx_description_must_match_the_graph(onnx_dir, tmp_path):
    folder = tmp_path / "edited"
    shutil.copytree(onnx_dir, folder)
    info = json.loads((folder / EXPORT_INFO_NAME).read_text())
    (folder / EXPORT_INFO_NAME).write_text(json.dumps({**info, "text_length": 16}))
    with pytest.raises(ValueError, match=r"model.onnx is set for 20 tokens per expression, but the ONNX model "
                                         r"was exported for 16 \(onnx_export.json\); onnx_export.json does not "
                                         r"describe this graph; export the model again"):
        LavtOnnxForReferringSegmentation.from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="is not an ONNX export of LAVT"):
        LavtOnnxForReferringSegmentation.from_pretrained(tmp_path)


def test_ort_model_takes_the_processor_output_whole(onnx_dir, bert_vocab_dir):
    """`model(**processor(...))` works as with the PyTorch model (original_sizes accepted, not used)."""
    encoded = tiny_processor(bert_vocab_dir)(images=[random_image(20, 30)], text=["a cat"], return_tensors="pt")
    assert "original_sizes" in encoded
    logits = LavtOnnxForReferringSegmentation.from_pretrained(onnx_dir)(**encoded).logits
    assert torch.allclose(logits, eager_logits({name: encoded[name] for name in ("pixel_values", "input_ids", "attention_mask")}), atol=1e-4)


def test_ort_model_options_it_does_not_have(onnx_dir, bert_vocab_dir):
    model = LavtOnnxForReferringSegmentation.from_pretrained(onnx_dir)
    inputs = model_inputs(tiny_processor(bert_vocab_dir), [random_image(20, 20)], ["a cat"])
    with pytest.raises(ValueError, match=r"returns logits only; it does not take \['labels'\]"):
        model(**inputs, labels=torch.zeros(1, 64, 48, dtype=torch.long))
    with pytest.raises(ValueError, match="runs on the CPU"):
        model.to("cuda")
    with pytest.raises(ValueError, match="inference only"):
        model.train()


def test_int8_export(int8_dir, onnx_dir, bert_vocab_dir):
    info = json.loads((int8_dir / EXPORT_INFO_NAME).read_text())
    assert info["dtype"] == "int8" and info["quantization"]["op_types"] == ["MatMul", "Gemm"]
    assert (int8_dir / "model.onnx").stat().st_size < (onnx_dir / "model.onnx").stat().st_size
    processor = tiny_processor(bert_vocab_dir)
    inputs = model_inputs(processor, [random_image(40, 30, seed=i) for i in range(3)], ["a", "the cat", "a dog"])
    logits = LavtOnnxForReferringSegmentation.from_pretrained(int8_dir)(**inputs).logits
    expected = eager_logits(inputs)
    assert 0.0 < (logits - expected).abs().max().item() < 0.5  # quantized: close, not equal
    assert (logits.argmax(1) == expected.argmax(1)).float().mean().item() > 0.9  # a tiny 8-channel model


def assert_refuses_float32_parity(quantized_dir: Path, onnx_dir: Path) -> None:
    """A quantized export cannot be loaded as float32 nor checked for float32 parity; the float32 one passes."""
    with pytest.raises(ValueError, match="is an export in int8, but float32 was asked for: a quantized model cannot"):
        LavtOnnxForReferringSegmentation.from_pretrained(quantized_dir, precision="float32")
    model = spread_tiny_model()
    inputs = example_inputs(model.config, processor_settings(LavtProcessor.from_pretrained(onnx_dir)))
    with torch.no_grad():
        expected = model(**inputs).logits
    with pytest.raises(ValueError, match="float32 parity within 0.0001 cannot be asked of a quantized model"):
        check_float32_parity(quantized_dir, inputs, expected)
    assert check_float32_parity(onnx_dir, inputs, expected) < 1e-4


def test_int8_cannot_be_held_to_float32_parity(int8_dir, onnx_dir, model_dir, tmp_path, capsys):
    assert_refuses_float32_parity(int8_dir, onnx_dir)
    with pytest.raises(ValueError, match="already quantized"):
        quantize_export(int8_dir, tmp_path / "again")
    with pytest.raises(SystemExit):
        export.main(["--model", str(onnx_dir), "--output-dir", str(tmp_path / "x"), "--image-size", "32", "32"])
    assert "is already an ONNX export: it can only be quantized" in capsys.readouterr().err


def predict_argv(model: Path, image: Path, out: Path, *options: str) -> list[str]:
    return ["--model", str(model), "--image", str(image), "--text", "the dog", "a red car", "--output-dir", str(out),
            *options]


def test_predict_with_the_onnx_backend(onnx_dir, model_dir, tmp_path, capsys):
    random_image(45, 61).save(tmp_path / "photo.png")
    argv = predict_argv(onnx_dir, tmp_path / "photo.png", tmp_path / "onnx", "--backend", "onnx")
    assert predict.main(argv) == 0
    onnx_summary = json.loads(capsys.readouterr().out)
    argv = predict_argv(model_dir, tmp_path / "photo.png", tmp_path / "torch", "--device", "cpu", "--dtype", "fp32")
    assert predict.main(argv) == 0
    torch_summary = json.loads(capsys.readouterr().out)
    for ours, theirs in zip(onnx_summary, torch_summary):
        with Image.open(ours["mask_path"]) as mask, Image.open(theirs["mask_path"]) as expected:
            assert mask.size == (61, 45) and np.array_equal(np.asarray(mask), np.asarray(expected))


@pytest.mark.parametrize("options, message", [
    (["--dtype", "fp32"], "is an export in int8, but float32 was asked for"),
    (["--dtype", "bf16"], "--dtype bf16: the onnx backend runs the export's own precision"),
    (["--device", "cuda"], "--device cuda: the onnx backend runs on the CPU"),
    (["--word-maps"], "--word-maps: the ONNX export returns logits only"),
])
def test_predict_onnx_backend_errors(int8_dir, tmp_path, capsys, options, message):
    random_image(20, 20).save(tmp_path / "photo.png")
    with pytest.raises(SystemExit) as exit_info:
        predict.main(predict_argv(int8_dir, tmp_path / "photo.png", tmp_path / "out", "--backend", "onnx", *options))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_predict_onnx_backend_refuses_a_pytorch_folder(model_dir, tmp_path, capsys):
    random_image(20, 20).save(tmp_path / "photo.png")
    with pytest.raises(SystemExit):
        predict.main(predict_argv(model_dir, tmp_path / "photo.png", tmp_path / "out", "--backend", "onnx"))
    assert (f"lavt-predict: error: --model {model_dir} is a PyTorch model folder, not an ONNX export: drop "
            "--backend onnx, or export it first") in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        predict.main(predict_argv(tmp_path / "nowhere", tmp_path / "photo.png", tmp_path / "out", "--backend", "onnx"))
    assert exit_info.value.code == 2 and "nowhere: no such folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_predict_torch_backend_refuses_an_onnx_export(onnx_dir, tmp_path, capsys):
    random_image(20, 20).save(tmp_path / "photo.png")
    with pytest.raises(SystemExit) as exit_info:
        predict.main(predict_argv(onnx_dir, tmp_path / "photo.png", tmp_path / "out"))
    assert exit_info.value.code == 2
    assert f"--model {onnx_dir} is an ONNX export (lavt-export); run it with --backend onnx" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_auto_dtype(monkeypatch):
    import modeling_lavt.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype(torch.device("cpu"), "auto") == "bf16"
    assert resolve_dtype(torch.device("cuda"), "auto") == "fp32"
    assert resolve_dtype(torch.device("cpu"), "fp16") == "fp16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_dtype(torch.device("cpu"), "auto") == "fp32"


@pytest.fixture(scope="module")
def reference_model(reference_dir):
    """The conformance model (the original's small Swin, window 7, and a small BERT)."""
    text_config = json.loads((reference_dir / "bert_small_config.json").read_text())
    return convert_original(load_file(reference_dir / "small_w7_sharp" / "model.safetensors"),
                            load_file(reference_dir / "bert_small.safetensors"), text_config).eval()


@pytest.mark.parametrize("case_name", CASES)
def test_conformance_cases_through_onnx_runtime(reference_model, reference_dir, bert_vocab_dir, case_name, tmp_path):
    """The original's outputs on the shared conformance cases, reproduced by the exported graph within 1e-4."""
    case = load_case(reference_dir, case_name)
    height, width = case["input_image"].shape[-2:]
    processor = LavtProcessor(LavtImageProcessor(size={"height": height, "width": width}),
                              tiny_processor(bert_vocab_dir).tokenizer)
    folder = export_onnx(reference_model, processor, tmp_path / "reference-onnx")
    inputs = {"pixel_values": case["input_image"], "input_ids": case["input_ids"],
              "attention_mask": case["attention_mask"]}
    logits = LavtOnnxForReferringSegmentation.from_pretrained(folder)(**inputs).logits
    assert (logits - case["decoder_logits_quarter"]).abs().max().item() < 1e-4
    with torch.no_grad():
        expected = reference_model(**inputs).logits
    assert (logits - expected).abs().max().item() < 1e-4
    assert torch.equal(logits.argmax(1), expected.argmax(1))



def write_calibration_folder(folder: Path, expressions: dict) -> Path:
    """Random images (of varied sizes) and their expressions.json."""
    folder.mkdir()
    for number, name in enumerate(expressions):
        random_image(40 + number, 30 + 2 * number, seed=100 + number).save(folder / name)
    (folder / EXPRESSIONS_NAME).write_text(json.dumps(expressions))
    return folder


def test_a_calibration_folder_pairs_each_image_with_its_expressions(tmp_path):
    from modeling_lavt.onnx.calibration import folder_samples

    samples = write_calibration_folder(tmp_path / "samples", {"a.png": ["the dog", "a red car"], "b.jpg": "x"})
    pairs = folder_samples(samples)
    assert [(image.size, image.mode, text) for image, text in pairs] == [
        ((30, 40), "RGB", "the dog"), ((30, 40), "RGB", "a red car"), ((32, 41), "RGB", "x")]


def quantized_op_types(folder: Path) -> set[str]:
    """The op types that read a DequantizeLinear output (the ops that run on int8 data)."""
    import onnx

    graph = onnx.load(str(folder / "model.onnx")).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    return {node.op_type for node in graph.node if dequantized & set(node.input)}


def test_static_int8_export(static_dir, bert_vocab_dir):
    info = json.loads((static_dir / EXPORT_INFO_NAME).read_text())
    assert info["dtype"] == "int8" and info["quantization"]["method"] == "onnxruntime static"
    assert info["quantization"]["format"] == "QDQ" and info["quantization"]["op_types"] == ["Conv", "MatMul", "Gemm"]
    calibration = info["quantization"]["calibration"]
    assert calibration["source"].startswith("folder ") and calibration["samples"] == 6
    assert {"Conv", "MatMul"} <= quantized_op_types(static_dir)  # the convolutions too, unlike dynamic
    processor = tiny_processor(bert_vocab_dir)
    inputs = model_inputs(processor, [random_image(40, 30, seed=i) for i in range(3)], ["a", "the cat", "a dog"])
    logits = LavtOnnxForReferringSegmentation.from_pretrained(static_dir, precision="int8")(**inputs).logits
    expected = eager_logits(inputs)
    assert logits.shape == expected.shape and torch.isfinite(logits).all()
    assert 0.0 < (logits - expected).abs().max().item() < 0.5  # quantized: close, not equal
    masks = torch.stack([r["mask"] for r in processor.post_process_referring_segmentation(logits)])
    expected_masks = torch.stack([r["mask"] for r in processor.post_process_referring_segmentation(expected)])
    assert (masks == expected_masks).float().mean().item() > 0.9  # a loose bound: a tiny 8-channel model


def test_static_int8_cannot_be_held_to_float32_parity(static_dir, onnx_dir):
    assert_refuses_float32_parity(static_dir, onnx_dir)


def test_static_int8_calibrated_on_generated_images(onnx_dir, tmp_path, capsys):
    folder = quantize_export(onnx_dir, tmp_path / "static", method="static", calibration_size=2)
    calibration = json.loads((folder / EXPORT_INFO_NAME).read_text())["quantization"]["calibration"]
    assert calibration == {"source": "generated images (modeling_lavt/onnx/calibration.py)", "samples": 2, "method": "MinMax"}
    random_image(45, 61).save(tmp_path / "photo.png")  # lavt-predict runs it as any export
    assert predict.main(predict_argv(folder, tmp_path / "photo.png", tmp_path / "out", "--backend", "onnx")) == 0
    assert [Image.open(entry["mask_path"]).size for entry in json.loads(capsys.readouterr().out)] == [(61, 45)] * 2


def test_bad_calibration_sets_are_refused(onnx_dir, bert_vocab_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="has no expressions.json: write one that maps each image's file"):
        quantize_export(onnx_dir, tmp_path / "a", method="static", calibration=empty)
    no_pairs = write_calibration_folder(tmp_path / "no-pairs", {})
    with pytest.raises(ValueError, match="holds no \\(image, expression\\) pair"):
        quantize_export(onnx_dir, tmp_path / "b", method="static", calibration=no_pairs)
    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / EXPRESSIONS_NAME).write_text(json.dumps({"gone.png": "the dog"}))
    with pytest.raises(FileNotFoundError, match="names gone.png, which is not in"):
        quantize_export(onnx_dir, tmp_path / "c", method="static", calibration=missing)
    other_size = LavtProcessor(LavtImageProcessor(size={"height": 32, "width": 32}),
                               tiny_processor(bert_vocab_dir).tokenizer)
    wrong_size = [model_inputs(other_size, [random_image(20, 20)], ["a cat"])]
    with pytest.raises(ValueError, match=r"calibration sample 0: pixel_values of shape \(1, 3, 32, 32\), but the "
                                         r"export takes \(batch, 3, 64, 48\)"):
        quantize_export(onnx_dir, tmp_path / "d", method="static", calibration=wrong_size)
    with pytest.raises(ValueError, match="a calibration set is for static quantization only"):
        quantize_export(onnx_dir, tmp_path / "e", method="dynamic", calibration=empty)
    (empty / EXPRESSIONS_NAME).write_text('{"a.png": "the dog",}')
    with pytest.raises(ValueError, match=r"empty/expressions.json is not valid JSON \(Expecting property name"):
        quantize_export(onnx_dir, tmp_path / "e", method="static", calibration=empty)
    with pytest.raises(FileNotFoundError, match="expressions.json is a file, not a folder; give the folder that"):
        quantize_export(onnx_dir, tmp_path / "e", method="static", calibration=empty / EXPRESSIONS_NAME)
    (empty / EXPRESSIONS_NAME).unlink()
    random_image(20, 20).save(empty / "photo.png")  # a file where an output folder is asked for below
    assert not [path for path in tmp_path.iterdir() if path.name in "abcde" or path.name[0] == "."]  # no output
    for options, message in [
        (["--quantize", "static", "--calibration", str(empty)], "has no expressions.json"),
        (["--quantize", "dynamic", "--calibration-size", "4"],
         "--calibration-size: a calibration set is for static quantization only; add --quantize static"),
        (["--calibration", str(empty)], "--calibration: a calibration set is for static quantization only; add "
                                        "--quantize static"),
        (["--quantize", "static", "--calibration", str(empty), "--calibration-size", "2"],
         "--calibration-size sets the number of generated images; a --calibration folder is used whole"),
        (["--quantize", "static", "--output-dir", str(empty / "photo.png" / "out")],  # checked before the export
         f"its parent {empty / 'photo.png'} is a file, not a folder; choose another folder"),
        (["--quantize", "static", "--calibration-size", "0"], "--calibration_size: must be >= 1, got 0"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            export.main(["--model", str(onnx_dir), "--output-dir", str(tmp_path / "f"), *options])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["onnx-accuracy", "--model", "m", "--dataset", "d", "--calibration", str(empty)])
    assert exit_info.value.code == 2 and "has no expressions.json" in capsys.readouterr().err


def test_benchmark_onnx_times_every_cpu_path(capsys):
    """`lavt-benchmark onnx` on the tiny model: every path, static INT8 beside the others (no timing asserts)."""
    benchmark.main(["onnx", "--settings", "tiny-test:32:1", "--repeats", "1", "--warmup", "0", "--no-memory"])
    setting = json.loads(capsys.readouterr().out)["settings"][0]
    assert set(setting["paths"]) == {"eager-fp32", "eager-bf16", "eager-bf16-stored", "ort-fp32", "ort-int8",
                                     "ort-int8-static"}
    paths = setting["paths"]  # bf16 weights stored ahead: autocast's own outputs
    assert paths["eager-bf16-stored"]["mask_pixels_equal_to_eager_fp32"] == \
        paths["eager-bf16"]["mask_pixels_equal_to_eager_fp32"]
    assert set(setting["onnx_file_mb"]) == {"fp32", "int8", "int8-static"}
    assert setting["static_calibration"]["samples"] == 8 and setting["quantize_static_s"] > 0
    assert setting["fastest_low_precision"]["path"] in {"eager-bf16", "eager-bf16-stored", "ort-int8",
                                                        "ort-int8-static"}
    for record in setting["paths"].values():
        assert {"median_s", "speedup_vs_eager_fp32", "mask_pixels_equal_to_eager_fp32"} <= set(record)


def test_benchmark_onnx_times_only_the_chosen_paths_beside_eager_fp32(capsys):
    """`--paths` without ONNX Runtime paths: no export, the eager paths alone (and the baseline, always)."""
    benchmark.main(["onnx", "--settings", "tiny-test:32:1", "--repeats", "1", "--warmup", "0", "--no-memory",
                    "--paths", "eager-bf16-stored"])
    setting = json.loads(capsys.readouterr().out)["settings"][0]
    assert set(setting["paths"]) == {"eager-fp32", "eager-bf16-stored"}
    assert "onnx_file_mb" not in setting and "ort_fp32_speedup_target" not in setting
    assert setting["fastest_low_precision"]["path"] == "eager-bf16-stored"
