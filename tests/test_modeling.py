"""The LAVT model: exactness against the original's outputs, save / load, remote code, training readiness."""

import argparse
import copy
import json
import logging
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging as transformers_logging

from lavt_hf.scripts import convert_lavt_original_to_hf
from modeling_lavt import LavtConfig, LavtForReferringSegmentation
from modeling_lavt.weights.conversion import (
    UnsupportedCheckpointError,
    convert_original,
    load_original_checkpoint,
)
from tests.conftest import tiny_lavt_config

CASES = ["case_224x224", "case_200x264"]


@pytest.fixture(scope="module")
def reference_model(reference_dir):
    visual = load_file(reference_dir / "small_w7_sharp" / "model.safetensors")
    text = load_file(reference_dir / "bert_small.safetensors")
    text_config = json.loads((reference_dir / "bert_small_config.json").read_text())
    return convert_original(visual, text, text_config)


def load_case(reference_dir, name):
    return load_file(reference_dir / "small_w7_sharp" / f"{name}.safetensors")


def run(model, case, dtype):
    if dtype != torch.float32:
        model = copy.deepcopy(model).to(dtype)
    with torch.no_grad():
        return model(case["input_image"].to(dtype), case["input_ids"], case["attention_mask"],
                     labels=case["target"].long(), output_hidden_states=True)


def input_size_logits(out, case):
    return F.interpolate(out.logits, size=case["input_image"].shape[-2:], mode="bilinear", align_corners=True)


def max_diff(a, b):
    return (a.double() - b.double()).abs().max().item()


@pytest.mark.parametrize("case_name", CASES)
def test_float32_matches_original(reference_model, reference_dir, case_name):
    case = load_case(reference_dir, case_name)
    out = run(reference_model, case, torch.float32)
    assert max_diff(input_size_logits(out, case), case["logits"]) < 1e-4
    assert max_diff(out.logits, case["decoder_logits_quarter"]) < 1e-4
    assert max_diff(out.text_hidden_states, case["bert_last_hidden"]) < 1e-4
    for i in range(4):
        assert max_diff(out.vision_hidden_states[i], case[f"stage{i}_blocks_out"]) < 1e-4, i
        assert max_diff(out.fused_hidden_states[i], case[f"stage{i}_pwam_out"]) < 1e-4, i
        assert max_diff(out.stage_features[i], case[f"feat_c{i + 1}"]) < 2e-4, i
    assert abs(out.loss.item() - case["weighted_ce_loss"].item()) < 1e-5
    agreement = (input_size_logits(out, case).argmax(1) == case["pred_mask"].long()).float().mean()
    assert agreement > 0.999  # only near-tie pixels may flip between float32 implementations


@pytest.mark.parametrize("case_name", CASES)
def test_eager_attention_matches_original(reference_model, reference_dir, case_name):
    """The eager attention path (the one that returns the pixel-word attention weights) is as exact."""
    case = load_case(reference_dir, case_name)
    model = copy.deepcopy(reference_model)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(case["input_image"], case["input_ids"], case["attention_mask"], output_hidden_states=True,
                    output_attentions=True)
    assert max_diff(input_size_logits(out, case), case["logits"]) < 1e-4
    for i in range(4):
        assert max_diff(out.fused_hidden_states[i], case[f"stage{i}_pwam_out"]) < 1e-4, i


@pytest.mark.parametrize("case_name", CASES)
def test_float64_matches_original(reference_model, reference_dir, case_name):
    case = load_case(reference_dir, case_name)
    out = run(reference_model, case, torch.float64)
    assert max_diff(input_size_logits(out, case), case["logits_fp64"]) < 1e-9
    assert max_diff(out.logits, case["decoder_logits_quarter_fp64"]) < 1e-9
    assert max_diff(out.text_hidden_states, case["bert_last_hidden_fp64"]) < 1e-9
    assert abs(out.loss.item() - case["weighted_ce_loss_fp64"].item()) < 1e-9


@pytest.mark.parametrize("case_name", CASES)
def test_stage_inputs_match_original(reference_model, reference_dir, case_name):
    """Stage by stage through the backbone: the gated, merged input of each next stage."""
    case = load_case(reference_dir, case_name)
    with torch.no_grad():
        words = reference_model.lavt.text_encoder(input_ids=case["input_ids"],
                                             attention_mask=case["attention_mask"]).last_hidden_state
        stages = reference_model.lavt.backbone(case["input_image"], words, case["attention_mask"])
    for i in range(3):
        assert max_diff(stages[i].hidden_states, case[f"stage{i}_gated_out"]) < 1e-4, i


def test_logits_are_quarter_resolution():
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    for height, width in [(64, 64), (50, 70), (33, 45)]:
        out = model(torch.randn(1, 3, height, width), torch.randint(1, 100, (1, 20)))
        assert out.logits.shape == (1, 2, -(-height // 4), -(-width // 4))
        assert out.loss is None


def test_convert_script_writes_a_loadable_folder(reference_dir, reference_model, tmp_path):
    text_config = tmp_path / "bert.json"
    text_config.write_text((reference_dir / "bert_small_config.json").read_text())
    convert_lavt_original_to_hf.main([
        "--checkpoint", str(reference_dir / "small_w7_sharp" / "model.safetensors"),
        "--text_checkpoint", str(reference_dir / "bert_small.safetensors"),
        "--text_config", str(text_config), "--output_dir", str(tmp_path / "out"),
    ])
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix != ".py")  # .py: remote code
    assert written == ["config.json", "model.safetensors", "preprocessor_config.json"]  # image size kept
    loaded = LavtForReferringSegmentation.from_pretrained(tmp_path / "out")
    assert loaded.config.window_size == 7 and loaded.config.embed_dim == 32
    for key, value in reference_model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def original_checkpoint(reference_dir):
    return {
        "model": load_file(reference_dir / "small_w7_sharp" / "model.safetensors"),
        "bert_model": load_file(reference_dir / "bert_small.safetensors"),
        "args": argparse.Namespace(mha="", window12=False, model="lavt", img_size=224, fusion_drop=0.0),
        "epoch": 3,
    }


def test_original_pth_layouts_load(reference_dir, tmp_path):
    checkpoint = original_checkpoint(reference_dir)
    torch.save(checkpoint, tmp_path / "lavt.pth")
    loaded = load_original_checkpoint(tmp_path / "lavt.pth")
    assert loaded.visual.keys() == checkpoint["model"].keys() and loaded.text.keys() == checkpoint["bert_model"].keys()
    assert loaded.layout == "lavt" and loaded.settings.image_size == 224

    one = {**checkpoint["model"], **{f"text_encoder.{k}": v for k, v in checkpoint["bert_model"].items()}}
    args_one = argparse.Namespace(**{**vars(checkpoint["args"]), "model": "lavt_one"})
    torch.save({"model": one, "args": args_one}, tmp_path / "lavt_one.pth")
    loaded_one = load_original_checkpoint(tmp_path / "lavt_one.pth")
    assert loaded_one.visual.keys() == loaded.visual.keys() and loaded_one.text.keys() == loaded.text.keys()
    assert loaded_one.layout == "lavt_one"


class NotAllowed:
    pass


def test_converter_refuses_arbitrary_pickles_and_unknown_keys(reference_dir, tmp_path):
    torch.save({"model": {}, "args": NotAllowed()}, tmp_path / "evil.pth")
    with pytest.raises(UnsupportedCheckpointError, match="NotAllowed"):
        load_original_checkpoint(tmp_path / "evil.pth")
    with pytest.raises(FileNotFoundError):
        load_original_checkpoint(tmp_path / "missing.pth")
    checkpoint = original_checkpoint(reference_dir)
    visual = dict(checkpoint["model"], **{"backbone.extra.weight": torch.zeros(1)})
    with pytest.raises(UnsupportedCheckpointError, match="backbone.extra.weight"):
        convert_original(visual, checkpoint["bert_model"])
    with pytest.raises(UnsupportedCheckpointError, match="text encoder"):
        convert_original(checkpoint["model"], {})
    with pytest.raises(SystemExit) as exit_info:
        convert_lavt_original_to_hf.main(["--checkpoint", str(tmp_path / "nope.pth"), "--output_dir",
                                          str(tmp_path / "o")])
    assert exit_info.value.code == 2


def test_converter_infers_window_size(reference_dir):
    checkpoint = original_checkpoint(reference_dir)
    visual = dict(checkpoint["model"])
    for key in [k for k in visual if k.endswith("relative_position_bias_table")]:
        visual[key] = torch.zeros(23**2, visual[key].shape[1])  # window 12
    model = convert_original(visual, checkpoint["bert_model"])
    assert model.config.window_size == 12
    visual["backbone.layers.0.blocks.0.attn.relative_position_bias_table"] = torch.zeros(10, 1)
    with pytest.raises(UnsupportedCheckpointError, match="rows"):
        convert_original(visual, checkpoint["bert_model"])


def test_save_and_load_round_trip_is_exact(tmp_path):
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    model.save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.bin")) and (tmp_path / "model.safetensors").is_file()
    loaded = LavtForReferringSegmentation.from_pretrained(tmp_path).eval()
    assert model.state_dict().keys() == loaded.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    pixels, ids = torch.randn(2, 3, 48, 40), torch.randint(1, 100, (2, 20))
    with torch.no_grad():
        assert torch.equal(model(pixels, ids).logits, loaded(pixels, ids).logits)


def test_wrong_window_size_checkpoint_is_refused(tmp_path):
    LavtForReferringSegmentation(tiny_lavt_config(window_size=4)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="window"):
        LavtForReferringSegmentation.from_pretrained(tmp_path, window_size=6)


def test_remote_code_loads_without_the_package(tmp_path):
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    model.save_pretrained(tmp_path / "repo")
    pixels, ids = torch.randn(1, 3, 32, 32), torch.randint(1, 100, (1, 20))
    with torch.no_grad():
        expected = model(pixels, ids).logits
    torch.save({"pixels": pixels, "ids": ids}, tmp_path / "inputs.pt")
    code = f"""
import sys, torch
sys.modules["modeling_lavt"] = None  # this package must not be importable here
from transformers import AutoConfig, AutoModel
inputs = torch.load({str(tmp_path / "inputs.pt")!r})
model = AutoModel.from_pretrained({str(tmp_path / "repo")!r}, trust_remote_code=True).eval()
assert type(model).__name__ == "LavtForReferringSegmentation", type(model)
assert "modeling_lavt" not in type(model).__module__.split(".")[0]
with torch.no_grad():
    torch.save(model(inputs["pixels"], inputs["ids"]).logits, {str(tmp_path / "logits.pt")!r})
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                                              "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.equal(torch.load(tmp_path / "logits.pt"), expected)


@pytest.mark.parametrize(
    "pixels, ids, match",
    [
        (torch.randn(1, 4, 32, 32), torch.ones(1, 20, dtype=torch.long), "pixel_values must have shape"),
        (torch.randn(3, 32, 32), torch.ones(1, 20, dtype=torch.long), "pixel_values must have shape"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), torch.ones(1, 20, dtype=torch.long), "floating-point"),
        (torch.randn(2, 3, 32, 32), torch.ones(3, 20, dtype=torch.long), "batch size mismatch"),
        (torch.randn(1, 3, 32, 32), torch.ones(20, dtype=torch.long), "input_ids must have shape"),
    ],
)
def test_bad_inputs_raise_clear_errors(pixels, ids, match):
    model = LavtForReferringSegmentation(tiny_lavt_config())
    for entry_point in (model, model.lavt):  # the full model and the headless LavtModel alike
        with pytest.raises(ValueError, match=match):
            entry_point(pixels, ids)


def test_mismatched_mask_and_labels_raise():
    model = LavtForReferringSegmentation(tiny_lavt_config())
    pixels, ids = torch.randn(1, 3, 32, 32), torch.ones(1, 20, dtype=torch.long)
    for entry_point in (model, model.lavt):
        with pytest.raises(ValueError, match="attention_mask"):
            entry_point(pixels, ids, attention_mask=torch.ones(1, 19, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        model(pixels, ids, labels=torch.zeros(32, 32, dtype=torch.long))


def test_presets_match_original_factory():
    base = LavtConfig.from_preset("swin-base-window12")
    assert (base.embed_dim, base.depths, base.num_heads, base.window_size) == (128, [2, 2, 18, 2], [4, 8, 16, 32], 12)
    assert base.decoder_hidden_size == 512 and base.text_config.hidden_size == 768
    tiny = LavtConfig.from_preset("swin-tiny-window7")
    assert (tiny.embed_dim, tiny.depths, tiny.num_heads, tiny.window_size) == (96, [2, 2, 6, 2], [3, 6, 12, 24], 7)
    with pytest.raises(ValueError, match="Unknown LAVT preset"):
        LavtConfig.from_preset("swin-huge")


def test_no_stage4_gate_and_no_pooler():
    model = LavtForReferringSegmentation(tiny_lavt_config())
    names = list(model.state_dict())
    assert not any(n.startswith("lavt.backbone.stages.3.gate") for n in names)
    assert not any("pooler" in n for n in names)


@pytest.mark.parametrize("window", [1, 2, 4, 7, 12])
def test_relative_position_index_is_the_swin_formula(window):
    """timm's index (the buffer every window attention holds) equals the formula, written out pair by pair: query
    (y1, x1), key (y2, x2) read row (y1 - y2 + w - 1) * (2w - 1) + (x1 - x2 + w - 1) of the bias table."""
    expected = torch.empty(window**2, window**2, dtype=torch.long)
    for query in range(window**2):
        for key in range(window**2):
            (y1, x1), (y2, x2) = divmod(query, window), divmod(key, window)
            expected[query, key] = (y1 - y2 + window - 1) * (2 * window - 1) + (x1 - x2 + window - 1)
    model = LavtForReferringSegmentation(tiny_lavt_config(window_size=window))
    for stage in model.lavt.backbone.stages:
        for block in stage.blocks:
            assert torch.equal(block.attn.relative_position_index, expected)
    # post_init's _init_weights writes the buffer again (from_pretrained, meta-device loading)
    attention = model.lavt.backbone.stages[0].blocks[0].attn
    attention.relative_position_index.zero_()
    model._init_weights(attention)
    assert torch.equal(attention.relative_position_index, expected)


def test_stochastic_depth_drops_whole_samples_as_before():
    """timm's DropPath in the Swin blocks: in training, for a fixed seed, the same per-sample keep pattern and
    output as the formula x * bernoulli(1 - rate) / (1 - rate) drawn on a (batch, 1, 1) tensor; identity in eval.
    It holds no parameters or buffers, so state-dict keys do not change."""
    model = LavtForReferringSegmentation(tiny_lavt_config(drop_path_rate=0.4))
    rates = torch.linspace(0, 0.4, 6).tolist()  # linear over all 1 + 2 + 1 + 2 blocks
    blocks = [block for stage in model.lavt.backbone.stages for block in stage.blocks]
    assert [block.drop_path.drop_prob for block in blocks] == rates
    assert all(not block.drop_path.state_dict() for block in blocks)
    assert not any("drop_path" in name for name in model.state_dict())
    drop_path = blocks[-1].drop_path.train()
    x = torch.randn(64, 5, 8)
    torch.manual_seed(3)
    keep = torch.empty(64, 1, 1).bernoulli_(1 - 0.4)
    expected = x * keep / (1 - 0.4)
    torch.manual_seed(3)
    out = drop_path(x)
    assert 0 < keep.sum() < 64  # some samples dropped, some kept
    assert torch.equal(out == 0, (keep == 0).expand_as(x))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert torch.equal(drop_path.eval()(x), x)
    assert torch.equal(blocks[0].drop_path.train()(x), x)  # rate 0: identity in training too


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = LavtForReferringSegmentation(tiny_lavt_config()).train()
    pixels, ids = torch.randn(2, 3, 32, 32), torch.randint(1, 100, (2, 20))
    labels = torch.randint(0, 2, (2, 32, 32))

    def gradients():
        torch.manual_seed(1)  # same dropout masks in both runs
        model.zero_grad()
        model(pixels, ids, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = gradients()
    model.activation_checkpointing_enable()
    assert model.lavt.backbone.stages[0].blocks[0].gradient_checkpointing
    logging.Logger.warning_once.cache_clear()  # transformers warns once per process
    with CaptureLogger(transformers_logging.get_logger("transformers")) as log:
        checkpointed = gradients()
    assert "use_cache" not in log.out  # the text encoder is asked for no cache
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, msg=name)


def test_bf16_autocast_keeps_loss_in_float32():
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    pixels, ids = torch.randn(1, 3, 32, 32), torch.randint(1, 100, (1, 20))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(pixels, ids, labels=torch.randint(0, 2, (1, 32, 32)))
    assert out.logits.dtype == torch.bfloat16 and out.loss.dtype == torch.float32
    assert torch.isfinite(out.loss)


def test_ddp_without_find_unused_parameters(tmp_path):
    """Every parameter gets a gradient: DistributedDataParallel's default must not fail on a second step."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = torch.nn.parallel.DistributedDataParallel(LavtForReferringSegmentation(tiny_lavt_config()).train())
        for _ in range(2):
            out = model(torch.randn(2, 3, 32, 32), torch.randint(1, 100, (2, 20)),
                        labels=torch.randint(0, 2, (2, 32, 32)))
            out.loss.backward()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_swin_tiny_bert_base_trains_on_cpu():
    torch.manual_seed(0)
    model = LavtForReferringSegmentation(LavtConfig.from_preset("swin-tiny-window7")).train()
    out = model(torch.randn(2, 3, 224, 224), torch.randint(1, 30000, (2, 20)),
                labels=torch.randint(0, 2, (2, 224, 224)))
    assert out.logits.shape == (2, 2, 56, 56)
    out.loss.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, unused
