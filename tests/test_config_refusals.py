"""Sizes and loss settings a model cannot be built from are refused where they enter: by `LavtConfig`, and by
lavt-train and lavt-convert as one error line and exit status 2, before any work."""

import pytest

from lavt_hf.scripts import convert_lavt_original_to_hf
from lavt_hf.training import train
from modeling_lavt import LavtConfig
from tests.conftest import tiny_lavt_config
from tests.test_bad_inputs_cli import assert_usage_error, data  # noqa: F401  (`data`: the shared recipe fixture)

pytestmark = pytest.mark.usefixtures("fresh_accelerator_state")


@pytest.mark.parametrize("field, value, named", [
    ("window_size", 0, "window_size=0"),
    ("embed_dim", -8, "embed_dim=-8"),
    ("mlp_ratio", 0.0, "mlp_ratio=0.0"),
    ("depths", [2, 2, 0, 2], "depths[2]=0"),
    ("fusion_num_heads", [0, 1, 1, 1], "fusion_num_heads[0]=0"),
    ("patch_size", "4", "patch_size='4'"),
])
def test_config_refuses_non_positive_sizes(field, value, named):
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        LavtConfig(**{field: value})


TRAIN_CASES = {
    "loss_weight_negative": (["--loss.perceptual_weight", "-1"], ["--loss", "perceptual_weight=-1", ">= 0"]),
    "loss_mapping_negative": (["--loss", "{dice_weight: -1}"], ["--loss", "dice_weight=-1", ">= 0"]),
    "loss_weight_not_a_number": (["--loss.dice_weight", "abc"], ["--loss", "numbers", "dice_weight='abc'"]),
    "window_size_0": (["--model_overrides", "{window_size: 0}"], ["--model_overrides", "window_size=0"]),
    "embed_dim_negative": (["--model_overrides", "{embed_dim: -8}"], ["--model_overrides", "embed_dim=-8"]),
}


@pytest.mark.parametrize("argv, words", TRAIN_CASES.values(), ids=TRAIN_CASES.keys())
def test_lavt_train_refuses_bad_config(data, capsys, argv, words):  # noqa: F811
    assert_usage_error(capsys, train.main, ["--config", str(data / "recipe.yaml"), *argv], "lavt-train", *words)
    assert not (data / "run").exists()


@pytest.mark.parametrize("heads", [["0", "1", "1", "1"], ["-1", "1", "1", "1"]])
def test_lavt_convert_refuses_non_positive_heads(data, capsys, heads):  # noqa: F811
    argv = ["--checkpoint", str(data / "no-checkpoint.pth"), "--output_dir", str(data / "model"),
            "--fusion_num_heads", *heads]
    assert_usage_error(capsys, convert_lavt_original_to_hf.main, argv, "lavt-convert", "--fusion_num_heads",
                       heads[0], ">= 1")
    assert not (data / "model").exists()


def test_lavt_train_refuses_a_bad_loss_for_init_from(data, tmp_path, capsys):  # noqa: F811
    tiny_lavt_config().save_pretrained(tmp_path / "model")  # the config is all validate reads
    argv = ["--config", str(data / "recipe.yaml"), "--init_from", str(tmp_path / "model"),
            "--loss.ce_weight", "-1"]
    assert_usage_error(capsys, train.main, argv, "lavt-train", "--loss", "ce_weight=-1", ">= 0")
    assert not (data / "run").exists()
