# One command sets up and runs the main job (`make demo`); one runs the tests (`make test`).
# Both create .venv on first use. torch==2.13.0 is installed first, on its own, so that on a
# CPU machine pip takes the local CPU wheel and the package's torch range is already met
# (an unpinned torch would pull a multi-GB CUDA build).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/harness run recipes/deepseek_n2.yaml

test: setup
	$(BIN)/python -m pytest
