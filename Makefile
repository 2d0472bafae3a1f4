# The two commands of the README: `make run` (install + serve the default models with the demo
# gallery) and `make test` (install + lint + type check + the whole suite). Every install step lives here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench assets

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[trainer,test,cluster]'
	touch $@

# Registry assets of `shitu data synth|demo` (idempotent). ASSETS=--minimal: npm only (tests, demo);
# ASSETS=--full: + Plasma wallpapers and openclipart-png for full datasets; default: npm + MATE/GNOME wallpapers.
assets:
	scripts/install-assets.sh $(ASSETS)

# Serves model_store/detector/default + model_store/embedder/default, the shipped detector and embedder, and
# fills an empty gallery with the demo products.
run: install
	scripts/install-assets.sh --minimal
	$(BIN)/shitu serve --demo

lint: install
	$(BIN)/ruff check service trainer shitu tests bench
	$(BIN)/mypy  # service/, trainer/ and shitu/ ([tool.mypy] in pyproject.toml): 0 errors

# The whole suite, slow tests included, once, in a random order: pytest-randomly shuffles modules and tests and
# prints the seed (rerun that order with -p randomly --randomly-seed=N; the file order with -p no:randomly).
# A quick loop while editing: pytest -m "not slow". tests/ui drive Debian's Chromium (scripts/install-chromium.sh);
# the cluster gallery tests start their own PostgreSQL server from Debian's binaries (scripts/install-postgresql.sh).
test: lint
	scripts/install-assets.sh --minimal
	scripts/install-chromium.sh
	scripts/install-postgresql.sh
	$(BIN)/python -m pytest -q -p randomly
