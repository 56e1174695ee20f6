"""Tiny releases in the on-disk forms the original SciTune / LLaVA-v0 code writes, and independent references.

The files are written as transformers 4.28 / 4.34 `save_pretrained` and the original `train.py` wrote them (layouts
checked against both versions when this was written): a sentencepiece `tokenizer.model` with the slow tokenizer's
configs only (no tokenizer.json), `pytorch_model-0000k-of-0000n.bin` shards with their index, the `llava` config with
`mm_*` keys, optionally fp16 weights and the `rotary_emb.inv_freq` buffers of transformers <= 4.30. The references
(`slow_tokenizer_ids`, `original_logits`) are written from the original algorithms, with sentencepiece and plain
LLaMA / CLIP modules, not with the code under test.
"""

from __future__ import annotations

import io
import json
import random
import re
from pathlib import Path

import torch
from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

V0_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
             "The assistant gives helpful, detailed, and polite answers to the human's questions.")
WORDS = ("the a chat between curious human and artificial intelligence assistant gives helpful detailed polite answers "
         "to questions which of these states is farthest north west virginia louisiana arizona select better "
         "estimate tom justin experiment inches context options lecture solution answer figure plot graph bar chart "
         "scatter node diagram equation shows accuracy loss temperature").split()


def train_llama_sentencepiece(path: Path, vocab_size: int = 600) -> Path:
    """A BPE sentencepiece model with LLaMA's settings (byte fallback, split digits, dummy prefix, identity)."""
    import sentencepiece as spm

    rng = random.Random(0)
    lines = []
    for _ in range(3000):
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 15)))
        if rng.random() < 0.3:
            line = line.capitalize() + "."
        if rng.random() < 0.2:
            line += " ### Human: ANSWER: A. (B) 12 345 (C)"
        lines.append(line)
    lines += [V0_SYSTEM] * 20 + ["Ünïcödé ñ 日本 émoji ✓ — “quotes”"] * 3
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="bpe", byte_fallback=True,
        split_digits=True, normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, allow_whitespace_only_pieces=True, character_coverage=1.0,
        num_threads=1, minloglevel=2)
    path.write_bytes(model.getvalue())
    return path


def original_added_tokens(base_vocab: int, start_end: bool) -> dict[str, int]:
    """train.py's order: [PAD] (no pad in LLaMA), <im_patch>, then <im_start>, <im_end> with the flag."""
    tokens = ["[PAD]", "<im_patch>"] + (["<im_start>", "<im_end>"] if start_end else [])
    return {token: base_vocab + i for i, token in enumerate(tokens)}


def write_original_tokenizer(folder: Path, sp_model: Path, base_vocab: int, start_end: bool, version: str = "4.34"):
    """The slow tokenizer files of the checkpoint, as `tokenizer.save_pretrained` wrote them after train.py added its
    tokens and (model path containing "llama") made </s> the BOS."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(sp_model.read_bytes())
    added = original_added_tokens(base_vocab, start_end)
    (folder / "added_tokens.json").write_text(json.dumps(
        {**({"</s>": 2, "<s>": 1, "<unk>": 0} if version == "4.34" else {}), **added}, indent=2))
    specials = {"bos_token": "</s>", "eos_token": "</s>", "pad_token": "[PAD]", "unk_token": "<unk>"}
    if version == "4.34":
        def entry(content, strip):
            return {"content": content, "lstrip": strip, "normalized": False, "rstrip": strip, "single_word": False,
                    "special": True}
        decoder = {"0": entry("<unk>", True), "1": entry("<s>", False), "2": entry("</s>", True)}
        decoder.update({str(i): entry(token, True) for token, i in added.items()})
        extra = ["<unk>", "<s>", "</s>", *[t for t in added if t != "[PAD]"]]
        config = {"add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": decoder,
                  "additional_special_tokens": extra, **specials, "clean_up_tokenization_spaces": False,
                  "legacy": True, "model_max_length": 2048, "padding_side": "right", "sp_model_kwargs": {},
                  "spaces_between_special_tokens": False, "tokenizer_class": "LlamaTokenizer",
                  "tokenizer_file": None, "use_default_system_prompt": True}
        specials = {"additional_special_tokens": extra, **specials}
    else:  # 4.28: init kwargs of the base tokenizer as loaded, AddedToken dicts for its own specials
        def added_token(content):
            return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True, "rstrip": False,
                    "single_word": False}
        config = {"add_bos_token": True, "add_eos_token": False, "bos_token": added_token("<s>"),
                  "clean_up_tokenization_spaces": False, "eos_token": added_token("</s>"), "model_max_length": 2048,
                  "pad_token": None, "padding_side": "right", "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer",
                  "unk_token": added_token("<unk>")}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))


def slow_tokenizer_ids(sp_model: Path, text: str, added: dict[str, int], strip: set[str], bos_id: int = 2) -> list[int]:
    """The original slow LlamaTokenizer's ids (legacy mode): added tokens split out (longest first), whitespace next
    to a stripping token removed, every other piece encoded by sentencepiece on its own (dummy prefix each time)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    pattern = re.compile("(" + "|".join(re.escape(t) for t in sorted(added, key=len, reverse=True)) + ")")
    pieces = [p for p in pattern.split(text)]
    for i, piece in enumerate(pieces):
        if piece in added and piece in strip:
            if i > 0:
                pieces[i - 1] = pieces[i - 1].rstrip()
            if i + 1 < len(pieces):
                pieces[i + 1] = pieces[i + 1].lstrip()
    ids = [bos_id]
    for piece in pieces:
        if not piece:
            continue
        ids += [added[piece]] if piece in added else sp.encode(piece)
    return ids


def tiny_clip(folder: Path, seed: int = 0) -> CLIPVisionModel:
    """A CLIP vision tower saved under a name-like folder, as `mm_vision_tower` points to one."""
    torch.manual_seed(seed)
    clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                            num_attention_heads=4, image_size=32, patch_size=8)).eval()
    clip.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return clip


def tiny_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                        max_position_embeddings=2048, rms_norm_eps=1e-6)).eval()


def save_shards(state: dict, folder: Path, n_shards: int = 3) -> None:
    """`pytorch_model-0000k-of-0000n.bin` + `pytorch_model.bin.index.json`, as 4.34's save_pretrained wrote them."""
    keys = list(state)
    weight_map = {}
    for k in range(n_shards):
        name = f"pytorch_model-{k + 1:05d}-of-{n_shards:05d}.bin"
        part = {key: state[key].contiguous() for key in keys[k::n_shards]}
        torch.save(part, folder / name)
        weight_map.update({key: name for key in part})
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                      "weight_map": weight_map}, indent=2))


def original_config(llama: LlamaForCausalLM, clip_folder: Path, start_end: bool, dtype: str, **overrides) -> dict:
    config = {**{k: v for k, v in llama.config.to_dict().items() if k not in ("dtype", "transformers_version")},
              "architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava", "torch_dtype": dtype,
              "mm_vision_tower": str(clip_folder), "mm_hidden_size": 32, "mm_vision_select_layer": -2,
              "mm_use_im_start_end": start_end, "use_mm_proj": True, "tune_mm_mlp_adapter": False,
              "freeze_mm_mlp_adapter": False, "sep_image_conv_front": False, "use_cache": False,
              "transformers_version": "4.34.0"}
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def original_logits(llama: LlamaForCausalLM, clip: CLIPVisionModel, projector: dict, input_ids: torch.Tensor,
                    pixel_values: torch.Tensor | None, patch_id: int, start_id: int | None, layer: int = -2):
    """LLaVA-v0's forward (llava.py): CLIP hidden_states[layer] without CLS -> mm_projector; with start/end tokens the
    features replace the positions after each <im_start>, else the <im_patch> run."""
    with torch.no_grad():
        embeds = llama.model.embed_tokens(input_ids).clone()
        if pixel_values is not None:
            features = clip(pixel_values.float(), output_hidden_states=True).hidden_states[layer][:, 1:]
            projected = features @ projector["weight"].float().T + projector["bias"].float()
            for row in range(input_ids.shape[0]):
                image = 0
                if start_id is not None:
                    for start in (input_ids[row] == start_id).nonzero().flatten().tolist():
                        embeds[row, start + 1:start + 1 + projected.shape[1]] = projected[image]
                        image += 1
                else:
                    positions = (input_ids[row] == patch_id).nonzero().flatten()
                    for k in range(0, len(positions), projected.shape[1]):
                        embeds[row, positions[k:k + projected.shape[1]]] = projected[image]
                        image += 1
        return llama(inputs_embeds=embeds).logits
