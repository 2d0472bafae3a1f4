# The two commands of the README: `make run` (install + serve the default models with the demo
# gallery) and `make test` (install + lint + the whole suite). Every install step lives here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench assets

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[trainer,test]'
	touch $@

# Registry assets of `shitu data synth|demo` (idempotent). ASSETS=--minimal: npm only (tests, demo);
# ASSETS=--full: + Plasma wallpapers and openclipart-png for full datasets; default: npm + MATE/GNOME wallpapers.
assets:
	scripts/install-assets.sh $(ASSETS)

# Until trained defaults are committed to model_store/embedder/default and detector/default, `make run`
# serves the trainer's ImageNet EfficientNet-Lite0 embedder export, without a detector (whole image only).
IMAGENET_EMBEDDER := model_store/embedder/efficientnet-lite0-imagenet

$(IMAGENET_EMBEDDER)/manifest.json: $(VENV)/.installed
	$(BIN)/shitu export rec --arch efficientnet_lite0 --out $(IMAGENET_EMBEDDER)

run: install $(IMAGENET_EMBEDDER)/manifest.json
	scripts/install-assets.sh --minimal
	SHITU_MODELS__EMBEDDER=embedder/efficientnet-lite0-imagenet SHITU_MODELS__DETECTOR= $(BIN)/shitu serve --demo

lint: install
	$(BIN)/ruff check service trainer tests bench

test: lint
	scripts/install-assets.sh --minimal
	$(BIN)/python -m pytest -q
