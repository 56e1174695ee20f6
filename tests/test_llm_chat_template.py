"""A real LLM keeps its own chat template: a ChatML LLM (SmolLM2's template, word for word) trains and is evaluated in
ChatML with SciTune's image items and generation markers; an LLM without a template gets SciTune's."""

import copy
import logging

import pytest

from modeling_scitune.processing_scitune import SCITUNE_CHAT_TEMPLATE
from modeling_scitune.scienceqa.protocols import ANSWER_PROMPT, get_protocol
from modeling_scitune.training.assemble import prepare_tokenizer

# SmolLM2-135M-Instruct's chat template, as its tokenizer ships it.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# A [INST] layout SciTune does not reproduce.
INST_TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + "
                 "' [/INST]' }}{% else %}{{ message['content'] }}{% endif %}{% endfor %}")

CONVERSATIONS = [
    [{"role": "user", "content": "What type of figure is this?"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "Bar Chart"}, {"role": "user", "content": "Q2"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q"},
     {"role": "assistant", "content": "A\nwith two lines"}],
]


def with_template(tokenizer, template):
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = template
    return tokenizer


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_chatml_llm_renders_text_exactly_as_its_own_template(tokenizer, add_generation_prompt):
    own = with_template(tokenizer, SMOLLM2_TEMPLATE)
    ours = prepare_tokenizer(copy.deepcopy(own))
    assert ours.chat_template != SCITUNE_CHAT_TEMPLATE
    for messages in CONVERSATIONS:
        expected = own.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        assert ours.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt) == expected


def test_chatml_llm_marks_the_answer_and_its_end_token_for_the_loss(tokenizer):
    ours = prepare_tokenizer(with_template(tokenizer, SMOLLM2_TEMPLATE))
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe."}, {"type": "image"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Bar Chart of speed"}]}]
    text = ours.apply_chat_template(messages, tokenize=False)
    assert "<|im_start|>user\nDescribe.\n<image><|im_end|>\n<|im_start|>assistant\nBar Chart of speed<|im_end|>\n" in text
    out = ours.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    marked = ours.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
    assert marked.replace(" ", "") == "BarChartofspeed<|im_end|>".replace(" ", "")
    assert "Describe" not in marked and "assistant" not in marked


def test_llm_without_a_template_or_with_another_layout_gets_scitunes(tokenizer, caplog):
    assert prepare_tokenizer(with_template(tokenizer, None)).chat_template == SCITUNE_CHAT_TEMPLATE
    with caplog.at_level(logging.WARNING):
        assert prepare_tokenizer(with_template(tokenizer, INST_TEMPLATE)).chat_template == SCITUNE_CHAT_TEMPLATE
    assert "not ChatML" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # a folder that already holds SciTune's template is not warned about
        prepare_tokenizer(with_template(tokenizer, SCITUNE_CHAT_TEMPLATE))
    assert "not ChatML" not in caplog.text


def test_answer_prompter_continues_a_chatml_prompt_without_a_space():
    protocol = get_protocol("scitune")
    chatml = "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    assert protocol.answer_prompt(chatml, "SOLUTION: x.", "model") == chatml + "SOLUTION: x." + ANSWER_PROMPT
    scitune = "### Human: Q\n### Assistant:"
    assert protocol.answer_prompt(scitune, "SOLUTION: x.", "model") == scitune + " SOLUTION: x." + ANSWER_PROMPT


def test_assembled_processor_trains_and_evaluates_with_the_llms_template(tokenizer, tmp_path):
    """The processor (what TRL's collator and the benchmarks render with) carries the LLM's ChatML, not SciTune's."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from modeling_scitune.training.assemble import assemble_scitune

    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     image_size=32, patch_size=8)).save_pretrained(tmp_path / "clip")
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(tmp_path / "llm")
    with_template(tokenizer, SMOLLM2_TEMPLATE).save_pretrained(tmp_path / "llm")
    _, processor = assemble_scitune(str(tmp_path / "clip"), str(tmp_path / "llm"))
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe."}, {"type": "image"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith("<|im_start|>user\nDescribe.\n<image><|im_end|>\n<|im_start|>assistant\n")
    assert processor.tokenizer.chat_template == processor.chat_template
