"""``shitu train rec-start --from <export>``: a shipped embedder's anonymous weights back under our names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from service.config import RuntimeSettings
from service.inference.manifest import load_manifest
from service.inference.models import load_embedder
from shitu.cli import app
from trainer.models import load_recognition_checkpoint
from trainer.recognition.export import export_recognition
from trainer.recognition.from_export import ConversionError, export_network, write_start

pytestmark = pytest.mark.slow  # exports and loads the shipped embedder three times

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "model_store" / "embedder" / "default"


def _features(model_dir: Path, crops: list[np.ndarray]) -> np.ndarray:
    return load_embedder(model_dir, RuntimeSettings(cpu_threads=1), max_batch_size=4).embed(crops)


def test_the_shipped_embedder_exported_again_from_its_start_is_the_same(tmp_path: Path) -> None:
    start = tmp_path / "start.pdparams"
    result = CliRunner().invoke(app, ["train", "rec-start", "--from", str(SHIPPED), "--out", str(start)])
    assert result.exit_code == 0, result.output
    model, input_size = export_network(SHIPPED)
    loaded = load_recognition_checkpoint(model, start)
    assert len(loaded) == len(model.state_dict())  # every tensor of the network, none left at its random start
    preprocess = load_manifest(SHIPPED).preprocess
    export_recognition(model, tmp_path / "again", name="again", version="0", input_size=input_size,
                       keep_ratio=preprocess.keep_ratio)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for height, width in ((200, 90), (64, 64))]
    shipped, again = _features(SHIPPED, crops), _features(tmp_path / "again", crops)
    assert np.abs(shipped).max() > 0.01
    np.testing.assert_allclose(again, shipped, atol=1e-6)


def test_only_an_embedder_trained_here_is_a_start(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="not an embedder|no embedder trained"):
        write_start(REPO / "model_store" / "detector" / "default", tmp_path / "start.pdparams")
    with pytest.raises(ConversionError):
        write_start(tmp_path, tmp_path / "start.pdparams")
    folded = tmp_path / "pplcnetv2"
    shutil.copytree(SHIPPED, folded)
    manifest = json.loads((folded / "manifest.json").read_text())
    manifest["provenance"]["recipe"]["model"]["arch"] = "pplcnetv2_base"
    (folded / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConversionError, match="re-parameterized"):
        write_start(folded, tmp_path / "start.pdparams")
    result = CliRunner().invoke(app, ["train", "rec-start", "--from", str(folded), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "re-parameterized" in result.output
    assert not (tmp_path / "x").exists()
