#!/usr/bin/env python
"""Push a SciTune instruction dataset (a `scitune-data` output folder, images included) to the Hub with its card.

    python hub_scripts/push_dataset.py DATASET_DIR --repo-id ORG/NAME [--private] [--dry-run] [--endpoint URL]

Uses `DatasetDict.push_to_hub` (parquet shards with embedded images), then merges the folder's dataset card
(README.md: license, source, variant, counts, skipped items) with the `configs` / `dataset_info` metadata that
push_to_hub wrote. The endpoint comes from --endpoint or HF_ENDPOINT.
"""

import argparse
import os
import sys
from pathlib import Path


def push_dataset(dataset_dir, repo_id, private=False, dry_run=False, endpoint=None, token=None):
    import datasets
    from huggingface_hub import DatasetCard, DatasetCardData, HfApi

    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "dataset_dict.json").is_file():
        raise SystemExit(f"{dataset_dir} is not a saved DatasetDict (no dataset_dict.json): build it with scitune-data")
    dataset = datasets.load_from_disk(str(dataset_dir))
    print(f"{dataset_dir}: " + ", ".join(f"{split} {len(ds)} rows" for split, ds in dataset.items()))
    if dry_run:
        size = sum(p.stat().st_size for p in dataset_dir.rglob("*.arrow"))
        print(f"dry run: would push {size / 1e6:.1f} MB of arrow data as parquet to {repo_id}")
        return None
    if endpoint:
        os.environ["HF_ENDPOINT"] = endpoint
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    dataset.push_to_hub(repo_id, private=private, token=token, commit_message="Upload SciTune instruction dataset")
    ours = dataset_dir / "README.md"
    if ours.is_file():
        hub_card = DatasetCard.load(repo_id, repo_type="dataset", token=token)
        local = DatasetCard(ours.read_text())
        merged = hub_card.data.to_dict()
        merged.update({k: v for k, v in local.data.to_dict().items() if k not in ("configs", "dataset_info")})
        card = DatasetCard(f"---\n{DatasetCardData(**merged).to_yaml()}\n---\n{local.text}")
        card.push_to_hub(repo_id, repo_type="dataset", token=token, commit_message="Add SciTune dataset card")
    print(f"pushed {repo_id}")
    return repo_id


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir")
    parser.add_argument("--repo-id", required=True)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or huggingface.co)")
    args = parser.parse_args(argv)
    push_dataset(args.dataset_dir, args.repo_id, args.private, args.dry_run, args.endpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
