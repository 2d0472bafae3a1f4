"""Exported PicoDet: PaddleDetection's I/O contract and post-processing (numpy copy of its code), oneDNN on/off."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest
import yaml

from service.config import RuntimeSettings
from service.inference.manifest import Interpolation, ModelKind, load_manifest
from service.inference.models import load_detector
from service.inference.paddle_configs import manifest_from_paddle_config
from service.inference.runtime import PaddleModel
from tests.trainer.detector_weights import detector_input, fill_state
from trainer.detection.export import NmsSettings, export_detector
from trainer.models.picodet import PicoDet, build_picodet

SMALL_SIZE = 320
NMS = NmsSettings()


def fill_model(model: PicoDet) -> PicoDet:
    model.set_state_dict(fill_state((name, tensor.shape) for name, tensor in model.state_dict().items()))
    model.eval()
    return model


def run_exported(model_dir: Path, feed: dict[str, np.ndarray], *, onednn: bool) -> list[np.ndarray]:
    """Plain Paddle Inference; with oneDNN on, no pass is deleted: the export must run as it is."""
    model = PaddleModel.create(model_dir, RuntimeSettings(cpu_threads=2, onednn=onednn))
    assert model.input_names == ("image", "scale_factor")
    return model.run(feed)


def area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union without the +1 pixel convention (``normalized=True``)."""
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    union = area(box) + area(others) - width * height
    return np.where(union > 0, width * height / np.maximum(union, 1e-12), 0.0)


def paddledetection_detections(scores: np.ndarray, boxes: np.ndarray, factor_yx: tuple[float, float]) -> np.ndarray:
    """PaddleDetection's PicoHead ``post_process`` + ``MultiClassNMS`` in numpy, for one image.

    ``scores`` [C, A] and ``boxes`` [A, 4] (input-frame px) are every anchor of every level, as ``forward_eval``
    concatenates them. The boxes are divided by ``scale_factor`` and go to NMS as they are: nothing is clipped.
    """
    factor_y, factor_x = factor_yx
    boxes = boxes / np.array([factor_x, factor_y, factor_x, factor_y], dtype=np.float32)
    rows = []
    for class_id, class_scores in enumerate(scores):
        order = np.flatnonzero(class_scores > NMS.score_threshold)
        order = order[np.argsort(-class_scores[order], kind="stable")][: NMS.nms_top_k]
        selected: list[int] = []
        for index in order:
            if not selected or iou(boxes[index], boxes[selected]).max() <= NMS.iou_threshold:
                selected.append(index)
        rows += [[class_id, class_scores[index], *boxes[index]] for index in selected]
    rows = sorted(rows, key=lambda row: -row[1])[: NMS.keep_top_k]
    return np.array(sorted(rows, key=lambda row: (row[0], -row[1])), dtype=np.float32).reshape(-1, 6)


def feed_for(paths: list[Path], size: int) -> tuple[dict[str, np.ndarray], list[tuple[float, float]]]:
    images = [detector_input(path, size) for path in paths]
    shapes = [cv2.imread(str(path)).shape[:2] for path in paths]
    factors = [(size / height, size / width) for height, width in shapes]
    feed = {
        "image": np.concatenate(images),
        "scale_factor": np.array(factors, dtype=np.float32),
        # Only older exports (and the released PP-ShiTu detector) read it; ours ignore it.
        "im_shape": np.array([[size, size]] * len(paths), dtype=np.float32),
    }
    return feed, factors


def split_rows(bbox: np.ndarray, bbox_num: np.ndarray) -> list[np.ndarray]:
    ends = np.cumsum(bbox_num)
    return [bbox[end - count : end] for count, end in zip(bbox_num, ends, strict=True)]


@pytest.fixture(scope="session")
def small_model() -> PicoDet:
    return fill_model(build_picodet(0.35, 1))


@pytest.fixture(scope="session")
def small_export(small_model: PicoDet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("picodet_x0_35")
    export_detector(small_model, out, name="picodet-test", version="7", input_size=SMALL_SIZE, provenance={"a": 1})
    return out


def test_export_writes_program_configs_and_manifest(small_export: Path) -> None:
    assert {path.name for path in small_export.iterdir()} == {
        "inference.json",
        "inference.pdiparams",
        "infer_cfg.yml",
        "manifest.json",
    }
    manifest = load_manifest(small_export)
    assert manifest.kind is ModelKind.detector and manifest.model_id == "picodet-test@7"
    assert manifest.architecture == "picodet_lcnet_x0_35"
    assert manifest.preprocess.size == (SMALL_SIZE, SMALL_SIZE)
    assert manifest.preprocess.interpolation is Interpolation.cubic and not manifest.preprocess.keep_ratio
    assert manifest.preprocess.mean == (0.485, 0.456, 0.406) and manifest.preprocess.std == (0.229, 0.224, 0.225)
    assert manifest.detector is not None
    assert (manifest.detector.score_threshold, manifest.detector.max_detections) == (0.2, 5)
    assert manifest.labels == ["foreground"] and manifest.inputs == ["image", "scale_factor"]
    assert manifest.provenance["a"] == 1 and manifest.provenance["post_process"]["iou_threshold"] == 0.6
    config = yaml.safe_load((small_export / "infer_cfg.yml").read_text(encoding="utf-8"))
    assert config["Preprocess"][0] == {"type": "Resize", "interp": 2, "keep_ratio": False, "target_size": [320, 320]}
    from_yaml = manifest_from_paddle_config(small_export)
    assert from_yaml is not None and from_yaml.preprocess == manifest.preprocess


def test_exported_graph_has_no_interpolate_op(small_export: Path) -> None:
    """Interpolate ops abort Paddle 3.3.1's oneDNN executor (docs/trainer-detector.md); the export has none."""
    program = json.loads((small_export / "inference.json").read_text(encoding="utf-8"))
    operations = [operation["#"] for operation in program["program"]["regions"][0]["blocks"][0]["ops"]]
    assert "1.multiclass_nms3" in operations and "1.conv2d" in operations
    assert not [name for name in operations if "interp" in name]


def test_nms_inside_equals_numpy_nms_with_onednn_on(small_model: PicoDet, small_export: Path, parity_dir: Path) -> None:
    paths = [parity_dir / "img1.png", parity_dir / "img2.png"]
    feed, factors = feed_for(paths, SMALL_SIZE)
    with paddle.no_grad():
        scores, boxes = small_model.predict(paddle.to_tensor(feed["image"]))
    bbox, bbox_num = run_exported(small_export, feed, onednn=True)
    assert bbox.shape[1] == 6 and bbox_num.dtype == np.int32 and bbox_num.shape == (2,)
    assert bbox_num.sum() == len(bbox) > 0
    for image, rows in enumerate(split_rows(bbox, bbox_num)):
        expected = paddledetection_detections(scores.numpy()[image], boxes.numpy()[image], factors[image])
        assert len(rows) == len(expected) > 0
        assert np.all(np.diff(rows[:, 1]) <= 0), "rows are sorted by score"
        np.testing.assert_allclose(rows, expected, atol=1e-3, rtol=1e-4)


def test_onednn_on_and_off_agree(small_export: Path, parity_dir: Path) -> None:
    feed, _ = feed_for([parity_dir / "img0.png"], SMALL_SIZE)
    on, off = run_exported(small_export, feed, onednn=True), run_exported(small_export, feed, onednn=False)
    np.testing.assert_array_equal(on[1], off[1])
    np.testing.assert_allclose(on[0], off[0], atol=1e-3, rtol=1e-4)


def test_nothing_found_gives_zero_rows(tmp_path: Path, parity_dir: Path) -> None:
    # Fresh initialisation: every class logit sits at the prior bias, sigmoid 0.01 < score threshold 0.025.
    export_detector(build_picodet(0.35, 1), tmp_path, name="empty", version="0", input_size=SMALL_SIZE)
    feed, _ = feed_for([parity_dir / "img0.png"], SMALL_SIZE)
    bbox, bbox_num = run_exported(tmp_path, feed, onednn=True)
    assert bbox.shape == (0, 6) and bbox_num.tolist() == [0]


def test_service_loads_export_and_detects(small_model: PicoDet, small_export: Path, parity_dir: Path) -> None:
    rgb = cv2.imread(str(parity_dir / "img2.png"))[:, :, ::-1].copy()
    detector = load_detector(small_export, RuntimeSettings(cpu_threads=1, onednn=True))
    detections = detector.detect(rgb)
    feed, factors = feed_for([parity_dir / "img2.png"], SMALL_SIZE)
    with paddle.no_grad():
        scores, boxes = small_model.predict(paddle.to_tensor(feed["image"]))
    expected = paddledetection_detections(scores.numpy()[0], boxes.numpy()[0], factors[0])
    assert len(detections) == len(expected) > 0
    assert {detection.label for detection in detections} == {"foreground"}
    np.testing.assert_allclose([d.score for d in detections], expected[:, 1], atol=1e-4)
    height, width = rgb.shape[:2]
    assert all(0 <= d.box.x1 <= d.box.x2 <= width and 0 <= d.box.y1 <= d.box.y2 <= height for d in detections)


@pytest.mark.slow  # the x2.5 detector at 640, twice
@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "plain"])
def test_x2_5_export_equals_paddledetection_post_process(tmp_path: Path, parity_dir: Path, onednn: bool) -> None:
    """The official architecture at 640 with the parity weights: boxes reaching past the border stay unclipped,
    and NMS keeps the set PaddleDetection keeps (an export that clips first keeps another: issue 12)."""
    params = json.loads((parity_dir / "det_params.json").read_text(encoding="utf-8"))["params"]
    state = fill_state((entry["name"], entry["shape"]) for entry in params)
    # The parity weights saturate many scores to exactly 1.0; ties make the NMS order arbitrary, so
    # the class logits are damped to keep every score distinct.
    for level in range(4):
        state[f"head.head_cls{level}.weight"][:1] *= 0.1
        state[f"head.head_cls{level}.bias"][:1] *= 0.1
    model = build_picodet(2.5, 1)
    model.set_state_dict(state)
    model.eval()
    export_detector(model, tmp_path, name="x2_5", version="0", input_size=640)
    feed, factors = feed_for([parity_dir / "img1.png"], 640)
    bbox, bbox_num = run_exported(tmp_path, feed, onednn=onednn)
    with paddle.no_grad():
        scores, boxes = model.predict(paddle.to_tensor(feed["image"]))
    expected = paddledetection_detections(scores.numpy()[0], boxes.numpy()[0], factors[0])
    height, width = cv2.imread(str(parity_dir / "img1.png")).shape[:2]
    assert (expected[:, 4] > width).any() or (expected[:, 5] > height).any() or (expected[:, 2:4] < 0).any()
    assert bbox_num.tolist() == [len(expected)] and len(expected) > 0
    np.testing.assert_allclose(bbox, expected, atol=1e-2, rtol=1e-4)


def test_a_plain_paddledetection_export_is_described_by_its_training_config(small_export: Path,
                                                                           tmp_path: Path) -> None:
    """``_BASE_`` files merge first, the including file wins, as in PaddleDetection's config loader."""
    import shutil

    from typer.testing import CliRunner

    from service.cli import app

    plain = tmp_path / "plain"
    shutil.copytree(small_export, plain, ignore=shutil.ignore_patterns("manifest.json", "*.yml"))
    (tmp_path / "_base_").mkdir()
    (tmp_path / "_base_" / "picodet_640_reader.yml").write_text(
        "TestReader:\n  inputs_def: {image_shape: [1, 3, 640, 640]}\n  sample_transforms:\n  - Decode: {}\n"
        "  - Resize: {interp: 2, target_size: [640, 640], keep_ratio: False}\n"
        "  - NormalizeImage: {is_scale: true, mean: [0.485,0.456,0.406], std: [0.229, 0.224,0.225]}\n"
        "  - Permute: {}\n  batch_size: 1\n", encoding="utf-8")
    (tmp_path / "coco_detection.yml").write_text("metric: COCO\nnum_classes: 80\n", encoding="utf-8")
    config = tmp_path / "picodet_lcnet_mainbody_320.yml"
    config.write_text(
        "_BASE_: ['coco_detection.yml', '_base_/picodet_640_reader.yml']\narchitecture: PicoDet\nnum_classes: 1\n"
        "TestReader:\n  sample_transforms:\n  - Decode: {}\n"
        "  - Resize: {interp: 2, target_size: [320, 320], keep_ratio: False}\n"
        "  - NormalizeImage: {is_scale: true, mean: [0.485,0.456,0.406], std: [0.229, 0.224,0.225]}\n"
        "  - Permute: {}\n", encoding="utf-8")

    result = CliRunner().invoke(app, ["models", "manifest", str(plain), "--config", str(config)])

    assert result.exit_code == 0, result.output
    described, exported = load_manifest(plain), load_manifest(small_export)
    assert described.kind is ModelKind.detector and described.preprocess == exported.preprocess
    assert described.labels == ["foreground"] and described.inputs == ["image", "scale_factor"]
    assert described.detector == exported.detector
    rgb = cv2.imread(str(Path(__file__).parents[1] / "fixtures" / "ppshitu_parity" / "img2.png"))[:, :, ::-1].copy()
    settings = RuntimeSettings(cpu_threads=1)
    assert load_detector(plain, settings).detect(rgb) == load_detector(small_export, settings).detect(rgb)
