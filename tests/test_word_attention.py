# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The transformers output contract (return_dict, config fallbacks, headless base model, attention
implementations) and the language-attention word maps, end to end (model, post-processing, processor, pipeline,
lavt-predict)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel

from lavt_hf.scripts import predict
from modeling_lavt import LavtForReferringSegmentation, LavtModel
from modeling_lavt.image_processing_lavt import LavtImageProcessor
from tests.conftest import spread_tiny_model, tiny_lavt_config
from tests.test_pipeline import random_image, save_tiny_checkpoint, tiny_processor

HEIGHT, WIDTH = 37, 50  # odd sizes: every stage pads


def inputs(seed: int = 0, batch: int = 2, tokens: int = 8):
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, 3, HEIGHT, WIDTH, generator=generator)
    ids = torch.randint(1000, 2000, (batch, tokens), generator=generator)
    mask = torch.ones(batch, tokens, dtype=torch.long)
    mask[0, 5:] = 0  # the first expression has 5 real tokens, then padding
    return pixels, ids, mask


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LavtForReferringSegmentation(tiny_lavt_config(fusion_num_heads=[1, 2, 1, 2])).eval()


def test_return_dict_false_gives_a_tuple(model):
    pixels, ids, mask = inputs()
    labels = torch.randint(0, 2, (2, HEIGHT, WIDTH))
    with torch.no_grad():
        out = model(pixels, ids, mask, labels=labels)
        as_tuple = model(pixels, ids, mask, labels=labels, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3  # loss, logits, loss_terms: no None fields
    assert torch.equal(as_tuple[0], out.loss) and torch.equal(as_tuple[1], out.logits)


def test_large_tensors_only_when_asked_and_flags_fall_back_to_the_config():
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    pixels, ids, mask = inputs()
    with torch.no_grad():
        plain = model(pixels, ids, mask)
        model.config.output_hidden_states = True
        model.set_attn_implementation("eager")  # transformers' configs refuse output_attentions with sdpa
        model.config.output_attentions = True
        from_config = model(pixels, ids, mask)
        overridden = model(pixels, ids, mask, output_hidden_states=False, output_attentions=False)
    assert plain.stage_features is None and plain.text_hidden_states is None and plain.attentions is None
    assert len(from_config.stage_features) == 4 and from_config.text_hidden_states.shape == (2, 8, 32)
    assert len(from_config.attentions) == 4
    assert overridden.stage_features is None and overridden.attentions is None
    torch.testing.assert_close(plain.logits, from_config.logits)  # eager vs sdpa: float tolerance


def test_unknown_keyword_argument_is_an_error(model):
    pixels, ids, mask = inputs()
    with pytest.raises(TypeError, match="output_attention"):
        model(pixels, ids, mask, output_attention=True)
    # what the processor returns beside the model inputs is accepted, so that model(**processor(...)) works
    sizes = [(pixels.shape[-2], pixels.shape[-1])] * 2
    with torch.no_grad():
        torch.testing.assert_close(model(pixels, ids, mask, original_sizes=sizes).logits, model(pixels, ids, mask).logits)


def test_attentions_shapes_sum_to_one_and_padding_gets_nothing(model):
    pixels, ids, mask = inputs()
    with torch.no_grad():
        attentions = model(pixels, ids, mask, output_attentions=True).attentions
    height, width = -(-HEIGHT // 4), -(-WIDTH // 4)
    for stage, weights in enumerate(attentions):
        heads = model.config.fusion_num_heads[stage]
        assert weights.shape == (2, heads, 8, height, width), stage
        torch.testing.assert_close(weights.sum(dim=2), torch.ones(2, heads, height, width))
        assert weights[0, :, 5:].max() < 1e-6  # padding positions of the first expression
        assert weights[1].min() > 0  # no padding in the second
        height, width = -(-height // 2), -(-width // 2)


def test_eager_and_sdpa_agree_and_asking_for_attentions_changes_nothing():
    torch.manual_seed(0)
    model = LavtForReferringSegmentation(tiny_lavt_config(fusion_num_heads=[1, 2, 1, 2])).eval()
    pixels, ids, mask = inputs()
    with torch.no_grad():
        sdpa = model(pixels, ids, mask, output_hidden_states=True)
        with_attentions = model(pixels, ids, mask, output_attentions=True)
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager" == model.lavt.config._attn_implementation
        eager = model(pixels, ids, mask, output_hidden_states=True, output_attentions=True)
    torch.testing.assert_close(eager.logits, sdpa.logits)
    torch.testing.assert_close(with_attentions.logits, sdpa.logits)
    for stage in range(4):
        torch.testing.assert_close(eager.vision_hidden_states[stage], sdpa.vision_hidden_states[stage])
        torch.testing.assert_close(eager.fused_hidden_states[stage], sdpa.fused_hidden_states[stage])
        torch.testing.assert_close(eager.attentions[stage], with_attentions.attentions[stage])


def test_headless_base_model_loads_the_head_models_checkpoint(tmp_path):
    model = spread_tiny_model()
    assert model.base_model is model.lavt and isinstance(model.lavt, LavtModel)
    pixels, ids, mask = inputs()
    with torch.no_grad():
        expected = model(pixels, ids, mask, output_hidden_states=True)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is LavtForReferringSegmentation
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    headless = LavtModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        features = headless(pixels, ids, mask).stage_features
    for stage in range(4):
        torch.testing.assert_close(features[stage], expected.stage_features[stage], rtol=0, atol=0)


def test_semantic_segmentation_post_processing(model):
    pixels, ids, mask = inputs()
    with torch.no_grad():
        out = model(pixels, ids, mask)
    processor = LavtImageProcessor()
    maps = processor.post_process_semantic_segmentation(out, target_sizes=[(20, 30), (41, 7)])
    referring = processor.post_process_referring_segmentation(out, target_sizes=[(20, 30), (41, 7)])
    assert [m.shape for m in maps] == [(20, 30), (41, 7)]
    assert all(torch.equal(m, r["mask"]) for m, r in zip(maps, referring))
    assert processor.post_process_semantic_segmentation(out)[0].shape == out.logits.shape[-2:]


def test_word_attention_post_processing(model):
    pixels, ids, mask = inputs()
    with torch.no_grad():
        out = model(pixels, ids, mask, output_attentions=True)
    processor = LavtImageProcessor()
    results = processor.post_process_word_attention(out, mask, target_sizes=[(75, 101), (9, 13)])
    assert [r["maps"].shape for r in results] == [(8, 75, 101), (8, 9, 13)]
    for result in results:
        torch.testing.assert_close(result["maps"].sum(dim=0), torch.ones(result["maps"].shape[1:]))
        assert result["stages"] == (0, 1, 2, 3) and result["tokens"] is None
    assert results[0]["padding"] == [False] * 5 + [True] * 3 and results[0]["maps"][5:].max() < 1e-6
    finest = processor.post_process_word_attention(out.attentions, stages=[0])[0]
    assert finest["maps"].shape == (8, -(-HEIGHT // 4), -(-WIDTH // 4)) and finest["padding"] == [False] * 8
    torch.testing.assert_close(finest["maps"], out.attentions[0][0].mean(dim=0))
    with pytest.raises(ValueError, match="output_attentions=True"):
        processor.post_process_word_attention(model(pixels, ids, mask))
    with pytest.raises(ValueError, match="stages must be indices among 0..3"):
        processor.post_process_word_attention(out, stages=[4])
    with pytest.raises(ValueError, match="1 target sizes for a batch of 2"):
        processor.post_process_word_attention(out, target_sizes=[(9, 9)])


def test_maps_move_when_a_word_changes(bert_vocab_dir):
    model = spread_tiny_model()
    processor = tiny_processor(bert_vocab_dir)
    image = random_image(40, 30)
    maps = []
    for text in ("the red circle on the left", "the blue circle on the left"):
        encoded = processor(images=image, text=text, return_tensors="pt")
        with torch.no_grad():
            out = model(encoded["pixel_values"], encoded["input_ids"], encoded["attention_mask"],
                        output_attentions=True)
        result = processor.post_process_word_attention(out, encoded["input_ids"], encoded["attention_mask"],
                                                       target_sizes=encoded["original_sizes"])[0]
        assert result["tokens"][:3] == ["[CLS]", "the", "red" if not maps else "blue"]
        assert result["special"][:2] == [True, False] and result["special"][7] and result["padding"][8]
        maps.append(result["maps"])
    assert (maps[0][2] - maps[1][2]).abs().max() > 1e-3  # the changed word looks elsewhere
    assert (maps[0][3] - maps[1][3]).abs().max() > 1e-4  # and the others shift with it


def test_processor_routes_text_and_image_options(bert_vocab_dir):
    processor = tiny_processor(bert_vocab_dir)
    image = random_image(40, 30)
    longest = processor(images=image, text=["a red circle", "the circle"], padding="longest", size=32,
                        return_tensors="pt")
    assert longest["input_ids"].shape == (2, 5) and longest["pixel_values"].shape == (2, 3, 32, 32)
    assert longest["attention_mask"].tolist() == [[1] * 5, [1] * 4 + [0]]
    default = processor(text="a red circle")
    assert default["input_ids"].shape == (1, 20)
    long_text = " ".join(["circle"] * 30)
    assert processor(text=long_text, truncation=False)["input_ids"].shape == (1, 32)
    keep_sep = processor(text=["a red circle", "the circle"], truncation_mode="keep_sep", padding="longest")
    assert keep_sep["input_ids"].shape == (2, 5)
    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) \['colour'\].*text options"):
        processor(images=image, text="a circle", colour="red")
    with pytest.raises(ValueError, match="padding must be one of"):
        processor(text="a circle", padding="do_not_pad")


def test_pipeline_returns_word_maps(bert_vocab_dir):
    from modeling_lavt.pipeline_lavt import ReferringImageSegmentationPipeline

    pipe = ReferringImageSegmentationPipeline(model=spread_tiny_model(), processor=tiny_processor(bert_vocab_dir),
                                              device="cpu")
    image = random_image(45, 31)
    plain = pipe(image, text="the red circle")
    assert "word_maps" not in plain
    results = pipe(image, text=["the red circle", "a small blue square on the left"], return_word_maps=True,
                   batch_size=2)
    for result, words in zip(results, (["the", "red", "circle"], ["a", "small", "blue", "square", "on", "the",
                                                                  "left"])):
        entries = result["word_maps"]
        assert [e["token"] for e in entries] == ["[CLS]", *words, "[SEP]"]
        assert [e["special"] for e in entries] == [True] + [False] * len(words) + [True]
        stacked = np.stack([e["map"] for e in entries])
        assert stacked.shape == (len(words) + 2, 45, 31) and stacked.dtype == np.float32
        np.testing.assert_allclose(stacked.sum(axis=0), 1.0, atol=1e-5)
    assert np.array_equal(np.asarray(results[0]["mask"]), np.asarray(plain["mask"]))


def test_predict_writes_word_map_pictures(bert_vocab_dir, tmp_path, capsys):
    folder = save_tiny_checkpoint(tmp_path / "model", bert_vocab_dir)
    image_path = tmp_path / "photo.png"
    random_image(45, 31).save(image_path)
    assert predict.main(["--model", str(folder), "--image", str(image_path), "--text", "the red circle",
                         "--output-dir", str(tmp_path / "out"), "--device", "cpu", "--word-maps"]) == 0
    summary = json.loads(capsys.readouterr().out)
    picture = Image.open(summary[0]["word_maps_path"])
    # The overlay and 5 tokens ([CLS] the red circle [SEP]) in tiles of the image enlarged to a 192-pixel side,
    # each under a strip holding its label.
    zoom = -(-192 // 31)
    assert picture.width == 4 * 31 * zoom and 2 * 45 * zoom < picture.height < 2 * 50 * zoom
    assert predict.main(["--model", str(folder), "--image", str(image_path), "--text", "the red circle",
                         "--output-dir", str(tmp_path / "plain"), "--device", "cpu"]) == 0
    assert "word_maps_path" not in json.loads(capsys.readouterr().out)[0]


def test_drawing_needs_word_maps():
    from modeling_lavt.sharing.visualization import draw_word_maps

    image = random_image(10, 12)
    with pytest.raises(ValueError, match="return_word_maps=True"):
        draw_word_maps(image, np.zeros((10, 12)), "the dog", [])
