# The two commands a newcomer needs: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config/local.toml

.PHONY: run test bench soak check-config clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/gateway serve --config $(CONFIG)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

check-config: $(VENV)/.installed
	$(BIN)/gateway check-config $(CONFIG)

clean:
	rm -rf $(VENV) var .pytest_cache

# Benchmark against a bare pass-through proxy (see tests/bench/run.py); wrk is used when installed.
bench: $(VENV)/.installed
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

soak: $(VENV)/.installed
	$(BIN)/python -m tests.bench.run --soak 300 $(BENCH_ARGS)
