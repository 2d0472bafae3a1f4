"""``train_detector`` end to end on generated shapes: the loss falls, resume is exact, the export serves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest

from service.config import RuntimeSettings
from service.inference.models import load_detector
from tests.trainer.detection_synthetic import make_synthetic_coco
from trainer.detection.coco import CocoDetectionDataset
from trainer.detection.config import TrainDetectionConfig, load_detection_config
from trainer.detection.ema import ModelEMA
from trainer.detection.export import export_detector
from trainer.detection.from_export import ConversionError, export_network, write_start
from trainer.detection.predict import predict_dataset
from trainer.detection.setup import build_model
from trainer.detection.train import TrainingResult, train_detector

pytestmark = pytest.mark.slow  # training runs of the tiny detector

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "trainer" / "configs" / "detection_tiny.yaml"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("shapes")
    train = make_synthetic_coco(root / "train", count=8, size=96)
    return train, make_synthetic_coco(root / "val", count=4, size=96, seed=1)


def _config(train: Path, output_dir: Path, **overrides: object) -> TrainDetectionConfig:
    return load_detection_config(
        TINY_CONFIG, {"data.train_annotations": str(train), "train.output_dir": str(output_dir), **overrides}
    )


@pytest.fixture(scope="module")
def tiny_run(shapes: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingResult, Path]:
    train, validation = shapes
    output_dir = tmp_path_factory.mktemp("run")
    config = _config(train, output_dir, **{"data.val_annotations": str(validation), "train.eval_interval": 12})
    return train_detector(config), output_dir


def test_the_loss_falls(tiny_run: tuple[TrainingResult, Path]) -> None:
    result, _ = tiny_run
    losses = np.array(result.losses)
    assert result.steps == len(losses) == 48 and np.isfinite(losses).all()
    # The box terms are weighted by the predicted scores, which start at the 0.01 prior: on a 4-image batch their
    # sum sits under the normaliser's floor of 1, so the total first rises while the scores grow, then falls.
    window = 8
    moving = np.convolve(losses, np.ones(window) / window, mode="valid")
    assert losses[-window:].mean() < 0.8 * moving.max()
    assert moving.argmax() < len(moving) / 2


def test_validation_and_checkpoints(tiny_run: tuple[TrainingResult, Path]) -> None:
    result, output_dir = tiny_run
    assert [evaluation["epoch"] for evaluation in result.evaluations] == [12, 24]
    assert all(0.0 <= evaluation["ap"] <= evaluation["ap50"] <= 1.0 for evaluation in result.evaluations)
    checkpoints = output_dir / "checkpoints"
    assert {path.name for path in checkpoints.iterdir()} == {
        "best.pdparams", "last.pdparams", "last.pdopt", "last.ema", "last.json"
    }  # fmt: skip
    assert json.loads((checkpoints / "last.json").read_text())["step"] == 48


def test_the_export_loads_in_the_service_detector(tiny_run: tuple[TrainingResult, Path], shapes: tuple) -> None:
    result, output_dir = tiny_run
    manifest = result.manifest
    assert manifest is not None and manifest.labels == ["foreground"] and manifest.preprocess.size == (96, 96)
    assert manifest.provenance["weights"] == "ema" and manifest.provenance["steps"] == 48
    detector = load_detector(output_dir / "export", RuntimeSettings(cpu_threads=1))
    image = paddle.vision.image_load(str(shapes[1].parent / "0001.png"), backend="cv2")[:, :, ::-1].copy()
    detections = detector.detect(image)
    assert all(item.label == "foreground" and 0 <= item.box.x1 <= item.box.x2 <= 96 for item in detections)
    assert [item.score for item in detections] == sorted((item.score for item in detections), reverse=True)


def test_training_time_evaluation_sees_what_the_service_sees(
    tiny_run: tuple[TrainingResult, Path], shapes: tuple[Path, Path]
) -> None:
    """The EMA weights of the last checkpoint, post-processed by ``predict_dataset``, give the export's detections."""
    _, output_dir = tiny_run
    config = _config(shapes[0], output_dir)
    model = build_model(config, 1)
    model.set_state_dict(paddle.load(str(output_dir / "checkpoints" / "last.pdparams")))
    ema = ModelEMA(model)
    ema.set_state_dict(paddle.load(str(output_dir / "checkpoints" / "last.ema")))
    validation = CocoDetectionDataset(shapes[1])
    with ema.applied():
        _, predicted = predict_dataset(model, validation, config.model.input_size)
    detector = load_detector(output_dir / "export", RuntimeSettings(cpu_threads=1))
    served = detector.detect(validation.load_image(0))
    assert len(served) == len(predicted[0].scores) > 0
    np.testing.assert_allclose([item.score for item in served], predicted[0].scores, atol=1e-4)
    # This tiny run's scores saturate (many at 1.0 to float precision), so their order, and which of the tied boxes
    # survive the keep-top-k cut, depend on the last bits of each backend's floats: match each served detection to
    # an unused predicted twin (score within 1e-4, box within the service's whole-pixel truncation).
    unused = list(zip(predicted[0].scores, predicted[0].boxes, strict=True))
    twins = 0
    for item in served:
        box = np.array([item.box.x1, item.box.y1, item.box.x2, item.box.y2])
        twin = next((i for i, (score, other) in enumerate(unused)
                     if abs(score - item.score) <= 1e-4 and np.abs(box - other).max() <= 1.0), None)
        if twin is not None:
            twins += 1
            unused.pop(twin)
    assert twins >= 0.95 * len(served), (twins, len(served))  # 99 of 100 here


def test_resume_continues_exactly(shapes: tuple[Path, Path], tmp_path: Path) -> None:
    train, _ = shapes
    # A warm-up longer than the run keeps the LR independent of the planned length, so both runs see the same LRs.
    common = {"train.max_steps": None, "optimizer.warmup_steps": 100, "export.enabled": False,
              "train.checkpoint_interval": 1}  # fmt: skip
    straight = train_detector(_config(train, tmp_path / "straight", **common, **{"train.epochs": 2}))
    _ = train_detector(_config(train, tmp_path / "split", **common, **{"train.epochs": 1}))
    resumed = train_detector(_config(train, tmp_path / "split", **common, **{"train.epochs": 2}), resume=True)
    assert straight.steps == resumed.steps == 4 and len(resumed.losses) == 2
    np.testing.assert_allclose(resumed.losses, straight.losses[2:], rtol=1e-5)
    final = paddle.load(str(tmp_path / "straight" / "checkpoints" / "last.pdparams"))
    again = paddle.load(str(tmp_path / "split" / "checkpoints" / "last.pdparams"))
    for name, value in final.items():
        np.testing.assert_allclose(again[name].numpy(), value.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


def test_resuming_a_finished_run_only_exports(
    tiny_run: tuple[TrainingResult, Path], shapes: tuple[Path, Path], tmp_path: Path
) -> None:
    _, output_dir = tiny_run
    again = train_detector(_config(shapes[0], output_dir, **{"export.out_dir": str(tmp_path)}), resume=True)
    assert again.steps == 48 and again.losses == []
    assert again.manifest is not None and (tmp_path / "manifest.json").is_file()


def test_resume_without_a_checkpoint_is_an_error(shapes: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_detector(_config(shapes[0], tmp_path, **{"train.max_steps": 1}), resume=True)


def test_an_export_starts_a_fine_tuning(
    tiny_run: tuple[TrainingResult, Path], shapes: tuple[Path, Path], tmp_path: Path
) -> None:
    """``det-start --from <export>``: the anonymous export weights, put back under our names, give the same
    detector when exported again."""
    _, output_dir = tiny_run
    start = write_start(output_dir / "export", tmp_path / "start.pdparams")
    model, settings = export_network(output_dir / "export")
    model.set_state_dict(paddle.load(str(start)))
    export_detector(model, tmp_path / "again", name="again", version="0", input_size=settings.input_size)
    image = CocoDetectionDataset(shapes[1]).load_image(1)
    served, again = (load_detector(path, RuntimeSettings(cpu_threads=1)).detect(image)
                     for path in (output_dir / "export", tmp_path / "again"))
    assert len(served) == len(again) > 0
    np.testing.assert_allclose([item.score for item in again], [item.score for item in served], atol=1e-6)
    assert [item.box for item in again] == [item.box for item in served]


def test_only_a_trained_detector_export_is_a_start(tmp_path: Path) -> None:
    embedder = REPO / "model_store" / "embedder" / "default"
    with pytest.raises(ConversionError, match="not a detector|no detector trained"):
        write_start(embedder, tmp_path / "start.pdparams")
    with pytest.raises(ConversionError):
        write_start(tmp_path, tmp_path / "start.pdparams")
