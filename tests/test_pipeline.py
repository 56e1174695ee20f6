"""pipeline("image-text-to-text") answers chats with images, raw <image> prompts and batches like generate does."""

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline

GEN = {"max_new_tokens": 10, "do_sample": False}


@pytest.fixture(scope="module")
def pipe(tiny_linear_dir):
    return pipeline("image-text-to-text", model=str(tiny_linear_dir), trust_remote_code=True, device="cpu")


@pytest.fixture(scope="module")
def direct(tiny_linear_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_linear_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(tiny_linear_dir, trust_remote_code=True)

    def generate_text(images, prompt):
        inputs = processor(images=images, text=prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, **GEN)
        return processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    return generate_text, processor


def chat(image, text="What type of figure is this?"):
    return [{"role": "user", "content": [{"type": "text", "text": text}, {"type": "image", "image": image}]}]


def test_chat_with_image_matches_generate(pipe, direct, figures):
    generate_text, processor = direct
    out = pipe(text=chat(figures[0]), return_full_text=False, generate_kwargs=GEN)
    prompt = processor.apply_chat_template(chat(figures[0]), add_generation_prompt=True)
    expected = generate_text([figures[0]], prompt)
    assert out[0]["generated_text"] == expected
    assert len(expected.strip()) > 0


def test_raw_image_token_prompt_matches_generate(pipe, direct, figures):
    generate_text, _ = direct
    prompt = "<image>\nDescribe the following image in detail."
    out = pipe(images=figures[1], text=prompt, return_full_text=False, generate_kwargs=GEN)
    assert out[0]["generated_text"] == generate_text([figures[1]], prompt)


def test_batch_of_two_matches_one_by_one(pipe, figures):
    chats = [chat(figures[0]), chat(figures[1], "Describe the following image in detail, with its numbers.")]
    batched = pipe(text=chats, batch_size=2, return_full_text=False, generate_kwargs=GEN)
    single = [pipe(text=c, return_full_text=False, generate_kwargs=GEN)[0] for c in chats]
    assert [b[0]["generated_text"] for b in batched] == [s["generated_text"] for s in single]


def test_full_text_returns_the_conversation(pipe, figures):
    out = pipe(text=chat(figures[0]), generate_kwargs=GEN)[0]["generated_text"]
    assert out[-1]["role"] == "assistant" and out[0]["role"] == "user"
