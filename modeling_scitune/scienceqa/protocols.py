"""The three published ScienceQA evaluation protocols, each as its original code runs it.

- `scitune`: pnnl/SciTune `model_vqa_science.py --conv-mode simple --answer-prompter` + `eval_science_qa.py`.
  The QCM question (image after the text) in the `simple` conversation; generation stops once "###" appears and the
  text is cut there (the reasoning); a second pass on `prompt + reasoning + " ###\\nANSWER:"` (64 new tokens, same
  stop and cut) gives the answer; the output is `reasoning + "\\n The answer is " + answer`. Scored with the
  exactly-one-match regex `The answer is ([A-Z]).`; anything else becomes a random option (seeded here, counted).
  The original samples (temperature 0.7, top-k 50) with up to 1024 new tokens; greedy is the default here.
- `llava`: LLaVA-1.5 `model_vqa_science.py --single-pred-prompt --conv-mode vicuna_v1 --temperature 0` +
  its `eval_science_qa.py`: the CQM question, image first, the direct-answer instruction, greedy; a bare letter, an
  "X. " prefix or exactly one "The answer is X." counts, anything else is wrong.
- `lmms-eval`: lmms-eval `scienceqa` / `scienceqa_img`: its prompt text with the image first, the model's own chat
  template, 16 new tokens greedy; its `sqa_process_results` scorer (the letter alone, or "X." first).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ..processing_scitune import scitune_chat_template
from .formats import DIRECT_ANSWER, cqm_input, lmms_eval_input, qcm_input
from .problems import LETTERS, Problem

PROTOCOLS = ("scitune", "llava", "lmms-eval")
CONVERSATIONS = ("simple", "model")
VICUNA_V1_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                    "The assistant gives helpful, detailed, and polite answers to the user's questions.")
ANSWER_PROMPT = " ###\nANSWER:"
SCITUNE_ANSWER = re.compile(r"The answer is ([A-Z]).")  # the original's pattern: its "." matches any character


def vicuna_v1_template(image_token: str) -> str:
    """LLaVA-1.5's `vicuna_v1` conversation with one user turn: "{system} USER: {q} ASSISTANT:" (BOS first)."""
    return ("{{- bos_token -}}{{- '" + VICUNA_V1_SYSTEM.replace("'", "\\'") + " ' -}}"
            "{%- for message in messages -%}"
            "{%- set ns = namespace(parts=[]) -%}"
            "{%- for item in message['content'] -%}"
            "{%- if item['type'] == 'image' -%}{%- set ns.parts = ns.parts + ['" + image_token + "'] -%}"
            "{%- else -%}{%- set ns.parts = ns.parts + [item['text']] -%}{%- endif -%}"
            "{%- endfor -%}"
            "{{- 'USER: ' + (ns.parts | join('\\n')) + ' ' -}}"
            "{%- endfor -%}{{- 'ASSISTANT:' -}}")


@dataclass(frozen=True)
class Parsed:
    """What a scorer made of one output: the option index (-1 = wrong) and how it got there."""

    index: int
    letter: str | None
    status: str  # "parsed", "fallback" (scitune: random option), "failed"


def parse_scitune(text: str, n_choices: int, rng: random.Random) -> Parsed:
    """pnnl/SciTune `eval_science_qa.py`: exactly one regex match, else a random option among the choices."""
    found = SCITUNE_ANSWER.findall(text)
    letter = found[0] if len(found) == 1 else None
    if letter is not None and letter in LETTERS[:n_choices]:
        return Parsed(LETTERS.index(letter), letter, "parsed")
    return Parsed(rng.choice(range(n_choices)), letter, "fallback")


def parse_llava(text: str, n_choices: int, rng: random.Random | None = None) -> Parsed:
    """LLaVA-1.5 `eval_science_qa.py`: bare letter, "X. " prefix, or exactly one regex match; else wrong (-1)."""
    if text in tuple(LETTERS):
        letter = text
    elif len(text) >= 3 and text[0] in LETTERS and text[1:3] == ". ":
        letter = text[0]
    else:
        found = SCITUNE_ANSWER.findall(text)
        letter = found[0] if len(found) == 1 else None
    if letter is not None and letter in LETTERS[:n_choices]:
        return Parsed(LETTERS.index(letter), letter, "parsed")
    return Parsed(-1, letter, "failed")


def parse_lmms_eval(text: str, n_choices: int, rng: random.Random | None = None) -> Parsed:
    """lmms-eval `sqa_process_results`: the stripped output equals the letter (any case), or starts with "X."."""
    pred = text.strip()
    if len(pred) == 1 and pred.upper() in LETTERS[:n_choices] and pred.isalpha():
        return Parsed(LETTERS.index(pred.upper()), pred.upper(), "parsed")
    if len(pred) >= 2 and pred[0].isupper() and pred[1] == "." and pred[0] in LETTERS[:n_choices]:
        return Parsed(LETTERS.index(pred[0]), pred[0], "parsed")
    return Parsed(-1, None, "failed")


@dataclass(frozen=True)
class Protocol:
    name: str
    max_new_tokens: int
    stop_strings: tuple[str, ...]
    answer_prompter: bool
    answer_max_new_tokens: int

    def user_content(self, problem: Problem) -> list[dict]:
        """The user turn: text and image in the protocol's order."""
        if self.name == "scitune":
            text, image_first = qcm_input(problem), False
        elif self.name == "llava":
            text, image_first = cqm_input(problem) + "\n" + DIRECT_ANSWER, True
        else:
            text, image_first = lmms_eval_input(problem) + "\n" + DIRECT_ANSWER, True
        content = [{"type": "text", "text": text}]
        if problem.has_image:
            content.insert(0 if image_first else 1, {"type": "image"})
        return content

    def chat_template(self, processor, conversation: str = "simple") -> str | None:
        """The conversation the protocol renders with (None: the model's own chat template)."""
        if self.name == "scitune" and conversation == "simple":
            return scitune_chat_template("simple", processor.image_token)
        if self.name == "llava":
            return vicuna_v1_template(processor.image_token)
        return None

    def prompt(self, processor, problem: Problem, conversation: str = "simple") -> str:
        messages = [{"role": "user", "content": self.user_content(problem)}]
        return processor.apply_chat_template(messages, chat_template=self.chat_template(processor, conversation),
                                             add_generation_prompt=True)

    def first_pass_text(self, raw: str) -> str:
        """What the first pass keeps: scitune cuts at "###" (the reasoning), llava strips, lmms-eval keeps it raw."""
        if self.stop_strings:
            return cut_at_separator(raw, self.stop_strings[0])
        return raw.strip() if self.name == "llava" else raw

    def answer_prompt(self, prompt: str, reasoning: str, conversation: str = "simple") -> str:
        """The answer-prompter's second prompt: `prompt + reasoning + " ###\nANSWER:"`. In the training-form
        conversation the SciTune template's prompt ends at "Assistant:", where an answer starts after one space (a
        ChatML prompt ends at a newline: the answer follows directly)."""
        space = " " if conversation == "model" and not prompt.endswith("\n") else ""
        return prompt + space + reasoning + ANSWER_PROMPT

    @staticmethod
    def combine(reasoning: str, raw_answer: str) -> str:
        """The original's final text: `reasoning + "\n The answer is " + answer` (the answer cut at "###")."""
        return reasoning + "\n The answer is " + cut_at_separator(raw_answer)

    def parse(self, text: str, n_choices: int, rng: random.Random) -> Parsed:
        parser = {"scitune": parse_scitune, "llava": parse_llava, "lmms-eval": parse_lmms_eval}[self.name]
        return parser(text, n_choices, rng)


IMAGE_NEWLINES = ("kept", "stripped")


def published_eval_processor(processor):
    """The processor as the published SciTune evaluation tokenized: whitespace next to image tokens kept.

    Training used the slow tokenizer, whose image tokens eat the newline before an image (the converted tokenizer
    reproduces that); `model_vqa_science.py` used the fast tokenizer and re-added the image tokens without stripping,
    so its prompts keep "\n" (id 13 in LLaMA) before the image. Returns a copy with those tokens re-added unstripped
    (the processor itself when none strips)."""
    import copy

    from tokenizers import AddedToken

    tokens = [t for t in (processor.image_token, getattr(processor, "image_start_token", None),
                          getattr(processor, "image_end_token", None)) if t]
    stripping = [t for t in processor.tokenizer.added_tokens_decoder.values()
                 if t.content in tokens and (t.lstrip or t.rstrip)]
    if not stripping:
        return processor
    copied = copy.deepcopy(processor)
    copied.tokenizer.backend_tokenizer.add_special_tokens(
        [AddedToken(t.content, lstrip=False, rstrip=False, normalized=False, special=True) for t in stripping])
    return copied


def cut_at_separator(text: str, separator: str = "###") -> str:
    """The original's post-processing of each pass: everything before the first separator, stripped."""
    return text.split(separator, 1)[0].strip()


def get_protocol(name: str) -> Protocol:
    if name == "scitune":
        return Protocol("scitune", 1024, ("###",), True, 64)
    if name == "llava":
        return Protocol("llava", 1024, (), False, 0)
    if name == "lmms-eval":
        return Protocol("lmms-eval", 16, (), False, 0)
    raise ValueError(f"unknown protocol {name!r}; choose one of {PROTOCOLS}")
