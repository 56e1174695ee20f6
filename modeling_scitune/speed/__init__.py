"""Every CPU/GPU speed lever of training and evaluation, one module each, each off or on by one switch.

None changes what a stage learns; each reaches its effect through a public interface (a `datasets.map` step, a
Trainer callback, `nn.Module.compile`, a sampler transformers ships, the C library's `mallopt`). What each speeds up
is measured side by side by `benchmarks/bench_speed.py` and `benchmarks/bench_backbone_step.py` (figures in
benchmarks/RESULTS.md).

| lever | module | switch |
|---|---|---|
| train on frozen-tower features computed once (a data step adding a `vision_features` column) | `feature_cache` | `--feature_cache` (stage YAML `feature_cache:`) |
| frozen weights cast to bf16 once instead of on every autocast forward (a Trainer callback) | `frozen_bf16` | on with `--bf16` where the hardware has it |
| the language model / pretraining step compiled with Inductor, eager fallback | `compiling` | `--compile`; backbones `compile:` |
| batches of rows of similar length (transformers' `LengthGroupedSampler` over a `length` column) | `length_grouping` | `--train_sampling_strategy group_by_length` |
| the loss from the full logits instead of TRL's chunked fused LM head (which runs as many elementwise passes where there is no Triton: a CPU) | `training.answer_loss` | `--fused_lm_head false` (stage YAML `fused_lm_head:`) |
| freed memory kept for reuse instead of mmap/munmap on every step | `allocator` | `SCITUNE_MALLOC_TUNING=0` turns it off |
"""
