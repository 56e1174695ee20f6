"""hub_scripts against a local Hub endpoint on 127.0.0.1 (tests/local_hub.py): push, download back, compare.

The scripts run as users run them, in subprocesses with HF_ENDPOINT pointing at the local server; nothing here can
reach the real Hub (the endpoint is loopback and the token is a dummy)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from modeling_scitune.data.builders import build_synthetic
from tests.chat_turns import user_turn
from tests.local_hub import LocalHub

ROOT = Path(__file__).resolve().parent.parent

DOWNLOAD_AND_GENERATE = r"""
import json, sys
sys.modules["modeling_scitune"] = None
from huggingface_hub import snapshot_download
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
folder = snapshot_download(sys.argv[1])
model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
messages = [{"role": "user", "content": [{"type": "text", "text": "What type of figure is this?"}, {"type": "image"}]}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(images=[Image.open(sys.argv[2]).convert("RGB")], text=prompt, return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
import os
print(json.dumps({"tokens": out[0].tolist(), "files": sorted(os.listdir(folder))}))
"""

LOAD_DATASET = r"""
import json, sys
from datasets import load_dataset
ds = load_dataset(sys.argv[1])
print(json.dumps({split: [list(row["images"][0].convert("RGB").getdata())[:4000:97] for row in ds[split]]
                  for split in ds} | {"_captions": list(ds["train"]["caption"])}))
"""


def hub_env(hub, tmp_path):
    return {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_local_test_token", "HF_HUB_OFFLINE": "0",
            "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_XET": "1", "PYTHONPATH": str(ROOT)}


def run(args, env, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_push_model_then_download_gives_same_greedy_output(tiny_linear_dir, figures, tmp_path):
    image = tmp_path / "figure.png"
    figures[0].save(image)
    with LocalHub() as hub:
        env = hub_env(hub, tmp_path)
        result = run([str(ROOT / "hub_scripts" / "push_model.py"), str(tiny_linear_dir), "--repo-id", "sci/tiny",
                      "--max-shard-size", "300KB", "--base-model", "openai/clip-vit-large-patch14"], env, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        files = hub.files("sci/tiny")
        shards = [name for name in files if name.startswith("model-") and name.endswith(".safetensors")]
        assert len(shards) >= 2 and "model.safetensors.index.json" in files  # sharded above the size limit
        assert {"config.json", "modeling_scitune.py", "processing_scitune.py", "configuration_scitune.py",
                "chat_template.jinja", "tokenizer.json", "processor_config.json", "generation_config.json"} <= set(files)
        readme = files["README.md"].decode()
        assert readme.startswith("---\nlicense: bsd-3-clause\nlibrary_name: transformers\npipeline_tag: image-text-to-text")
        assert "- openai/clip-vit-large-patch14" in readme and "[published" not in readme.split("---")[1]
        commits = [r for r in hub.state.requests if r.startswith("POST /api/models/sci/tiny/commit/")]
        assert len(commits) == 1  # one commit
        downloaded = run(["-c", DOWNLOAD_AND_GENERATE, "sci/tiny", str(image)], env, tmp_path)
    assert downloaded.returncode == 0, downloaded.stderr[-3000:]
    remote = json.loads(downloaded.stdout.strip().splitlines()[-1])
    model = AutoModelForImageTextToText.from_pretrained(tiny_linear_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(tiny_linear_dir, trust_remote_code=True)
    prompt = processor.apply_chat_template(user_turn("What type of figure is this?"), add_generation_prompt=True)
    from PIL import Image

    inputs = processor(images=[Image.open(image).convert("RGB")], text=prompt, return_tensors="pt")
    with torch.no_grad():
        local = model.generate(**inputs, max_new_tokens=8, do_sample=False)[0].tolist()
    assert remote["tokens"] == local


@pytest.mark.parametrize("damage, reason, dry_run", [
    ("missing_code", "missing modeling_scitune.py", False),
    ("corrupt_weights", "would not work for users", False),
    ("nan_weights", "hold NaN or Inf values (lm_head.weight", False),
    ("nan_weights", "hold NaN or Inf values (lm_head.weight", True),
    ("auto_map_missing_class", "auto_map AutoModel -> modeling_scitune.SciTuneMissing does not load", True),
    ("config_edit_missing_keys", "the weights do not match the config (missing_keys", True),
])
def test_broken_folder_is_refused_before_any_upload(tiny_linear_dir, tmp_path, damage, reason, dry_run):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_linear_dir, broken)
    weights, config_file = broken / "model.safetensors", broken / "config.json"
    config = json.loads(config_file.read_text())
    if damage == "missing_code":
        (broken / "modeling_scitune.py").unlink()
    elif damage == "corrupt_weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "nan_weights":
        state = load_file(str(weights))
        state["lm_head.weight"][0, 0] = float("nan")
        save_file(state, str(weights), metadata={"format": "pt"})
    elif damage == "auto_map_missing_class":
        config["auto_map"]["AutoModel"] = "modeling_scitune.SciTuneMissing"
    else:  # one more LLM layer in the config: its weights are not in the file and would be random
        config["text_config"]["num_hidden_layers"] += 1
    config_file.write_text(json.dumps(config))
    with LocalHub() as hub:
        result = run([str(ROOT / "hub_scripts" / "push_model.py"), str(broken), "--repo-id", "sci/broken"]
                     + (["--dry-run"] if dry_run else []), hub_env(hub, tmp_path), tmp_path)
        assert result.returncode == 2, result.stdout[-2000:]
        assert "refusing to upload" in result.stderr and reason in result.stderr, result.stderr[-2000:]
        assert hub.state.requests == []  # nothing reached the Hub


def test_dry_run_lists_files_and_uploads_nothing(tiny_linear_dir, tmp_path):
    with LocalHub() as hub:
        result = run([str(ROOT / "hub_scripts" / "push_model.py"), str(tiny_linear_dir), "--repo-id", "sci/x",
                      "--dry-run"], hub_env(hub, tmp_path), tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "model.safetensors" in result.stdout and "README.md" in result.stdout and "dry run" in result.stdout
        assert hub.state.requests == []


def test_push_dataset_and_load_it_back(tmp_path):
    import datasets

    build_synthetic(15, tmp_path / "data", workers=1)
    local = datasets.load_from_disk(str(tmp_path / "data"))
    with LocalHub() as hub:
        env = hub_env(hub, tmp_path)
        result = run([str(ROOT / "hub_scripts" / "push_dataset.py"), str(tmp_path / "data"), "--repo-id", "sci/figs"],
                     env, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        card = hub.files("sci/figs", kind="dataset")["README.md"].decode()
        assert "license: cc-by-4.0" in card and "dataset_info" in card and "SciTune instruction dataset" in card
        loaded = run(["-c", LOAD_DATASET, "sci/figs"], env, tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    remote = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert remote["_captions"] == list(local["train"]["caption"])
    for split in local:
        expected = [list(row["images"][0].convert("RGB").getdata())[:4000:97] for row in local[split]]
        assert [[list(p) for p in px] for px in expected] == remote[split]
