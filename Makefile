# Two commands on a fresh machine: `make demo` (main job) and `make test` (test suite).
VENV ?= .venv
EXTRAS ?= all
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: install demo test lint format

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV) $(EXTRAS)
	touch $@

install: $(STAMP)

demo: $(STAMP)  ## shipped checkpoint -> export -> parity -> latency -> report
	$(BIN)/lightseg demo

test: $(STAMP)  ## lint + the whole test suite
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/pytest -q tests

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .
