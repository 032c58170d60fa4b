# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""Convert the raw refer layout (RefCOCO, RefCOCO+, RefCOCOg; gRefCOCO), or a dataset of one's own (images,
masks, expressions: ``training/data/user.py``), into the project's parquet dataset.

Output: ``<output_dir>/data/<config>/<split>-NNNNN-of-NNNNN-<digest>.parquet`` (one configuration per
dataset and split scheme, e.g. ``refcoco_unc``; one row per referred object, without its image),
``<output_dir>/images/images-NNNNN-of-NNNNN-<digest>.parquet`` (each image once, whichever configurations
refer to it) and a README.md card whose YAML maps the files of each configuration and of ``images``, so
``load_dataset(output_dir, "refcoco_unc")`` works, locally or from the Hub. Writing happens in a hidden folder
renamed at the end: a failed run leaves no output that could be loaded as complete.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, Features
from datasets.utils import disable_progress_bars
from huggingface_hub import DatasetCard, DatasetCardData, HfApi
from tqdm.auto import tqdm

from lavt_hf.cli import ArgumentParser, check_writable_dir, positive_float, usage_errors_exit
from lavt_hf.training.data.image_table import IMAGES_CONFIG
from lavt_hf.training.data.refer import (
    EXPECTED_LAYOUT,
    IMAGE_TABLE_FEATURES,
    MASK_RULES,
    SENT_COLUMN,
    STORED_FEATURES,
    RawRefer,
    available_configs,
    parse_config_name,
)
from lavt_hf.training.data.user import UserSource, add_column_arguments

CARD_TEMPLATE = Path(__file__).resolve().parents[1] / "hub_cards" / "dataset_card.md"
DEFAULT_MAX_SHARD_BYTES = 500 * 2**20
REFER_ORIGIN = "the raw refer layout (`refs(<split_by>).p` + `instances.json` + COCO train2014 images)"
MASK_RULE_DESCRIPTIONS = {
    "original": "As in the original LAVT / refer code: each polygon of an object is decoded separately and "
    "pixels covered by exactly one polygon are kept (where two polygons of one object overlap, the pixel is "
    "background). Crowd annotations are decoded from their RLE.",
    "union": "Every pixel covered by any polygon of the object (the plain union). Crowd annotations are "
    "decoded from their RLE.",
}
COCO_SOURCE = (
    "The images come from [COCO](https://cocodataset.org) (train2014) and are subject to the COCO terms of use "
    "and the Flickr terms of each image. The referring expressions come from the datasets' authors "
    "(RefCOCO, RefCOCO+: Kazemzadeh et al., EMNLP 2014 and Yu et al., ECCV 2016; RefCOCOg: Mao et al., "
    "CVPR 2016 and Nagaraja et al., ECCV 2016), distributed through the refer toolkit. Cite them when you use "
    "this data."
)


@dataclass
class SplitSummary:
    name: str
    objects: int = 0
    sentences: int = 0
    annotation_bytes: int = 0  # of the split's parquet files
    files: list[str] = field(default_factory=list)  # the split's parquet files, relative to the output folder

    def count(self, row: dict) -> int:
        """Count an object; about the bytes of its row (its mask and texts dominate)."""
        self.objects += 1
        self.sentences += len(row["sentences"])
        return 64 + len(row["mask"]["counts"]) + sum(len(s) for s in row["sentences"] + row[SENT_COLUMN])


@dataclass
class ConfigSummary:
    name: str
    splits: list[SplitSummary] = field(default_factory=list)


@dataclass
class ImagesSummary:
    images: int = 0
    image_bytes: int = 0  # of the image files, as they are stored
    file_bytes: int = 0  # of the image table's parquet files
    files: list[str] = field(default_factory=list)  # the image table's parquet files, relative to the output folder

    def count(self, row: dict) -> int:
        """Count an image's bytes."""
        self.image_bytes += len(row["image"]["bytes"])
        return len(row["image"]["bytes"])


def prepare_refcoco(
    source: str | Path, images_root: str | Path | None, output_dir: str | Path,
    configs: Sequence[str] | None = None, mask_rule: str = "original",
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, overwrite: bool = False, pretty_name: str | None = None,
    source_description: str | None = None, repo_id: str | None = None,
    columns: dict[str, str | None] | None = None,
) -> Path:
    """Write the parquet dataset of a raw refer root (``images_root`` the COCO folder; ``configs`` default to
    all under ``source``) or, with ``images_root`` None, of a dataset of one's own (``columns``: its
    ``image_column``, ``mask_column``, ``text_column``) as configuration ``default``. Rows hold the raw texts
    in ``sentences`` and the normalised ones in ``sentences_sent`` (one's own data: its text in both), and
    point by ``image_id`` at the image table. ``repo_id`` only fills the card's usage example.

    Raises:
        ValueError, FileNotFoundError: before anything is written, naming the ref id and the file: a ref
            without sentences, an image missing, not decoding or of another size than ``instances.json`` says
            (one's own data: the errors of ``load_user_dataset``). The output appears only once complete.
    """
    output_dir = Path(output_dir)
    if mask_rule not in MASK_RULES:
        raise ValueError(f"unknown mask_rule {mask_rule!r}; choose from {MASK_RULES}")
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f"{output_dir} exists; pass overwrite=True (--overwrite) to replace it")
    if images_root is None:
        sources = [("default", UserSource(source, mask_rule, **(columns or {})))]
        pretty_name = pretty_name or f"{Path(str(source)).name} (lavt-hf format)"
        source_description = source_description or (
            f"Made from `{source}`; state the source and terms of its images and expressions here "
            "(`--source_description`).")
        origin = f"a dataset of one's own (`{source}`: images, masks and expressions)"
    else:
        sources = _open_sources(source, images_root, configs)
        origin = REFER_ORIGIN
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    try:
        summaries = [_write_config(name, refer, staging, mask_rule, max_shard_bytes) for name, refer in sources]
        images = _write_images(sources, staging, max_shard_bytes)
        card = render_card(summaries, mask_rule, pretty_name or "RefCOCO family (lavt-hf format)",
                           source_description or COCO_SOURCE, repo_id or str(output_dir), images, origin)
        (staging / "README.md").write_text(str(card), encoding="utf-8")
        _replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir


def _open_sources(refer_root: str | Path, images_root: str | Path, configs: Sequence[str] | None
                  ) -> list[tuple[str, RawRefer]]:
    """Open and validate every configuration, every ref's sentences and every image (decoded), before writing."""
    found = available_configs(refer_root)
    names = list(configs) if configs else found
    if not names:
        raise FileNotFoundError(f"no refs(<split_by>).p files under {refer_root}; {EXPECTED_LAYOUT}")
    sources, sizes = [], {}
    for name in names:
        if name not in found:
            raise ValueError(f"configuration {name!r} not found under {refer_root}; found: {found}")
        dataset, split_by = parse_config_name(name)
        refer = RawRefer(refer_root, images_root, dataset, split_by)
        refer.check_sentences(refer.refs)
        refer.check_images(refer.refs, decode=True, sizes=sizes)  # refcoco, refcoco+ share their images
        sources.append((name, refer))
    return sources


def _write_config(name: str, refer: RawRefer | UserSource, staging: Path, mask_rule: str, max_shard_bytes: int
                  ) -> ConfigSummary:
    summary = ConfigSummary(name)
    folder = staging / "data" / name.replace("+", "_plus")  # URL-safe paths
    folder.mkdir(parents=True)
    for split in refer.splits:
        rows = refer.stored_rows(split, mask_rule=mask_rule)
        progress = tqdm(rows, total=len(refer.refs_of(split)), desc=f"{name}/{split}", unit="obj")
        counted = SplitSummary(split)
        counted.files, counted.annotation_bytes = _write_shards(
            progress, staging, folder, split, STORED_FEATURES, max_shard_bytes, counted.count)
        summary.splits.append(counted)
    return summary


def _write_images(sources: Sequence[tuple[str, RawRefer | UserSource]], staging: Path, max_shard_bytes: int
                  ) -> ImagesSummary:
    """The image table: every image some configuration refers to, once, in image_id order. One image_id must
    name one file in every configuration (they all are COCO train2014 ids)."""
    owners: dict[int, tuple[str, RawRefer | UserSource]] = {}
    for name, refer in sources:
        for image_id in sorted({ref["image_id"] for ref in refer.refs}):
            first = owners.setdefault(image_id, (name, refer))
            if first[1] is not refer and first[1].image_path(image_id) != refer.image_path(image_id):
                raise ValueError(f"image_id {image_id} is {first[1].image_path(image_id)} in {first[0]} but "
                                 f"{refer.image_path(image_id)} in {name}; the configurations must share one "
                                 "COCO image set")
    summary = ImagesSummary(images=len(owners))
    rows = (owners[i][1].stored_image(i) for i in sorted(owners))
    progress = tqdm(rows, total=len(owners), desc=IMAGES_CONFIG, unit="img")
    (staging / "images").mkdir()
    summary.files, summary.file_bytes = _write_shards(progress, staging, staging / "images", IMAGES_CONFIG,
                                                      IMAGE_TABLE_FEATURES, max_shard_bytes, summary.count)
    return summary


def _write_shards(rows: Iterable[dict], staging: Path, folder: Path, prefix: str, features: Features,
                  max_shard_bytes: int, size: Callable[[dict], int]) -> tuple[list[str], int]:
    """Write rows into ``<prefix>-i-of-n-<digest>.parquet`` shards of about ``max_shard_bytes`` (as ``size``
    counts them); their paths relative to ``staging``, and their bytes."""
    shard: list[dict] = []
    shard_bytes = 0
    written: list[Path] = []
    for row in rows:
        shard.append(row)
        shard_bytes += size(row)
        if shard_bytes >= max_shard_bytes:
            written.append(folder / f"{prefix}-{len(written):05d}.parquet")
            Dataset.from_list(shard, features=features).to_parquet(written[-1])
            shard, shard_bytes = [], 0
    if shard:
        written.append(folder / f"{prefix}-{len(written):05d}.parquet")
        Dataset.from_list(shard, features=features).to_parquet(written[-1])
    final = []
    for index, path in enumerate(written):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]  # a shard's rows were in memory as well
        final.append(path.rename(folder / f"{prefix}-{index:05d}-of-{len(written):05d}-{digest}.parquet"))
    return [path.relative_to(staging).as_posix() for path in final], sum(p.stat().st_size for p in final)


def render_card(summaries: Sequence[ConfigSummary], mask_rule: str, pretty_name: str, source_description: str,
                repo_id: str, images: ImagesSummary, origin: str = REFER_ORIGIN) -> DatasetCard:
    """The README.md card; its YAML maps each configuration's split files and the image table (``images``) by
    name (``load_dataset`` keys its cache by the card; names following the content change when a folder is
    prepared again). Parsed back, so that malformed metadata fails here, not on the Hub."""
    configs = [{"config_name": c.name, "data_files": [{"split": s.name, "path": s.files} for s in c.splits]}
               for c in summaries]
    configs.append({"config_name": IMAGES_CONFIG, "data_files": [{"split": "train", "path": images.files}]})
    card_data = DatasetCardData(
        license="other", language=["en"], pretty_name=pretty_name, task_categories=["image-segmentation"],
        tags=["referring-image-segmentation", "refcoco", "lavt-hf"], configs=configs, mask_rule=mask_rule,
    )
    card = DatasetCard.from_template(
        card_data, template_path=str(CARD_TEMPLATE), pretty_name=pretty_name, repo_id=repo_id,
        configs=summaries, mask_rule=mask_rule, mask_rule_description=MASK_RULE_DESCRIPTIONS[mask_rule],
        source_description=source_description, images=images, origin=origin,
        objects=sum(s.objects for summary in summaries for s in summary.splits),
        annotation_bytes=sum(s.annotation_bytes for summary in summaries for s in summary.splits),
    )
    parsed = DatasetCard(str(card))
    if [c["config_name"] for c in parsed.data.configs] != [s.name for s in summaries] + [IMAGES_CONFIG]:
        raise ValueError("the rendered dataset card does not list the configurations that were written")
    return parsed


def _replace(staging: Path, output_dir: Path) -> None:
    """Move the finished folder into place; an old output is removed only after the new one is there."""
    if not output_dir.exists():
        staging.rename(output_dir)
        return
    retired = staging.with_name(f"{staging.name}-old")
    output_dir.rename(retired)
    staging.rename(output_dir)
    shutil.rmtree(retired)


def push_to_hub(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload a prepared folder as a dataset repository (endpoint and token from the usual HF_* settings)."""
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                               commit_message="Upload referring segmentation data (lavt-hf prepare_refcoco)")
    return commit.commit_url


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="lavt-prepare-refcoco",
        description="Convert RefCOCO / RefCOCO+ / RefCOCOg from the raw refer layout, or a dataset of one's own "
        "(--dataset), into parquet shards with a dataset card, loadable with "
        "datasets.load_dataset(OUTPUT_DIR, '<config>').",
        epilog="Expected input layout: REFER_ROOT/<dataset>/instances.json and REFER_ROOT/<dataset>/"
        "refs(<split_by>).p (e.g. refcoco/refs(unc).p, refcocog/refs(umd).p; gRefCOCO: grefcoco/grefs(unc).json), "
        "and IMAGES_ROOT/train2014/COCO_train2014_%012d.jpg; or a dataset with image, mask and text columns, or a "
        "folder with images/, masks/ and expressions.jsonl (docs/data.md, 'Your own data').",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--refer_root", help="folder holding refcoco/, refcoco+/, refcocog/")
    source.add_argument("--dataset", help="or a dataset of one's own: a Hub id or folder with image, mask and text "
                                          "columns, or a folder with expressions.jsonl (docs/data.md)")
    parser.add_argument("--images_root", help="COCO folder holding train2014/ (with --refer_root)")
    add_column_arguments(parser)
    parser.add_argument("--output_dir", required=True, help="folder to create (written atomically)")
    parser.add_argument("--configs", nargs="+", default=None,
                        help="configurations <dataset>_<split_by> to convert, e.g. refcoco_unc refcocog_umd "
                        "grefcoco_unc (default: every refs file found)")
    parser.add_argument("--mask_rule", choices=MASK_RULES, default="original",
                        help="original: pixels covered by exactly one polygon (LAVT); union: any polygon")
    parser.add_argument("--max_shard_mb", type=positive_float, default=DEFAULT_MAX_SHARD_BYTES / 2**20,
                        help="approximate image megabytes per parquet shard (default 500)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--pretty_name", default=None,
                        help="title of the card (default: RefCOCO family (lavt-hf format), or the dataset's name)")
    parser.add_argument("--source_description", default=None,
                        help="'Source and terms' section of the card (default: COCO / RefCOCO attribution)")
    parser.add_argument("--push_to_hub", metavar="REPO", default=None,
                        help="also upload the folder to this dataset repository (uses HF_ENDPOINT / HF_TOKEN)")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    return parser


@usage_errors_exit("lavt-prepare-refcoco", FileExistsError, FileNotFoundError, ValueError)  # the data's faults
def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.refer_root and not args.images_root:
        parser.error("--refer_root needs --images_root (the COCO folder holding train2014/)")
    if args.dataset and (args.images_root or args.configs):
        parser.error("--images_root and --configs apply to --refer_root; a dataset of one's own names its images")
    check_writable_dir(args.output_dir, "--output_dir")
    disable_progress_bars()  # those of the datasets library (a bar per shard); ours stay
    columns = {name: getattr(args, name) for name in ("image_column", "mask_column", "text_column")}
    output = prepare_refcoco(args.refer_root or args.dataset, args.images_root, args.output_dir, args.configs,
                             args.mask_rule, int(args.max_shard_mb * 2**20), args.overwrite, args.pretty_name,
                             args.source_description, args.push_to_hub, columns)
    print(f"wrote {output}")
    if args.push_to_hub:
        print(f"pushed: {push_to_hub(output, args.push_to_hub, private=args.private)}")


if __name__ == "__main__":
    main()
