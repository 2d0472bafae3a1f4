"""The EfficientNet-Lite0 detector option: ImageNet trunk, frozen stages in Paddle Inference, training, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest

from service.config import RuntimeSettings
from service.inference.models import load_detector
from tests.trainer.detection_synthetic import make_synthetic_coco
from trainer.detection.config import load_detection_config
from trainer.detection.setup import build_model, build_optimizer, freeze_trunk
from trainer.detection.train import train_detector
from trainer.frozen_trunk import FrozenTrunk
from trainer.models.efficientnet_lite import EfficientNetLite0, load_imagenet_weights
from trainer.models.picodet import build_picodet_architecture
from trainer.models.picodet_efficientnet import FEATURE_STAGES, build_picodet_efficientnet

pytestmark = pytest.mark.slow  # ImageNet trunk exports and a short training run

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "trainer" / "configs" / "detection_efficientnet.yaml"


def test_trunk_is_the_imagenet_classifier_without_its_end() -> None:
    detector = build_picodet_efficientnet(1)
    classifier = EfficientNetLite0(num_classes=1000)
    load_imagenet_weights(classifier)
    own = detector.backbone.state_dict()
    theirs = classifier.state_dict()
    assert set(own) == {name for name in theirs if not name.startswith(("_fc.", "_conv_head.", "_bn1."))}
    for name, tensor in own.items():
        np.testing.assert_array_equal(tensor.numpy(), theirs[name].numpy())


def test_levels_are_strides_8_16_32_with_the_block_group_widths() -> None:
    model = build_picodet_efficientnet(1, imagenet=False)
    features = model.backbone(paddle.zeros([1, 3, 96, 128]))
    assert [tuple(feature.shape) for feature in features] == [(1, 40, 12, 16), (1, 112, 6, 8), (1, 320, 3, 4)]
    assert model.strides == (8, 16, 32) and model.architecture == "picodet_efficientnet_lite0"
    assert build_picodet_architecture("picodet_efficientnet_lite0").architecture == "picodet_efficientnet_lite0"


@pytest.mark.parametrize("stages", [1, FEATURE_STAGES[0] + 1])
def test_frozen_trunk_then_the_rest_equals_the_whole_network(stages: int, tmp_path: Path) -> None:
    model = build_picodet_efficientnet(1)
    model.eval()
    images = np.random.default_rng(0).normal(0.0, 1.0, (2, 3, 64, 64)).astype(np.float32)
    trunk = FrozenTrunk(model, stages, 64, tmp_path / "trunk", threads=1)
    with paddle.no_grad():
        whole = model(paddle.to_tensor(images))
        split = model(trunk(images), stages)
    for expected, got in zip([*whole[0], *whole[1]], [*split[0], *split[1]], strict=True):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="stride-8"):
        model.backbone(paddle.zeros([1, 80, 4, 4]), FEATURE_STAGES[0] + 2)


def test_config_freezes_the_leading_stages_only(tmp_path: Path) -> None:
    config = load_detection_config(CONFIG, {"data.train_annotations": str(tmp_path / "none.json")})
    assert config.model.architecture == "picodet_efficientnet_lite0" and config.model.input_size == 320
    model = build_model(config, 1)
    frozen = freeze_trunk(config, model)
    frozen_parameters = {id(parameter) for layer in frozen for parameter in layer.parameters()}
    assert frozen_parameters and all(parameter.stop_gradient for layer in frozen for parameter in layer.parameters())
    optimized = {id(parameter) for parameter in build_optimizer(config, model)._parameter_list}
    assert not optimized & frozen_parameters
    # everything else that learns is optimized: later backbone stages, neck, head (BN statistics never are)
    learning = {id(p) for name, p in model.named_parameters() if not name.endswith(("_mean", "_variance"))}
    assert optimized == learning - frozen_parameters
    with pytest.raises(ValueError, match="one size"):
        load_detection_config(CONFIG, {"data.train_annotations": "x.json", "train.sizes": [288, 320]})
    with pytest.raises(ValueError, match="frozen_stages needs"):
        load_detection_config(CONFIG, {"data.train_annotations": "x.json", "model.architecture": "picodet_lcnet"})


def test_a_short_run_trains_evaluates_and_exports_what_the_service_loads(tmp_path: Path) -> None:
    annotations = make_synthetic_coco(tmp_path / "data", count=4, size=64)
    overrides = {
        "data.train_annotations": str(annotations), "data.val_annotations": str(annotations),
        "model.input_size": 64, "train.sizes": [64], "train.batch_size": 2, "train.max_steps": 2,
        "train.output_dir": str(tmp_path / "run"), "model.neck_channels": 16, "model.head_convs": 1,
    }  # fmt: skip
    config = load_detection_config(CONFIG, overrides)
    result = train_detector(config)
    assert result.steps == 2 and result.manifest is not None
    assert result.evaluations[-1]["train_cpu_minutes"] > 0
    assert (tmp_path / "run" / "evaluations.jsonl").read_text().count("\n") == len(result.evaluations)
    assert result.manifest.architecture == "picodet_efficientnet_lite0"
    detector = load_detector(config.export_dir, RuntimeSettings(cpu_threads=1, warmup=False))
    image = np.random.default_rng(1).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    for detection in detector.detect(image):
        assert 0.0 <= detection.score <= 1.0


