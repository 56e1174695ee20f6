"""What transformers' own model and processor tests check of a LLaVA-style model, checked on SciTune: tuple outputs,
vision outputs on request, CLIP's init for missing tower weights, typed signatures, a stable processor dict, and one
AutoModel mapping."""

import inspect
import json
import typing

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoProcessor
from transformers.processing_utils import Unpack

from modeling_scitune import SciTuneForConditionalGeneration, SciTuneModel, SciTuneProcessor
from tests.chat_turns import user_turn


@pytest.fixture(scope="module")
def loaded(tiny_linear_dir):
    model = SciTuneForConditionalGeneration.from_pretrained(tiny_linear_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_linear_dir, trust_remote_code=True)
    return model, processor


@pytest.fixture(scope="module")
def inputs(loaded, figures):
    _, processor = loaded
    prompt = processor.apply_chat_template(user_turn("What type of figure is this?"), add_generation_prompt=True)
    return processor(images=[figures[0]], text=prompt, return_tensors="pt")


def test_return_dict_false_gives_tuples(loaded, inputs):
    model, _ = loaded
    with torch.no_grad():
        as_dict = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
        base = model.model(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], as_dict.logits)
    assert isinstance(base, tuple) and base[0].shape[:2] == inputs["input_ids"].shape
    model.config.return_dict = False
    try:
        with torch.no_grad():
            assert isinstance(model(**inputs), tuple)
    finally:
        model.config.return_dict = True


def test_get_image_features_honours_hidden_states_and_attentions(loaded, inputs):
    model, _ = loaded
    pixels = inputs["pixel_values"]
    model.set_attn_implementation("eager")  # attention weights exist only in eager attention
    with torch.no_grad():
        plain = model.get_image_features(pixels)
        full = model.get_image_features(pixels, output_hidden_states=True, output_attentions=True)
        as_tuple = model.get_image_features(pixels, return_dict=False)
    assert plain.hidden_states is None and plain.attentions is None
    kept = model.model.vision_layers_kept
    assert len(full.hidden_states) == kept + 1 and len(full.attentions) == kept
    assert torch.equal(torch.stack(full.pooler_output), torch.stack(plain.pooler_output))
    assert isinstance(as_tuple, tuple)


def test_missing_tower_weights_get_clips_own_init(tiny_linear_dir, tmp_path):
    import shutil

    shutil.copytree(tiny_linear_dir, tmp_path / "no-tower")
    weights = tmp_path / "no-tower" / "model.safetensors"
    save_file({k: v for k, v in load_file(str(weights)).items() if "vision_tower" not in k}, str(weights),
              metadata={"format": "pt"})
    model = SciTuneForConditionalGeneration.from_pretrained(tmp_path / "no-tower")
    config = model.config.vision_config
    q_proj = model.model.vision_tower.encoder.layers[0].self_attn.q_proj.weight
    clip_std = config.hidden_size ** -0.5 * (2 * config.num_hidden_layers) ** -0.5 * config.initializer_factor
    assert abs(q_proj.std().item() - clip_std) < 0.25 * clip_std  # CLIP's, not the generic 0.02
    assert abs(clip_std - 0.02) > 0.5 * clip_std


def test_signatures_are_typed_as_llavas():
    hints = typing.get_type_hints(SciTuneForConditionalGeneration.forward, include_extras=True)
    assert typing.get_origin(hints["kwargs"]) is Unpack
    assert typing.get_origin(typing.get_type_hints(SciTuneModel.get_image_features,
                                                   include_extras=True)["kwargs"]) is Unpack
    call = inspect.signature(SciTuneProcessor.__call__)
    assert all(p.annotation is not inspect.Parameter.empty for name, p in call.parameters.items() if name != "self")


def test_processor_dict_is_stable_across_round_trips(tiny_linear_dir, tmp_path):
    source, dicts = tiny_linear_dir, []
    for i in range(3):
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=True)
        dicts.append(processor.to_dict())
        source = tmp_path / f"round-{i}"
        processor.save_pretrained(source)
    assert dicts[0] == dicts[1] == dicts[2]
    assert json.loads((source / "processor_config.json").read_text())["auto_map"]["AutoProcessor"] == \
        "processing_scitune.SciTuneProcessor"


def test_automodel_means_the_generating_class_everywhere(tiny_linear_dir):
    auto_map = json.loads((tiny_linear_dir / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == auto_map["AutoModelForImageTextToText"] == \
        "modeling_scitune.SciTuneForConditionalGeneration"
    model = AutoModel.from_pretrained(tiny_linear_dir)
    assert type(model) is SciTuneForConditionalGeneration and hasattr(model, "generate")
