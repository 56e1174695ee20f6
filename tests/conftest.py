"""Shared fixtures: one offline tokenizer and tiny SciTune checkpoints built once per test session.

Nothing here reaches a hub: HF_HUB_OFFLINE is forced and the Hugging Face cache points into a temporary folder.
"""

import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix="scitune-hf-home-")
_BUILD_CACHE = tempfile.mkdtemp(prefix="scitune-build-cache-")  # never the developer's .cache
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = _CACHE
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["SCITUNE_CACHE"] = _BUILD_CACHE

import pytest  # noqa: E402
import torch  # noqa: E402

from modeling_scitune.tiny import build_tiny_scitune, default_corpus, demo_figure, train_tokenizer  # noqa: E402

torch.set_num_threads(2)


def pytest_sessionfinish(session, exitstatus):
    """The session's temporary Hugging Face home and build cache go with it (a long-lived machine keeps no litter)."""
    for folder in (_CACHE, _BUILD_CACHE):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(default_corpus())


@pytest.fixture(scope="session")
def tiny_linear_dir(tmp_path_factory, tokenizer):
    out = tmp_path_factory.mktemp("tiny-linear")
    build_tiny_scitune(out, projector_type="linear", tokenizer=tokenizer, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_mlp_dir(tmp_path_factory, tokenizer):
    out = tmp_path_factory.mktemp("tiny-mlp")
    build_tiny_scitune(out, projector_type="mlp2x_gelu", tokenizer=tokenizer, seed=1)
    return out


@pytest.fixture(scope="session")
def figures():
    return [demo_figure("Bar Chart", seed=0), demo_figure("Graph Plot", seed=1), demo_figure("Bar Chart", seed=2)]
