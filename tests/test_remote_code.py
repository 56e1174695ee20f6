"""The saved folder is self-contained: it loads with trust_remote_code where `modeling_scitune` cannot be imported."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

import modeling_scitune
from tests.chat_turns import user_turn

HUB_TRIO = ("configuration_scitune.py", "modeling_scitune.py", "processing_scitune.py")

# Runs in a fresh interpreter: the installed package is made unimportable before anything else happens.
REMOTE_LOAD_SCRIPT = r"""
import json, sys
sys.modules["modeling_scitune"] = None  # `import modeling_scitune` now raises ImportError
try:
    import modeling_scitune  # noqa
    raise SystemExit("modeling_scitune was importable")
except ImportError:
    pass
import torch
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor
from PIL import Image
folder = sys.argv[1]
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
model_itt = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
image = Image.open(sys.argv[2])
messages = [{"role": "user", "content": [{"type": "text", "text": "What type of figure is this?"}, {"type": "image"}]}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(images=[image], text=prompt, return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
out_itt = model_itt.generate(**inputs, max_new_tokens=8, do_sample=False)
print(json.dumps({
    "config": type(config).__module__ + "." + type(config).__name__,
    "model": type(model).__module__ + "." + type(model).__name__,
    "processor": type(processor).__name__,
    "tokens": out[0].tolist(),
    "tokens_itt": out_itt[0].tolist(),
}))
"""


def test_saved_folder_has_everything(tiny_linear_dir):
    names = {p.name for p in Path(tiny_linear_dir).iterdir()}
    expected = {"config.json", "model.safetensors", "generation_config.json", "chat_template.jinja",
                "processor_config.json", "tokenizer.json", "tokenizer_config.json", *HUB_TRIO}
    assert expected <= names
    assert not any(n.endswith((".bin", ".pt", ".pth")) for n in names)  # safetensors only, never pickle
    auto_map = json.loads((tiny_linear_dir / "config.json").read_text())["auto_map"]
    assert set(auto_map) >= {"AutoConfig", "AutoModel", "AutoModelForImageTextToText", "AutoProcessor"}
    processor_map = json.loads((tiny_linear_dir / "processor_config.json").read_text())["auto_map"]
    assert processor_map["AutoProcessor"] == "processing_scitune.SciTuneProcessor"


def test_hub_files_import_only_each_other_transformers_and_torch():
    package = Path(modeling_scitune.__file__).parent
    for name in HUB_TRIO:
        tree = ast.parse((package / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level == 1:  # sibling import: must be one of the trio
                    assert f"{node.module}.py" in HUB_TRIO, (name, node.module)
                    continue
                assert node.level == 0, (name, node.module)
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= {"torch", "transformers", "dataclasses", "__future__", "typing"}, (name, roots)


def test_loads_in_clean_subprocess_without_package(tiny_linear_dir, figures, tmp_path):
    image_path = tmp_path / "figure.png"
    figures[0].save(image_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD_SCRIPT, str(tiny_linear_dir), str(image_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["config"].startswith("transformers_modules.") and report["config"].endswith("SciTuneConfig")
    assert report["model"].startswith("transformers_modules.")
    assert report["model"].endswith("SciTuneForConditionalGeneration")  # AutoModel gives a model that generates
    assert report["processor"] == "SciTuneProcessor"

    model = AutoModelForImageTextToText.from_pretrained(tiny_linear_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(tiny_linear_dir, trust_remote_code=True)
    prompt = processor.apply_chat_template(user_turn("What type of figure is this?"), add_generation_prompt=True)
    inputs = processor(images=[figures[0].convert("RGB")], text=prompt, return_tensors="pt")
    with torch.no_grad():
        local = model.generate(**inputs, max_new_tokens=8, do_sample=False)[0].tolist()
    assert report["tokens"] == local == report["tokens_itt"]
