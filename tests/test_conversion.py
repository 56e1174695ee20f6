"""Checkpoint conversion both ways, checked against the original computation (logits)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoProcessor, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM, LlavaForConditionalGeneration

from modeling_scitune import SciTuneForConditionalGeneration
from modeling_scitune.tiny import default_corpus, train_tokenizer

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("convert_checkpoint", ROOT / "hub_scripts" / "convert_checkpoint.py")
convert_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(convert_script)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A small checkpoint in the original SciTune / LLaVA-v0 layout, plus its CLIP tower saved by name."""
    root = tmp_path_factory.mktemp("original")
    torch.manual_seed(0)
    clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                            num_attention_heads=4, image_size=32, patch_size=8))
    clip.save_pretrained(root / "clip")
    tokenizer = train_tokenizer(default_corpus(200))
    tokenizer.add_special_tokens({"additional_special_tokens": ["[PAD]", "<im_patch>", "<im_start>", "<im_end>"]})
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))
    state = {**llama.state_dict(), "model.mm_projector.weight": torch.randn(64, 32) * 0.05,
             "model.mm_projector.bias": torch.randn(64) * 0.05}
    folder = root / "scitune-v0"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {**llama.config.to_dict(), "architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava",
              "mm_vision_tower": str(root / "clip"), "mm_hidden_size": 32, "mm_vision_select_layer": -2,
              "mm_use_im_start_end": False, "tune_mm_mlp_adapter": False}
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer.save_pretrained(folder)
    return {"folder": folder, "clip": clip.eval(), "llama": llama.eval(), "state": state, "tokenizer": tokenizer}


def original_logits(orig, input_ids, pixel_values):
    """LLaVA-v0's forward: <im_patch> embeddings replaced by mm_projector(CLIP layer -2 patch features)."""
    with torch.no_grad():
        embeds = orig["llama"].model.embed_tokens(input_ids)
        features = orig["clip"](pixel_values, output_hidden_states=True).hidden_states[-2][:, 1:]
        projected = features @ orig["state"]["model.mm_projector.weight"].T + orig["state"]["model.mm_projector.bias"]
        patch = orig["tokenizer"].convert_tokens_to_ids("<im_patch>")
        embeds[input_ids == patch] = projected.reshape(-1, projected.shape[-1])
        return orig["llama"](inputs_embeds=embeds).logits


def test_original_checkpoint_converts_with_identical_logits(original, tmp_path, figures):
    assert convert_script.main(["from-original", str(original["folder"]), "--output-dir", str(tmp_path)]) == 0
    model = SciTuneForConditionalGeneration.from_pretrained(tmp_path).eval()
    processor = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert model.config.projector_type == "linear" and model.config.image_seq_length == 16
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe the figure."}, {"type": "image"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=[figures[0]], text=prompt, return_tensors="pt")
    assert int((inputs["input_ids"] == original["tokenizer"].convert_tokens_to_ids("<im_patch>")).sum()) == 16
    with torch.no_grad():
        ours = model(**inputs).logits
    torch.testing.assert_close(ours, original_logits(original, inputs["input_ids"], inputs["pixel_values"]),
                               atol=1e-5, rtol=0)


def test_not_an_original_checkpoint_is_a_clear_error(original, tmp_path, capsys):
    folder = tmp_path / "plain-llama"
    original["llama"].save_pretrained(folder)
    original["tokenizer"].save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "mm_vision_tower": str(original["folder"].parent / "clip")}))
    assert convert_script.main(["from-original", str(folder), "--output-dir", str(tmp_path / "out")]) == 2
    assert "no model.mm_projector" in capsys.readouterr().err


def test_mlp_scitune_exports_to_native_llava(tiny_mlp_dir, tiny_linear_dir, tmp_path, figures, capsys):
    assert convert_script.main(["to-llava", str(tiny_mlp_dir), "--output-dir", str(tmp_path / "llava")]) == 0
    llava = LlavaForConditionalGeneration.from_pretrained(tmp_path / "llava").eval()
    llava_processor = AutoProcessor.from_pretrained(tmp_path / "llava")
    assert type(llava_processor).__name__ == "LlavaProcessor"
    ours = SciTuneForConditionalGeneration.from_pretrained(tiny_mlp_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_mlp_dir, trust_remote_code=True)
    messages = [{"role": "user", "content": [{"type": "text", "text": "Which type?"}, {"type": "image"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=[figures[1]], text=prompt, return_tensors="pt")
    # The template already emits BOS; LlavaProcessor (unlike SciTuneProcessor) would add a second one.
    native_inputs = llava_processor(images=[figures[1]], text=prompt, return_tensors="pt", add_special_tokens=False)
    assert torch.equal(inputs["input_ids"], native_inputs["input_ids"])
    with torch.no_grad():
        torch.testing.assert_close(llava(**native_inputs).logits, ours(**inputs).logits, atol=1e-5, rtol=0)
    assert convert_script.main(["to-llava", str(tiny_linear_dir), "--output-dir", str(tmp_path / "x")]) == 2
    assert "only has the 2-layer MLP projector" in capsys.readouterr().err
