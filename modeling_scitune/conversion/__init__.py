"""Checkpoint conversion: original SciTune / LLaVA-v0 releases -> SciTune folders, and SciTune -> native LLaVA."""

from .checkpoint_files import CheckpointError, parse_dtype, read_state_dict
from .original import apply_delta, read_adapter_release, read_full_release, write_scitune
from .original_tokenizer import OriginalTokenizerError, load_original_tokenizer
from .to_llava import export_to_llava


def convert_original(original, output_dir, vision_model=None, dtype=None):
    """A full original checkpoint folder -> SciTune folder; returns (model, processor)."""
    return write_scitune(read_full_release(original, vision_model, parse_dtype(dtype)), output_dir)


def convert_delta(base_model, delta, output_dir, vision_model=None, dtype=None):
    """A LLaVA-v0 delta release applied to its base LLaMA -> SciTune folder."""
    state = apply_delta(base_model, delta)
    return write_scitune(read_full_release(delta, vision_model, parse_dtype(dtype), state=state), output_dir)


def convert_adapter(base_model, adapter, vision_model, output_dir, use_im_start_end=True, select_layer=-2, dtype=None):
    """An adapter-only release (projector + embeddings) on a base LLaMA and a CLIP -> SciTune folder."""
    release = read_adapter_release(base_model, adapter, vision_model, use_im_start_end, select_layer, parse_dtype(dtype))
    return write_scitune(release, output_dir)


__all__ = ["CheckpointError", "OriginalTokenizerError", "apply_delta", "convert_adapter", "convert_delta",
           "convert_original", "export_to_llava", "load_original_tokenizer", "read_state_dict"]
