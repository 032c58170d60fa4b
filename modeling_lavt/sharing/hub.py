# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Push a LAVT model to the Hugging Face Hub as a self-contained repo, with remote code, the pipeline
definition and a model card rendered from `hub_cards/model_card.md`. Remote code does not ship this module."""

from __future__ import annotations

import importlib.resources
import json
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from httpx2 import TransportError
from huggingface_hub import CommitInfo, EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError
from transformers import PreTrainedModel, ProcessorMixin
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines import PIPELINE_REGISTRY

from ..configuration_lavt import LavtConfig
from ..image_processing_lavt import LavtImageProcessor
from ..modeling_lavt import LavtForReferringSegmentation
from ..pipeline_lavt import TASK, ReferringImageSegmentationPipeline
from ..processing_lavt import LavtProcessor
from ..validation import is_hub_repo_id

# The card templates ship in lavt_hf.hub_cards (the repository's hub_cards/ folder), installed with this package.
MODEL_CARD_TEMPLATE = importlib.resources.files("lavt_hf.hub_cards") / "model_card.md"
# Metric keys of the evaluation JSON (`lavt-evaluate`, the training script) -> names on the Hub's model-index.
CARD_METRICS = {"overall_iou": "Overall IoU", "mean_iou": "Mean IoU", "precision@0.5": "Precision@0.5",
                "precision@0.7": "Precision@0.7", "precision@0.9": "Precision@0.9"}
# Those of data with no-target expressions (gRefCOCO): columns of the card only when an evaluation has them.
GENERALIZED_CARD_METRICS = {"giou": "gIoU", "ciou": "cIoU", "n_acc": "N-acc", "t_acc": "T-acc"}
_ALL_CARD_METRICS = {**CARD_METRICS, **GENERALIZED_CARD_METRICS}
# Weight formats that unpickle (or are not safetensors): never uploaded, whatever the folder holds.
NON_SAFETENSORS_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle", "*.h5", "*.msgpack", "*.onnx")
# Classes whose modules (and their relative imports) the repo carries for `trust_remote_code=True`.
REMOTE_CODE_CLASSES = (LavtConfig, LavtForReferringSegmentation, LavtImageProcessor, LavtProcessor,
                       ReferringImageSegmentationPipeline)


class HubPushError(RuntimeError):
    """A push that did not reach the Hub or was refused by it; nothing local was changed."""


def code_reference(cls: type) -> str:
    """`module.Class` as `auto_map` and `custom_pipelines` name a class of the repo's own code files."""
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def add_remote_code(folder: Path) -> None:
    """Copy this package's modules into `folder` and point config.json at them (the processor files carry
    their own `auto_map`, written by `save_pretrained` for registered classes)."""
    for cls in REMOTE_CODE_CLASSES:
        custom_object_save(cls, folder)  # the class's module file and, recursively, its relative imports
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = {**config.get("auto_map", {}), "AutoConfig": code_reference(LavtConfig),
                          "AutoModel": code_reference(LavtForReferringSegmentation)}
    pipeline = dict(PIPELINE_REGISTRY.supported_tasks[TASK])  # as Pipeline.save_pretrained writes it
    pipeline["impl"] = code_reference(pipeline["impl"])
    pipeline["pt"] = [cls.__name__ for cls in pipeline["pt"]]
    config["custom_pipelines"] = {TASK: pipeline}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def card_evaluation(summary: dict[str, Any]) -> dict[str, Any]:
    """One evaluated split from an evaluation JSON as `lavt-evaluate` writes it (metrics plus `dataset`,
    `dataset_config`, `split`, `protocol`, `sentence_field`)."""
    missing = [key for key in ("dataset", "split") if not summary.get(key)]
    if missing:
        raise ValueError(f"an evaluation for the model card needs {missing} (as lavt-evaluate writes them)")
    dataset, dataset_config = str(summary["dataset"]), summary.get("dataset_config")
    hub_id = dataset if is_hub_repo_id(dataset, owner_required=True) else None
    local_name = dataset_config or Path(dataset).name  # a local folder's name says little; its config more
    return {
        "dataset_id": hub_id or local_name,
        "dataset_name": f"{hub_id} ({dataset_config})" if hub_id and dataset_config else hub_id or local_name,
        "dataset_config": dataset_config,
        "split": str(summary["split"]),
        "protocol": summary.get("protocol", "model_input"),
        "sentence_field": summary.get("sentence_field"),  # absent from evaluations made before it was recorded
        "metrics": {key: round(float(summary[key]), 4) for key in _ALL_CARD_METRICS if key in summary},
        "presence_threshold": summary.get("presence_threshold"),
    }


def write_model_card(folder: str | Path, config: LavtConfig, evaluations: Sequence[dict[str, Any]] = (),
                     recipe: dict[str, Any] | None = None, repo_id: str | None = None,
                     converted_from: str | None = None) -> ModelCard:
    """README.md in `folder`: YAML metadata (a `model-index` entry per evaluated split and metric), usage,
    results, recipe, limitations and citations. `evaluations` are evaluation JSONs (see `card_evaluation`);
    `recipe` is the training recipe as a flat dict; `converted_from` names the original checkpoint."""
    rows = [row for row in map(card_evaluation, evaluations) if row["metrics"]]
    eval_results = [
        EvalResult(task_type="image-segmentation", task_name="Referring Image Segmentation",
                   dataset_type=row["dataset_id"], dataset_name=row["dataset_name"],
                   dataset_config=row["dataset_config"], dataset_split=row["split"],
                   metric_type=key, metric_name=_ALL_CARD_METRICS[key], metric_value=value)
        for row in rows for key, value in row["metrics"].items()
    ]
    recipe = {k: v for k, v in (recipe or {}).items() if v not in (None, {}, [], "")}
    datasets = sorted({row["dataset_id"] for row in rows if is_hub_repo_id(row["dataset_id"], owner_required=True)}
                      | ({recipe["dataset"]} if is_hub_repo_id(recipe.get("dataset"), owner_required=True) else set()))
    # Hub repos the weights started from (timm hosts Swin weights as timm/<name>), not local files.
    base_models = [recipe[key] for key in ("init_from", "text_encoder")
                   if recipe.get(key) and not Path(recipe[key]).exists()]
    swin = recipe.get("swin_weights")
    if swin and not Path(swin).exists():
        base_models.append(swin if "/" in swin else f"timm/{swin}")
    # No `pipeline_tag`: the Hub has no task for (image, text) -> mask, and the image-segmentation widget would
    # send an image without its expression. `inference: false` keeps the Hub from offering a widget that fails.
    card_data = ModelCardData(
        license="apache-2.0", library_name="transformers", inference=False,
        tags=["lavt", "referring-image-segmentation", "vision-language"], datasets=datasets or None,
        base_model=base_models or None, model_name=repo_id or "lavt", eval_results=eval_results or None,
    )
    generalized = any(key in row["metrics"] for row in rows for key in GENERALIZED_CARD_METRICS)
    metric_names = _ALL_CARD_METRICS if generalized else CARD_METRICS
    card = ModelCard.from_template(
        card_data, template_path=str(MODEL_CARD_TEMPLATE), model_name=repo_id or "LAVT",
        repo_id=repo_id or "path/to/this/folder", evaluations=rows, metric_names=metric_names, config=config,
        generalized=generalized,
        recipe_yaml=yaml.safe_dump(recipe, sort_keys=True) if recipe else None, converted_from=converted_from,
    )
    card.save(Path(folder) / "README.md")
    return card


def push_lavt_to_hub(model_or_folder: PreTrainedModel | str | Path, repo_id: str,
                     processor: ProcessorMixin | None = None, *, evaluations: Sequence[dict[str, Any]] = (),
                     recipe: dict[str, Any] | None = None, converted_from: str | None = None,
                     private: bool = False, token: str | None = None,
                     commit_message: str = "Upload LAVT model") -> CommitInfo:
    """Push a LAVT model (an object, or a folder saved with `save_pretrained`) to `repo_id` in one commit.

    The repo gets the safetensors weights (a folder's weights in other formats are left out), the config, the
    processor (`processor`, or the folder's own files), the remote code and pipeline definition, and a model
    card written from `evaluations` (one per split), `recipe` and `converted_from` when any is given or the
    folder has no README.md. The repo is assembled in a temporary folder: the caller's is never modified.

    Raises FileNotFoundError for a folder without config.json, ValueError without safetensors weights, and
    `HubPushError` when the Hub could not be reached or refused the push.
    """
    with tempfile.TemporaryDirectory(prefix="lavt-push-") as tmp:
        staging = Path(tmp) / "repo"
        if isinstance(model_or_folder, PreTrainedModel):
            model_or_folder.save_pretrained(staging)  # safetensors only (transformers 5)
            source = "the model and processor objects are unchanged"
        else:
            folder = Path(model_or_folder)
            if not (folder / "config.json").is_file():
                raise FileNotFoundError(f"{folder} is not a saved LAVT model (no config.json)")
            shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(".*", *NON_SAFETENSORS_WEIGHTS))
            source = f"the local folder {folder} is intact"
        if not any(staging.glob("*.safetensors")):
            raise ValueError(f"no safetensors weights to push ({source}); re-save the model with "
                             "save_pretrained")
        if processor is not None:
            processor.save_pretrained(staging)
        elif not (staging / "processor_config.json").is_file():
            warnings.warn("pushing without a processor: AutoProcessor and the pipeline will not load the "
                          "repo", stacklevel=2)
        add_remote_code(staging)
        if evaluations or recipe or converted_from or not (staging / "README.md").is_file():
            config = LavtConfig.from_json_file(staging / "config.json")
            write_model_card(staging, config, evaluations, recipe, repo_id, converted_from)
        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            return api.upload_folder(folder_path=staging, repo_id=repo_id, commit_message=commit_message)
        except HfHubHTTPError as err:
            status = err.response.status_code if err.response is not None else None
            if status in (401, 403):
                raise HubPushError(
                    f"The Hub at {api.endpoint} refused the token (HTTP {status}) for {repo_id}: log in with "
                    f"`hf auth login` or set HF_TOKEN to a token with write access. Nothing was pushed; "
                    f"{source}.") from err
            raise HubPushError(f"The Hub at {api.endpoint} answered HTTP {status} for {repo_id}: {err}. "
                               f"Nothing was pushed; {source}.") from err
        except TransportError as err:
            raise HubPushError(
                f"Could not reach the Hub at {api.endpoint} ({err}). Nothing was pushed to {repo_id}; "
                f"{source}. Check the connection (and HF_ENDPOINT), then push again.") from err
