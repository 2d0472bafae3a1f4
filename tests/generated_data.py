"""Benchmarks generated afresh by ``shitu data synth`` for the tests of the shipped models."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.synth.assets import AssetsMissingError, default_assets_dir, require_npm_assets
from trainer.synth.dataset import synthesize
from trainer.synth.generator import SynthOptions


def generate_benchmark(tmp_path_factory: pytest.TempPathFactory, name: str, options: SynthOptions) -> Path:
    """A fresh dataset with ``options``; the npm assets must be installed (``make test`` installs them)."""
    try:
        require_npm_assets(default_assets_dir())
    except AssetsMissingError as error:
        pytest.fail(f"{error} (make test runs it)")
    out = tmp_path_factory.mktemp(name)
    synthesize(out, options, default_assets_dir(), workers=2)
    return out
