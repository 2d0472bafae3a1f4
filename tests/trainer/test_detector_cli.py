"""``shitu export det``: checkpoint in, service-ready model directory out."""

from __future__ import annotations

from pathlib import Path

import paddle
from typer.testing import CliRunner

from service.inference.manifest import load_manifest
from shitu.cli import app
from trainer.models.picodet import build_picodet

runner = CliRunner()


def test_export_det_writes_a_model_from_a_checkpoint(tmp_path: Path) -> None:
    model = build_picodet(0.35, 1)
    weights = tmp_path / "picodet.pdparams"
    paddle.save(model.state_dict(), str(weights))
    out = tmp_path / "detector"
    arguments = ["export", "det", "--arch", "picodet_lcnet_x0_35", "--weights", str(weights), "--out", str(out)]
    result = runner.invoke(app, [*arguments, "--input-size", "320", "--version", "3"])
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    assert manifest.architecture == "picodet_lcnet_x0_35" and manifest.version == "3"
    assert manifest.preprocess.size == (320, 320)
    assert manifest.provenance["weights"] == str(weights)
    assert (out / "inference.json").is_file() and (out / "inference.pdiparams").is_file()


def test_export_det_refuses_a_checkpoint_of_another_scale(tmp_path: Path) -> None:
    weights = tmp_path / "x0_5.pdparams"
    paddle.save(build_picodet(0.5, 1).state_dict(), str(weights))
    out = tmp_path / "detector"
    arguments = ["export", "det", "--arch", "picodet_lcnet_x0_35", "--weights", str(weights), "--out", str(out)]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 1
    assert "shape differs (model vs checkpoint)" in result.output
    assert "backbone.blocks4.0.dw_conv.bn._mean: [24] vs [32]" in result.output
    assert not out.exists()
