"""Model, optimizer and LR schedule of a detection run, built from its config."""

from __future__ import annotations

import logging
import math

import paddle
from paddle.regularizer import L2Decay

from trainer.checkpoint import load_checked, read_pdparams
from trainer.detection.config import TrainDetectionConfig
from trainer.models.picodet import PicoDet, build_picodet, load_picodet_checkpoint
from trainer.schedule import backbone_stages, freeze_stages

logger = logging.getLogger(__name__)


def picodet_learning_rate(
    step: int, peak_lr: float, warmup_steps: int, warmup_start_factor: float, total_steps: int
) -> float:
    """PaddleDetection's CosineDecay over all steps, overridden by LinearWarmup from ``start_factor · peak``."""
    if step < warmup_steps:
        progress = step / warmup_steps
        return peak_lr * (warmup_start_factor * (1.0 - progress) + progress)
    return 0.5 * peak_lr * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


def build_model(config: TrainDetectionConfig, num_classes: int) -> PicoDet:
    settings = config.model
    if settings.architecture == "picodet_efficientnet_lite0":
        # imported here: the ImageNet weights package is only needed for this backbone
        from trainer.models.picodet_efficientnet import build_picodet_efficientnet

        model = build_picodet_efficientnet(
            num_classes,
            neck_channels=settings.neck_channels,
            head_convs=settings.head_convs,
            imagenet=settings.imagenet_backbone and settings.init_checkpoint is None,
        )
    elif settings.architecture == "picodet_nanodet_csp":
        from trainer.models.nanodet_csp import build_picodet_nanodet_csp

        model = build_picodet_nanodet_csp(
            num_classes, neck_channels=settings.neck_channels, head_convs=settings.head_convs
        )
    else:
        model = build_picodet(
            settings.scale, num_classes, neck_channels=settings.neck_channels, head_convs=settings.head_convs
        )
    if config.model.init_checkpoint is not None:
        state = read_pdparams(config.model.init_checkpoint)
        head_key = "head.head_cls0.weight"
        other_classes = head_key in state and state[head_key].shape != tuple(model.state_dict()[head_key].shape)
        loaded = load_picodet_checkpoint(model, state, skip_head_classes=other_classes)
        logger.info(
            "initialised %d tensors from %s%s",
            len(loaded),
            config.model.init_checkpoint,
            " (class outputs left random: other class count)" if other_classes else "",
        )
    elif config.model.backbone_checkpoint is not None:
        load_backbone(model, config.model.backbone_checkpoint)
    return model


def load_backbone(model: PicoDet, checkpoint: object) -> list[str]:
    """Load backbone weights (an ImageNet LCNet classifier's, a detector's ``backbone.*``, NanoDet-g's converted
    ones): every backbone tensor must be there with its shape; classifier-only entries (``fc``, ``last_conv``) are
    ignored."""
    state = read_pdparams(checkpoint)  # type: ignore[arg-type]
    if any(name.startswith("backbone.") for name in state):
        state = {name.removeprefix("backbone."): value for name, value in state.items() if name.startswith("backbone.")}
    own = model.backbone.state_dict()
    loaded = load_checked(
        model.backbone, {name: value for name, value in state.items() if name in own}, source=str(checkpoint)
    )
    logger.info("initialised the backbone's %d tensors from %s", len(loaded), checkpoint)
    return loaded


def freeze_trunk(config: TrainDetectionConfig, model: PicoDet) -> list[paddle.nn.Layer]:
    """Stop gradients through the first ``model.frozen_stages`` backbone stages; their layers (eval mode)."""
    if not config.model.frozen_stages:
        return []
    return freeze_stages(backbone_stages(model.backbone), config.model.frozen_stages)


def build_optimizer(config: TrainDetectionConfig, model: PicoDet) -> paddle.optimizer.Momentum:
    """Momentum with coupled L2 over the trainable parameters; a parameter's own regularizer (BatchNorm:
    ``L2Decay(0)``) takes precedence."""
    return paddle.optimizer.Momentum(
        learning_rate=config.learning_rate,
        momentum=config.optimizer.momentum,
        parameters=[parameter for parameter in model.parameters() if not parameter.stop_gradient],
        weight_decay=L2Decay(config.optimizer.weight_decay),
    )
