#!/usr/bin/env python
"""Push a SciTune folder to the Hugging Face Hub (or any Hub endpoint) in one commit.

    python hub_scripts/push_model.py FOLDER --repo-id ORG/NAME [--private] [--revision BRANCH]
        [--commit-message MSG] [--dry-run] [--endpoint URL] [--max-shard-size 5GB]
        [--base-model NAME ...] [--dataset NAME ...]

Stages exactly what a user needs (safetensors weights, sharded above --max-shard-size; config with auto_map; the three
code files; processor, tokenizer and chat template; generation config; MODEL_CARD.md as README.md with YAML metadata),
loads the staged folder in a clean interpreter with trust_remote_code and generates once - refusing to upload a
folder that fails - then creates the repo and uploads. The endpoint comes from --endpoint or HF_ENDPOINT.
"""

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def push_model(folder, repo_id, private=False, revision="main", commit_message=None, dry_run=False, endpoint=None,
               max_shard_size="5GB", base_models=(), datasets=(), token=None):
    from huggingface_hub import HfApi

    from modeling_scitune.publishing import stage_model_folder, verify_in_clean_process

    with tempfile.TemporaryDirectory() as staging:
        files = stage_model_folder(folder, staging, ROOT / "MODEL_CARD.md", max_shard_size, base_models, datasets)
        print(f"staged {len(files)} files ({sum(files.values()) / 1e6:.1f} MB):")
        for name, size in files.items():
            print(f"  {name:<40} {size:>14,d} B")
        print("checking that the staged folder loads and generates in a clean interpreter ...")
        print("  " + verify_in_clean_process(staging))
        if dry_run:
            print("dry run: nothing uploaded")
            return None
        api = HfApi(endpoint=endpoint, token=token)
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        commit = api.upload_folder(folder_path=staging, repo_id=repo_id, repo_type="model", revision=revision,
                                   commit_message=commit_message or f"Upload SciTune model from {Path(folder).name}")
        print(f"uploaded to {url} @ {revision}: {commit.oid}")
        return commit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--repo-id", required=True)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default="main")
    parser.add_argument("--commit-message")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or huggingface.co)")
    parser.add_argument("--max-shard-size", default="5GB")
    parser.add_argument("--base-model", action="append", default=[])
    parser.add_argument("--dataset", action="append", default=[])
    args = parser.parse_args(argv)
    from modeling_scitune.publishing import StagingError

    try:
        push_model(args.folder, args.repo_id, args.private, args.revision, args.commit_message, args.dry_run,
                   args.endpoint, args.max_shard_size, args.base_model, args.dataset)
    except StagingError as err:
        print(f"refusing to upload: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
