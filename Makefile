# The two commands of the README: `make run` (install + serve the default models with the demo
# gallery) and `make test` (install + lint + the whole suite). Every install step lives here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[trainer,test]'
	touch $@

run: install
	$(BIN)/shitu serve --demo

lint: install
	$(BIN)/ruff check service trainer tests bench

test: lint
	$(BIN)/python -m pytest -q
