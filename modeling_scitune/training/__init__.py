"""Training: miniature pretrained backbones, stage 1 (projector only) and stage 2 (ScienceQA) with TRL."""
