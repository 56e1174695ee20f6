import random

import pytest
from PIL import Image

from modeling_scitune.data import DESCRIBE_PROMPTS, FigureRecord, build_conversation, build_target, replace_figure_words


@pytest.fixture
def record():
    return FigureRecord(
        figure_id="paper-1-fig2",
        image=Image.new("RGB", (32, 32), "white"),
        caption="Accuracy of the model over epochs. Fig. 2 shows the trend.",
        figure_type="Graph Plot",
        ocr=["Epoch", "Accuracy"],
        paragraphs=["As seen in Figure 2, accuracy rises."],
        mentions=["Figure 2 shows accuracy."],
    )


def test_variant_targets_are_exact(record):
    ct = "Graph Plot Accuracy of the model over epochs. Graph Plot 2 shows the trend."
    assert build_target(record, "C") == "Accuracy of the model over epochs. Fig. 2 shows the trend."
    assert build_target(record, "CT") == ct
    assert build_target(record, "CTO") == ct + "\nEpoch\tAccuracy"
    assert build_target(record, "CTOM") == (
        ct + "\nEpoch\tAccuracy\nAs seen in Graph Plot 2, accuracy rises.\nGraph Plot 2 shows accuracy."
    )


def test_ct_and_cto_are_prefixes_of_ctom(record):
    ctom = build_target(record, "CTOM")
    assert ctom.startswith(build_target(record, "CTO")) and ctom.startswith(build_target(record, "CT"))


def test_unknown_type_becomes_image_and_empty_parts_are_left_out():
    record = FigureRecord("x", None, caption="See figure 1 and FIGURE 2; figures differ.", ocr=[], mentions=["Fig 3 too"])
    assert build_target(record, "CTOM") == "Image See Image 1 and Image 2; figures differ.\nImage 3 too"


def test_figure_word_replacement_is_whole_word():
    assert replace_figure_words("Fig. 3, fig 4, Figure 5, Figures, configure, FIG.", "Bar Chart") == (
        "Bar Chart 3, Bar Chart 4, Bar Chart 5, Figures, configure, Bar Chart"
    )


def test_conversation_is_trl_format_and_prompts_are_seeded(record):
    first = [build_conversation(record, "CT", random.Random(7))["messages"][0]["content"][0]["text"] for _ in range(3)]
    assert len(set(first)) == 1 and first[0] in DESCRIBE_PROMPTS
    rng = random.Random(3)
    prompts = [build_conversation(record, "CT", rng)["messages"][0]["content"][0]["text"] for _ in range(40)]
    rng = random.Random(3)
    assert prompts == [build_conversation(record, "CT", rng)["messages"][0]["content"][0]["text"] for _ in range(40)]
    assert len(set(prompts)) > 8
    conversation = build_conversation(record, "CTOM", random.Random(0))
    user, assistant = conversation["messages"]
    assert user["role"] == "user" and [c["type"] for c in user["content"]] == ["text", "image"]
    assert assistant["content"][0]["text"] == build_target(record, "CTOM")
    assert conversation["images"] == [record.image]


def test_invalid_variant_is_rejected(record):
    with pytest.raises(ValueError, match="variant must be one of"):
        build_target(record, "CTX")
