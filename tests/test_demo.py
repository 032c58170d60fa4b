"""`make demo`'s job (training.demo) end to end at a tiny size: data, accelerate launch, evaluation, overlays."""

import json
import re

import pytest
from PIL import Image

from lavt_hf.training import demo


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reports_the_evaluation_it_ran(tmp_path, capsys):
    output = tmp_path / "demo"
    assert demo.main(["--output_dir", str(output), "--num_images", "30", "--num_predictions", "3",
                      "--num_epochs", "1", "--max_steps", "2", "--per_device_batch_size", "4"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((output / "evaluation" / "eval_results.json").read_text())
    table = dict(re.findall(r"^\| (\S+) \| ([\d.]+) \|$", printed, flags=re.MULTILINE))
    assert float(table["mean_iou"]) == pytest.approx(results["mean_iou"], abs=0.005)
    assert float(table["overall_iou"]) == pytest.approx(results["overall_iou"], abs=0.005)

    overlays = sorted((output / "predictions").rglob("*overlay*.png"))
    assert len(overlays) == 3 and all(str(p) in printed for p in overlays)
    tile = Image.open(overlays[0])
    overview = Image.open(output / "predictions" / "overview.png")
    assert overview.size == (2 * 2 * tile.width, 2 * 2 * tile.height)  # 2 columns x 2 rows, enlarged 2x
    assert (output / "run" / "training_curves.png").is_file()
    assert (output / "run" / "model" / "model.safetensors").is_file()
