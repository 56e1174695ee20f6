import pytest
from transformers import AutoProcessor

from modeling_scitune import SciTuneProcessor
from tests.chat_turns import user_turn


@pytest.fixture(scope="module")
def processor(tiny_linear_dir):
    return AutoProcessor.from_pretrained(tiny_linear_dir, trust_remote_code=True)


def test_round_trip_keeps_template_and_settings(processor, tiny_linear_dir):
    assert isinstance(processor, SciTuneProcessor)
    assert (tiny_linear_dir / "chat_template.jinja").is_file()
    assert "chat_template" not in (tiny_linear_dir / "processor_config.json").read_text()
    assert processor.patch_size == 8 and processor.vision_feature_select_strategy == "default"
    assert processor.image_token == "<image>"
    assert processor.image_token_id == processor.tokenizer.convert_tokens_to_ids("<image>")
    assert "<image>" in processor.tokenizer.all_special_tokens


def test_image_token_expands_to_image_seq_length(processor, figures):
    prompt = processor.apply_chat_template(user_turn("Describe.", n_images=2), add_generation_prompt=True)
    inputs = processor(images=figures[:2], text=prompt, return_tensors="pt")
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == 2 * 16
    assert inputs["pixel_values"].shape == (2, 3, 32, 32)
    counts = processor._get_num_multimodal_tokens(image_sizes=[(96, 96), (300, 40)])
    assert counts.num_image_tokens == [16, 16]


def test_template_emits_bos_once_and_marks_assistant_turns(processor, figures):
    messages = user_turn("What type of figure is this?") + [
        {"role": "assistant", "content": [{"type": "text", "text": "Bar Chart"}]}
    ]
    text = processor.apply_chat_template(messages)
    assert text.startswith(processor.tokenizer.bos_token + "### Human: What type of figure is this?\n<image>\n")
    assert text.endswith("### Assistant: Bar Chart" + processor.tokenizer.eos_token + "\n")
    messages[0]["content"][1] = {"type": "image", "image": figures[0]}
    out = processor.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids = out["input_ids"][0] if isinstance(out["input_ids"][0], list) else out["input_ids"]
    mask = out["assistant_masks"][0] if isinstance(out["assistant_masks"][0], list) else out["assistant_masks"]
    assert ids.count(processor.tokenizer.bos_token_id) == 1
    answer = processor.tokenizer.decode([t for t, m in zip(ids, mask) if m])
    assert answer == " Bar Chart" + processor.tokenizer.eos_token
    # Rendering then calling the processor must not add a second BOS either.
    again = processor(images=[figures[0]], text=text)["input_ids"][0]
    assert again.count(processor.tokenizer.bos_token_id) == 1


def test_mismatched_image_count_is_a_clear_error(processor, figures):
    with pytest.raises(ValueError, match="number of <image> tokens in the prompts should be the same as the number of images"):
        processor(images=figures[:2], text="<image> one placeholder, two images")


def test_truncation_through_image_tokens_is_refused(processor, figures):
    prompt = processor.apply_chat_template(user_turn("Describe the figure."), add_generation_prompt=True)
    with pytest.raises(ValueError, match="(?i)image"):
        processor(images=[figures[0]], text=prompt, truncation=True, max_length=12)
