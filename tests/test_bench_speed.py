"""benchmarks/bench_speed.py compares like with like: same weights, same kernel, same loss; no ratios asserted here."""

import importlib.util
from pathlib import Path

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_speed", ROOT / "benchmarks" / "bench_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scitune_and_llava_pair_compute_the_same_loss_on_the_same_kernel():
    bench = load_bench()
    scitune, llava, _, batch, _ = bench.build_pair(bench.SIZES["micro"], attn_implementation="eager")
    assert scitune.config.text_config._attn_implementation == llava.config.text_config._attn_implementation == "eager"
    with torch.no_grad():
        native = llava(**batch).loss
        ours = scitune(**batch).loss
        features = scitune.model.encode_images(batch["pixel_values"]).last_hidden_state
        cached = {k: v for k, v in batch.items() if k != "pixel_values"}
        cached["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(last_hidden_state=features)}
        from_cache = scitune(**cached).loss
    torch.testing.assert_close(ours, native, atol=1e-5, rtol=0)
    torch.testing.assert_close(from_cache, native, atol=1e-5, rtol=0)


def test_stage_as_packaged_trains_frozen_weights_in_bf16_and_gives_them_back():
    bench = load_bench()
    scitune, llava, _, batch, _ = bench.build_pair(bench.SIZES["micro"], attn_implementation="eager")
    before = {k: v.clone() for k, v in scitune.state_dict().items()}
    with bench.trained_as_packaged(scitune, "scitune", "stage1", "bfloat16"):
        assert scitune.lm_head.weight.dtype == torch.bfloat16
        assert scitune.model.multi_modal_projector.linear_1.weight.dtype == torch.float32
    with bench.trained_as_packaged(llava, "llava", "stage1", "bfloat16"):
        assert llava.lm_head.weight.dtype == torch.float32  # TRL's way: fp32 weights under autocast
    after = scitune.state_dict()
    assert all(torch.equal(after[k], v) and after[k].dtype == v.dtype for k, v in before.items())


def test_backbone_step_benchmark_times_the_real_pretraining_step():
    spec = importlib.util.spec_from_file_location("bench_backbone_step", ROOT / "benchmarks" / "bench_backbone_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.child(compile_step=False, steps=2)
    assert result["compiled"] is False
    assert result["ms"] > 0
    assert set(module.CONFIGS) == {"eager, default malloc", "eager, tuned malloc", "compiled, default malloc",
                                   "compiled, tuned malloc"}


def test_scienceqa_eval_timing_runs_both_paths_on_the_same_problems(tmp_path):
    from modeling_scitune.scienceqa.synthetic import write_synthetic_scienceqa

    bench = load_bench()
    scitune, llava, processor, _, _ = bench.build_pair(bench.SIZES["micro"], attn_implementation="eager")
    write_synthetic_scienceqa(20, tmp_path / "sqa", workers=1, progress=False)
    timed = bench.scienceqa_eval_seconds(scitune, llava, processor, str(tmp_path / "sqa"), n=6, max_new_tokens=6)
    assert timed["problems"] == 6 and timed["scitune_s"] > 0 and timed["llava_s"] > 0
    assert timed["same_answers"] == 6  # the batched SciTune run writes what the one-problem LLaVA loop writes


def test_results_file_sections_are_replaced_not_appended(tmp_path):
    from modeling_scitune.results_file import write_results_section

    results = tmp_path / "RESULTS.md"
    write_results_section(results, "bench_speed", "first")
    write_results_section(results, "other_script", "kept")
    write_results_section(results, "bench_speed", "second")
    text = results.read_text()
    assert text.count("## bench_speed") == 1 and "second" in text and "first" not in text and "kept" in text


def test_bench_size_compares_answers_of_models_with_the_same_weights(tmp_path):
    """The timed training steps change each model's weights along its own path: the ScienceQA comparison must still
    see identical weights on both sides (it runs on copies taken before training)."""
    from modeling_scitune.scienceqa.synthetic import write_synthetic_scienceqa

    bench = load_bench()
    write_synthetic_scienceqa(40, tmp_path / "sqa", workers=1, progress=False)
    result = bench.bench_size("micro", bench.SIZES["micro"], "float32", repeats=1, steps=2, peak_flops=1e11,
                              sqa_dir=str(tmp_path / "sqa"), memory_probes=1)
    assert result["scienceqa_same_answers"] == [f"{bench.SQA_PROBLEMS}/{bench.SQA_PROBLEMS}"]
    assert set(result["ratios"]) >= {"stage1_train", "generate_b1", "generate_b8", "scienceqa_eval", "peak_memory"}


def test_compiled_static_cache_decoding_gives_the_plain_greedy_tokens(tmp_path):
    """The fast path (static KV cache + compiled language model) decodes the same tokens as eager greedy decoding:
    run_scienceqa with it writes the same answers, over batches of different shapes and both passes."""
    import copy
    import json

    from modeling_scitune.evaluation.generation import compile_for_decoding
    from modeling_scitune.scienceqa.evaluate import run_scienceqa
    from modeling_scitune.scienceqa.synthetic import write_synthetic_scienceqa
    from modeling_scitune.speed.compiling import compile_available

    bench = load_bench()
    scitune, _, processor, _, _ = bench.build_pair(bench.SIZES["micro"], attn_implementation="eager")
    scitune.eval()
    probe = copy.deepcopy(scitune)
    assert compile_for_decoding(probe) == compile_available()[0]
    assert probe.generation_config.cache_implementation == ("static" if compile_available()[0] else None)

    write_synthetic_scienceqa(60, tmp_path / "sqa", seed=1, workers=1, progress=False)
    predictions = {}
    try:
        for name, model, compiled in (("plain", scitune, False), ("fast", copy.deepcopy(scitune), True)):
            run_scienceqa(None, str(tmp_path / "sqa"), str(tmp_path / name), batch_size=4, max_new_tokens=10,
                          model=model, processor=processor, progress=False, compile_decoding=compiled)
            predictions[name] = [json.loads(line)["text"] for line in (tmp_path / name / "predictions.jsonl").open()]
    finally:  # Dynamo's per-function recompile budget is process-wide: later tests compile the same LLaMA code afresh
        torch.compiler.reset()
    assert len(predictions["plain"]) == 6 and predictions["fast"] == predictions["plain"]
