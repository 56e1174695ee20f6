"""The three ScienceQA protocols: their exact prompt strings, their original scorers on scripted outputs, the
answer-prompter's two passes, and batched generation with per-row stops against the original one-problem loop."""

import random

import pytest
import torch
from transformers import AutoProcessor

from modeling_scitune import SciTuneForConditionalGeneration
from modeling_scitune.scienceqa import Problem, get_protocol, parse_llava, parse_lmms_eval, parse_scitune
from modeling_scitune.scienceqa.evaluate import answer_batch
from modeling_scitune.scienceqa.formats import build_answer, build_question
from modeling_scitune.scienceqa.protocols import published_eval_processor

SYS = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
       "detailed, and polite answers to the human's questions.")
VICUNA = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
          "detailed, and polite answers to the user's questions.")


def problem_a(figure):
    return Problem(pid="A", question="Which of these states is farthest north?",
                   choices=["West Virginia", "Louisiana", "Arizona"], answer=0, hint="", image=figure,
                   lecture="Maps have four cardinal directions.", solution="Look at the compass rose.")


PROBLEM_B = Problem(pid="B", question="Select the better estimate.", choices=["12 inches", "345 inches"], answer=0,
                    hint="Tom and Justin's  experiment.", solution="The better estimate is 12 inches.")


@pytest.fixture(scope="module")
def processor(tiny_linear_dir):
    return AutoProcessor.from_pretrained(tiny_linear_dir, trust_remote_code=True)


def test_training_texts_are_llavas_converter_output():
    assert build_question(PROBLEM_B) == "Select the better estimate.\nContext: Tom and Justin's experiment.\n" \
                                        "Options: (A) 12 inches (B) 345 inches"
    assert build_answer(PROBLEM_B) == "SOLUTION: The better estimate is 12 inches.\n###\nANSWER: A."
    odd = Problem(pid="x", question="Question: which? Question: really?", choices=["a", "b"], answer=1,
                  hint="  padded   hint ", lecture="one\\ntwo", solution="")
    assert build_question(odd) == "which? really?\nContext: padded  hint\nOptions: (A) a (B) b"
    assert build_answer(odd) == "LECTURE: one\ntwo\n###\nANSWER: B."
    assert build_answer(odd, "QCM-LEA") == "one\\ntwo".replace("\\n", "\n") + " The answer is B."


def test_scitune_prompt_is_the_original_simple_conversation(processor, figures):
    protocol = get_protocol("scitune")
    image = processor.image_token
    assert protocol.prompt(processor, problem_a(figures[0])) == (
        "<s>" + SYS + "###Human: Hi!###Assistant: Hi there! How can I help you today?###Human: Which of these states "
        "is farthest north?\nContext: N/A\nOptions: (A) West Virginia (B) Louisiana (C) Arizona\n" + image + "###")
    assert protocol.prompt(processor, PROBLEM_B) == (
        "<s>" + SYS + "###Human: Hi!###Assistant: Hi there! How can I help you today?###Human: Select the better "
        "estimate.\nContext: Tom and Justin's experiment.\nOptions: (A) 12 inches (B) 345 inches###")
    assert protocol.prompt(processor, PROBLEM_B, conversation="model") == (
        "<s>### Human: Select the better estimate.\nContext: Tom and Justin's experiment.\nOptions: (A) 12 inches "
        "(B) 345 inches\n### Assistant:")


def test_llava_and_lmms_eval_prompts(processor, figures):
    image = processor.image_token
    assert get_protocol("llava").prompt(processor, problem_a(figures[0])) == (
        "<s>" + VICUNA + " USER: " + image + "\nContext: N/A\nQuestion: Which of these states is farthest north?\n"
        "Options: (A) West Virginia (B) Louisiana (C) Arizona\nAnswer with the option's letter from the given choices "
        "directly. ASSISTANT:")
    lmms = get_protocol("lmms-eval")
    assert lmms.max_new_tokens == 16 and not lmms.answer_prompter
    assert lmms.prompt(processor, problem_a(figures[0])) == (
        "<s>### Human: " + image + "\nWhich of these states is farthest north?\nA. West Virginia\nB. Louisiana\n"
        "C. Arizona\nAnswer with the option's letter from the given choices directly.\n### Assistant:")
    assert "Context: Tom and Justin's  experiment.\nSelect the better estimate.\nA. 12 inches\nB. 345 inches\n" \
           in lmms.prompt(processor, PROBLEM_B)


@pytest.mark.parametrize("text, n, letter, status", [
    ("LECTURE: l\nSOLUTION: s\n The answer is B.", 3, "B", "parsed"),
    ("LECTURE: maps\nSOLUTION: look north", 3, None, "fallback"),           # truncated before ANSWER
    ("SOLUTION: s\n The answer is A. The answer is B.", 3, None, "fallback"),  # continuation with a second answer
    ("(B)", 3, None, "fallback"),
    ("x\n The answer is A. so The answer is A.", 3, None, "fallback"),     # two matches, even if equal
    ("x\n The answer is Arizona.", 3, "A", "parsed"),                      # the unescaped "." matches "r"
    ("x\n The answer is B", 3, None, "fallback"),                          # no character after the letter
    ("x\n The answer is D.", 3, None, "fallback"),                         # beyond the options
])
def test_scitune_scorer(text, n, letter, status):
    parsed = parse_scitune(text, n, random.Random(0))
    assert parsed.status == status
    if status == "parsed":
        assert parsed.letter == letter and parsed.index == "ABCDE".index(letter)
    else:
        assert 0 <= parsed.index < n
        assert parsed.index == parse_scitune(text, n, random.Random(0)).index  # seeded: reproducible


@pytest.mark.parametrize("text, n, expected", [
    ("B", 3, 1), ("B. Louisiana", 3, 1), ("(B)", 3, -1), ("The answer is B.", 3, 1), ("The answer is Arizona.", 3, 0),
    ("The answer is A. The answer is B.", 3, -1), ("The answer is B", 3, -1), ("AB", 3, -1), ("", 3, -1),
    ("D", 3, -1), ("b", 3, -1),
])
def test_llava_scorer(text, n, expected):
    assert parse_llava(text, n).index == expected


@pytest.mark.parametrize("text, n, expected", [
    ("B", 3, 1), (" b \n", 3, 1), ("B.", 3, 1), ("B. Louisiana", 3, 1), ("(B)", 3, -1), ("The answer is B.", 3, -1),
    ("b.", 3, -1), ("D.", 3, -1), ("", 3, -1),
])
def test_lmms_eval_scorer(text, n, expected):
    assert parse_lmms_eval(text, n).index == expected


def test_answer_prompter_passes_assemble_as_the_original():
    protocol = get_protocol("scitune")
    raw1 = "Assistant: LECTURE: maps\nSOLUTION: north is up\n###\nANSWER: A.\n###"
    reasoning = protocol.first_pass_text(raw1)
    assert reasoning == "Assistant: LECTURE: maps\nSOLUTION: north is up"
    assert protocol.answer_prompt("PROMPT###", reasoning) == "PROMPT###" + reasoning + " ###\nANSWER:"
    final = protocol.combine(reasoning, " A.\n###\nHuman: more")
    assert final == reasoning + "\n The answer is A."
    assert parse_scitune(final, 3, random.Random(0)).index == 0
    assert protocol.first_pass_text("no separator at all ") == "no separator at all"


def reference_answers(model, processor, protocol, problems, max_new_tokens):
    """The original model_vqa_science loop: one problem at a time, greedy, stopping once the decoded new text holds
    "###" (checked from the second token on), cut at "###"; then the answer-prompter pass."""
    def run(prompt, image, budget):
        inputs = processor(images=[image] if image is not None else None, text=[prompt], return_tensors="pt")
        ids, generated = inputs["input_ids"], []
        for step in range(budget):
            with torch.no_grad():
                logits = model(**{**inputs, "input_ids": torch.cat([ids, torch.tensor([generated], dtype=torch.long)],
                                                                   dim=1) if generated else ids,
                                  "attention_mask": None}).logits
            token = int(logits[0, -1].argmax())
            generated.append(token)
            if token == processor.tokenizer.eos_token_id:
                break
            if step > 0 and "###" in processor.tokenizer.decode(generated, skip_special_tokens=True):
                break
        text = processor.tokenizer.decode(generated, skip_special_tokens=True)
        return text

    out = []
    for problem in problems:
        prompt = protocol.prompt(processor, problem)
        image = problem.image if problem.has_image else None
        reasoning = protocol.first_pass_text(run(prompt, image, max_new_tokens))
        answer = run(protocol.answer_prompt(prompt, reasoning), image, protocol.answer_max_new_tokens)
        out.append(protocol.combine(reasoning, answer))
    return out


def test_batched_protocol_equals_the_one_problem_loop(tiny_linear_dir, figures):
    model = SciTuneForConditionalGeneration.from_pretrained(tiny_linear_dir).eval()
    processor = published_eval_processor(AutoProcessor.from_pretrained(tiny_linear_dir, trust_remote_code=True))
    protocol = get_protocol("scitune")
    problems = [problem_a(figures[0]), PROBLEM_B, problem_a(figures[2])]
    rows = answer_batch(model, processor, protocol, problems, max_new_tokens=12)
    assert [row["text"] for row in rows] == reference_answers(model, processor, protocol, problems, 12)
    assert all({"output_pass1", "output_pass2", "reasoning"} <= set(row) for row in rows)
