"""Optimizer and LR schedule of the PP-ShiTuV2 recipe (spec 2.3), plus frozen and slower backbone stages.

Per-parameter LR multipliers and weight-decay exemptions live on the parameters themselves
(``optimize_attr["learning_rate"]`` and ``regularizer``). Paddle's parameter groups would overwrite both
(the BNNeck shift's LR of 1e-20 and the backbone BN's ``L2Decay(0)``), so the optimizer gets one flat list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import paddle
from paddle import nn
from paddle.optimizer.lr import LRScheduler
from paddle.regularizer import L2Decay

from trainer.recognition.config import OptimizerConfig

Stage = list[nn.Layer]


class StagedBackbone(Protocol):
    """What a backbone offers the schedule: its stages, from the input side (PPLCNetV2, EfficientNet-Lite0)."""

    def stage_layers(self) -> list[Stage]: ...


class WarmupCosine(LRScheduler):
    """Per-iteration schedule: linear 0 → ``peak_lr`` over ``warmup_steps``, then cosine to 0 at ``total_steps``."""

    def __init__(self, peak_lr: float, warmup_steps: int, total_steps: int, last_epoch: int = -1) -> None:
        self.peak_lr = peak_lr
        self.warmup_steps = min(warmup_steps, total_steps)
        self.total_steps = total_steps
        super().__init__(peak_lr, last_epoch)

    def get_lr(self) -> float:
        return warmup_cosine_lr(self.last_epoch, self.peak_lr, self.warmup_steps, self.total_steps)


def warmup_cosine_lr(step: int, peak_lr: float, warmup_steps: int, total_steps: int) -> float:
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(step - warmup_steps, decay_steps) / decay_steps
    return 0.5 * peak_lr * (1.0 + math.cos(math.pi * progress))


def backbone_stages(backbone: StagedBackbone) -> list[Stage]:
    """The backbone's stages from the input side: the stem first, then each resolution stage. Each backbone
    declares its own layout (``stage_layers``), so a new one needs no change here."""
    return backbone.stage_layers()


def freeze_stages(stages: Sequence[Stage], count: int) -> list[nn.Layer]:
    """Stop gradients through the first ``count`` stages; returns their layers, which must run in eval mode."""
    if count > len(stages):
        raise ValueError(f"cannot freeze {count} stages: the backbone has {len(stages)}")
    frozen = [layer for stage in stages[:count] for layer in stage]
    for layer in frozen:
        for parameter in layer.parameters():
            parameter.stop_gradient = True
    return frozen


def scale_stage_learning_rates(stages: Sequence[Stage], first: int, count: int, scale: float) -> None:
    """Multiply the LR of stages ``first .. first + count - 1`` by ``scale`` (on top of any existing factor)."""
    for stage in stages[first : first + count]:
        for layer in stage:
            for parameter in layer.parameters():
                parameter.optimize_attr["learning_rate"] *= scale


def set_training_mode(model: nn.Layer, frozen: Sequence[nn.Layer]) -> None:
    """Train mode everywhere except the frozen stages, whose BN statistics must not move."""
    model.train()
    for layer in frozen:
        layer.eval()


def build_optimizer(
    parameters: Sequence[paddle.Tensor], scheduler: LRScheduler, config: OptimizerConfig
) -> paddle.optimizer.Momentum:
    """Momentum with coupled L2 decay over the trainable parameters; those with their own regularizer (the
    backbone BN's ``L2Decay(0)``) keep it."""
    return paddle.optimizer.Momentum(
        learning_rate=scheduler,
        momentum=config.momentum,
        parameters=[parameter for parameter in parameters if not parameter.stop_gradient],
        weight_decay=L2Decay(config.weight_decay),
        multi_precision=True,
    )
