"""Pretrained backbones in miniature: a small CLIP and a small LLaMA trained on the embedded corpus, on CPU.

SciTune starts from a *pretrained* CLIP and a *pretrained* LLaMA; stage 1 freezes both, so random backbones cannot
learn anything. None can be downloaded here, so this trains transformers' own `CLIPModel` contrastively on
figure/caption pairs (its vision half becomes the tower) and `LlamaForCausalLM` on the corpus text (answers,
captions, paragraphs, ScienceQA lectures and solutions, in the chat layout the stages use), with a BPE tokenizer
trained on the same text. Both are saved as ordinary HF folders (`OUT/clip`, `OUT/llama`), which stage 1 loads
exactly as it loads `openai/clip-vit-large-patch14` and a LLaMA checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm.auto import tqdm
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, LlamaConfig, LlamaForCausalLM

from ..processing_scitune import SCITUNE_CHAT_TEMPLATE
from .assemble import IMAGE_TOKEN
from .tokenizer import train_tokenizer
from ..speed.compiling import CompiledWithFallback, deterministic_algorithms
from .precision import attention_implementation, use_bf16
from .backbone_config import BackboneConfig

logger = logging.getLogger(__name__)


def corpus_texts(stage1_rows, sqa_conversations=(), image_tokens: int = 0) -> list[str]:
    """Every stage-1 answer and ScienceQA exchange rendered by SciTune's chat template, as the stages will show them
    to the LLM, without BOS / EOS (`pack_texts` puts those around each text). Each image becomes `image_tokens`
    image tokens (the stages' positions; `pack_texts` never scores them), or is left out when `image_tokens` is 0."""
    from transformers.utils.chat_template_utils import render_jinja_template

    conversations = [[{**message, "content": [item for item in message["content"]
                                              if item["type"] == "text" or image_tokens]}
                      for message in messages] for messages in list(stage1_rows) + list(sqa_conversations)]
    if not conversations:
        return []
    rendered, _ = render_jinja_template(conversations=conversations, chat_template=SCITUNE_CHAT_TEMPLATE,
                                        bos_token="", eos_token="")
    return [text.removesuffix("\n").replace(IMAGE_TOKEN, IMAGE_TOKEN * image_tokens) for text in rendered]


def compact_problem_text(problem, image_tokens: int = 0) -> str:
    """A ScienceQA problem as the LLM corpus can hold it in fewer tokens: the QCM input (then the image's
    `image_tokens` image tokens where the problem has one), the solution and the answer line, without the lecture and
    the chat markers (stage 2 teaches the full QCM-LEPA layout; what takes the miniature LLM long to learn is finding
    the answer's letter among the options, which this keeps)."""
    from ..scienceqa.formats import qcm_input

    solution = problem.solution.strip()
    image = "\n" + IMAGE_TOKEN * image_tokens if image_tokens and problem.has_image else ""
    return (qcm_input(problem) + image + (f"\nSOLUTION: {solution}" if solution else "")
            + f"\nANSWER: {problem.answer_letter}.")


class LlmCorpus(NamedTuple):
    texts: list[str]  # the stage-1 answers first, then the multiple-choice texts (ScienceQA problems, lookup drills)
    slot_words: list[str | None] | None  # with `figure_type` image slots: what each text's image places hold
    multiple_choice_from: int  # index of the first multiple-choice text


def llm_corpus(stage1_messages: list, figure_types: list[str], problems: list, exchanges: list,
               cfg: BackboneConfig, rendered: list[str] | None = None) -> LlmCorpus:
    """The LLM's pretraining texts (stage-1 answers, then ScienceQA problems in `cfg.sqa_corpus` layout, then any
    lookup drills) and, with `figure_type` image slots, the words each text's image places hold (None: no image).
    `rendered`: `corpus_texts(stage1_messages, exchanges)` when the caller has it already (rendering tens of
    thousands of conversations takes seconds); used where the corpus leaves images out, as it does."""
    image_tokens = (cfg.image_size // cfg.patch_size) ** 2 if cfg.corpus_image_slots != "none" else 0
    sqa_image_tokens = image_tokens if cfg.scienceqa_image_slots else 0
    stage1_image_tokens = image_tokens if cfg.stage1_image_slots else 0
    stage1_count = len(stage1_messages)
    if cfg.sqa_corpus == "compact":
        sqa_texts = [compact_problem_text(p, sqa_image_tokens) for p in problems]
    elif rendered is not None and not sqa_image_tokens:
        sqa_texts = rendered[stage1_count:]
    else:
        sqa_texts = corpus_texts([], exchanges, sqa_image_tokens)
    if rendered is not None and not stage1_image_tokens:
        stage1_texts = rendered[:stage1_count]
    else:
        stage1_texts = corpus_texts(stage1_messages, [], stage1_image_tokens)
    texts = stage1_texts + sqa_texts
    texts += lookup_drills(cfg.lookup_drills, cfg.seed, texts)
    if cfg.corpus_image_slots != "figure_type":
        return LlmCorpus(texts, None, len(stage1_texts))
    slot_words = ([t if stage1_image_tokens else None for t in figure_types]
                  + [p.extra.get("figure_type") if sqa_image_tokens else None for p in problems])
    return LlmCorpus(texts, slot_words + [None] * (len(texts) - len(slot_words)), len(stage1_texts))


def lookup_drills(n: int, seed: int, texts: list[str]) -> list[str]:
    """Generic multiple-choice drills over the corpus vocabulary: find the option that says X, answer its letter.

    A pretrained LLM brings this skill from its pretraining text; the miniature one learns it here. The drills share
    the QCM-LEPA layout but no ScienceQA content (random word phrases as options), rendered by the chat template.
    """
    rng = random.Random(f"lookup-drills-{seed}")
    words = sorted({w.strip(".,;:()") for text in texts for w in text.split() if w.isalpha() and 2 < len(w) < 10})
    drills = []
    while words and len(drills) < n:
        count = rng.randint(2, 5)
        options = list(dict.fromkeys(" ".join(rng.sample(words, rng.randint(1, 2))) for _ in range(count)))
        answer = rng.randrange(len(options))
        rendered = " ".join(f"({'ABCDE'[i]}) {option}" for i, option in enumerate(options))
        question = f"Which option says {options[answer]}?\nContext: N/A\nOptions: {rendered}"
        reply = f"SOLUTION: The option says {options[answer]}.\n###\nANSWER: {'ABCDE'[answer]}."
        drills.append([{"role": "user", "content": [{"type": "text", "text": question}]},
                       {"role": "assistant", "content": [{"type": "text", "text": reply}]}])
    return corpus_texts([], drills)


def figure_image_processor(image_size: int) -> CLIPImageProcessorPil:
    """CLIP preprocessing (CLIP mean/std) that resizes the whole figure to `image_size` x `image_size`.

    No center crop: a crop would cut off the sides of a wide figure (its legend, its first bars)."""
    return CLIPImageProcessorPil(
        size={"height": image_size, "width": image_size},
        do_center_crop=False,
        crop_size={"height": image_size, "width": image_size},
    )


def _lr_at(step: int, total: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def _train_loop(model, batches, steps: int, lr: float, desc: str, log: list, loss_fn, bf16: bool = False,
                compile: bool = False) -> float:
    """AdamW + warmup/cosine; with `bf16`, forward and loss run under bf16 autocast (fp32 master weights); with
    `compile`, the forward (and its backward) run through `torch.compile` (see speed/compiling.py)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    device_type = next(model.parameters()).device.type
    forward = CompiledWithFallback(model, enabled=compile)
    model.train()
    with deterministic_algorithms():
        _run_steps(model, forward, optimizer, batches, steps, lr, desc, log, loss_fn, bf16, device_type)
    model.eval()
    return log[-1]["loss"]


def _run_steps(model, forward, optimizer, batches, steps, lr, desc, log, loss_fn, bf16, device_type) -> None:
    bar = tqdm(range(steps), desc=desc, unit="step")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, steps, lr, max(steps // 20, 1))
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(forward, next(batches))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 10 == 0 or step == steps - 1:
            log.append({"step": step, "loss": round(loss.item(), 4)})
            bar.set_postfix(loss=f"{loss.item():.3f}")


def _batches(n: int, batch_size: int, seed: int):
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def train_clip(images: torch.Tensor, captions: list[str], tokenizer, cfg: BackboneConfig, log: list) -> CLIPModel:
    """Contrastive CLIP training on (figure, caption) pairs; images are already preprocessed pixel tensors."""
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": cfg.clip_text_hidden, "intermediate_size": cfg.clip_text_hidden * 2,
                     "num_hidden_layers": cfg.clip_text_layers, "num_attention_heads": 4, "max_position_embeddings": cfg.caption_tokens,
                     "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.bos_token_id},
        vision_config={"hidden_size": cfg.vision_hidden, "intermediate_size": cfg.vision_hidden * 2,
                       "num_hidden_layers": cfg.vision_layers, "num_attention_heads": 4, "image_size": cfg.image_size,
                       "patch_size": cfg.patch_size},
        projection_dim=cfg.clip_projection,
    )
    torch.manual_seed(cfg.seed)
    model = CLIPModel(config)
    model.set_attn_implementation(attention_implementation(cfg.attn_implementation))
    encoded = tokenizer([c + tokenizer.eos_token for c in captions], padding="max_length", truncation=True,
                        max_length=cfg.caption_tokens, add_special_tokens=False, return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    eos = tokenizer.eos_token_id
    ids[:, -1] = torch.where(mask[:, -1] == 1, torch.full_like(ids[:, -1], eos), ids[:, -1])  # truncated rows end in EOS

    def loss_fn(model, index):
        return model(input_ids=ids[index], attention_mask=mask[index], pixel_values=images[index], return_loss=True).loss

    batches = _batches(len(captions), cfg.clip_batch_size, cfg.seed)
    _train_loop(model, (torch.tensor(b) for b in batches), cfg.clip_steps, cfg.clip_lr, "pretraining CLIP", log, loss_fn,
                use_bf16(cfg.bf16))
    return model


# The answer line that ends each ScienceQA text of the LLM corpus (chat and compact layouts alike).
ANSWER_LETTER = re.compile(r"ANSWER: ([A-E])\.$")


class PackedBlocks(NamedTuple):
    input_ids: torch.Tensor
    labels: torch.Tensor  # -100 on padding and image places
    loss_weights: torch.Tensor  # 0 on padding and image places, 1 per other token, `answer_loss_weight` on answer letters
    position_ids: torch.Tensor  # 0 at each text's BOS: given with no attention mask, each text attends only to itself


def pack_texts(texts: list[str], tokenizer, block_size: int, answer_loss_weight: float = 1.0,
               slot_words: list[str | None] | None = None, open_blocks: int = 64) -> PackedBlocks:
    """Token blocks of `block_size` holding whole texts (`<s> text </s>` back to back, padding at the end).

    A text is never cut across two blocks unless it is longer than a block: a multiple-choice exchange cut in half
    would teach an answer letter without the options it refers to. Each text goes into the first of the last
    `open_blocks` blocks it fits in (first fit), so short texts fill the gaps long ones leave: padding is compute the
    pretraining step spends on nothing. Padding is excluded from the loss. The letter of a text's final "ANSWER: X."
    line gets loss weight `answer_loss_weight` (see BackboneConfig). Where `slot_words` gives a text words, its image
    tokens are replaced by those words' tokens, repeated to fill them (see BackboneConfig.corpus_image_slots).
    Padding and image places are never targets.
    """
    pad, image = tokenizer.pad_token_id, getattr(tokenizer, "image_token_id", None)
    blocks: list[list[int]] = []
    weights: list[list[float]] = []
    cut = 0
    for ids, text_weights in _encoded_texts(texts, tokenizer, answer_loss_weight, slot_words, image):
        cut += len(ids) > block_size
        while len(ids) > block_size:  # a text longer than a block: whole blocks of it, the rest packed as any text
            blocks.append(ids[:block_size])
            weights.append(text_weights[:block_size])
            ids, text_weights = ids[block_size:], text_weights[block_size:]
        first_open = max(len(blocks) - open_blocks, 0)
        target = next((b for b in range(first_open, len(blocks)) if len(blocks[b]) + len(ids) <= block_size), None)
        if target is None:
            blocks.append([])
            weights.append([])
            target = len(blocks) - 1
        blocks[target] += ids
        weights[target] += text_weights
    if cut:
        logger.warning("%d of %d corpus texts are longer than block_size=%d and are cut across blocks (a larger "
                       "block_size keeps them whole)", cut, len(texts), block_size)
    input_ids = torch.tensor([block + [pad] * (block_size - len(block)) for block in blocks])
    loss_weights = torch.tensor([row + [0.0] * (block_size - len(row)) for row in weights])
    return PackedBlocks(input_ids, input_ids.masked_fill(loss_weights == 0, -100), loss_weights,
                        text_position_ids(input_ids, tokenizer.bos_token_id))


def text_position_ids(input_ids: torch.Tensor, bos_token_id: int) -> torch.Tensor:
    """Position ids that restart at 0 at every BOS of a packed block (a block's first tokens, when they continue a
    text cut across blocks, count from 0 as well). transformers reads position ids that restart, with no attention
    mask and no KV cache (`use_cache=False`), as packed sequences and masks attention between them: each text is
    trained as it is seen alone."""
    index = torch.arange(input_ids.shape[-1]).expand_as(input_ids)
    starts = torch.where(input_ids == bos_token_id, index, torch.zeros_like(index)).cummax(dim=-1).values
    return index - starts


def _encoded_texts(texts, tokenizer, answer_loss_weight, slot_words, image):
    """Each text as (`<s> ids </s>`, per-token loss weights): image places 0, its answer letter `answer_loss_weight`."""
    chunk = 4096  # tokenized a chunk at a time: one call per text spends more time in Python than in the tokenizer
    for first in range(0, len(texts), chunk):
        batch = tokenizer(texts[first:first + chunk], add_special_tokens=False, return_offsets_mapping=True)
        for index, (input_ids, offsets) in enumerate(zip(batch["input_ids"], batch["offset_mapping"]), start=first):
            yield _text_weights(texts[index], input_ids, offsets, tokenizer, answer_loss_weight,
                                slot_words[index] if slot_words else None, image)


def _text_weights(text, input_ids, offsets, tokenizer, answer_loss_weight, words, image):
    """One text's (`<s> ids </s>`, per-token loss weights), from its tokens and their character offsets."""
    ids = [tokenizer.bos_token_id] + input_ids + [tokenizer.eos_token_id]
    text_weights = [0.0 if token == image else 1.0 for token in ids]
    if words and image in ids:
        word_ids = tokenizer(" " + words, add_special_tokens=False)["input_ids"]
        places = [position for position, token in enumerate(ids) if token == image]
        for n, position in enumerate(places):
            ids[position] = word_ids[n % len(word_ids)]
    match = ANSWER_LETTER.search(text) if answer_loss_weight != 1.0 else None
    if match:
        letter_at = match.start(1)
        for position, (start, end) in enumerate(offsets):
            if start <= letter_at < end:
                text_weights[position + 1] = answer_loss_weight
    return ids, text_weights


def weighted_causal_lm_loss(model, input_ids: torch.Tensor, labels: torch.Tensor, loss_weights: torch.Tensor,
                            position_ids: torch.Tensor | None = None):
    """Next-token cross-entropy with a weight per target token, averaged over the tokens that have a label (so a
    weight of k makes that token count k times; all weights 1 is the model's own loss)."""
    logits = model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits[:, :-1]
    targets = labels[:, 1:].reshape(-1)
    per_token = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets,
                                                  ignore_index=-100, reduction="none")
    return (per_token * loss_weights[:, 1:].reshape(-1)).sum() / (targets != -100).sum()


def pack_corpus(texts: list[str], tokenizer, cfg: BackboneConfig, slot_words: list[str | None] | None = None,
                multiple_choice_from: int | None = None) -> PackedBlocks:
    """The corpus in blocks (`pack_texts`); with `cfg.multiple_choice_alone`, the texts from `multiple_choice_from` on
    are packed in blocks of their own, in shuffled order, each text attending only to itself, and the texts before it
    keep their full attention (unless `cfg.attend_within_text`). Position ids always come with the blocks: they
    count on through a block where attention is full, and restart at each BOS where it is per text."""
    split = multiple_choice_from if cfg.multiple_choice_alone and multiple_choice_from is not None else len(texts)
    words = slot_words or [None] * len(texts)
    groups = [(texts[:split], words[:split], cfg.attend_within_text)]
    if split < len(texts):
        order = list(range(split, len(texts)))
        random.Random(cfg.seed).shuffle(order)
        groups.append(([texts[i] for i in order], [words[i] for i in order], True))
    parts = []
    for group_texts, group_words, within_text in groups:
        if not group_texts:
            continue
        packed = pack_texts(group_texts, tokenizer, cfg.block_size, cfg.answer_loss_weight,
                            group_words if slot_words else None)
        if not within_text:
            packed = packed._replace(position_ids=torch.arange(cfg.block_size).expand_as(packed.input_ids))
        parts.append(packed)
    return PackedBlocks(*(torch.cat(tensors) for tensors in zip(*parts)))


def train_llama(texts: list[str], tokenizer, cfg: BackboneConfig, log: list,
                slot_words: list[str | None] | None = None,
                multiple_choice_from: int | None = None) -> LlamaForCausalLM:
    """Causal-LM training on the corpus text, in fixed-length blocks of whole texts (`pack_corpus`)."""
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=cfg.text_hidden * 2,
                         num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads,
                         num_key_value_heads=cfg.text_kv_heads,
                         max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False)
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.set_attn_implementation(attention_implementation(cfg.attn_implementation))
    packed = pack_corpus(texts, tokenizer, cfg, slot_words, multiple_choice_from)

    def loss_fn(model, index):
        positions = packed.position_ids[index]
        if cfg.answer_loss_weight == 1.0 and cfg.corpus_image_slots == "none":
            return model(input_ids=packed.input_ids[index], labels=packed.labels[index], position_ids=positions,
                         use_cache=False).loss
        return weighted_causal_lm_loss(model, packed.input_ids[index], packed.labels[index], packed.loss_weights[index],
                                       positions)

    batches = _batches(len(packed.input_ids), min(cfg.llm_batch_size, len(packed.input_ids)), cfg.seed)
    _train_loop(model, (torch.tensor(b) for b in batches), cfg.llm_steps, cfg.llm_lr, "pretraining LLaMA", log, loss_fn,
                use_bf16(cfg.bf16), compile=cfg.compile)
    return model


def extra_clip_pairs(data_dir: str, cfg: BackboneConfig, image_processor) -> tuple[torch.Tensor, list[str]]:
    """`cfg.clip_extra_figures` more (figure, caption) pairs for CLIP, rendered from `cfg.clip_figure_seed`.

    The figures of a synthetic corpus are a function of (seed, index), so a seed other than the dataset's gives
    figures none of which is in its validation or test split; the same seed is refused."""
    import io

    from PIL import Image

    from ..data.synthetic import generate_synthetic_records

    summary_file = Path(data_dir) / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    if summary.get("source") == "synthetic" and summary.get("seed") == cfg.clip_figure_seed:
        raise ValueError(f"clip_figure_seed={cfg.clip_figure_seed} is the seed of the dataset in {data_dir}: the extra "
                         "CLIP figures would include its held-out figures; pick another clip_figure_seed")
    captions = []

    def figures():
        for record in generate_synthetic_records(cfg.clip_extra_figures, seed=cfg.clip_figure_seed):
            captions.append(record.caption)
            yield Image.open(io.BytesIO(record.image)).convert("RGB")

    return pixel_values_in_chunks(figures(), image_processor), captions


def pixel_values_in_chunks(images, image_processor, chunk_size: int = 256) -> torch.Tensor:
    """Preprocess an iterable of figures `chunk_size` at a time: batched calls, but only one chunk of decoded images
    in memory at once (thousands of figures for CLIP pretraining)."""
    chunks, pending = [], []
    for image in images:
        pending.append(image)
        if len(pending) == chunk_size:
            chunks.append(image_processor(pending, return_tensors="pt")["pixel_values"])
            pending = []
    if pending:
        chunks.append(image_processor(pending, return_tensors="pt")["pixel_values"])
    return torch.cat(chunks)


def letter_lookup_of_llm(model, tokenizer, sqa_dir: str, split: str = "val") -> dict:
    """The pretrained LLM's answer letters under teacher forcing on the split's text-only ScienceQA problems (see
    scienceqa/letter_lookup.py): whether it has learned to find the solution's option among the options, the skill
    the miniature LLM learns last (abruptly, late in pretraining) and stage 2 builds on."""
    from ..scienceqa import load_scienceqa
    from ..scienceqa.letter_lookup import letter_lookup_report, teacher_forced_letters

    problems = [p for p in load_scienceqa(sqa_dir, split).problems if not p.has_image]
    if not problems:
        return {}
    report = letter_lookup_report(problems, teacher_forced_letters(model.eval(), tokenizer, problems))
    return {"split": split, "text_only_problems": report["problems"], "accuracy": report["accuracy"]}


def pretrain_backbones(data_dir: str, output_dir: str, cfg: BackboneConfig, sqa_dir: str | None = None,
                       language_model: bool = True) -> dict:
    """Train tokenizer, CLIP and LLaMA on the embedded corpus; save `OUT/clip` and `OUT/llama` HF folders.
    `language_model=False` trains the tokenizer and CLIP only (a real pretrained LLM will stand behind the projector)."""
    import datasets

    from ..scienceqa import load_scienceqa
    from ..scienceqa.formats import build_answer, user_message
    from ..scienceqa.problems import with_shuffled_options

    start = time.perf_counter()
    out = Path(output_dir)
    train = datasets.load_from_disk(str(data_dir))["train"]
    shown = []  # each ScienceQA training problem with `option_orders` orders of its options, orders side by side
    if sqa_dir:
        rng = random.Random(f"option-orders-{cfg.seed}")
        for problem in load_scienceqa(sqa_dir, "train").problems:
            shown += [problem if copy == 0 else with_shuffled_options(problem, rng) for copy in range(cfg.option_orders)]
    captions = list(train["caption"])
    exchanges = [[user_message(p, "QCM-LEPA"), {"role": "assistant", "content": [
        {"type": "text", "text": build_answer(p, "QCM-LEPA")}]}] for p in shown]  # the text; images stay unread
    stage1_messages = list(train["messages"])
    rendered = corpus_texts(stage1_messages, exchanges)  # images left out: no image token in them
    tokenizer = train_tokenizer(rendered + captions, vocab_size=cfg.vocab_size, chat_template=SCITUNE_CHAT_TEMPLATE,
                                isolate_option_letters=cfg.isolate_option_letters)
    corpus = llm_corpus(stage1_messages, list(train["figure_type"]), shown, exchanges, cfg, rendered)
    image_processor = figure_image_processor(cfg.image_size)
    images = pixel_values_in_chunks((row["images"][0] for row in train.select_columns(["images"])), image_processor)
    if cfg.clip_extra_figures:
        extra_images, extra_captions = extra_clip_pairs(data_dir, cfg, image_processor)
        images, captions = torch.cat([images, extra_images]), captions + extra_captions
    log = {"clip": [], "llama": []} if language_model else {"clip": []}
    trained = {"clip": train_clip(images, captions, tokenizer, cfg, log["clip"])}
    if language_model:
        trained["llama"] = train_llama(corpus.texts, tokenizer, cfg, log["llama"], corpus.slot_words,
                                       corpus.multiple_choice_from)
    lookup = letter_lookup_of_llm(trained["llama"], tokenizer, sqa_dir) if language_model and sqa_dir else {}
    if lookup:
        logger.info("pretrained LLaMA, teacher-forced answer letters (%s, text-only): %.1f%%", lookup["split"],
                    lookup["accuracy"])
    for name, model in trained.items():
        model.save_pretrained(out / name)
        tokenizer.save_pretrained(out / name)
    image_processor.save_pretrained(out / "clip")
    summary = {"clip": "clip", "llama": "llama" if language_model else None, "vocab_size": len(tokenizer),
               "clip_pairs": len(captions),
               **{f"{name}_params": sum(p.numel() for p in model.parameters()) for name, model in trained.items()},
               "final_loss": {k: v[-1]["loss"] for k, v in log.items()}, "llama_letter_lookup": lookup, "log": log,
               "wall_time_s": round(time.perf_counter() - start, 1), "config": cfg.__dict__}
    (out / "backbones.json").write_text(json.dumps(summary, indent=2))
    return summary
