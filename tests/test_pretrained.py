"""Pretrained initialisation, offline: Swin from timm (random weights) or a Microsoft-layout file, BERT from a
local folder. Loaded tensors must equal the source."""

import re

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

from modeling_lavt import LavtConfig
from modeling_lavt.weights.conversion import UnsupportedCheckpointError
from modeling_lavt.weights.pretrained import (
    lavt_from_pretrained_parts,
    load_swin_backbone,
    resize_position_bias_table,
)
from tests.conftest import tiny_text_config

TIMM_TINY = "swin_tiny_patch4_window7_224"


def tiny_swin_config(**overrides):
    return LavtConfig.from_preset("swin-tiny-window7", text_config=tiny_text_config(), **overrides)


def timm_weights_by_our_name(timm_model):
    """The timm state dict renamed independently: merging moves from the start of stage i+1 to the end of i."""
    renamed = {}
    for key, value in timm_model.state_dict().items():
        if key.startswith(("head", "norm.")) or key.endswith(("relative_position_index", "attn_mask")):
            continue
        key = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", key)
        key = key.replace("layers.", "stages.").replace("patch_embed.proj.", "patch_embed.projection.")
        renamed[key] = value
    return renamed


@pytest.fixture(scope="module")
def timm_swin():
    torch.manual_seed(0)
    return timm.create_model(TIMM_TINY, pretrained=False)


def test_swin_from_timm_name_equals_source(timm_swin, monkeypatch):
    monkeypatch.setattr(timm, "create_model", lambda name, pretrained: timm_swin)
    model = lavt_from_pretrained_parts(tiny_swin_config(), swin=TIMM_TINY, swin_pretrained=False)
    expected = timm_weights_by_our_name(timm_swin)
    backbone = model.lavt.backbone.state_dict()
    assert len(expected) == 4 + 13 * sum([2, 2, 6, 2]) + 3 * 3  # embed, blocks, three mergings
    for key, value in expected.items():
        assert torch.equal(backbone[key], value), key


def test_swin_from_microsoft_file_with_window_resize(timm_swin, tmp_path):
    """A Microsoft checkpoint ('model' entry, merging at the end of a stage) loaded into a window-12 config."""
    microsoft = {}
    for key, value in timm_swin.state_dict().items():
        microsoft[re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample",
                         key)] = value
    torch.save({"model": microsoft}, tmp_path / "swin_tiny_patch4_window7_224.pth")
    model = lavt_from_pretrained_parts(tiny_swin_config(window_size=12))
    load_swin_backbone(model, tmp_path / "swin_tiny_patch4_window7_224.pth")
    block = model.lavt.backbone.stages[0].blocks[0]
    source_table = timm_swin.layers[0].blocks[0].attn.relative_position_bias_table
    assert block.attn.relative_position_bias_table.shape == (23**2, 3)
    # bicubic (align_corners=False) over the (2w-1) x (2w-1) grid of each head, as before timm's resize was used
    bicubic = F.interpolate(source_table.T.reshape(1, 3, 13, 13), size=(23, 23), mode="bicubic", align_corners=False)
    assert torch.equal(block.attn.relative_position_bias_table, bicubic.reshape(3, 23 * 23).T)
    assert torch.equal(block.attn.qkv.weight, timm_swin.layers[0].blocks[0].attn.qkv.weight)
    # bicubic resize keeps the centre (zero offset) close to the source's
    centre_old, centre_new = (13 * 13) // 2, (23 * 23) // 2
    torch.testing.assert_close(block.attn.relative_position_bias_table[centre_new], source_table[centre_old])


def test_bias_table_resize_keeps_dtype_and_refuses_non_square_tables():
    table = torch.randn(13 * 13, 2)
    assert torch.equal(resize_position_bias_table(table, 7), table)  # same window: unchanged
    half = resize_position_bias_table(table.bfloat16(), 12)
    assert half.dtype == torch.bfloat16  # computed in float32, returned in the table's dtype
    assert torch.equal(half, resize_position_bias_table(table.bfloat16().float(), 12).bfloat16())
    with pytest.raises(UnsupportedCheckpointError, match="not \\(2w-1\\)\\^2"):
        resize_position_bias_table(torch.zeros(10, 2), 7)


def test_swin_shape_mismatch_is_a_clear_error(timm_swin, tmp_path):
    save_file({k: v.contiguous() for k, v in timm_swin.state_dict().items()}, tmp_path / "swin.safetensors")
    small = LavtConfig(embed_dim=64, depths=[2, 2, 6, 2], num_heads=[2, 4, 8, 16], text_config=tiny_text_config())
    with pytest.raises(ValueError, match="same Swin size"):
        lavt_from_pretrained_parts(small, swin=tmp_path / "swin.safetensors")
    with pytest.raises(ValueError, match="neither a file nor a timm model"):
        lavt_from_pretrained_parts(tiny_swin_config(), swin=tmp_path / "missing.pth")


def test_text_encoder_from_local_folder(tmp_path):
    torch.manual_seed(0)
    bert = BertModel(BertConfig(**{k: v for k, v in tiny_text_config(hidden_size=48).items() if k != "model_type"}),
                     add_pooling_layer=False)
    bert.save_pretrained(tmp_path / "bert")
    model = lavt_from_pretrained_parts(tiny_swin_config(), text_encoder=tmp_path / "bert")
    assert model.config.text_config.hidden_size == 48
    assert model.lavt.backbone.stages[0].fusion.key.in_features == 48  # the fusion reads the encoder's width
    for key, value in bert.state_dict().items():
        assert torch.equal(model.lavt.text_encoder.state_dict()[key], value), key
