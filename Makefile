# Two commands after cloning: `make serve` starts the bot, `make test` runs the whole suite.
# Both create .venv first; `serve` installs the runtime dependencies only, `test` adds the test extras
# (again when pyproject.toml changes). `make lint` runs the static checks CI runs before the tests.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: serve test lint bench install install-test
install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

serve: install
	$(BIN)/devenv-bot serve

test: install-test
	$(BIN)/python -m pytest --cov --cov-report=term

lint: install-test
	$(BIN)/ruff check bot handlers tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install-test
	$(BIN)/python bench/webhooks.py
