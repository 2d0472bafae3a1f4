"""CSP-PAN, PicoDet's neck: a path-aggregation network of CSP blocks with depthwise convolutions.

Parameter names follow PaddleDetection's ``CSPPAN`` (``conv_t``, ``top_down_blocks``, ``downsamples``,
``bottom_up_blocks``, ``first_top_conv``, ``second_top_conv``) so its checkpoints load by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
import paddle.nn.functional as F
from paddle import nn
from paddle.nn.initializer import KaimingUniform

from trainer.models.layers import same_conv


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> nn.Conv2D:
    return same_conv(in_channels, out_channels, kernel_size, stride=stride, groups=groups, initializer=KaimingUniform())


def upsample_nearest_2x(x: paddle.Tensor) -> paddle.Tensor:
    """Nearest-neighbour ×2 upsampling (each pixel becomes a 2×2 block) without an interpolate op.

    Paddle 3.3.1's oneDNN executor cannot convert the ``scale`` attribute (an array of doubles) of
    ``nearest_interp`` and aborts with ``ConvertPirAttribute2RuntimeAttribute``; expand + reshape gives
    the same values and keeps the exported graph runnable with oneDNN fully on.
    """
    _, channels, height, width = x.shape
    blocks = x.unsqueeze([3, 5]).expand([-1, -1, -1, 2, -1, 2])
    return blocks.reshape([-1, channels, 2 * height, 2 * width])


class ConvBNLayer(nn.Layer):
    """Conv (no bias) → BatchNorm → hardswish."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.conv = _conv(in_channels, out_channels, kernel_size)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.hardswish(self.bn(self.conv(x)))


class DepthwisePointwise(nn.Layer):
    """Depthwise k×k conv → BN → hardswish → pointwise 1×1 conv → BN → hardswish (PaddleDetection ``DP_Module``)."""

    def __init__(self, channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.dwconv = _conv(channels, channels, kernel_size, stride=stride, groups=channels)
        self.bn1 = nn.BatchNorm2D(channels)
        self.pwconv = _conv(channels, channels, 1)
        self.bn2 = nn.BatchNorm2D(channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = F.hardswish(self.bn1(self.dwconv(x)))
        return F.hardswish(self.bn2(self.pwconv(x)))


class DarknetBottleneck(nn.Layer):
    """1×1 ConvBN then a depthwise-pointwise module; PicoDet's PAN uses it without the identity shortcut."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv1 = ConvBNLayer(channels, channels, 1)
        self.conv2 = DepthwisePointwise(channels, kernel_size)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv2(self.conv1(x))


class CSPLayer(nn.Layer):
    """Cross-stage-partial block: a main path through bottlenecks and a 1×1 short path, concatenated and fused."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_blocks: int) -> None:
        super().__init__()
        middle = out_channels // 2
        self.main_conv = ConvBNLayer(in_channels, middle)
        self.short_conv = ConvBNLayer(in_channels, middle)
        self.final_conv = ConvBNLayer(2 * middle, out_channels)
        self.blocks = nn.Sequential(*[DarknetBottleneck(middle, kernel_size) for _ in range(num_blocks)])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        short = self.short_conv(x)
        main = self.blocks(self.main_conv(x))
        return self.final_conv(paddle.concat([main, short], axis=1))


class ChannelTransform(nn.Layer):
    """One 1×1 ConvBN per backbone level, bringing every level to the neck width."""

    def __init__(self, in_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.convs = nn.LayerList([ConvBNLayer(channels, out_channels) for channels in in_channels])

    def forward(self, features: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        # Indexing rather than zip(): dygraph-to-static conversion does not accept zip(strict=...).
        return [conv(features[index]) for index, conv in enumerate(self.convs)]


class CSPPAN(nn.Layer):
    """Top-down then bottom-up aggregation; with ``num_features=4`` an extra stride-2 level is added on top."""

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int = 128,
        kernel_size: int = 5,
        num_features: int = 4,
        num_csp_blocks: int = 1,
    ) -> None:
        super().__init__()
        if num_features not in (len(in_channels), len(in_channels) + 1):
            raise ValueError(f"num_features must be {len(in_channels)} or {len(in_channels) + 1}, got {num_features}")
        levels = len(in_channels)
        self.num_features = num_features
        self.out_channels = out_channels
        self.conv_t = ChannelTransform(in_channels, out_channels)
        if num_features > levels:
            self.first_top_conv = DepthwisePointwise(out_channels, kernel_size, stride=2)
            self.second_top_conv = DepthwisePointwise(out_channels, kernel_size, stride=2)
        self.top_down_blocks = nn.LayerList(
            [CSPLayer(2 * out_channels, out_channels, kernel_size, num_csp_blocks) for _ in range(levels - 1)]
        )
        self.downsamples = nn.LayerList(
            [DepthwisePointwise(out_channels, kernel_size, stride=2) for _ in range(levels - 1)]
        )
        self.bottom_up_blocks = nn.LayerList(
            [CSPLayer(2 * out_channels, out_channels, kernel_size, num_csp_blocks) for _ in range(levels - 1)]
        )

    def forward(self, features: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        inputs = self.conv_t(features)
        # Top-down: inner[0] is the finest level once the loop ends.
        inner = [inputs[-1]]
        for index, block in enumerate(self.top_down_blocks):
            upsampled = upsample_nearest_2x(inner[0])
            inner.insert(0, block(paddle.concat([upsampled, inputs[-2 - index]], axis=1)))
        outputs = [inner[0]]
        for index, block in enumerate(self.bottom_up_blocks):
            downsampled = self.downsamples[index](outputs[-1])
            outputs.append(block(paddle.concat([downsampled, inner[index + 1]], axis=1)))
        if self.num_features > len(inputs):
            outputs.append(self.first_top_conv(inputs[-1]) + self.second_top_conv(outputs[-1]))
        return outputs
