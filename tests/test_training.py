"""Two-stage training with TRL's SFTTrainer on tiny backbones: what trains, what stays frozen, loss masking,
LoRA merge, resume after an interruption, bad input, and two real processes under torchrun."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from modeling_scitune.data.builders import build_synthetic
from modeling_scitune.scienceqa.synthetic import write_synthetic_scienceqa
from modeling_scitune.training.backbones import pretrain_backbones
from modeling_scitune.scienceqa.training_rows import scienceqa_dataset
from modeling_scitune.training.arguments import stage_arguments
from modeling_scitune.training.backbone_config import BackboneConfig
from modeling_scitune.training.stages import run_stage1, run_stage2

TINY_BACKBONES = BackboneConfig(image_size=32, patch_size=8, vision_hidden=32, vision_layers=2, clip_text_hidden=32,
                                clip_text_layers=1, clip_projection=32, caption_tokens=32, clip_steps=3,
                                clip_batch_size=8, text_hidden=48, text_layers=2, vocab_size=600, block_size=64,
                                llm_steps=3, llm_batch_size=4, compile=False)


def weights(folder):
    return load_file(str(Path(folder) / "model.safetensors"))


def flags(values: dict) -> list[str]:
    return [item for key, value in values.items() if value is not None
            for item in (f"--{key}", str(value).lower() if isinstance(value, bool) else str(value))]


def stage1_args(corpus, output_dir, data=None, **overrides):
    """Stage-1 settings as `scitune-train stage1 --preset tiny` parses them, short and on the corpus backbones."""
    base = {"max_steps": 4, "save_steps": 100, "per_device_train_batch_size": 4, "logging_steps": 1,
            "data": data or corpus / "figures", "output_dir": output_dir,
            "vision_model": corpus / "backbones" / "clip", "text_model": corpus / "backbones" / "llama"}
    return stage_arguments("stage1", "--preset", "tiny", *flags({**base, **overrides}))


def stage2_args(model_dir, data, output_dir, **overrides):
    base = {"max_steps": 4, "save_steps": 100, "per_device_train_batch_size": 4, "logging_steps": 1,
            "model": model_dir, "data": data, "output_dir": output_dir}
    return stage_arguments("stage2", "--preset", "tiny", *flags({**base, **overrides}))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    build_synthetic(40, root / "figures", workers=1)
    write_synthetic_scienceqa(40, root / "sqa", workers=1, progress=False)
    pretrain_backbones(str(root / "figures"), str(root / "backbones"), TINY_BACKBONES, sqa_dir=str(root / "sqa"))
    return root


@pytest.fixture(scope="module")
def stage1_dir(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("stage1")
    run_stage1(stage1_args(corpus, out, overwrite_output_dir=True))
    return out


def test_backbones_are_ordinary_hf_folders(corpus):
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    clip = AutoModel.from_pretrained(corpus / "backbones" / "clip")
    llama = AutoModelForCausalLM.from_pretrained(corpus / "backbones" / "llama")
    tokenizer = AutoTokenizer.from_pretrained(corpus / "backbones" / "llama")
    assert type(clip).__name__ == "CLIPModel" and type(llama).__name__ == "LlamaForCausalLM"
    assert llama.config.vocab_size == len(tokenizer) and "<image>" in tokenizer.get_vocab()
    summary = json.loads((corpus / "backbones" / "backbones.json").read_text())
    assert summary["log"]["clip"] and summary["log"]["llama"]


def test_extra_clip_figures_come_from_another_seed_and_never_the_datasets(corpus):
    import datasets

    from modeling_scitune.training.backbones import figure_image_processor as tiny_image_processor
    from modeling_scitune.training.backbones import extra_clip_pairs

    processor = tiny_image_processor(32)
    cfg = BackboneConfig(image_size=32, clip_extra_figures=6, clip_figure_seed=1)
    images, captions = extra_clip_pairs(str(corpus / "figures"), cfg, processor)
    assert images.shape == (6, 3, 32, 32) and len(captions) == 6 and all(captions)
    dataset = datasets.load_from_disk(str(corpus / "figures"))
    held_out = [row["images"][0] for split in ("validation", "test") for row in dataset[split]]
    held_out = processor(held_out, return_tensors="pt")["pixel_values"]
    assert not any(torch.equal(extra, figure) for extra in images for figure in held_out)
    with pytest.raises(ValueError, match="seed of the dataset"):
        extra_clip_pairs(str(corpus / "figures"), BackboneConfig(clip_extra_figures=2, clip_figure_seed=0), processor)


def test_llm_pretraining_blocks_keep_each_text_whole():
    from modeling_scitune.tiny import default_corpus, train_tokenizer
    from modeling_scitune.training.backbones import pack_texts

    tokenizer = train_tokenizer(default_corpus(), vocab_size=600)
    texts = ["short one", "a second, somewhat longer text about the loss", "x " * 40, "last"]
    blocks, labels, weights, _ = pack_texts(texts, tokenizer, block_size=24)
    assert blocks.shape[1] == 24
    flat = [tokenizer.decode(row[row != tokenizer.pad_token_id]) for row in blocks]
    whole = [t for t in texts if len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 2 <= 24]
    for text in whole:  # every text that fits a block sits in exactly one block, uncut
        assert sum(text in row for row in flat) == 1, text
    assert torch.equal(labels == -100, blocks == tokenizer.pad_token_id)  # padding never counts in the loss
    assert (blocks == tokenizer.eos_token_id).sum() == len(texts)
    assert torch.equal(weights, (blocks != tokenizer.pad_token_id).float())  # weight 1 by default


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_texts_attend_only_within_themselves(attention):
    """With the blocks' position ids (0 at each text) and no attention mask, transformers masks attention between the
    packed texts: each text's logits in the block are its logits alone; without them, later texts see earlier ones."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from modeling_scitune.tiny import default_corpus, train_tokenizer
    from modeling_scitune.training.backbones import pack_texts

    tokenizer = train_tokenizer(default_corpus(), vocab_size=600)
    texts = ["the loss falls over the steps", "a bar chart of yields", "a figure"]
    packed = pack_texts(texts, tokenizer, block_size=64)
    assert len(packed.input_ids) == 1
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         pad_token_id=tokenizer.pad_token_id)).eval()
    model.set_attn_implementation(attention)
    row = packed.input_ids[:1]
    starts = (row[0] == tokenizer.bos_token_id).nonzero().flatten().tolist()
    assert len(starts) == 3 and packed.position_ids[0, starts].tolist() == [0, 0, 0]
    with torch.no_grad():
        packed_logits = model(input_ids=row, position_ids=packed.position_ids[:1], use_cache=False).logits[0]
        for start, text in zip(starts, texts):
            ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            alone = model(input_ids=torch.tensor([ids])).logits[0]
            torch.testing.assert_close(packed_logits[start:start + len(ids)], alone, atol=1e-5, rtol=1e-5)
        across = model(input_ids=row, use_cache=False).logits[0]
    assert not torch.allclose(across[starts[1]:starts[2]], packed_logits[starts[1]:starts[2]], atol=1e-3)


def test_multiple_choice_texts_are_packed_alone_and_shuffled_the_rest_with_full_attention():
    """`multiple_choice_alone`: the texts from `multiple_choice_from` on sit in blocks of their own, in another order,
    and their position ids restart at each text (each attends only to itself); the stage-1 texts before them keep
    positions that count on through the block (full attention). Nothing is lost or duplicated either way."""
    from modeling_scitune.tiny import default_corpus, train_tokenizer
    from modeling_scitune.training.backbones import pack_corpus

    tokenizer = train_tokenizer(default_corpus(), vocab_size=600)
    stage1 = ["a bar chart of yields", "the loss falls over the steps"]
    words = ["planet", "garden", "pencil", "rocket", "window"]
    choices = [f"Options: (A) {word} (B) river\nANSWER: A." for word in words]
    cfg = BackboneConfig(block_size=48, answer_loss_weight=1.0)

    def blocks(packed):
        rows = [row[row != tokenizer.pad_token_id] for row in packed.input_ids]
        return [(tokenizer.decode(row, skip_special_tokens=True), positions[:len(row)])
                for row, positions in zip(rows, packed.position_ids)]

    packed = blocks(pack_corpus(stage1 + choices, tokenizer, cfg, multiple_choice_from=len(stage1)))
    stage1_blocks = [(text, positions) for text, positions in packed if "bar chart" in text or "loss falls" in text]
    choice_blocks = [(text, positions) for text, positions in packed if "Options" in text]
    assert len(stage1_blocks) + len(choice_blocks) == len(packed)  # no block mixes the two kinds
    assert all(torch.equal(positions, torch.arange(len(positions))) for _, positions in stage1_blocks)
    assert all((positions == 0).sum() == text.count("Options") for text, positions in choice_blocks)
    found = [word for text, _ in choice_blocks for word in text.split() if word in words]
    assert sorted(found) == sorted(words) and found != words  # each text once, in a shuffled order

    together = blocks(pack_corpus(stage1 + choices, tokenizer, BackboneConfig(
        block_size=48, answer_loss_weight=1.0, multiple_choice_alone=False), multiple_choice_from=len(stage1)))
    assert all(torch.equal(positions, torch.arange(len(positions))) for _, positions in together)
    assert [word for text, _ in together for word in text.split() if word in words] == words  # in corpus order


def test_llm_pretraining_blocks_fill_gaps_first_fit():
    """A short text goes into the gap an earlier block left, not into a new block: less padding per step."""
    from modeling_scitune.tiny import default_corpus, train_tokenizer
    from modeling_scitune.training.backbones import pack_texts

    tokenizer = train_tokenizer(default_corpus(), vocab_size=600)
    length = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 2  # noqa: E731
    long_text, short_text = "the loss falls over the steps " * 3, "a figure"
    block_size = length(long_text) + length(short_text) + 1
    assert 2 * length(long_text) > block_size  # two long texts never share a block
    packed = pack_texts([long_text, long_text, short_text, short_text], tokenizer, block_size=block_size)
    assert len(packed.input_ids) == 2  # back to back would need three blocks
    rows = [tokenizer.decode(row[row != tokenizer.pad_token_id]) for row in packed.input_ids]
    assert all(row.count(short_text) == 1 for row in rows)
    fill = (packed.input_ids != tokenizer.pad_token_id).float().mean().item()
    assert fill > 0.9


def test_answer_letter_loss_weight_marks_exactly_the_answer_letters():
    from transformers import LlamaConfig, LlamaForCausalLM

    from modeling_scitune.training.backbones import pack_texts, weighted_causal_lm_loss
    from modeling_scitune.training.tokenizer import train_tokenizer

    texts = ["Which is a noun?\nOptions: (A) run (B) planet\nSOLUTION: planet is a noun.\nANSWER: B.",
             "A caption with no answer line: see panel (A).",
             "Options: (A) 3 (B) 4 (C) 5\n###\nANSWER: C."]
    tokenizer = train_tokenizer(texts * 5, vocab_size=300, isolate_option_letters=True)
    packed = pack_texts(texts, tokenizer, block_size=64, answer_loss_weight=5.0)
    marked = packed.input_ids[packed.loss_weights == 5.0]
    assert [tokenizer.decode([token]) for token in marked.tolist()] == ["B", "C"]  # the answer letters, not "(A)"
    assert set(packed.loss_weights[packed.loss_weights != 5.0].tolist()) == {0.0, 1.0}

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    ones = (packed.labels != -100).float()
    own = model(input_ids=packed.input_ids, labels=packed.labels).loss
    assert torch.allclose(weighted_causal_lm_loss(model, packed.input_ids, packed.labels, ones), own, atol=1e-5)
    assert weighted_causal_lm_loss(model, packed.input_ids, packed.labels, packed.loss_weights) > own


def test_stage1_trains_only_the_projector(corpus, stage1_dir):
    trained = weights(stage1_dir)
    clip = load_file(str(corpus / "backbones" / "clip" / "model.safetensors"))
    llama = load_file(str(corpus / "backbones" / "llama" / "model.safetensors"))
    for key, value in trained.items():
        if key.startswith("model.vision_tower."):
            assert torch.equal(value, clip["vision_model." + key[len("model.vision_tower."):]]), key
        elif key.startswith("model.language_model."):
            assert torch.equal(value, llama["model." + key[len("model.language_model."):]]), key
        elif key == "lm_head.weight":
            assert torch.equal(value, llama["lm_head.weight"])
    from modeling_scitune.training.assemble import assemble_scitune

    torch.manual_seed(stage1_args(corpus, "x").training.seed)
    initial, _ = assemble_scitune(str(corpus / "backbones" / "clip"), str(corpus / "backbones" / "llama"),
                                  projector_type="mlp2x_gelu")
    changed = {k for k, v in initial.state_dict().items() if not torch.equal(v, trained[k])}
    assert changed == {f"model.multi_modal_projector.{n}.{p}" for n in ("linear_1", "linear_2") for p in ("weight", "bias")}
    summary = json.loads((stage1_dir / "training_summary.json").read_text())
    assert summary["global_step"] == 4 and summary["loss_history"]
    assert (stage1_dir / "modeling_scitune.py").is_file() and (stage1_dir / "chat_template.jinja").is_file()


def test_loss_counts_only_assistant_tokens(stage1_dir, corpus):
    from transformers import AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    processor = AutoProcessor.from_pretrained(stage1_dir, trust_remote_code=True)
    dataset = scienceqa_dataset(str(corpus / "sqa"), "QCM-LEPA")
    examples = [dataset[i] for i in range(4)]
    assert any(e["images"] for e in examples) and any(not e["images"] for e in examples)
    batch = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)(examples)
    labels = batch["labels"]
    assert not (labels == processor.image_token_id).any()
    assert (batch["input_ids"] == processor.image_token_id).any()
    for row, example in zip(labels, examples):
        answer = processor.tokenizer.decode(row[row != -100])
        assert answer == " " + example["messages"][1]["content"][0]["text"] + processor.tokenizer.eos_token


def test_stage2_full_keeps_vision_frozen(stage1_dir, corpus, tmp_path):
    run_stage2(stage2_args(stage1_dir, corpus / "sqa", tmp_path, learning_rate=1e-3))
    before, after = weights(stage1_dir), weights(tmp_path)
    for key in before:
        if key.startswith("model.vision_tower."):
            assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["model.language_model.layers.0.mlp.up_proj.weight"],
                           after["model.language_model.layers.0.mlp.up_proj.weight"])
    assert not torch.equal(before["model.multi_modal_projector.linear_1.weight"],
                           after["model.multi_modal_projector.linear_1.weight"])


def test_stage2_lora_merges_into_plain_scitune_folder(stage1_dir, corpus, tmp_path, figures):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    run_stage2(stage2_args(stage1_dir, corpus / "sqa", tmp_path, use_peft=True, learning_rate=1e-2))
    assert not (tmp_path / "adapter_config.json").exists()
    before, after = weights(stage1_dir), weights(tmp_path)
    assert set(before) == set(after)  # merged: no lora_A/B or modules_to_save keys left
    for key in before:
        if key.startswith("model.vision_tower.") or "norm" in key or "embed_tokens" in key:
            assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["model.language_model.layers.0.self_attn.q_proj.weight"],
                           after["model.language_model.layers.0.self_attn.q_proj.weight"])
    assert not torch.equal(before["model.multi_modal_projector.linear_1.weight"],
                           after["model.multi_modal_projector.linear_1.weight"])
    model = AutoModelForImageTextToText.from_pretrained(tmp_path, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    prompt = processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "Which type?"},
                                                                          {"type": "image"}]}], add_generation_prompt=True)
    inputs = processor(images=[figures[0]], text=prompt, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_interrupted_run_resumes_to_the_same_weights(corpus, tmp_path):
    llama = str(corpus / "backbones" / "llama")
    run_stage1(stage1_args(corpus, tmp_path / "full", max_steps=6, save_steps=3))
    # What an interruption right after the step-3 checkpoint leaves behind, plus a checkpoint cut off mid-save.
    full_checkpoints, resumed_checkpoints = tmp_path / "full" / "checkpoints", tmp_path / "resumed" / "checkpoints"
    shutil.copytree(full_checkpoints / "checkpoint-3", resumed_checkpoints / "checkpoint-3")
    (resumed_checkpoints / "checkpoint-7").mkdir()
    (resumed_checkpoints / "checkpoint-7" / "config.json").write_text("{}")
    # newer checkpoints whose files were cut off by a crash: trainer state, optimizer, weights
    for step, damaged in ((6, "trainer_state.json"), (5, "optimizer.pt"), (4, "model.safetensors")):
        folder = resumed_checkpoints / f"checkpoint-{step}"
        shutil.copytree(full_checkpoints / "checkpoint-3", folder)
        data_bytes = (folder / damaged).read_bytes()
        (folder / damaged).write_bytes(data_bytes[: len(data_bytes) // 2])
    summary = run_stage1(stage1_args(corpus, tmp_path / "resumed", max_steps=6, save_steps=3, resume=True))
    assert summary["resumed_from"].endswith("checkpoint-3")
    reasons = {s["checkpoint"]: s["reason"] for s in summary["checkpoints_skipped"]}
    assert set(reasons) == {"checkpoint-7", "checkpoint-6", "checkpoint-5", "checkpoint-4"}
    assert "trainer_state.json is unreadable" in reasons["checkpoint-6"]
    assert "optimizer.pt is unreadable" in reasons["checkpoint-5"] and "model.safetensors" in reasons["checkpoint-4"]
    # checkpoints, like the final folder, hold the frozen LLM at its original values (it may train in bf16)
    checkpoint, original = weights(full_checkpoints / "checkpoint-3"), load_file(str(Path(llama) / "model.safetensors"))
    assert torch.equal(checkpoint["lm_head.weight"], original["lm_head.weight"])
    assert checkpoint["lm_head.weight"].dtype == torch.float32
    full, resumed = weights(tmp_path / "full"), weights(tmp_path / "resumed")
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], atol=1e-6, rtol=0)


def test_compiled_stage_trains_like_eager_and_saves_the_same_folder(corpus, stage1_dir, tmp_path):
    from torch._dynamo.utils import counters

    graphs_before = counters["stats"]["unique_graphs"]
    summary = run_stage1(stage1_args(corpus, tmp_path, compile=True))
    assert counters["stats"]["unique_graphs"] > graphs_before  # the language model really ran through Inductor
    eager = json.loads((stage1_dir / "training_summary.json").read_text())
    compiled_losses = [row["loss"] for row in summary["loss_history"]]
    eager_losses = [row["loss"] for row in eager["loss_history"]]
    assert len(compiled_losses) == len(eager_losses) == 4
    for c, e in zip(compiled_losses, eager_losses):  # fused bf16 kernels round differently; the training is the same
        assert abs(c - e) < 2e-2 * max(abs(e), 1.0), (compiled_losses, eager_losses)
    compiled_weights, eager_weights = weights(tmp_path), weights(stage1_dir)
    assert compiled_weights.keys() == eager_weights.keys()  # nn.Module.compile: no `_orig_mod.` prefixes
    for key in eager_weights:
        torch.testing.assert_close(compiled_weights[key], eager_weights[key], atol=5e-3, rtol=0)


def test_stage_settings_are_trls_with_packaged_yaml_below_config_below_flags(tmp_path):
    """dataclass defaults < configs/STAGE.yaml (the paper) < --config / --preset < command-line flags."""
    def parse(stage, *argv):
        return stage_arguments(stage, "--data", "d", "--output_dir", "o", *argv)

    paper = parse("stage1")
    assert (paper.training.learning_rate, paper.training.lr_scheduler_type, paper.training.warmup_steps,
            paper.training.num_train_epochs) == (2e-3, "cosine", 0.03, 1)
    assert paper.script.compile and not paper.script.feature_cache and paper.script.projector_type == "linear"
    tiny = parse("stage1", "--preset", "tiny")
    assert tiny.script.feature_cache and not tiny.script.compile and tiny.training.per_device_train_batch_size == 16
    assert tiny.training.learning_rate == 2e-3 and tiny.training.lr_scheduler_type == "cosine"  # from stage1.yaml
    (tmp_path / "mine.yaml").write_text("learning_rate: 0.01\nmax_steps: 7\nvariant: CT\n")
    mine = parse("stage1", "--config", str(tmp_path / "mine.yaml"), "--max-steps", "9", "--compile", "false")
    assert (mine.training.learning_rate, mine.training.max_steps, mine.script.variant) == (0.01, 9, "CT")
    assert not mine.script.compile and mine.training.seed == 42
    assert parse("stage2").training.learning_rate == 2e-5 and parse("stage2").training.num_train_epochs == 12
    assert parse("stage2", "--preset", "tiny").script.option_orders == 4
    assert parse("stage2", "--use_peft").model.use_peft and parse("stage1").training.assistant_only_loss
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        parse("stage2", "--preset", "huge")
    (tmp_path / "typo.yaml").write_text("learning_rat: 1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        parse("stage1", "--config", str(tmp_path / "typo.yaml"))
    with pytest.raises(ValueError, match="no-such-setting"):
        parse("stage1", "--no-such-setting", "1")


def test_bad_input_fails_before_training(corpus, stage1_dir, tmp_path):
    import datasets

    no_images = datasets.load_from_disk(str(corpus / "figures"))
    no_images = datasets.DatasetDict({"train": no_images["train"].map(lambda row: {"images": []})})
    no_images.save_to_disk(str(tmp_path / "no-images"))
    with pytest.raises(ValueError, match="have no image"):
        run_stage1(stage1_args(corpus, tmp_path / "a", data=tmp_path / "no-images"))
    with pytest.raises(ValueError, match="would truncate through the image tokens"):
        run_stage1(stage1_args(corpus, tmp_path / "b", max_length=20))
    with pytest.raises(ValueError, match="not a SciTune checkpoint"):
        run_stage2(stage2_args(corpus / "backbones" / "llama", corpus / "sqa", tmp_path / "c"))
    with pytest.raises(ValueError, match="not a SciTune checkpoint"):
        run_stage2(stage2_args(tmp_path, corpus / "sqa", tmp_path / "d"))
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_two_processes_under_torchrun_end_identical(corpus, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
               "-m", "modeling_scitune.training.cli", "stage1", "--data", str(corpus / "figures"),
               "--vision-model", str(corpus / "backbones" / "clip"), "--text-model", str(corpus / "backbones" / "llama"),
               "--output-dir", str(tmp_path), "--preset", "tiny", "--max-steps", "3", "--per-device-train-batch-size", "2"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    import re

    checksums = dict(re.findall(r"rank (\d) of 2: parameter checksum ([0-9a-f]{64})", result.stderr))
    assert set(checksums) == {"0", "1"} and checksums["0"] == checksums["1"]  # every rank ends with the same weights
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("rank_*"))


def test_feature_cache_gives_the_same_batches_and_loss_and_is_not_used_when_tower_trains(corpus, tmp_path):
    import datasets
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from modeling_scitune.training.assemble import assemble_scitune
    from modeling_scitune.speed.feature_cache import CachedFeatureCollator, add_cached_features, tower_is_frozen

    model, processor = assemble_scitune(str(corpus / "backbones" / "clip"), str(corpus / "backbones" / "llama"),
                                        projector_type="mlp2x_gelu")
    model.eval()
    rows = datasets.load_from_disk(str(corpus / "figures"))["train"].select(range(4)).select_columns(["messages", "images"])
    cached = add_cached_features(rows, model, processor, tmp_path / "cache")
    again = add_cached_features(rows, model, processor, tmp_path / "cache")  # reuses the file
    assert len(list((tmp_path / "cache").rglob("*.arrow"))) == 1
    assert np.array_equal(np.stack(again["vision_features"]), np.stack(cached["vision_features"]))
    assert cached[0]["images"][0]["bytes"]  # the figures stay, undecoded
    plain = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)([dict(r) for r in rows])
    fast = CachedFeatureCollator(processor.tokenizer.pad_token_id)([dict(r) for r in cached])
    assert "pixel_values" in plain and "pixel_values" not in fast and "mm_encoder_outputs" in fast
    for key in ("input_ids", "attention_mask", "labels"):  # the same tokens TRL's own collator makes
        assert torch.equal(plain[key], fast[key]), key
    with torch.no_grad():
        torch.testing.assert_close(model(**fast).loss, model(**plain).loss, atol=1e-6, rtol=0)
    model.model.vision_tower.requires_grad_(True)
    assert not tower_is_frozen(model)


def test_feature_cache_runs_the_tower_once_per_distinct_figure(corpus, tmp_path):
    """Rows that share a figure (a ScienceQA problem in several option orders) get that figure's own features, from
    one tower pass."""
    import datasets

    from modeling_scitune.training.assemble import assemble_scitune
    from modeling_scitune.speed.feature_cache import add_cached_features

    model, processor = assemble_scitune(str(corpus / "backbones" / "clip"), str(corpus / "backbones" / "llama"),
                                        projector_type="mlp2x_gelu")
    model.eval()
    rows = datasets.load_from_disk(str(corpus / "figures"))["train"].select([0, 0, 1, 0]).select_columns(
        ["messages", "images"])
    encoded = []
    hook = model.model.vision_tower.register_forward_hook(
        lambda module, args, kwargs, output: encoded.append(len(args[0] if args else kwargs["pixel_values"])),
        with_kwargs=True)
    try:
        shared = add_cached_features(rows, model, processor, tmp_path / "shared")
    finally:
        hook.remove()
    assert encoded == [1, 2]  # the shape probe's one image, then figures 0 and 1 once each, in one pass
    alone = add_cached_features(rows.select([0, 2]), model, processor, tmp_path / "alone")
    features = [np.asarray(f) for f in shared["vision_features"]]
    np.testing.assert_allclose(features[0], np.asarray(alone[0]["vision_features"]), atol=1e-5, rtol=0)
    np.testing.assert_allclose(features[2], np.asarray(alone[1]["vision_features"]), atol=1e-5, rtol=0)
    assert np.array_equal(features[0], features[1]) and np.array_equal(features[0], features[3])
    assert shared["input_ids"][0] == shared["input_ids"][1] == alone[0]["input_ids"]


def test_stage1_loss_from_full_logits_is_trls_fused_lm_head_loss(corpus, tmp_path):
    """`fused_lm_head: false` (the tiny preset's) trains on the same loss as TRL's fused head, without its two logs."""
    histories = {}
    for fused in (True, False):
        settings = stage1_args(corpus, tmp_path / str(fused), fused_lm_head=fused, max_steps=2)
        assert settings.script.fused_lm_head is fused
        histories[fused] = run_stage1(settings)["loss_history"]
    assert [row["step"] for row in histories[False]] == [row["step"] for row in histories[True]] == [1, 2]
    for full, fused in zip(histories[False], histories[True]):
        assert full["loss"] == pytest.approx(fused["loss"], rel=1e-4)
        assert full["grad_norm"] == pytest.approx(fused["grad_norm"], rel=1e-3)
    assert "mean_token_accuracy" in histories[True][0] and "mean_token_accuracy" not in histories[False][0]
    assert not stage_arguments("stage1", "--preset", "tiny").script.fused_lm_head


def test_stage1_with_feature_cache_trains_the_projector(corpus, tmp_path):
    import os

    settings = stage1_args(corpus, tmp_path / "out")
    assert settings.script.feature_cache  # the tiny preset uses the cache
    summary = run_stage1(settings)
    assert summary["global_step"] == 4 and summary["loss_history"][0]["loss"] > 0
    assert list((Path(os.environ["SCITUNE_CACHE"]) / "feature-cache").rglob("*.arrow"))  # in the build cache,
    assert {p.name for p in (tmp_path / "out").iterdir() if p.is_dir()} == {"checkpoints"}  # not in the model folder


def test_stage2_feature_cache_gives_the_same_loss(stage1_dir, corpus, tmp_path):
    """The tower is frozen in stage 2 as well: cached features must train exactly like pixels (image + text rows)."""
    losses = {}
    for cache in (False, True):
        settings = stage2_args(stage1_dir, corpus / "sqa", tmp_path / str(cache), feature_cache=cache, bf16=False,
                               max_steps=2, learning_rate=1e-3)
        losses[cache] = run_stage2(settings)["loss_history"]
    assert [row["step"] for row in losses[True]] == [row["step"] for row in losses[False]] == [1, 2]
    for cached, plain in zip(losses[True], losses[False]):
        assert abs(cached["loss"] - plain["loss"]) < 1e-5 * max(plain["loss"], 1.0), (losses[True], losses[False])


def test_frozen_weights_train_in_bf16_and_are_restored_to_their_fp32_values(stage1_dir):
    from modeling_scitune.training.assemble import load_scitune
    from modeling_scitune.speed.frozen_bf16 import FrozenWeightsInBf16
    from modeling_scitune.training.stages import freeze_for_stage

    model, processor = load_scitune(stage1_dir)
    freeze_for_stage(model, "stage1")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = processor(images=[Image.new("RGB", (40, 30), "white")], text=["<image> a bar chart of yields"],
                       return_tensors="pt")
    inputs["labels"] = inputs["input_ids"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = model(**inputs).loss.item()
    frozen = FrozenWeightsInBf16(model)
    frozen.cast()
    assert model.lm_head.weight.dtype == torch.bfloat16
    assert model.model.multi_modal_projector.linear_1.weight.dtype == torch.float32  # trainable: fp32 master copy
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**inputs).loss
    loss.backward()  # gradients still reach what trains
    assert model.model.multi_modal_projector.linear_1.weight.grad is not None
    assert loss.item() == pytest.approx(reference, rel=1e-3)
    frozen.restore()  # what every checkpoint and the final folder are written from
    assert all(torch.equal(v, before[k]) and v.dtype == before[k].dtype for k, v in model.state_dict().items())


def test_attention_kernel_is_picked_per_device_and_used_by_training(stage1_dir):
    from modeling_scitune.training.precision import attention_implementation

    assert attention_implementation("sdpa") == "sdpa"
    expected = ("flash_attention_2", "sdpa") if torch.cuda.is_available() else ("eager",)
    assert attention_implementation("auto") in expected
    with pytest.raises(ValueError, match="attn_implementation='flash'"):
        attention_implementation("flash")
    # the kernel is a training-time choice: it is not written into the saved folder
    assert "attn_implementation" not in (stage1_dir / "config.json").read_text()


def test_output_folder_is_held_by_one_run_and_never_silently_overwritten(corpus, tmp_path, capsys):
    from modeling_scitune.training.cli import main

    args = ["stage1", "--data", str(corpus / "figures"), "--vision-model", str(corpus / "backbones" / "clip"),
            "--text-model", str(corpus / "backbones" / "llama"), "--output-dir", str(tmp_path / "out"), "--preset",
            "tiny", "--max-steps", "2", "--per-device-train-batch-size", "2", "--compile", "false"]
    (tmp_path / "out").mkdir()
    lock = tmp_path / "out" / ".scitune-train.lock"
    import socket

    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))  # alive
    assert main(args) == 2
    assert f"in use by scitune-train PID {os.getpid()}" in capsys.readouterr().err
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname(), "started": "then"}))  # stale
    assert main(args) == 0 and not lock.exists()
    assert main(args) == 2  # a finished stage is there now
    assert "already holds a finished stage" in capsys.readouterr().err
    assert main(args + ["--overwrite-output-dir"]) == 0


@pytest.mark.parametrize("flag", ["--limit-train-samples", "--max-steps", "--per-device-train-batch-size"])
def test_cli_counts_must_be_positive(flag, capsys):
    from modeling_scitune.training.cli import main

    assert main(["stage1", "--data", "d", "--output-dir", "o", flag, "0"]) == 2
    err = capsys.readouterr().err
    assert flag[2:].replace("-", "_") in err and ("at least 1" in err or "must be > 0" in err)


def test_empty_dataset_is_a_clear_error(corpus, tmp_path):
    import datasets

    empty = datasets.load_from_disk(str(corpus / "figures"))
    nothing = datasets.Dataset.from_dict({c: [] for c in empty["train"].column_names}, features=empty["train"].features)
    datasets.DatasetDict({"train": nothing}).save_to_disk(str(tmp_path / "empty"))
    datasets.DatasetDict({"test": empty["test"]}).save_to_disk(str(tmp_path / "no-train"))
    with pytest.raises(ValueError, match="a split is empty or damaged"):
        run_stage1(stage1_args(corpus, tmp_path / "a", data=tmp_path / "empty"))
    with pytest.raises(ValueError, match="has no 'train' split"):
        run_stage1(stage1_args(corpus, tmp_path / "b", data=tmp_path / "no-train"))


def test_full_disk_is_named_not_a_traceback(corpus, tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up here: {made.stderr.decode().strip()[:200]}")
    try:
        from modeling_scitune.training.output_guard import NoSpaceLeft

        with pytest.raises(NoSpaceLeft, match=f"no space left on {mount}"):
            run_stage1(stage1_args(corpus, mount, max_steps=2, save_steps=1, feature_cache=False))
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)  # lazily: files may still be open


def test_variant_rebuilds_stage1_answers_from_the_record_fields(corpus, tmp_path):
    """One CTOM-built dataset serves the paper's C / CT / CTO / CTOM ablation: the answers follow --variant."""
    import datasets

    from modeling_scitune.data.instructions import build_target
    from modeling_scitune.data.records import FigureRecord
    from modeling_scitune.training.cli import main
    from modeling_scitune.training.stages import with_variant

    train = datasets.load_from_disk(str(corpus / "figures"))["train"]
    assert set(train.unique("variant")) == {"CTOM"}
    for variant in ("C", "CT", "CTO"):
        rebuilt = with_variant(train, variant)
        for row, original in zip(rebuilt, train):
            record = FigureRecord(row["figure_id"], None, row["caption"], row["figure_type"], row["ocr"],
                                  row["paragraphs"], row["mentions"])
            assert row["messages"][1]["content"][0]["text"] == build_target(record, variant)
            assert row["messages"][0] == original["messages"][0]  # same instruction
        if variant == "C":
            assert [r["messages"][1]["content"][0]["text"] for r in rebuilt] == list(train["caption"])
    args = ["stage1", "--data", str(corpus / "figures"), "--vision-model", str(corpus / "backbones" / "clip"),
            "--text-model", str(corpus / "backbones" / "llama"), "--output-dir", str(tmp_path), "--preset", "tiny",
            "--max-steps", "1", "--per-device-train-batch-size", "2", "--variant", "C", "--compile", "false"]
    assert main(args) == 0
    assert json.loads((tmp_path / "training_summary.json").read_text())["config"]["variant"] == "C"


def test_llm_corpus_keeps_each_image_place_as_unscored_image_tokens():
    from modeling_scitune.scienceqa.formats import build_answer, user_message
    from modeling_scitune.scienceqa.problems import Problem
    from modeling_scitune.training.backbones import compact_problem_text, corpus_texts, pack_texts
    from modeling_scitune.training.tokenizer import train_tokenizer

    with_image = Problem(pid="1", question="Which type of figure is shown?", choices=["Bar Chart", "Equation"],
                         answer=1, image="image.png", solution="The figure shows a formula.", lecture="Figures.")
    text_only = Problem(pid="2", question="Which word is a noun?", choices=["run", "planet"], answer=1,
                        solution="planet is a noun.")
    exchanges = [[user_message(p), {"role": "assistant", "content": [{"type": "text", "text": build_answer(p)}]}]
                 for p in (with_image, text_only)]
    assert [t.count("<image>") for t in corpus_texts([], exchanges, image_tokens=16)] == [16, 0]
    assert [t.count("<image>") for t in corpus_texts([], exchanges)] == [0, 0]  # default: the image is left out
    compact = [compact_problem_text(p, image_tokens=16) for p in (with_image, text_only)]
    assert [t.count("<image>") for t in compact] == [16, 0]
    assert compact[0].index("<image>") > compact[0].index("Options:") and compact[0].endswith("ANSWER: B.")

    tokenizer = train_tokenizer([t.replace("<image>", "") for t in compact] * 5, vocab_size=300,
                                isolate_option_letters=True)
    packed = pack_texts(compact, tokenizer, block_size=128, answer_loss_weight=3.0)
    image = packed.input_ids == tokenizer.image_token_id
    assert int(image.sum()) == 16 and bool((packed.labels[image] == -100).all())  # in the input, never a target
    assert [tokenizer.decode([t]) for t in packed.input_ids[packed.loss_weights == 3.0].tolist()] == ["B", "B"]

    # "figure_type" slots: the same places hold the figure's type words, still never targets
    slotted = pack_texts(compact, tokenizer, block_size=128, slot_words=["Equation", None])
    assert int((slotted.input_ids == tokenizer.image_token_id).sum()) == 0
    places = image  # the same texts, so the same positions
    words = tokenizer(" Equation", add_special_tokens=False)["input_ids"]
    assert slotted.input_ids[places].tolist() == [words[n % len(words)] for n in range(16)]
    assert bool((slotted.labels[places] == -100).all()) and bool((slotted.labels[~places] == packed.labels[~places]).all())


def test_llm_corpus_puts_figure_types_at_image_places_where_asked():
    from modeling_scitune.scienceqa.formats import build_answer, user_message
    from modeling_scitune.scienceqa.problems import Problem
    from modeling_scitune.training.backbones import llm_corpus

    stage1 = [[{"role": "user", "content": [{"type": "text", "text": "Describe."}, {"type": "image"}]},
               {"role": "assistant", "content": [{"type": "text", "text": "Bar Chart Yields per crop."}]}]]
    problem = Problem(pid="1", question="Which type of figure is shown?", choices=["Bar Chart", "Equation"], answer=0,
                      image="image.png", solution="It shows bars.", extra={"figure_type": "Bar Chart"})
    exchanges = [[user_message(problem), {"role": "assistant", "content": [{"type": "text", "text": build_answer(problem)}]}]]
    places = (BackboneConfig().image_size // BackboneConfig().patch_size) ** 2  # the stages' image tokens

    def corpus(**settings):
        return llm_corpus(stage1, ["Bar Chart"], [problem], exchanges, BackboneConfig(**settings))

    texts, words, multiple_choice_from = corpus(corpus_image_slots="none")
    assert words is None and [t.count("<image>") for t in texts] == [0, 0]  # images left out
    assert multiple_choice_from == 1  # the ScienceQA problem follows the stage-1 answer
    texts, words, _ = corpus(corpus_image_slots="figure_type", scienceqa_image_slots=True)
    assert words == ["Bar Chart", "Bar Chart"] and [t.count("<image>") for t in texts] == [places, places]
    texts, words, _ = corpus(corpus_image_slots="figure_type", scienceqa_image_slots=False, sqa_corpus="compact")
    assert words == ["Bar Chart", None] and [t.count("<image>") for t in texts] == [places, 0]
    assert texts[1].endswith("ANSWER: A.")
    texts, words, _ = corpus(corpus_image_slots="image_tokens", stage1_image_slots=False)
    assert words is None and [t.count("<image>") for t in texts] == [0, places]  # the ScienceQA problem's alone
    assert texts[0] == corpus(corpus_image_slots="none").texts[0]  # the caption text as without image places
    texts, words, _ = corpus(corpus_image_slots="figure_type", stage1_image_slots=False)
    assert words == [None, "Bar Chart"]


def test_corpus_image_slots_setting_is_checked():
    from modeling_scitune.training.backbone_config import load_backbone_config

    assert load_backbone_config(overrides={"corpus_image_slots": "figure_type"}).corpus_image_slots == "figure_type"
    with pytest.raises(ValueError, match="corpus_image_slots must be one of"):
        load_backbone_config(overrides={"corpus_image_slots": "figure"})
    with pytest.raises(ValueError, match="sqa_corpus must be one of"):
        load_backbone_config(overrides={"sqa_corpus": "chat-without-lecture"})


def test_stage2_answer_letter_weight_is_trls_loss_plus_the_letters_extra_share(stage1_dir, corpus, tmp_path):
    """Weight 1 is TRL's own loss; a weight above 1 raises the loss through the answer letter, found in the labels."""
    from modeling_scitune.training.answer_loss import answer_letter_weights, option_letter_ids
    from modeling_scitune.training.assemble import load_scitune
    from modeling_scitune.speed.feature_cache import tokenize_row

    losses = {}
    for weight in (1.0, 1.0001, 4.0):
        settings = stage2_args(stage1_dir, corpus / "sqa", tmp_path / str(weight), bf16=False, max_steps=1,
                               learning_rate=1e-12, answer_loss_weight=weight)
        losses[weight] = run_stage2(settings)["loss_history"][0]["loss"]
    assert losses[1.0001] == pytest.approx(losses[1.0], rel=1e-3)  # the weighted path computes TRL's loss
    assert losses[4.0] > losses[1.0] * 1.001

    _, processor = load_scitune(stage1_dir)
    letters = option_letter_ids(processor.tokenizer)
    for row in scienceqa_dataset(str(corpus / "sqa"), "QCM-LEPA", "train", 4, 1, 0):
        labels = torch.tensor([tokenize_row(processor, row["messages"], row["images"], None)["labels"]])
        marked = labels[answer_letter_weights(labels, letters, 4.0) == 4.0].tolist()
        answer = row["messages"][-1]["content"][0]["text"]  # "...###\nANSWER: X."
        assert len(marked) == 1 and processor.tokenizer.decode(marked).strip() == answer[-2], answer


def test_length_column_counts_the_tokens_the_stage_feeds_the_model(stage1_dir, corpus, tmp_path):
    """group_by_length: each row's `length` is exactly its tokenized conversation (image tokens expanded), for image
    and text-only rows; stage 2 trains with the Trainer's length-grouped sampler on it."""
    from modeling_scitune.training.assemble import load_scitune
    from modeling_scitune.speed.feature_cache import tokenize_row
    from modeling_scitune.speed.length_grouping import with_token_lengths

    model, processor = load_scitune(stage1_dir)
    rows = scienceqa_dataset(str(corpus / "sqa"), "QCM-LEPA", "train")
    with_lengths = with_token_lengths(rows, processor, model.config.image_seq_length)
    assert {bool(row["images"]) for row in rows} == {True, False}
    for row, length in zip(rows, with_lengths["length"]):
        assert length == len(tokenize_row(processor, row["messages"], row["images"], None)["input_ids"])
    summary = run_stage2(stage2_args(stage1_dir, corpus / "sqa", tmp_path, train_sampling_strategy="group_by_length",
                                     bf16=False))
    assert summary["global_step"] == 4 and summary["config"]["train_sampling_strategy"] == "group_by_length"


def test_backbones_record_the_llms_letter_lookup_as_the_stage1_model_reads_it(corpus, stage1_dir):
    """backbones.json holds the pretrained LLaMA's teacher-forced answer letters on the val split's text-only
    problems; read through the bare tokenizer they are the letters the stage-1 model (the same frozen LLM) picks."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from modeling_scitune.scienceqa import load_scienceqa
    from modeling_scitune.scienceqa.letter_lookup import letter_lookup_report, teacher_forced_letters
    from modeling_scitune.training.assemble import load_scitune

    problems = [p for p in load_scienceqa(str(corpus / "sqa"), "val").problems if not p.has_image]
    assert problems
    llama = AutoModelForCausalLM.from_pretrained(corpus / "backbones" / "llama")
    picks = teacher_forced_letters(llama, AutoTokenizer.from_pretrained(corpus / "backbones" / "llama"), problems)
    model, processor = load_scitune(stage1_dir)
    assert picks == teacher_forced_letters(model, processor, problems)
    recorded = json.loads((corpus / "backbones" / "backbones.json").read_text())["llama_letter_lookup"]
    assert recorded == {"split": "val", "text_only_problems": len(problems),
                        "accuracy": letter_lookup_report(problems, picks)["accuracy"]}


def test_llm_pretraining_attends_within_each_text_when_asked():
    """`attend_within_text` reaches the training step: the first step's loss over the same packed blocks, from the
    same initial weights, differs (later texts of a block no longer see the earlier ones)."""
    from modeling_scitune.tiny import default_corpus, train_tokenizer
    from modeling_scitune.training.backbones import train_llama

    tokenizer = train_tokenizer(default_corpus(), vocab_size=600)
    texts = ["the loss falls over the steps", "a bar chart of yields", "a figure", "the curve rises"] * 4
    first_loss = {}
    for within in (False, True):
        log = []
        cfg = BackboneConfig(text_hidden=32, text_layers=1, block_size=64, llm_steps=1, llm_batch_size=2,
                             answer_loss_weight=1.0, compile=False, bf16=False, attend_within_text=within)
        train_llama(texts, tokenizer, cfg, log)
        first_loss[within] = log[0]["loss"]
    assert first_loss[True] != first_loss[False]


def test_lookup_drills_are_rendered_by_the_chat_template_and_answer_the_option_they_name():
    import re

    from modeling_scitune.processing_scitune import SCITUNE_CHAT_TEMPLATE
    from modeling_scitune.training.backbones import lookup_drills

    words = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega"
    drills = lookup_drills(20, seed=3, texts=[words])
    assert len(drills) == 20 and drills == lookup_drills(20, seed=3, texts=[words])
    assert "### Human:" in SCITUNE_CHAT_TEMPLATE and "### Assistant:" in SCITUNE_CHAT_TEMPLATE
    for drill in drills:
        match = re.fullmatch(r"### Human: Which option says (.+)\?\nContext: N/A\nOptions: (.+)\n"
                             r"### Assistant: SOLUTION: The option says (.+)\.\n###\nANSWER: ([A-E])\.", drill)
        assert match, drill
        options = dict(re.findall(r"\(([A-E])\) ([^(]+?)(?= \(|$)", match.group(2)))
        assert options[match.group(4)] == match.group(1) == match.group(3)
