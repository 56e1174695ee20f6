"""ScienceQA: problems, loaders (lupantech / HF parquet / embedded set), prompt formats, parsing and scoring."""

from .formats import FORMATS, build_answer, build_question, to_conversation
from .loaders import LoadResult, load_hf_parquet, load_lupantech, load_scienceqa
from .parsing import parse_answer, parse_letter
from .problems import LETTERS, Problem
from .scoring import COLUMNS, score

__all__ = ["COLUMNS", "FORMATS", "LETTERS", "LoadResult", "Problem", "build_answer", "build_question",
           "load_hf_parquet", "load_lupantech", "load_scienceqa", "parse_answer", "parse_letter", "score",
           "to_conversation"]
