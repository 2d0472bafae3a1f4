"""PP-LCNet (v1), the backbone of the PicoDet main-body detector.

Layer and parameter names follow PaddleDetection's ``LCNet`` so that its checkpoints (and the
ImageNet ``LCNet_x2_5_ssld_pretrained`` weights) load by name.
"""

from __future__ import annotations

import paddle
from paddle import nn

from trainer.models.layers import batch_norm, same_conv

# (kernel, in_channels, out_channels, stride, squeeze_excitation) at scale 1.0, per stage.
STAGES: dict[str, list[tuple[int, int, int, int, bool]]] = {
    "blocks2": [(3, 16, 32, 1, False)],
    "blocks3": [(3, 32, 64, 2, False), (3, 64, 64, 1, False)],
    "blocks4": [(3, 64, 128, 2, False), (3, 128, 128, 1, False)],
    "blocks5": [(3, 128, 256, 2, False)] + [(5, 256, 256, 1, False)] * 5,
    "blocks6": [(5, 256, 512, 2, True), (5, 512, 512, 1, True)],
}
# Feature-map index of each stage (2 = stride 4 … 5 = stride 32), as in ``feature_maps``.
STAGE_INDEX = {"blocks3": 2, "blocks4": 3, "blocks5": 4, "blocks6": 5}


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor``, never more than 10 % below it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNLayer(nn.Layer):
    """Conv (no bias) → BatchNorm → hardswish."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = same_conv(in_channels, out_channels, kernel_size, stride=stride, groups=groups)
        self.bn = batch_norm(out_channels)
        self.act = nn.Hardswish()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.act(self.bn(self.conv(x)))


class SEModule(nn.Layer):
    """Squeeze-excitation with ReLU inside and a hard sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)
        self.hardsigmoid = nn.Hardsigmoid()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = self.hardsigmoid(self.conv2(self.relu(self.conv1(self.avg_pool(x)))))
        return x * gate


class DepthwiseSeparable(nn.Layer):
    def __init__(
        self, in_channels: int, out_channels: int, stride: int, kernel_size: int, squeeze_excitation: bool
    ) -> None:
        super().__init__()
        self.dw_conv = ConvBNLayer(in_channels, in_channels, kernel_size, stride=stride, groups=in_channels)
        self.se = SEModule(in_channels) if squeeze_excitation else None
        self.pw_conv = ConvBNLayer(in_channels, out_channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw_conv(x)


class LCNet(nn.Layer):
    """PP-LCNet backbone returning the feature maps listed in ``feature_maps`` (3 = stride 8 … 5 = stride 32)."""

    def __init__(self, scale: float = 1.0, feature_maps: tuple[int, ...] = (3, 4, 5)) -> None:
        super().__init__()
        self.scale = scale
        self.feature_maps = tuple(feature_maps)
        self.conv1 = ConvBNLayer(3, make_divisible(16 * scale), 3, stride=2)
        for stage, blocks in STAGES.items():
            layers = [
                DepthwiseSeparable(
                    make_divisible(in_channels * scale),
                    make_divisible(out_channels * scale),
                    stride=stride,
                    kernel_size=kernel,
                    squeeze_excitation=squeeze_excitation,
                )
                for kernel, in_channels, out_channels, stride, squeeze_excitation in blocks
            ]
            self.add_sublayer(stage, nn.Sequential(*layers))
        self.out_channels = [
            make_divisible(STAGES[stage][-1][2] * scale)
            for stage, index in STAGE_INDEX.items()
            if index in self.feature_maps
        ]

    def forward(self, image: paddle.Tensor) -> list[paddle.Tensor]:
        x = self.blocks2(self.conv1(image))
        outputs = []
        for stage, index in STAGE_INDEX.items():
            x = getattr(self, stage)(x)
            if index in self.feature_maps:
                outputs.append(x)
        return outputs
