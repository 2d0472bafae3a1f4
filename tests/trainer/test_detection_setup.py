"""Schedule, EMA, config, initialisation from checkpoints and the ``shitu train det`` command."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest
from typer.testing import CliRunner

from shitu.cli import app
from tests.trainer.detection_synthetic import make_synthetic_coco
from trainer.checkpoint import CheckpointMismatch
from trainer.detection.coco import DetectionDataError
from trainer.detection.config import TrainDetectionConfig, load_detection_config
from trainer.detection.ema import ModelEMA
from trainer.detection.setup import build_model, load_backbone, picodet_learning_rate
from trainer.detection.train import open_datasets, training_provenance

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "trainer" / "configs" / "detection_tiny.yaml"
EXAMPLE_CONFIG = REPO / "trainer" / "configs" / "detection_mainbody.yaml"


def test_warmup_then_cosine_by_hand() -> None:
    def rate(step: int) -> float:
        return picodet_learning_rate(step, 1.0, 300, 0.1, 1000)

    assert rate(0) == pytest.approx(0.1)
    assert rate(150) == pytest.approx(0.55)  # halfway from 0.1 to 1
    assert rate(300) == pytest.approx(0.5 * (1 + math.cos(0.3 * math.pi)))  # cosine counted from step 0
    assert rate(1000) == pytest.approx(0.0, abs=1e-12)


def test_example_config_is_the_mainbody_recipe() -> None:
    config = load_detection_config(EXAMPLE_CONFIG)
    assert config.model.scale == 2.5 and config.model.input_size == 640
    assert config.learning_rate == pytest.approx(0.4 * 56 / 224)
    assert (config.loss.giou_weight, config.loss.distribution_weight, config.loss.iou_weight) == (2.0, 0.25, 6.0)
    assert config.train.sizes == [576, 608, 640, 672, 704]


def test_config_rejects_sizes_the_network_cannot_take() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        load_detection_config(TINY_CONFIG, {"train.sizes": [100]})
    with pytest.raises(ValueError, match="extra"):
        load_detection_config(TINY_CONFIG, {"train.epoch": 3})


def test_numeric_export_version_from_the_command_line_is_a_label() -> None:
    assert load_detection_config(TINY_CONFIG, {"export.version": 2}).export.version == "2"


def _tiny_config(**model: object) -> TrainDetectionConfig:
    return TrainDetectionConfig.model_validate(
        {"data": {"train_annotations": "unused.json"}, "model": {"scale": 0.35, "neck_channels": 16, **model}}
    )


def test_ema_follows_the_threshold_decay_and_restores_the_weights() -> None:
    layer = paddle.nn.Linear(2, 1)
    start = layer.weight.numpy().copy()
    ema = ModelEMA(layer, decay=0.9998)
    layer.weight.set_value(start + 1.0)
    ema.update()  # decay min(0.9998, 1/10) = 0.1
    with ema.applied() as averaged:
        # float32 sums of terms of order 1 are exact to ~1e-7 absolute: a random weight near -0.9 leaves a result
        # near 0, where a relative tolerance alone fails on rounding (seen under one random test order)
        np.testing.assert_allclose(averaged.weight.numpy(), start + 0.9, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer.weight.numpy(), start + 1.0, rtol=1e-6, atol=1e-6)
    assert ema.current_decay() == pytest.approx(2 / 11)
    restored = ModelEMA(layer)
    restored.set_state_dict(ema.state_dict())
    assert restored.step == 1


def test_ema_cycle_restarts_from_the_current_weights() -> None:
    layer = paddle.nn.Linear(2, 1)
    ema = ModelEMA(layer, cycle_epoch=2)
    layer.weight.set_value(layer.weight.numpy() + 5.0)
    ema.update()
    ema.end_epoch(1)
    assert ema.step == 1
    ema.end_epoch(2)
    assert ema.step == 0
    with ema.applied() as averaged:
        np.testing.assert_allclose(averaged.weight.numpy(), layer.weight.numpy())


def test_backbone_checkpoint_loads_and_ignores_classifier_entries(tmp_path: Path) -> None:
    source = build_model(_tiny_config(), 1)
    state = {name: value.numpy() for name, value in source.backbone.state_dict().items()}
    path = tmp_path / "lcnet.pdparams"
    paddle.save({**state, "fc.weight": np.zeros((4, 2), np.float32)}, str(path))
    target = build_model(_tiny_config(backbone_checkpoint=str(path)), 1)
    for name, value in target.backbone.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[name])
    paddle.save({name: value for name, value in state.items() if "blocks6" not in name}, str(path))
    with pytest.raises(CheckpointMismatch, match="missing"):
        load_backbone(target, path)


def test_init_checkpoint_with_another_class_count_keeps_all_but_the_class_outputs(tmp_path: Path) -> None:
    source = build_model(_tiny_config(), 3)
    path = tmp_path / "picodet.pdparams"
    paddle.save(source.state_dict(), str(path))
    target = build_model(_tiny_config(init_checkpoint=str(path)), 1)
    own, given = target.state_dict(), source.state_dict()
    np.testing.assert_array_equal(own["neck.conv_t.convs.0.conv.weight"].numpy(),
                                  given["neck.conv_t.convs.0.conv.weight"].numpy())  # fmt: skip
    assert own["head.head_cls0.weight"].shape[0] == 1 + 32


def test_cli_preview_and_a_short_run(tmp_path: Path) -> None:
    annotations = make_synthetic_coco(tmp_path / "data", count=4, size=64)
    settings = ["--set", f"data.train_annotations={annotations}", "--set", f"train.output_dir={tmp_path / 'run'}",
                "--set", "train.sizes=[64]", "--set", "model.input_size=64"]  # fmt: skip
    runner = CliRunner()
    preview = tmp_path / "preview.png"
    result = runner.invoke(app, ["train", "det", "--config", str(TINY_CONFIG), *settings, "--preview", str(preview)])
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(preview)) is not None
    short = ["--set", "train.max_steps=2", "--set", "export.enabled=false"]
    result = runner.invoke(app, ["train", "det", "--config", str(TINY_CONFIG), *settings, *short])
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output
    assert (tmp_path / "run" / "checkpoints" / "last.json").is_file()


def test_cli_reports_unusable_data_with_exit_code_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [], "categories": [{"id": 1, "name": "x"}]}')
    result = CliRunner().invoke(
        app, ["train", "det", "--config", str(TINY_CONFIG), "--set", f"data.train_annotations={broken}"]
    )
    assert result.exit_code == 2
    assert "nothing valid" in result.output


def test_extra_training_sets_are_trained_on_too(tmp_path: Path) -> None:
    cards = make_synthetic_coco(tmp_path / "cards", count=3, size=64)
    packages = make_synthetic_coco(tmp_path / "packages", count=5, size=64, seed=2)
    config = load_detection_config(TINY_CONFIG, {"data.train_annotations": str(cards),
                                                 "data.extra_train_annotations": [str(packages)]})
    train, _ = open_datasets(config)
    assert len(train) == 8 and {sample.path.parent.name for sample in train.samples} == {"cards", "packages"}
    assert train_provenance_paths(config) == [str(packages)]
    other = make_synthetic_coco(tmp_path / "other", count=2, size=64, categories=("box", "ellipse", "bag"))
    mixed = load_detection_config(TINY_CONFIG, {"data.train_annotations": str(cards), "data.single_class": None,
                                                "data.extra_train_annotations": [str(other)]})
    with pytest.raises(DetectionDataError, match="categories differ"):
        open_datasets(mixed)


def train_provenance_paths(config: TrainDetectionConfig) -> list[str]:
    return training_provenance(config, "picodet_lcnet", 0, ema=False)["extra_train_annotations"]
