"""Checked checkpoint loading, the recognition factory and ``shitu export rec``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest
from typer.testing import CliRunner

from service.config import RuntimeSettings
from service.inference.models import load_embedder
from shitu.cli import app
from trainer.checkpoint import CheckpointMismatch, load_checked, read_pdparams
from trainer.models import build_recognition_model, load_recognition_checkpoint


class _TwoLayers(paddle.nn.Layer):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.body = paddle.nn.Linear(4, 5)
        self.head = paddle.nn.Linear(5, classes)


def _state(layer: paddle.nn.Layer, offset: float = 1.0) -> dict[str, np.ndarray]:
    return {name: tensor.numpy() + offset for name, tensor in layer.state_dict().items()}


def test_load_checked_copies_every_entry() -> None:
    layer = _TwoLayers()
    state = _state(layer)
    loaded = load_checked(layer, state)
    assert sorted(loaded) == sorted(state)
    for name, tensor in layer.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), state[name])


def test_load_checked_lists_every_mismatch_and_loads_nothing() -> None:
    layer = _TwoLayers()
    before = _state(layer, offset=0.0)
    state = _state(_TwoLayers(classes=7))
    del state["body.bias"]
    state["extra.weight"] = np.zeros(2, dtype=np.float32)
    with pytest.raises(CheckpointMismatch) as caught:
        load_checked(layer, state, source="ckpt.pdparams")
    error = caught.value
    assert error.missing == ["body.bias"]
    assert error.unexpected == ["extra.weight"]
    assert sorted(name for name, _, _ in error.mismatched) == ["head.bias", "head.weight"]
    message = str(error)
    assert "ckpt.pdparams" in message and "body.bias" in message and "head.weight: [5, 3] vs [5, 7]" in message
    for name, tensor in layer.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), before[name])


def test_skip_prefixes_ignores_a_head_with_another_class_count() -> None:
    layer = _TwoLayers(classes=3)
    state = _state(_TwoLayers(classes=9))
    loaded = load_checked(layer, state, skip_prefixes=("head.",))
    assert sorted(loaded) == ["body.bias", "body.weight"]
    np.testing.assert_array_equal(layer.body.weight.numpy(), state["body.weight"])


def test_pdparams_round_trip_into_a_recognition_model(tmp_path: Path) -> None:
    source = build_recognition_model("efficientnet_lite0", class_num=11)
    path = tmp_path / "trained.pdparams"
    paddle.save(source.state_dict(), str(path))
    state = read_pdparams(path)
    assert state["head.fc.weight"].shape == (512, 11)
    target = build_recognition_model("efficientnet_lite0", class_num=4)
    with pytest.raises(CheckpointMismatch, match="head.fc.weight"):
        load_recognition_checkpoint(target, path)
    load_recognition_checkpoint(target, path, skip_head=True)
    np.testing.assert_array_equal(target.embedding.weight.numpy(), state["embedding.weight"])


def test_factory_rejects_unknown_architectures_and_missing_offline_weights() -> None:
    with pytest.raises(ValueError, match="resnet50"):
        build_recognition_model("resnet50")
    with pytest.raises(ValueError, match="PaddleClas checkpoint"):
        build_recognition_model("pplcnetv2_base", pretrained=True)


def test_training_forward_returns_features_and_logits() -> None:
    model = build_recognition_model("pplcnetv2_base", class_num=5)
    model.train()
    outputs = model(paddle.rand([2, 3, 64, 64]))
    assert outputs["features"].shape == [2, 512] and outputs["logits"].shape == [2, 5]
    assert "logits" not in build_recognition_model("pplcnetv2_base")(paddle.rand([1, 3, 64, 64]))


@pytest.mark.slow  # a PPLCNetV2_base export
def test_cli_exports_a_paddleclas_checkpoint_and_refuses_a_wrong_one(tmp_path: Path) -> None:
    checkpoint = tmp_path / "GeneralRecognitionV2_PPLCNetV2_base.pdparams"
    paddle.save(build_recognition_model("pplcnetv2_base", class_num=6).state_dict(), str(checkpoint))
    runner = CliRunner()
    out_dir = tmp_path / "rec"
    result = runner.invoke(
        app, ["export", "rec", "--arch", "pplcnetv2_base", "--weights", str(checkpoint), "--out", str(out_dir)]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["name"] == "rec" and manifest["architecture"] == "pplcnetv2_base"
    assert manifest["provenance"]["checkpoint"] == checkpoint.name
    assert (out_dir / "inference.json").is_file() and (out_dir / "inference.pdiparams").is_file()
    assert manifest["preprocess"]["size"] == [224, 224]

    at_160 = runner.invoke(app, ["export", "rec", "--arch", "pplcnetv2_base", "--weights", str(checkpoint),
                                 "--out", str(tmp_path / "rec160"), "--input-size", "160"])
    assert at_160.exit_code == 0, at_160.output
    assert json.loads((tmp_path / "rec160" / "manifest.json").read_text())["preprocess"]["size"] == [160, 160]
    embedder = load_embedder(tmp_path / "rec160", RuntimeSettings(cpu_threads=1), max_batch_size=2)
    assert embedder.embed([np.full((50, 70, 3), 128, np.uint8)]).shape == (1, 512)

    arguments = ["export", "rec", "--arch", "efficientnet_lite0", "--weights", str(checkpoint)]
    wrong = runner.invoke(app, [*arguments, "--out", str(tmp_path / "x")])
    assert wrong.exit_code == 2
    assert "backbone.stem.0.conv.weight" in wrong.output and "backbone._conv_stem.weight" in wrong.output


def test_cli_exports_the_imagenet_embedder_without_weights(tmp_path: Path) -> None:
    out_dir = tmp_path / "default"

    result = CliRunner().invoke(
        app, ["export", "rec", "--arch", "efficientnet_lite0", "--out", str(out_dir), "--match-threshold", "0.6"]
    )

    assert result.exit_code == 0, result.output
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["architecture"] == "efficientnet_lite0" and manifest["embedder"]["match_threshold"] == 0.6
    assert "ImageNet" in manifest["provenance"]["backbone_weights"]


def test_cli_refuses_pplcnetv2_without_a_checkpoint(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", "rec", "--arch", "pplcnetv2_base", "--out", str(tmp_path / "x")])

    assert result.exit_code == 2
    assert not (tmp_path / "x").exists()
