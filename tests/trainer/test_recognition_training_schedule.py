"""LR schedule, optimizer decay/LR exemptions, frozen stages and the training config."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddle import nn
from paddle.regularizer import L2Decay

from trainer.models.pplcnetv2 import PPLCNetV2Backbone
from trainer.recognition.config import OptimizerConfig, TrainRecognitionConfig, load_recognition_config
from trainer.schedule import (
    WarmupCosine,
    backbone_stages,
    build_optimizer,
    freeze_stages,
    scale_stage_learning_rates,
    set_training_mode,
    warmup_cosine_lr,
)


def test_warmup_then_cosine_by_hand() -> None:
    # PP-ShiTuV2 shape: 5 warm-up epochs of 1 step, cosine over the remaining 100.
    assert warmup_cosine_lr(0, 0.06, 5, 105) == 0.0
    assert warmup_cosine_lr(2, 0.06, 5, 105) == pytest.approx(0.06 * 2 / 5)
    assert warmup_cosine_lr(5, 0.06, 5, 105) == pytest.approx(0.06)
    assert warmup_cosine_lr(30, 0.06, 5, 105) == pytest.approx(0.03 * (1 + math.cos(math.pi * 25 / 100)))
    assert warmup_cosine_lr(55, 0.06, 5, 105) == pytest.approx(0.03)
    assert warmup_cosine_lr(105, 0.06, 5, 105) == pytest.approx(0.0)


def test_scheduler_steps_and_restores() -> None:
    scheduler = WarmupCosine(0.1, warmup_steps=2, total_steps=6)
    seen = [scheduler()]
    for _ in range(6):
        scheduler.step()
        seen.append(scheduler())
    assert seen == pytest.approx([warmup_cosine_lr(step, 0.1, 2, 6) for step in range(7)])
    restored = WarmupCosine(0.1, warmup_steps=2, total_steps=6)
    restored.set_state_dict(scheduler.state_dict())
    assert restored.last_epoch == 6 and restored() == pytest.approx(0.0)


class _Tiny(nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2D(1, 2, 1, bias_attr=False)
        self.bn = nn.BatchNorm2D(2, weight_attr=paddle.ParamAttr(regularizer=L2Decay(0.0)))
        self.neck_shift = self.create_parameter([2], attr=paddle.ParamAttr(learning_rate=1e-20), is_bias=True)


def test_optimizer_keeps_per_parameter_decay_and_learning_rates() -> None:
    model = _Tiny()
    for parameter in (model.conv.weight, model.bn.weight, model.bn.bias, model.neck_shift):
        parameter.set_value(paddle.ones(parameter.shape))
    model.bn.bias.optimize_attr["learning_rate"] *= 0.5
    optimizer = build_optimizer(model.parameters(), WarmupCosine(1.0, 0, 10), OptimizerConfig(weight_decay=0.1))
    loss = (model.conv.weight * 0).sum() + (model.bn.weight * 0).sum() + model.bn.bias.sum() + model.neck_shift.sum()
    loss.backward()
    optimizer.step()
    # lr 1 (no warm-up): decayed weight 1 - 0.1; BN scale exempt from decay; BN shift: grad 1 + decay 0.1 at
    # half LR; the neck shift's 1e-20 LR keeps it at 1.
    np.testing.assert_allclose(model.conv.weight.numpy(), 0.9, rtol=1e-6)
    np.testing.assert_allclose(model.bn.weight.numpy(), 1.0)
    np.testing.assert_allclose(model.bn.bias.numpy(), 1 - 0.5 * 1.1, rtol=1e-6)
    np.testing.assert_allclose(model.neck_shift.numpy(), 1.0)


def test_frozen_and_slow_stages() -> None:
    backbone = PPLCNetV2Backbone()
    stages = backbone_stages(backbone)
    assert len(stages) == 5  # stem + 4 stages
    frozen = freeze_stages(stages, 2)
    assert all(parameter.stop_gradient for parameter in backbone.stem.parameters())
    assert all(parameter.stop_gradient for parameter in backbone.stages[0].parameters())
    assert not backbone.stages[1][0].pw_conv.conv.weight.stop_gradient
    assert not backbone.stages[1][0].pw_conv.bn.weight.stop_gradient
    scale_stage_learning_rates(stages, 2, 1, 0.1)
    slow = {round(p.optimize_attr["learning_rate"], 9) for p in backbone.stages[1].parameters()}
    assert slow == {0.1}
    assert {p.optimize_attr["learning_rate"] for p in backbone.stages[2].parameters()} == {1.0}
    set_training_mode(backbone, frozen)
    assert not backbone.stem.training and not backbone.stages[0][0].dw_conv.bn.training
    assert backbone.stages[1].training and backbone.training
    with pytest.raises(ValueError, match="has 5"):
        freeze_stages(stages, 6)


def _write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_config_overrides_and_batch_scaled_lr(tmp_path: Path) -> None:
    path = _write_config(tmp_path, "data: {root: data, train_list: train.txt}\nbatch_size: 256\n")
    overrides = ["accumulate_steps=2", "optimizer.freeze_stages=3", "data.augment.image_size=96"]
    config = load_recognition_config(path, overrides)
    assert config.data.root == Path("data")  # relative to the working directory (trainer.yaml_config)
    assert config.optimizer.freeze_stages == 3 and config.data.augment.image_size == 96
    assert config.global_batch == 512
    assert config.learning_rate == pytest.approx(0.06 * 512 / 2048)
    absolute = load_recognition_config(path, ["optimizer.reference_batch=null", "optimizer.base_lr=0.01"])
    assert absolute.learning_rate == 0.01


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["batch_size=8", "images_per_id=8"], "two identities"),
        (["data.eval_list=e.txt", "data.query_list=q.txt", "data.gallery_list=g.txt"], "either"),
        (["data.query_list=q.txt"], "go together"),
        (["optimizer.momentum=1.5"], "momentum"),
        (["model.arch=resnet"], "arch"),
        (["epochs"], "section.key=value"),
    ],
)
def test_config_rejects(tmp_path: Path, overrides: list[str], message: str) -> None:
    path = _write_config(tmp_path, "data: {root: data, train_list: train.txt}\n")
    with pytest.raises(ValueError, match=message):
        load_recognition_config(path, overrides)


def test_shipped_configs_validate() -> None:
    for path in (Path(__file__).resolve().parents[2] / "trainer" / "configs").glob("recognition_*.yaml"):
        assert isinstance(load_recognition_config(path), TrainRecognitionConfig)
