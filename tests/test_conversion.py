"""Released SciTune / LLaVA-v0 checkpoints, in every original on-disk form, convert to SciTune folders that give the
original ids, logits and greedy text; any SciTune folder exports to native LLaVA with identical logits."""

import importlib.util
import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoProcessor, LlavaForConditionalGeneration

from modeling_scitune import SciTuneForConditionalGeneration
from tests.original_release import (V0_SYSTEM, original_added_tokens, original_config, original_logits, save_shards,
                                    slow_tokenizer_ids, tiny_clip, tiny_llama, train_llama_sentencepiece,
                                    write_original_tokenizer)

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("convert_checkpoint", ROOT / "hub_scripts" / "convert_checkpoint.py")
convert_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(convert_script)
pytest.importorskip("sentencepiece", reason="original checkpoints ship a sentencepiece tokenizer.model")

P16 = "<im_patch>" * 16
STRINGS = [
    "A", " A", "  A leading", "\nnewline first", "Hello  world   three", "tab\there", "trailing space ", "a\n\nb",
    "###", "### Human: hi", "\n###", "x\n###\nANSWER: A.\n### ", "</s>A chat", "</s> A chat", "text </s> more",
    "x [PAD] y", "x <im_patch>\ny", "<im_patch> <im_patch>", "Ünïcödé ñ 日本 émoji ✓ — “quotes”", "12345 67.89", " ",
    "Arizona\n" + P16 + "\n### Assistant:", "Arizona\n<im_start>" + P16 + "<im_end>\n### Assistant: x",
    V0_SYSTEM + "\n\n### Human: Which of these states is farthest north?\nContext: N/A\nOptions: (A) West Virginia "
    "(B) Louisiana (C) Arizona\n" + P16 + "\n### Assistant: LECTURE: l\nSOLUTION: s\n###\nANSWER: A.\n### ",
    V0_SYSTEM + "###Human: Hi!###Assistant: Hi there! How can I help you today?###Human: Which?\nContext: N/A\n"
    "Options: (A) a (B) b\n" + P16 + "###",
]


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """Original full checkpoints (4.34 and 4.28 tokenizer files; fp32 and fp16; with and without start/end)."""
    root = tmp_path_factory.mktemp("originals")
    sp_model = train_llama_sentencepiece(root / "tokenizer.model")
    import sentencepiece as spm

    base_vocab = spm.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()
    clip = tiny_clip(root / "clip")
    out = {"root": root, "sp_model": sp_model, "base_vocab": base_vocab, "clip": clip}
    for name, start_end, dtype, version in (("stage2-fp32", False, torch.float32, "4.34"),
                                            ("stage1-fp16", True, torch.float16, "4.28")):
        added = original_added_tokens(base_vocab, start_end)
        llama = tiny_llama(base_vocab + len(added), seed=1 + start_end)
        torch.manual_seed(5)
        projector = {"weight": torch.randn(64, 32) * 0.05, "bias": torch.randn(64) * 0.05}
        state = {**llama.state_dict(), "model.mm_projector.weight": projector["weight"],
                 "model.mm_projector.bias": projector["bias"]}
        if version == "4.28":  # transformers <= 4.30 saved the rotary buffers
            inv_freq = llama.model.rotary_emb.inv_freq
            state.update({f"model.layers.{i}.self_attn.rotary_emb.inv_freq": inv_freq for i in range(2)})
        state = {k: v.to(dtype) for k, v in state.items()}
        folder = root / name
        folder.mkdir()
        save_shards(state, folder)
        (folder / "config.json").write_text(json.dumps(original_config(llama, root / "clip", start_end,
                                                                       str(dtype).split(".")[-1])))
        write_original_tokenizer(folder, sp_model, base_vocab, start_end, version)
        # the reference model holds exactly the stored (possibly fp16-rounded) weights, computed in fp32
        llama.load_state_dict({k: v.float() for k, v in state.items() if k in llama.state_dict()})
        # the tower is not in the checkpoint: the original cast CLIP to the model's dtype when it loaded it
        tower = tiny_clip(root / f"clip-ref-{name}")
        tower.load_state_dict({k: v.to(dtype).float() for k, v in clip.state_dict().items()})
        out[name] = {"folder": folder, "llama": llama, "added": added, "start_end": start_end, "dtype": dtype,
                     "projector": {k: v.to(dtype).float() for k, v in projector.items()}, "clip": tower}
    return out


@pytest.fixture(scope="module")
def converted(releases, tmp_path_factory):
    out = {}
    for name in ("stage2-fp32", "stage1-fp16"):
        target = tmp_path_factory.mktemp(f"converted-{name}")
        assert convert_script.main(["from-original", str(releases[name]["folder"]), "--output-dir", str(target)]) == 0
        out[name] = target
    return out


@pytest.mark.parametrize("name", ["stage2-fp32", "stage1-fp16"])
def test_converted_tokenizer_gives_the_slow_tokenizers_ids(releases, converted, name):
    release = releases[name]
    processor = AutoProcessor.from_pretrained(converted[name], trust_remote_code=True)
    assert not (release["folder"] / "tokenizer.json").exists()  # the original ships the slow tokenizer only
    added = {"</s>": 2, "<s>": 1, "<unk>": 0, **release["added"]}
    stripping = {"</s>", "<unk>", *release["added"]}  # train.py added them as strings: "strip both sides"
    for text in STRINGS:
        if "<im_start>" in text and not release["start_end"]:
            continue
        expected = slow_tokenizer_ids(releases["sp_model"], text, added, stripping)
        assert processor.tokenizer(text)["input_ids"] == expected, text


@pytest.mark.parametrize("name", ["stage2-fp32", "stage1-fp16"])
def test_converted_checkpoint_matches_the_original_forward_and_greedy_text(releases, converted, name, figures, caplog):
    release = releases[name]
    model = SciTuneForConditionalGeneration.from_pretrained(converted[name], dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(converted[name], trust_remote_code=True)
    stored = load_file(str(next(converted[name].glob("*.safetensors"))))
    assert {t.dtype for t in stored.values()} == {release["dtype"]}  # the dtype as stored, not widened
    assert json.loads((converted[name] / "config.json").read_text())["dtype"] == str(release["dtype"]).split(".")[-1]
    messages = [{"role": "user", "content": [{"type": "text", "text": "Which of these states is farthest north?"},
                                             {"type": "image"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    expected_prompt = ("</s>" + V0_SYSTEM + "\n\n### Human: Which of these states is farthest north?\n"
                       + processor.image_token + "\n### Assistant:")
    assert prompt == expected_prompt
    inputs = processor(images=[figures[0]], text=prompt, return_tensors="pt")
    ids = inputs["input_ids"]
    patch, start = release["added"]["<im_patch>"], release["added"].get("<im_start>")
    assert int((ids == patch).sum()) == 16
    if release["start_end"]:
        wrapped = "<im_start>" + P16 + "<im_end>"
        assert processor.tokenizer.decode(ids[0], skip_special_tokens=False).count(wrapped) == 1
    expected = slow_tokenizer_ids(releases["sp_model"], expected_prompt[len("</s>"):].replace(
        processor.image_token, ("<im_start>" + P16 + "<im_end>") if release["start_end"] else P16),
        {"</s>": 2, "<s>": 1, "<unk>": 0, **release["added"]}, {"</s>", "<unk>", *release["added"]})
    assert ids[0].tolist() == expected
    reference = original_logits(release["llama"], release["clip"], release["projector"], ids,
                                inputs["pixel_values"], patch, start)
    with torch.no_grad():
        ours = model(**inputs).logits
    assert (ours - reference).abs().max().item() <= 1e-4
    # greedy decoding, token by token with the original forward, against generate()
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)[0, ids.shape[1]:].tolist()
    running = ids
    for _ in range(6):
        logits = original_logits(release["llama"], release["clip"], release["projector"], running,
                                 inputs["pixel_values"], patch, start)
        running = torch.cat([running, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert generated == running[0, ids.shape[1]:].tolist()


def test_legacy_buffers_are_dropped_with_one_notice_and_defaults_follow_the_original(releases, tmp_path, caplog):
    folder = releases["stage1-fp16"]["folder"]
    config = json.loads((folder / "config.json").read_text())
    config.pop("mm_vision_select_layer")  # the original reads a missing key as -1 (the last layer)
    copy = tmp_path / "no-layer"
    copy.mkdir()
    for file in folder.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    (copy / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING):
        assert convert_script.main(["from-original", str(copy), "--output-dir", str(tmp_path / "out")]) == 0
    notices = [r.getMessage() for r in caplog.records if "legacy buffers" in r.getMessage()]
    assert len(notices) == 1 and "rotary_emb.inv_freq" in notices[0]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vision_feature_layer"] == -1


def test_key_mismatch_is_a_clear_error_naming_keys_and_folder(releases, tmp_path, capsys):
    folder = tmp_path / "extra-key"
    folder.mkdir()
    source = releases["stage2-fp32"]["folder"]
    for file in source.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    extra = {"model.layers.0.mlp.surprise.weight": torch.zeros(2)}
    torch.save(extra, folder / "pytorch_model-00004-of-00004.bin")
    index = json.loads((folder / "pytorch_model.bin.index.json").read_text())
    index["weight_map"]["model.layers.0.mlp.surprise.weight"] = "pytorch_model-00004-of-00004.bin"
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    assert convert_script.main(["from-original", str(folder), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "model.layers.0.mlp.surprise.weight" in err and str(folder) in err and "Traceback" not in err
    (folder / "pytorch_model-00002-of-00003.bin").unlink()  # a half-copied checkpoint
    assert convert_script.main(["from-original", str(folder), "--output-dir", str(tmp_path / "out2")]) == 2
    assert "pytorch_model-00002-of-00003.bin" in capsys.readouterr().err


def test_dtype_flag_overrides_the_stored_dtype(releases, tmp_path):
    assert convert_script.main(["from-original", str(releases["stage1-fp16"]["folder"]), "--output-dir",
                                str(tmp_path), "--dtype", "float32"]) == 0
    assert {t.dtype for t in load_file(str(tmp_path / "model.safetensors")).values()} == {torch.float32}


def test_delta_release_is_applied_as_the_original_apply_delta(releases, tmp_path):
    """make_delta / apply_delta in fp16: same-shape weights added, the base added into the embedding / LM-head block."""
    root, base_vocab = releases["root"], releases["base_vocab"]
    release = releases["stage1-fp16"]
    base_folder = tmp_path / "llama-7b"
    base = tiny_llama(base_vocab, seed=9)
    base_state = {k: v.half() for k, v in base.state_dict().items()}
    base_folder.mkdir()
    save_file(base_state, str(base_folder / "model.safetensors"), metadata={"format": "pt"})
    target = {k: v for k, v in load_state(release["folder"]).items() if "inv_freq" not in k}
    delta = {}
    for key, value in target.items():
        value = value.half().clone()
        if key in base_state and value.shape == base_state[key].shape:
            value -= base_state[key]
        elif key in base_state:
            rows, cols = base_state[key].shape
            value[:rows, :cols] -= base_state[key]
        delta[key] = value
    delta_folder = tmp_path / "llava-delta"
    delta_folder.mkdir()
    save_shards(delta, delta_folder, n_shards=2)
    for file in ("config.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                 "added_tokens.json"):
        (delta_folder / file).write_bytes((release["folder"] / file).read_bytes())
    out = tmp_path / "out"
    assert convert_script.main(["from-delta", str(delta_folder), "--base-model", str(base_folder),
                                "--output-dir", str(out), "--vision-model", str(root / "clip")]) == 0
    model = SciTuneForConditionalGeneration.from_pretrained(out, dtype=torch.float16)
    state = model.state_dict()
    for key, value in delta.items():  # the original arithmetic, in fp16
        expected = value.clone()
        if key in base_state and expected.shape == base_state[key].shape:
            expected += base_state[key]
        elif key in base_state:
            rows, cols = base_state[key].shape
            expected[:rows, :cols] += base_state[key]
        ours = state["lm_head.weight"] if key == "lm_head.weight" else (
            state["model.multi_modal_projector.linear_1." + key.split(".")[-1]] if "mm_projector" in key
            else state["model.language_model." + key[len("model."):]])
        assert torch.equal(ours, expected), key


def load_state(folder):
    from modeling_scitune.conversion import read_state_dict

    return read_state_dict(folder)


def test_adapter_only_release_builds_a_scitune_folder(releases, tmp_path, figures):
    """Stage-1 adapter (projector + embeddings, LLaVATrainer._save's keys) on a base LLaMA whose path says 'llama'."""
    root, base_vocab, sp_model = releases["root"], releases["base_vocab"], releases["sp_model"]
    base_folder = tmp_path / "llama-13b"
    base = tiny_llama(base_vocab, seed=3)
    base.save_pretrained(base_folder)
    base_folder.joinpath("tokenizer.model").write_bytes(sp_model.read_bytes())
    base_folder.joinpath("tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer",
                                                                        "add_bos_token": True}))
    base_folder.joinpath("special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))
    added = original_added_tokens(base_vocab, start_end=True)
    torch.manual_seed(7)
    embed = torch.cat([base.model.embed_tokens.weight.detach(), torch.randn(len(added), 64) * 0.02])
    adapter = {"model.embed_tokens.weight": embed, "model.mm_projector.weight": torch.randn(64, 32) * 0.05,
               "model.mm_projector.bias": torch.randn(64) * 0.05}
    torch.save(adapter, tmp_path / "mm_projector.bin")
    out = tmp_path / "scitune-scicap"
    assert convert_script.main(["from-adapter", str(tmp_path / "mm_projector.bin"), "--base-model", str(base_folder),
                                "--vision-model", str(root / "clip"), "--output-dir", str(out)]) == 0
    model = SciTuneForConditionalGeneration.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out, trust_remote_code=True)
    tokenizer = processor.tokenizer
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in added} == added
    assert tokenizer.bos_token == "</s>" and tokenizer("x")["input_ids"][0] == 2  # the "llama" path quirk
    # the reference: base LLaMA with the adapter's embeddings and mean-initialised LM-head rows for the added tokens
    reference = tiny_llama(base_vocab + len(added), seed=3)
    head = base.lm_head.weight.detach()
    reference.load_state_dict({**{k: v for k, v in base.state_dict().items() if "embed" not in k and "lm_head" not in k},
                               "model.embed_tokens.weight": embed,
                               "lm_head.weight": torch.cat([head, head.mean(0, keepdim=True).expand(len(added), -1)])})
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe the following image in detail."},
                                             {"type": "image"}]}]
    inputs = processor(images=[figures[1]], text=processor.apply_chat_template(messages, add_generation_prompt=True),
                       return_tensors="pt")
    expected = original_logits(reference, releases["clip"], {k.split(".")[-1]: v for k, v in adapter.items()
                                                             if "mm_projector" in k},
                               inputs["input_ids"], inputs["pixel_values"], added["<im_patch>"], added["<im_start>"])
    with torch.no_grad():
        assert (model(**inputs).logits - expected).abs().max().item() <= 1e-4


def test_not_an_original_checkpoint_is_a_clear_error(releases, tmp_path, capsys):
    folder = tmp_path / "plain-llama"
    tiny_llama(releases["base_vocab"]).save_pretrained(folder)
    (folder / "tokenizer.model").write_bytes(releases["sp_model"].read_bytes())
    assert convert_script.main(["from-original", str(folder), "--output-dir", str(tmp_path / "out")]) == 2
    assert "no model.mm_projector" in capsys.readouterr().err


def test_converted_folder_carries_the_original_evaluation_conversation(converted):
    processor = AutoProcessor.from_pretrained(converted["stage2-fp32"], trust_remote_code=True)
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "Which of these states is farthest north?\nContext: N/A\nOptions: (A) West Virginia "
                                 "(B) Louisiana (C) Arizona"}, {"type": "image"}]}]
    prompt = processor.apply_chat_template(messages, chat_template="simple", add_generation_prompt=True)
    assert prompt == ("</s>" + V0_SYSTEM + "###Human: Hi!###Assistant: Hi there! How can I help you today?###Human: "
                      "Which of these states is farthest north?\nContext: N/A\nOptions: (A) West Virginia (B) Louisiana "
                      "(C) Arizona\n<im_patch>###")
    full = messages + [{"role": "assistant", "content": [{"type": "text", "text": "LECTURE: l\n###\nANSWER: A."}]}]
    assert processor.apply_chat_template(full).endswith("<im_patch>\n### Assistant: LECTURE: l\n###\nANSWER: A.\n### ")


@pytest.mark.parametrize("source", ["converted-start-end", "mlp"])
def test_any_scitune_model_exports_to_native_llava_with_identical_logits(source, converted, tiny_mlp_dir, tmp_path,
                                                                         figures):
    folder = converted["stage1-fp16"] if source == "converted-start-end" else tiny_mlp_dir
    assert convert_script.main(["to-llava", str(folder), "--output-dir", str(tmp_path / "llava")]) == 0
    llava = LlavaForConditionalGeneration.from_pretrained(tmp_path / "llava", dtype=torch.float32).eval()
    llava_processor = AutoProcessor.from_pretrained(tmp_path / "llava")
    assert type(llava_processor).__name__ == "LlavaProcessor"
    ours = SciTuneForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    messages = [{"role": "user", "content": [{"type": "text", "text": "Which type?"}, {"type": "image"}]}]
    inputs = processor(images=[figures[1]], text=processor.apply_chat_template(messages, add_generation_prompt=True),
                       return_tensors="pt")
    native = llava_processor(images=[figures[1]], return_tensors="pt",
                             text=llava_processor.apply_chat_template(messages, add_generation_prompt=True))
    assert torch.equal(inputs["input_ids"], native["input_ids"])  # start/end kept, one BOS
    with torch.no_grad():
        assert torch.equal(llava(**native).logits, ours(**inputs).logits)
