"""Frozen stages run by Paddle Inference give the dygraph model's features and the dygraph run's losses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest

from tests.trainer.recognition_helpers import make_shapes_dataset
from trainer.frozen_trunk import FrozenTrunk
from trainer.models.recognition import build_recognition_model
from trainer.recognition.config import load_recognition_config
from trainer.recognition.train import RecognitionTrainer, TrainResult

REPO = Path(__file__).resolve().parents[2]
CI_CONFIG = REPO / "trainer" / "configs" / "recognition_ci.yaml"


@pytest.mark.parametrize(
    ("arch", "stages", "side"),
    [("efficientnet_lite0", 4, 64), ("efficientnet_lite0", 8, 64), ("pplcnetv2_base", 3, 96)],
)
def test_trunk_then_trainable_stages_equal_the_whole_model(arch: str, stages: int, side: int, tmp_path: Path) -> None:
    paddle.seed(3)
    model = build_recognition_model(arch, 5, pretrained=arch == "efficientnet_lite0")
    model.eval()
    images = np.random.default_rng(0).normal(0.0, 1.0, (3, 3, side, side)).astype(np.float32)

    trunk = FrozenTrunk(model, stages, side, tmp_path / "trunk", threads=1)
    with paddle.no_grad():
        whole = model(paddle.to_tensor(images))
        split = model(trunk(images), stages)

    for name in ("features", "logits"):
        np.testing.assert_allclose(split[name].numpy(), whole[name].numpy(), rtol=1e-3, atol=1e-4)


def test_a_trunk_covers_one_to_all_stages(tmp_path: Path) -> None:
    model = build_recognition_model("efficientnet_lite0")
    with pytest.raises(ValueError, match="1..8 stages"):
        FrozenTrunk(model, 9, 64, tmp_path, threads=1)


@pytest.mark.slow  # two training runs
def test_training_with_the_inference_trunk_follows_the_dygraph_run(tmp_path: Path) -> None:
    data = make_shapes_dataset(tmp_path / "data")

    def run(runtime: str) -> TrainResult:
        overrides = [f"data.root={data}", f"output={tmp_path / runtime}", "max_iterations=3"]
        config = load_recognition_config(CI_CONFIG, [*overrides, f"optimizer.frozen_runtime={runtime}"])
        trainer = RecognitionTrainer(config)
        assert (trainer.trunk is not None) == (runtime == "inference")
        return trainer.train()

    dygraph, inference = run("dygraph"), run("inference")

    assert len(dygraph.losses) == len(inference.losses) == 3
    np.testing.assert_allclose(inference.losses, dygraph.losses, rtol=2e-3)
    # the end-of-run evaluation embeds through the trunk too
    assert inference.progress.metrics.keys() == dygraph.progress.metrics.keys() == {"recall1", "recall5", "mAP"}
    for name, value in dygraph.progress.metrics.items():
        assert inference.progress.metrics[name] == pytest.approx(value, abs=0.03), name
    assert (tmp_path / "inference" / "frozen_trunk" / "inference.pdiparams").is_file()
