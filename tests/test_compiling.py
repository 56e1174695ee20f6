"""torch.compile in the backbone pretraining loop: same training as eager, reproducible, and a clean eager fallback."""

import logging

import torch

from modeling_scitune.tiny import default_corpus, train_tokenizer
from modeling_scitune.training.backbones import train_llama
from modeling_scitune.speed.compiling import CompiledWithFallback, compile_available, compile_in_place
from modeling_scitune.training.backbone_config import BackboneConfig

SMALL_LLM = dict(text_hidden=48, text_layers=2, text_heads=4, text_kv_heads=2, vocab_size=600, block_size=32,
                 llm_steps=6, llm_batch_size=4, bf16=False)


def _pretrain(compile: bool):
    texts = default_corpus()
    tokenizer = train_tokenizer(texts, vocab_size=600)
    log = []
    model = train_llama(texts, tokenizer, BackboneConfig(**SMALL_LLM, compile=compile), log)
    return model, [row["loss"] for row in log]


def test_compiled_pretraining_matches_eager_and_repeats_exactly():
    assert compile_available()[0], compile_available()[1]  # this machine and CI have a C++ compiler
    eager_model, eager_losses = _pretrain(compile=False)
    compiled_model, compiled_losses = _pretrain(compile=True)
    again_model, again_losses = _pretrain(compile=True)
    assert compiled_losses == again_losses  # same seed -> same numbers, compiled too
    for (name, a), b in zip(compiled_model.state_dict().items(), again_model.state_dict().values()):
        assert torch.equal(a, b), name
    assert len(eager_losses) == len(compiled_losses) >= 2
    for e, c in zip(eager_losses, compiled_losses):  # fused kernels round differently, the training is the same
        assert abs(e - c) < 1e-3 * max(abs(e), 1.0), (eager_losses, compiled_losses)


def test_wrapper_really_compiles_and_gives_eager_outputs():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1)).eval()
    ids = torch.randint(0, 100, (2, 12))
    wrapper = CompiledWithFallback(model)
    with torch.no_grad():
        compiled, eager = wrapper(input_ids=ids).logits, model(input_ids=ids).logits
    assert wrapper.is_compiled  # the compiled call ran without falling back
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_without_a_compiler_training_runs_eager_with_a_warning(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no c++ / g++ to be found
    monkeypatch.delenv("CXX", raising=False)
    assert compile_available() == (False, "no C++ compiler (c++ / g++) on PATH")
    model = torch.nn.Linear(3, 2)
    with caplog.at_level(logging.WARNING, logger="modeling_scitune.speed.compiling"):
        wrapper = CompiledWithFallback(model)
    assert not wrapper.is_compiled
    assert "torch.compile skipped (no C++ compiler" in caplog.text and "eager mode" in caplog.text
    x = torch.ones(1, 3)
    assert torch.equal(wrapper(x), model(x))


def test_compile_in_place_keeps_the_module_its_keys_and_its_outputs(monkeypatch, caplog):
    from torch._dynamo.utils import counters
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1)).eval()
    ids = torch.randint(0, 100, (2, 12))
    keys, inner = list(model.state_dict()), model.model
    with torch.no_grad():
        eager = model(input_ids=ids).logits
        graphs = counters["stats"]["unique_graphs"]
        assert compile_in_place(model.model)
        compiled = model(input_ids=ids).logits
    assert counters["stats"]["unique_graphs"] > graphs  # it really ran through Dynamo
    assert model.model is inner and list(model.state_dict()) == keys  # same module, same checkpoint keys
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    assert not compile_in_place(torch.nn.Linear(2, 2), enabled=False)
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setenv("PATH", "/nonexistent")
    with caplog.at_level(logging.WARNING, logger="modeling_scitune.speed.compiling"):
        assert not compile_in_place(torch.nn.Linear(2, 2))
    assert "torch.compile skipped" in caplog.text


class _Scale(torch.nn.Module):  # defined outside torch.nn: Dynamo does not trace torch's own modules' code
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((3,), 2.0))

    def forward(self, x):
        return torch.relu(x * self.weight)


def test_pretraining_wrapper_falls_back_to_eager_when_the_backend_fails(caplog):
    model = _Scale()
    x = torch.ones(1, 3)
    wrapper = CompiledWithFallback(model)
    wrapper.compiled = torch.compile(model, backend=_failing_backend)
    with caplog.at_level(logging.WARNING, logger="modeling_scitune.speed.compiling"):
        out = wrapper(x)
    assert wrapper.compiled is None
    assert "torch.compile failed for _Scale" in caplog.text and "eager mode" in caplog.text
    assert torch.equal(out, model(x))


def _failing_backend(graph, example_inputs):
    raise RuntimeError("backend broke")
