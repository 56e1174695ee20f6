import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, LlavaConfig, LlavaForConditionalGeneration
from transformers.utils import is_flash_attn_2_available

from modeling_scitune import SciTuneForConditionalGeneration, SciTuneModel
from tests.chat_turns import user_turn


@pytest.fixture(scope="module")
def linear(tiny_linear_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_linear_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(tiny_linear_dir, trust_remote_code=True)
    return model, processor


def chat_inputs(processor, images, text="What type of figure is this?", n_images=1):
    messages = user_turn(text, n_images)
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(images=images, text=prompt, return_tensors="pt")


def test_state_dict_uses_llava_v5_layout(linear):
    model, _ = linear
    keys = set(model.state_dict())
    # transformers 5.23's CLIPVisionModel has no `vision_model` wrapper, so the v5 key is model.vision_tower.embeddings.*
    assert "model.vision_tower.embeddings.patch_embedding.weight" in keys
    assert "model.multi_modal_projector.linear_1.weight" in keys
    assert "model.language_model.embed_tokens.weight" in keys
    assert "lm_head.weight" in keys
    assert not any(k.startswith("model.multi_modal_projector.linear_2") for k in keys)  # linear = one Linear
    prefixes = {k.split(".")[0] + "." + k.split(".")[1] if k.startswith("model.") else k.split(".")[0] for k in keys}
    assert prefixes == {"model.vision_tower", "model.multi_modal_projector", "model.language_model", "lm_head"}
    assert isinstance(model.model, SciTuneModel) and model.base_model_prefix == "model"


def test_vision_tower_is_truncated_at_the_feature_layer(tiny_linear_dir):
    model = SciTuneForConditionalGeneration.from_pretrained(tiny_linear_dir)
    assert len(model.model.vision_tower.encoder.layers) == 1  # 2 layers, feature layer -2 -> only layer 1 is needed
    assert not any("post_layernorm" in k or "encoder.layers.1." in k for k in model.state_dict())
    full = SciTuneForConditionalGeneration.from_pretrained(tiny_linear_dir, truncate_vision_tower=False)
    assert len(full.model.vision_tower.encoder.layers) == 2


def test_truncated_and_full_towers_give_identical_outputs(tiny_linear_dir, figures):
    processor = AutoProcessor.from_pretrained(tiny_linear_dir, trust_remote_code=True)
    inputs = chat_inputs(processor, figures[:2], n_images=2)
    torch.manual_seed(0)
    full = SciTuneForConditionalGeneration.from_pretrained(tiny_linear_dir, truncate_vision_tower=False).eval()
    truncated = SciTuneForConditionalGeneration(full.config.__class__(**{**full.config.to_dict(), "truncate_vision_tower": True}))
    dropped = truncated.model.load_vision_tower_weights(full.model.vision_tower.state_dict())  # a full CLIP state dict
    assert dropped and all("layers.1." in k or "post_layernorm" in k for k in dropped)
    truncated.model.multi_modal_projector.load_state_dict(full.model.multi_modal_projector.state_dict())
    truncated.model.language_model.load_state_dict(full.model.language_model.state_dict())
    truncated.lm_head.load_state_dict(full.lm_head.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(truncated.eval()(**inputs).logits, full(**inputs).logits, rtol=0, atol=0)


def test_checkpoint_with_legacy_vision_model_prefix_loads(tiny_linear_dir, tmp_path):
    """Checkpoints written in the older `model.vision_tower.vision_model.*` layout load into the same weights."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_linear_dir, tmp_path / "legacy")
    weights = tmp_path / "legacy" / "model.safetensors"
    state = load_file(weights)
    renamed = {k.replace("model.vision_tower.", "model.vision_tower.vision_model."): v for k, v in state.items()}
    assert renamed.keys() != state.keys()
    save_file(renamed, weights, metadata={"format": "pt"})
    model, info = SciTuneForConditionalGeneration.from_pretrained(tmp_path / "legacy", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_get_image_features_returns_one_tensor_per_image(linear, figures):
    model, processor = linear
    pixel_values = processor.image_processor(figures[:2], return_tensors="pt")["pixel_values"]
    out = model.get_image_features(pixel_values=pixel_values)
    assert len(out.pooler_output) == 2
    assert out.pooler_output[0].shape == (model.config.image_seq_length, model.config.text_config.hidden_size)
    assert out.last_hidden_state.shape[1] == model.config.image_seq_length  # CLS dropped by "default"


def test_image_features_land_on_image_tokens(linear, figures):
    """masked_scatter puts image i's features, in order, on the i-th run of <image> tokens (2 images, 1 prompt)."""
    model, processor = linear
    inputs = chat_inputs(processor, figures[:2], n_images=2)
    ids = inputs["input_ids"]
    assert int((ids == model.config.image_token_id).sum()) == 2 * model.config.image_seq_length
    with torch.no_grad():
        features = torch.cat(model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output)
        embeds = model.get_input_embeddings()(ids)
        embeds[ids == model.config.image_token_id] = features
        expected = model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"]).logits
        actual = model(**inputs).logits
    torch.testing.assert_close(actual, expected)


def test_text_only_matches_language_model(linear):
    model, processor = linear
    inputs = processor.tokenizer(["the loss decreases over time"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
        hidden = model.model.language_model(**inputs).last_hidden_state
    torch.testing.assert_close(logits, model.lm_head(hidden))


def test_mismatched_image_tokens_raise_clear_error(linear, figures):
    model, processor = linear
    inputs = chat_inputs(processor, figures[:1])
    ids = inputs["input_ids"].clone()
    first = int((ids[0] == model.config.image_token_id).nonzero()[0])
    ids[0, first] = processor.tokenizer.pad_token_id  # one <image> token too few
    with pytest.raises(ValueError, match=r"Image features and image tokens do not match.*SciTuneProcessor"):
        model(input_ids=ids, pixel_values=inputs["pixel_values"])
    with pytest.raises(ValueError, match="tokens: 16, features: 32"):  # two images, one placeholder run
        model(input_ids=inputs["input_ids"], pixel_values=torch.cat([inputs["pixel_values"]] * 2))


def test_batched_left_padded_generation_matches_one_by_one(linear, figures):
    model, processor = linear
    prompts = ["What type of figure is this?", "Describe the following image in detail, please, with numbers."]
    texts = [processor.apply_chat_template(user_turn(p), add_generation_prompt=True) for p in prompts]
    processor.tokenizer.padding_side = "left"
    batch = processor(images=figures[:2], text=texts, padding=True, return_tensors="pt")
    assert (batch["attention_mask"][:, 0] == 0).any()  # really padded
    out = model.generate(**batch, max_new_tokens=12, do_sample=False)[:, batch["input_ids"].shape[1]:]
    for i, text in enumerate(texts):
        single = processor(images=[figures[i]], text=text, return_tensors="pt")
        one = model.generate(**single, max_new_tokens=12, do_sample=False)[:, single["input_ids"].shape[1]:]
        assert out[i].tolist() == one[0].tolist()


def test_mlp_projector_checkpoint_loads_into_native_llava(tiny_mlp_dir, figures):
    model = SciTuneForConditionalGeneration.from_pretrained(tiny_mlp_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_mlp_dir, trust_remote_code=True)
    cfg = model.config
    llava_config = LlavaConfig(
        vision_config=cfg.vision_config.to_dict(),
        text_config=cfg.text_config.to_dict(),
        image_token_index=cfg.image_token_id,
        image_seq_length=cfg.image_seq_length,
        vision_feature_layer=cfg.vision_feature_layer,
        vision_feature_select_strategy=cfg.vision_feature_select_strategy,
        projector_hidden_act=cfg.projector_hidden_act,
        multimodal_projector_bias=cfg.multimodal_projector_bias,
    )
    llava, info = LlavaForConditionalGeneration.from_pretrained(tiny_mlp_dir, config=llava_config, output_loading_info=True)
    # Only the vision layers SciTune never computes (after layer -2, and the post-layernorm) are absent.
    assert info["missing_keys"] and all(
        k.startswith(("model.vision_tower.encoder.layers.1.", "model.vision_tower.post_layernorm.")) for k in info["missing_keys"])
    assert not info["unexpected_keys"]
    inputs = chat_inputs(processor, figures[:1])
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, llava.eval()(**inputs).logits, atol=1e-5, rtol=0)


def test_sdpa_and_eager_agree(tiny_linear_dir, figures):
    processor = AutoProcessor.from_pretrained(tiny_linear_dir, trust_remote_code=True)
    inputs = chat_inputs(processor, figures[:1])
    logits = {}
    for impl in ("sdpa", "eager"):
        model = SciTuneForConditionalGeneration.from_pretrained(tiny_linear_dir, attn_implementation=impl).eval()
        assert model.config.text_config._attn_implementation == impl
        assert model.config.vision_config._attn_implementation == impl
        with torch.no_grad():
            logits[impl] = model(**inputs).logits
    torch.testing.assert_close(logits["sdpa"], logits["eager"], atol=1e-4, rtol=0)


def test_default_attention_is_sdpa(linear):
    assert linear[0].config._attn_implementation == "sdpa"


@pytest.mark.skipif(
    not (torch.cuda.is_available() and is_flash_attn_2_available()),
    reason="flash_attention_2 needs a CUDA GPU and the flash-attn package (the [flash] extra)",
)
def test_flash_attention_2_matches_sdpa(tiny_linear_dir, figures):  # pragma: no cover - GPU only
    processor = AutoProcessor.from_pretrained(tiny_linear_dir, trust_remote_code=True)
    inputs = chat_inputs(processor, figures[:1]).to("cuda")
    inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
    logits = {}
    for impl in ("sdpa", "flash_attention_2"):
        model = SciTuneForConditionalGeneration.from_pretrained(
            tiny_linear_dir, attn_implementation=impl, dtype=torch.bfloat16
        ).to("cuda").eval()
        with torch.no_grad():
            logits[impl] = model(**inputs).logits.float()
    torch.testing.assert_close(logits["sdpa"], logits["flash_attention_2"], atol=2e-2, rtol=0)


@pytest.mark.skipif(is_flash_attn_2_available(), reason="flash-attn is installed here")
def test_missing_flash_attn_gives_transformers_error(tiny_linear_dir):
    with pytest.raises((ImportError, ValueError), match="(?i)flash"):
        SciTuneForConditionalGeneration.from_pretrained(tiny_linear_dir, attn_implementation="flash_attention_2")


def test_training_step_reaches_every_trainable_part(linear, figures):
    model, processor = linear
    model = SciTuneForConditionalGeneration.from_pretrained(model.name_or_path).train()
    inputs = chat_inputs(processor, figures[:1])
    out = model(**inputs, labels=inputs["input_ids"])
    out.loss.backward()
    assert model.model.multi_modal_projector.linear_1.weight.grad.abs().sum() > 0
    assert model.model.language_model.embed_tokens.weight.grad.abs().sum() > 0
    assert model.model.vision_tower.embeddings.patch_embedding.weight.grad.abs().sum() > 0
