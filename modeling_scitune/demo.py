"""`make demo`: the main job on an embedded default.

For now: build a tiny random-weight SciTune checkpoint (offline tokenizer, CLIP + LLaMA backbones), save it as a
normal Hub-style folder, reload it through `pipeline("image-text-to-text", trust_remote_code=True)` and ask it
about a generated scientific figure. The weights are random, so the answer is noise; what the demo shows is
the whole contract working end to end without any network.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def run_demo(output_dir: str | Path = "outputs/demo", seed: int = 0) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import pipeline

    from .tiny import build_tiny_scitune, demo_figure

    output_dir = Path(output_dir)
    start = time.perf_counter()
    model_dir = output_dir / "tiny-scitune"
    build_tiny_scitune(model_dir, seed=seed)
    figure = demo_figure("Bar Chart", seed=seed)
    figure_path = output_dir / "figure.png"
    figure.save(figure_path)
    pipe = pipeline("image-text-to-text", model=str(model_dir), trust_remote_code=True, device="cpu")
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "What type of figure is this?"}, {"type": "image", "path": str(figure_path)}]}]
    answer = pipe(text=messages, return_full_text=False, generate_kwargs={"max_new_tokens": 16, "do_sample": False})
    summary = {
        "model_dir": str(model_dir),
        "figure": str(figure_path),
        "question": "What type of figure is this?",
        "answer": answer[0]["generated_text"],
        "wall_time_s": round(time.perf_counter() - start, 2),
    }
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="outputs/demo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = run_demo(args.output_dir, args.seed)
    print("\n== SciTune demo ==")
    for key, value in summary.items():
        print(f"{key:>14}: {value}")


if __name__ == "__main__":
    main()
