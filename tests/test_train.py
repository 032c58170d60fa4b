"""Training with Accelerate: configuration errors, exact resume, two real CPU processes."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from accelerate import Accelerator
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from lavt_hf.training import train
from lavt_hf.training.arguments import parse_arguments
from lavt_hf.training.data import ReferTrainStream, load_refer_dataset, stream_num_rows
from tests.conftest import REPO_ROOT, recorded_texts, refs_texts, tiny_train_recipe
from tests.launch import accelerate_launch


def tiny_recipe(synthetic_data, output_dir, bert_vocab_dir, **overrides) -> Path:
    """The shared tiny recipe written to a file, with its own output folder and every checkpoint kept."""
    recipe = tiny_train_recipe(synthetic_data, bert_vocab_dir, output_dir=str(output_dir),
                               checkpoints_total_limit=10, **overrides)
    path = output_dir.parent / f"{output_dir.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_config_errors_come_before_any_work(synthetic_data, tmp_path, bert_vocab_dir):
    recipe = tiny_recipe(synthetic_data, tmp_path / "run", bert_vocab_dir)
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe.read_text() + "learning_rte: 0.1\n")
    with pytest.raises(ValueError, match="unknown option.*learning_rte"):
        parse_arguments(["--config", str(bad)])
    with pytest.raises(FileNotFoundError, match="not found"):
        parse_arguments(["--config", str(recipe), "--dataset", str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="unknown tracker"):
        parse_arguments(["--config", str(recipe), "--report_to", "tensorbored"])
    bad.write_text(recipe.read_text().replace("embed_dim: 8", "embed_dimension: 8"))
    with pytest.raises(ValueError, match="unknown LavtConfig field"):
        parse_arguments(["--config", str(bad)])
    assert not (tmp_path / "run").exists()


def test_recipe_states_its_differences_from_a_base(synthetic_data, tmp_path, bert_vocab_dir):
    """`base:` loads the other recipe first (path relative to this one); mapping options merge key by key."""
    base = tiny_recipe(synthetic_data, tmp_path / "run", bert_vocab_dir, loss={"dice_weight": 1.0})
    (tmp_path / "variants").mkdir()
    child = tmp_path / "variants" / "child.yaml"
    child.write_text(f"base: ../{base.name}\nnum_epochs: 5\nloss: {{ce_weight: 0.5}}\n")
    _, data_args, train_args = parse_arguments(["--config", str(child), "--learning_rate", "0.1"])
    assert (train_args.num_epochs, train_args.learning_rate) == (5, 0.1)
    assert train_args.loss == {"dice_weight": 1.0, "ce_weight": 0.5}
    assert data_args.dataset == yaml.safe_load(base.read_text())["dataset"]
    (tmp_path / "bad_base.yaml").write_text("base: [demo.yaml]\n")
    with pytest.raises(ValueError, match="base must be the path of another recipe"):
        parse_arguments(["--config", str(tmp_path / "bad_base.yaml")])
    (tmp_path / "missing_base.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(FileNotFoundError, match="nowhere.yaml does not exist"):
        parse_arguments(["--config", str(tmp_path / "missing_base.yaml")])
    base.write_text(base.read_text() + "base: variants/child.yaml\n")
    with pytest.raises(ValueError, match="name each other as base"):
        parse_arguments(["--config", str(child)])


@pytest.mark.parametrize("base,derived,differences", [
    ("demo.yaml", "study_synthetic.yaml", {"dataset", "images_root", "output_dir", "num_epochs", "loss"}),
    ("paper_swin_t_ce.yaml", "paper_swin_t_perceptual.yaml", {"output_dir", "loss"}),
])
def test_derived_recipes_differ_from_their_base_only_where_they_say(base, derived, differences):
    from lavt_hf.training.arguments import load_recipe

    configs = REPO_ROOT / "training" / "configs"
    base_recipe, recipe = load_recipe(configs / base), load_recipe(configs / derived)
    assert {key for key in base_recipe.keys() | recipe.keys() if base_recipe.get(key) != recipe.get(key)} == differences
    assert recipe["loss"]["ce_weight"] == 1.0


def test_training_writes_model_card_and_curves(synthetic_data, tmp_path, bert_vocab_dir, monkeypatch):
    applied = []  # checkpointing on CPU fixes malloc's threshold (not in this test process)
    monkeypatch.setattr(train, "return_freed_blocks_to_system", lambda: applied.append(1) or 4 * 2**20)
    result = train.run(["--config", str(tiny_recipe(synthetic_data, tmp_path / "run", bert_vocab_dir)),
                        "--gradient_checkpointing", "true"])
    assert applied == [1]
    final = Path(result["final_dir"])
    assert {"config.json", "model.safetensors", "processor_config.json", "README.md", "eval_results.json"} <= {
        p.name for p in final.iterdir()}
    assert (tmp_path / "run" / "training_curves.png").stat().st_size > 1000
    from huggingface_hub import ModelCard

    card = ModelCard.load(final / "README.md")
    evaluated = json.loads((final / "eval_results.json").read_text())
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert values["overall_iou"] == pytest.approx(evaluated["overall_iou"], abs=1e-4)
    assert evaluated["sentence_field"] == "raw" and "| model_input | raw |" in card.text
    assert len(train.checkpoints_in(tmp_path / "run" / "checkpoints")) == 2  # one per epoch
    # Fine-tuning from the trained folder: its config passes the door's check with the recipe's loss.
    tuned = train.run(["--config", str(tiny_recipe(synthetic_data, tmp_path / "tuned", bert_vocab_dir)),
                       "--init_from", str(final), "--max_steps", "1"])
    assert (Path(tuned["final_dir"]) / "model.safetensors").is_file()


@pytest.mark.parametrize("field", ["raw", "sent"])
def test_training_data_tokenizes_the_sentence_field(typed_data, tmp_path, bert_vocab_dir, monkeypatch, field):
    recipe = tiny_recipe(typed_data, tmp_path / "run", bert_vocab_dir)
    model_args, data_args, train_args = parse_arguments(
        ["--config", str(recipe), *([] if field == "raw" else ["--sentence_field", "sent"])])
    assert data_args.sentence_field == field
    processor = train.build_processor(model_args, data_args)
    train_view, _, eval_loader = train.build_dataloaders(data_args, train_args, processor)
    tokenized = recorded_texts(monkeypatch)
    for index in range(len(train_view)):
        train_view[index]
    texts = refs_texts(typed_data / "refer", "train", field)
    assert tokenized == [t[train_view.sentence_index(i, len(t))] for i, t in enumerate(texts)]
    tokenized.clear()
    list(eval_loader)
    assert tokenized == [t for texts in refs_texts(typed_data / "refer", "val", field) for t in texts]
    with pytest.raises(ValueError, match="unknown sentence_field 'normalised'"):
        parse_arguments(["--config", str(recipe), "--sentence_field", "normalised"])


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def prepared_synthetic(synthetic_data, tmp_path_factory) -> Path:
    """`synthetic_data` in the prepared parquet format, in shards of a few objects (a stream of several)."""
    from lavt_hf.scripts.prepare_refcoco import prepare_refcoco

    output = tmp_path_factory.mktemp("prepared") / "synthetic-parquet"
    prepare_refcoco(synthetic_data / "refer", synthetic_data / "images", output, configs=["refcoco_unc"],
                    max_shard_bytes=1_000)
    return output


@pytest.mark.parametrize("streaming, workers", [(False, 0), (True, 0), (True, 2)],
                         ids=["map_style", "streaming", "streaming_workers"])
def test_resume_after_kill_gives_the_same_weights(synthetic_data, tmp_path, bert_vocab_dir, monkeypatch, request,
                                                  streaming, workers):
    if workers:  # workers read the whole split (a cap needs one reader): 36 objects / batch 4 -> 9 steps per
        # epoch; checkpoint every 6 steps, 2 epochs, killed after step 12 (mid-epoch 1)
        overrides, kill_step, last_step = {"checkpointing_steps": 6, "num_workers": workers}, 12, 18
    else:  # 9 training objects / batch 4 -> 2 steps per epoch; checkpoint every step, 2 epochs
        overrides, kill_step, last_step = {"checkpointing_steps": 1, "max_train_objects": 9}, 3, 4
    if streaming:  # a shuffle buffer smaller than an epoch: its state matters to the resume
        overrides.update(dataset=str(request.getfixturevalue("prepared_synthetic")), streaming=True,
                         shuffle_buffer=4, max_eval_samples=6)
    full = tiny_recipe(synthetic_data, tmp_path / "full", bert_vocab_dir, **overrides)
    train.run(["--config", str(full)])

    resumed = tiny_recipe(synthetic_data, tmp_path / "resumed", bert_vocab_dir, **overrides)
    real_save = train.save_checkpoint

    def save_then_die(accelerator, output_dir, state, *args):
        path = real_save(accelerator, output_dir, state, *args)
        if state["global_step"] == kill_step:  # mid-epoch 1
            raise Killed
        return path

    monkeypatch.setattr(train, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train.run(["--config", str(resumed)])
    monkeypatch.setattr(train, "save_checkpoint", real_save)
    (tmp_path / "resumed" / "checkpoints" / f".incomplete-checkpoint-{last_step}").mkdir()  # a save cut short
    train.run(["--config", str(resumed), "--resume_from_checkpoint", "latest"])

    expected = load_file(tmp_path / "full" / "checkpoints" / f"checkpoint-{last_step}" / "model.safetensors")
    got = load_file(tmp_path / "resumed" / "checkpoints" / f"checkpoint-{last_step}" / "model.safetensors")
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key  # bit for bit


def epoch_order(num_samples: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of an epoch as lavt-train has drawn it since before accelerate's seedable sampler: a
    permutation from a CPU generator seeded with seed * 100_003 + epoch."""
    return torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


def test_one_process_sees_the_seeded_order_and_resumes_mid_epoch():
    """The prepared training loader (accelerate's SeedableRandomSampler) replays the order of (seed, epoch) in any
    epoch order, every sample once up to the incomplete last batch, and `skip_first_batches` continues it."""
    accelerator = Accelerator(dataloader_config=train.data_loader_configuration(seed=7))
    loader = accelerator.prepare(DataLoader(list(range(23)), batch_size=4, shuffle=True, drop_last=True))
    for epoch in (0, 1, 2, 0):
        loader.set_epoch(epoch)
        assert [int(i) for batch in loader for i in batch] == epoch_order(23, 7, epoch)[:20]
    loader.set_epoch(1)
    resumed = accelerator.skip_first_batches(loader, 2)
    resumed.set_epoch(1)
    assert [int(i) for batch in resumed for i in batch] == epoch_order(23, 7, 1)[8:20]


SHARD_PROBE = """
import json, sys
from accelerate import Accelerator
from lavt_hf.training import train
from lavt_hf.training.arguments import parse_arguments
model_args, data_args, train_args = parse_arguments(sys.argv[1:])
accelerator = Accelerator(dataloader_config=train.data_loader_configuration(train_args.seed))
processor = train.build_processor(model_args, data_args)
train_view, loader, _ = train.build_dataloaders(data_args, train_args, processor)
loader = accelerator.prepare(loader)
epochs = []
for epoch in range(2):
    loader.set_epoch(epoch)
    epochs.append([i for batch in loader.batch_sampler for i in batch])
out = {"world": accelerator.num_processes, "objects": len(train_view), "seed": train_args.seed, "epochs": epochs}
open(f"{train_args.output_dir}/rank{accelerator.process_index}.json", "w").write(json.dumps(out))
"""


@pytest.mark.slow
def test_two_processes_see_disjoint_data_and_train(synthetic_data, tmp_path, bert_vocab_dir):
    recipe = tiny_recipe(synthetic_data, tmp_path / "probe", bert_vocab_dir)
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe.py").write_text(SHARD_PROBE)
    accelerate_launch([str(tmp_path / "probe.py"), "--config", str(recipe)], cwd=tmp_path)
    ranks = [json.loads((tmp_path / "probe" / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    objects, seed = ranks[0]["objects"], ranks[0]["seed"]
    full_rounds = objects - objects % (2 * 4)  # batches of 4 on each of 2 processes; the rest is dropped
    for epoch in range(2):
        first, second = ranks[0]["epochs"][epoch], ranks[1]["epochs"][epoch]
        assert len(first) == len(second) == full_rounds // 2
        # together, every object of the epoch's seeded order once (up to the dropped rest), each on one process
        assert sorted(first + second) == sorted(epoch_order(objects, seed, epoch)[:full_rounds])

    # The 4-GPU launch config itself (bf16), cut to 2 CPU processes.
    recipe = tiny_recipe(synthetic_data, tmp_path / "run", bert_vocab_dir, num_epochs=1)
    result = accelerate_launch([str(REPO_ROOT / "training" / "train.py"), "--config", str(recipe)], cwd=tmp_path,
                               config_file=REPO_ROOT / "training" / "accelerate" / "4gpu_bf16.yaml")
    assert "x 2 processes" in result.stdout and "mixed precision: bf16" in result.stdout
    final = tmp_path / "run" / "model"
    assert (final / "model.safetensors").is_file() and (final / "eval_results.json").is_file()


def test_a_stream_of_unknown_length_is_refused(synthetic_data, prepared_synthetic, tmp_path, bert_vocab_dir,
                                                monkeypatch, capsys):
    """The schedule needs the number of objects up front: a source that does not record it is refused."""
    monkeypatch.setattr(train, "stream_num_rows", lambda rows: None)
    recipe = tiny_recipe(synthetic_data, tmp_path / "run", bert_vocab_dir, dataset=str(prepared_synthetic),
                         streaming=True)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--config", str(recipe)])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2
    assert line == (f"lavt-train: error: --streaming: {prepared_synthetic} does not say how many rows its 'train' "
                    "split has (no split sizes in its card, no readable parquet footers), which the schedule needs; "
                    "train without --streaming")


def test_stream_workers_give_every_object_once_in_a_fixed_order(prepared_synthetic, bert_vocab_dir):
    """Items batched after the workers: every object once per epoch, in the same order on every run with the
    same worker count (what resuming a streamed run relies on)."""
    from transformers import AutoTokenizer

    from modeling_lavt.image_processing_lavt import LavtImageProcessor
    from modeling_lavt.processing_lavt import LavtProcessor

    processor = LavtProcessor(LavtImageProcessor(size=32), AutoTokenizer.from_pretrained(bert_vocab_dir))

    def epoch(num_workers: int) -> list[tuple]:
        rows = load_refer_dataset(prepared_synthetic, "refcoco_unc", "train", streaming=True)
        items = train.WorkerItems(ReferTrainStream(rows.shuffle(seed=1, buffer_size=4), processor, seed=1,
                                                   num_rows=stream_num_rows(rows)), num_workers)
        items.view.set_epoch(1)  # as run() sets the epoch of the view it wraps
        assert len(items) == len(load_refer_dataset(prepared_synthetic, "refcoco_unc", "train"))
        return [(round(float(i["pixel_values"].sum()), 2), int((i["labels"].flatten() * torch.arange(1024)).sum()))
                for i in items]

    first, again, one_reader = epoch(2), epoch(2), epoch(0)
    assert first == again and len(set(first)) == len(first) == len(one_reader)
    assert sorted(first) == sorted(one_reader)


STREAM_PROBE = """
import json, sys
import torch
from accelerate import Accelerator
from lavt_hf.training import train
from lavt_hf.training.arguments import parse_arguments
model_args, data_args, train_args = parse_arguments(sys.argv[1:])
accelerator = Accelerator()
processor = train.build_processor(model_args, data_args)
view, loader, _ = train.build_dataloaders(data_args, train_args, processor)
def signature(pixels, labels):  # the image and the object's mask (objects share images)
    return [round(float(pixels.double().sum()), 3), int((labels.flatten() * torch.arange(labels.numel())).sum())]
every = [signature(item["pixel_values"], item["labels"]) for item in view]  # the whole stream, one process
loader = accelerator.prepare(loader)
loader.set_epoch(0)
seen = [signature(*pair) for batch in loader for pair in zip(batch["pixel_values"], batch["labels"])]
out = {"world": accelerator.num_processes, "batches": len(loader), "seen": seen, "every": every}
open(f"{train_args.output_dir}/rank{accelerator.process_index}.json", "w").write(json.dumps(out))
"""


@pytest.mark.slow
def test_two_processes_share_a_stream_without_overlap(synthetic_data, prepared_synthetic, tmp_path, bert_vocab_dir):
    """--streaming on 2 processes: each object reaches one process once per epoch, as many batches each as the
    schedule says (the main process reads, Accelerate dispatches)."""
    recipe = tiny_recipe(synthetic_data, tmp_path / "probe", bert_vocab_dir, dataset=str(prepared_synthetic),
                         streaming=True, per_device_batch_size=3, num_workers=2)
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe.py").write_text(STREAM_PROBE)
    accelerate_launch([str(tmp_path / "probe.py"), "--config", str(recipe)], cwd=tmp_path)
    ranks = [json.loads((tmp_path / "probe" / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    every = sorted(map(tuple, ranks[0]["every"]))
    assert len(set(every)) == len(every)  # the signatures tell the objects apart
    batches = len(every) // 3 // 2  # drop_last: whole batches of 3 for both processes
    assert [r["batches"] for r in ranks] == [batches, batches]
    assert [len(r["seen"]) for r in ranks] == [3 * batches, 3 * batches]
    seen = sorted(map(tuple, ranks[0]["seen"] + ranks[1]["seen"]))
    assert len(set(seen)) == len(seen) == 6 * batches and set(seen) <= set(every)


@pytest.mark.parametrize("recipe", sorted((REPO_ROOT / "training" / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_recipes_parse(recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative data folders of a recipe are created here, as `make demo` would
    settings = yaml.safe_load(recipe.read_text())
    for folder in filter(None, (settings.get("images_root"), settings.get("dataset"))):
        Path(folder).mkdir(parents=True)
    model_args, data_args, train_args = parse_arguments(["--config", str(recipe)])
    assert data_args.dataset and train_args.num_epochs > 0


def test_original_recipe_matches_the_documented_one():
    """The recipe written down in docs/training.md, section "The original recipe"."""
    model_args, data_args, train_args = parse_arguments(
        ["--config", str(REPO_ROOT / "training" / "configs" / "lavt_refcoco_swin_b.yaml")])
    assert (model_args.preset, model_args.swin_weights) == ("swin-base-window12", "swin_base_patch4_window12_384.ms_in22k")
    assert (data_args.image_size, train_args.num_epochs, train_args.per_device_batch_size) == (480, 40, 8)
    assert (train_args.optimizer, train_args.learning_rate, train_args.weight_decay) == ("adamw", 5e-5, 0.01)
    assert (train_args.text_trainable_layers, train_args.poly_power) == (10, 0.9)


def test_parameter_groups_follow_the_original():
    from lavt_hf.training.arguments import TrainingArguments
    from modeling_lavt import LavtForReferringSegmentation
    from tests.conftest import tiny_lavt_config

    model = LavtForReferringSegmentation(tiny_lavt_config(text_config={
        "model_type": "bert", "vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 3,
        "num_attention_heads": 2, "intermediate_size": 32}))
    decay, no_decay = train.parameter_groups(model, TrainingArguments(text_trainable_layers=2))
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert "lavt.backbone.stages.0.blocks.0.attn.relative_position_bias_table" in no_decay_names
    assert "lavt.backbone.stages.0.blocks.0.norm1.weight" in no_decay_names
    assert "decoder.blocks.0.1.weight" in decay_names  # decoder BatchNorm keeps weight decay, as in the original
    assert any(n.startswith("lavt.text_encoder.encoder.layer.1.") for n in decay_names)
    assert not any(n.startswith(("lavt.text_encoder.encoder.layer.2.", "lavt.text_encoder.embeddings.")) for n in decay_names)
    assert not model.lavt.text_encoder.embeddings.word_embeddings.weight.requires_grad


@pytest.mark.parametrize("learning_rate, power", [(5e-5, 0.9), (2e-3, 1.0), (1.0, 2.0), (0.0, 0.9), (1e-3, 0.0)])
def test_poly_schedule_decays_per_step_to_zero(learning_rate, power):
    """lr * max(1 - step / total, 0) ** power for every group at every step, and after the end (0, or the lr at
    power 0); learning rate 0 and power 0 are accepted options."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))]},
              {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": learning_rate / 2}]
    optimizer = torch.optim.SGD(groups, lr=learning_rate)
    total = 7
    scheduler = train.poly_schedule(optimizer, total, power)
    for step in range(total + 4):
        factor = max(1 - step / total, 0) ** power
        assert scheduler.get_last_lr() == pytest.approx([learning_rate * factor, learning_rate / 2 * factor],
                                                        rel=1e-12, abs=0)
        optimizer.step()
        scheduler.step()
