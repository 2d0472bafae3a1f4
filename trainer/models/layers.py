"""Building blocks the PaddleClas / PaddleDetection networks share: a biasless "same" conv, BN without decay."""

from __future__ import annotations

from paddle import ParamAttr, nn
from paddle.nn.initializer import Initializer, KaimingNormal
from paddle.regularizer import L2Decay


def same_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    groups: int = 1,
    initializer: Initializer | None = None,
) -> nn.Conv2D:
    """Conv2D without bias, padded by ``(k - 1) // 2`` (the size is kept at stride 1); Kaiming-normal by default."""
    return nn.Conv2D(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=(kernel_size - 1) // 2,
        groups=groups,
        weight_attr=ParamAttr(initializer=initializer or KaimingNormal()),
        bias_attr=False,
    )


def no_decay() -> ParamAttr:
    """Both references exempt BatchNorm's scale and shift from weight decay."""
    return ParamAttr(regularizer=L2Decay(0.0))


def batch_norm(channels: int) -> nn.BatchNorm2D:
    return nn.BatchNorm2D(channels, weight_attr=no_decay(), bias_attr=no_decay())
