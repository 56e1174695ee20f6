"""Scientific multimodal instruction data: figure records, C/CT/CTO/CTOM instructions, readers, dataset builder.

Nothing here travels to the Hub and nothing here imports the training code.
"""

from .build import BuildReport, build_dataset, save_dataset
from .instructions import DESCRIBE_PROMPTS, VARIANTS, build_conversation, build_target, replace_figure_words
from .records import FIGURE_TYPES, FigureRecord, InvalidRecord

__all__ = [
    "BuildReport",
    "DESCRIBE_PROMPTS",
    "FIGURE_TYPES",
    "VARIANTS",
    "FigureRecord",
    "InvalidRecord",
    "build_conversation",
    "build_dataset",
    "build_target",
    "replace_figure_words",
    "save_dataset",
]
