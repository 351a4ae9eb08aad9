# Two commands after cloning: `make serve` starts the bot, `make test` runs the whole suite.
# Both create .venv and install the pinned dependencies first (once; again when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: serve test bench install
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

serve: install
	$(BIN)/devenv-bot serve

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/webhooks.py
