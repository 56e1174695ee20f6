"""Batched generation for the benchmarks: one place where prompts, images and decoding settings meet `generate`.

Rows are left-padded into one batch; `stop_strings` end each row on its own (transformers' `StopStringCriteria`:
a finished row only waits for the rest, filled with padding that decoding skips), so one long answer does not make
the others generate further. Greedy by default; `Sampling` reproduces a sampled protocol with a seed.
`compile_for_decoding` is the fast path for long evaluations: a static KV cache and a compiled language model, the
same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    """Sampling settings (the original SciTune evaluation: temperature 0.7, transformers' default top-k 50 / top-p 1)."""

    temperature: float = 0.7
    top_k: int = 50
    top_p: float = 1.0
    seed: int = 0

    def generate_kwargs(self) -> dict:
        return {"do_sample": True, "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p}


def load_model(model_dir: str, device: str | None = None, dtype: str = "auto"):
    """A SciTune (or any image-text-to-text) folder and its processor, in eval mode; bf16 on CUDA, else fp32."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = {"auto": torch.bfloat16 if device == "cuda" else torch.float32, "float32": torch.float32,
                   "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model = AutoModelForImageTextToText.from_pretrained(model_dir, trust_remote_code=True, dtype=torch_dtype)
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
    return model.to(device).eval(), processor


def compile_for_decoding(model) -> bool:
    """Compile the model's language model (`nn.Module.compile`, in place) and make a static KV cache its default
    (`generation_config.cache_implementation = "static"`, transformers' own); returns whether it compiled.

    Why: a decoding step of a small LLM is many tiny kernels that eager PyTorch launches one by one; with a static
    cache every step of a `generate` call has the same shapes, so the compiled step is reused for each new token.
    Greedy tokens are the same as eager decoding's. It pays over long evaluations (thousands of problems): the first
    call of each new batch shape compiles again (seconds on a CPU; past Dynamo's recompile limit, further shapes run
    eagerly, with the same tokens). On CUDA transformers compiles a static-cache `generate` by itself; the language
    model compiled here serves CPUs too. Not for a model that will be saved: the static cache becomes its saved
    default."""
    from ..speed.compiling import compile_in_place

    if not compile_in_place(model.model.language_model):
        return False
    model.generation_config.cache_implementation = "static"
    return True


def generate_texts(model, processor, prompts: list[str], images: list, max_new_tokens: int,
                   stop_strings: list[str] | None = None, sampling: Sampling | None = None) -> list[str]:
    """The decoded new text of each prompt (special tokens skipped). `images` lists every image in prompt order."""
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    inputs = processor(images=images or None, text=prompts, padding=True, return_tensors="pt").to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    kwargs = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    if stop_strings:
        kwargs.update(stop_strings=list(stop_strings), tokenizer=tokenizer)
    if sampling is not None:
        torch.manual_seed(sampling.seed)
        kwargs.update(sampling.generate_kwargs())
    else:
        kwargs["do_sample"] = False
    with torch.inference_mode():
        output = model.generate(**inputs, **kwargs)
    return tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
