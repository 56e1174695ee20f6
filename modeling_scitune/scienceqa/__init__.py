"""ScienceQA: problems, loaders (lupantech / HF parquet / embedded set), prompt formats, protocols and scoring."""

from .formats import FORMATS, build_answer, build_question, to_conversation
from .loaders import LoadResult, load_hf_parquet, load_lupantech, load_scienceqa
from .problems import LETTERS, Problem
from .protocols import PROTOCOLS, get_protocol, parse_llava, parse_lmms_eval, parse_scitune
from .scoring import COLUMNS, score

__all__ = ["COLUMNS", "FORMATS", "LETTERS", "PROTOCOLS", "LoadResult", "Problem", "build_answer", "build_question",
           "get_protocol", "load_hf_parquet", "load_lupantech", "load_scienceqa", "parse_llava", "parse_lmms_eval",
           "parse_scitune", "score", "to_conversation"]
