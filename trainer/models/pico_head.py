"""PicoHead (PicoDet v1): per-level depthwise towers, a shared cls+box 1×1 conv, GFL integral box decoding.

Parameter names follow PaddleDetection's legacy ``PicoHead`` (``conv_feat.cls_conv_dw{level}.{i}``,
``head_cls{level}``, ``distribution_project.project``, ``p{3..6}_feat.scale_reg``) so that its
checkpoints load by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, Normal

from trainer.models.layers import batch_norm, same_conv


class ConvNormLayer(nn.Layer):
    """Conv (no bias) → BatchNorm, no activation (the tower applies hardswish)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = same_conv(in_channels, out_channels, kernel_size, groups=groups, initializer=Normal(0.0, 0.01))
        self.norm = batch_norm(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.conv(x))


class PicoFeat(nn.Layer):
    """One tower per level (not shared across levels): ``num_convs`` × (dw 5×5 ConvNorm, pw 1×1 ConvNorm)."""

    def __init__(self, in_channels: int, feat_channels: int, num_levels: int, num_convs: int) -> None:
        super().__init__()
        self.num_levels = num_levels
        for level in range(num_levels):
            depthwise, pointwise = [], []
            for index in range(num_convs):
                channels = in_channels if index == 0 else feat_channels
                depthwise.append(ConvNormLayer(channels, feat_channels, 5, groups=feat_channels))
                pointwise.append(ConvNormLayer(channels, feat_channels, 1))
            self.add_sublayer(f"cls_conv_dw{level}", nn.LayerList(depthwise))
            self.add_sublayer(f"cls_conv_pw{level}", nn.LayerList(pointwise))

    def forward(self, feature: paddle.Tensor, level: int) -> paddle.Tensor:
        pointwise = getattr(self, f"cls_conv_pw{level}")
        # Indexing rather than zip(): dygraph-to-static conversion does not accept zip(strict=...).
        for index, depthwise in enumerate(getattr(self, f"cls_conv_dw{level}")):
            feature = F.hardswish(pointwise[index](F.hardswish(depthwise(feature))))
        return feature


class ScaleReg(nn.Layer):
    """A learnable scalar per level. PicoHead never applies it; it exists so checkpoints load both ways."""

    def __init__(self) -> None:
        super().__init__()
        self.scale_reg = self.create_parameter([1], attr=ParamAttr(initializer=Constant(1.0)), dtype="float32")


class Integral(nn.Layer):
    """Expected value of a softmax distribution over the bins ``project`` = 0…reg_max (stored in checkpoints)."""

    def __init__(self, reg_max: int) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.register_buffer("project", paddle.linspace(0, reg_max, reg_max + 1, dtype="float32"))

    def forward(self, regression: paddle.Tensor) -> paddle.Tensor:
        """[N, 4·(reg_max+1), H, W] → distances [N, H·W, 4] (left, top, right, bottom) in feature cells."""
        batch, _, height, width = regression.shape
        bins = regression.reshape([batch, 4, self.reg_max + 1, height * width])
        expectation = (F.softmax(bins, axis=2) * self.project.reshape([1, 1, -1, 1])).sum(axis=2)
        return expectation.transpose([0, 2, 1])


def anchor_centers(height: int, width: int, stride: int, cell_offset: float) -> paddle.Tensor:
    """Centres (x, y) of a level's cells in input pixels, row-major: [H·W, 2]."""
    xs = (paddle.arange(width, dtype="float32") + cell_offset) * stride
    ys = (paddle.arange(height, dtype="float32") + cell_offset) * stride
    grid_y, grid_x = paddle.meshgrid(ys, xs)
    return paddle.stack([grid_x.flatten(), grid_y.flatten()], axis=-1)


class PicoHead(nn.Layer):
    """GFL-style head with ``share_cls_reg``: one 1×1 conv per level gives C class logits + 4·(reg_max+1) bins."""

    def __init__(
        self,
        num_classes: int = 1,
        in_channels: int = 128,
        feat_channels: int = 128,
        num_convs: int = 4,
        strides: Sequence[int] = (8, 16, 32, 64),
        reg_max: int = 7,
        prior_prob: float = 0.01,
        cell_offset: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.reg_max = reg_max
        self.cell_offset = cell_offset
        self.conv_feat = PicoFeat(in_channels, feat_channels, len(self.strides), num_convs)
        for stride in self.strides:
            self.add_sublayer(f"p{int(math.log2(stride))}_feat", ScaleReg())
        self.distribution_project = Integral(reg_max)
        bias = -math.log((1 - prior_prob) / prior_prob)
        for level in range(len(self.strides)):
            conv = nn.Conv2D(
                feat_channels,
                num_classes + 4 * (reg_max + 1),
                1,
                weight_attr=ParamAttr(initializer=Normal(0.0, 0.01)),
                bias_attr=ParamAttr(initializer=Constant(bias)),
            )
            self.add_sublayer(f"head_cls{level}", conv)

    def forward(self, features: Sequence[paddle.Tensor]) -> tuple[list[paddle.Tensor], list[paddle.Tensor]]:
        """Raw per-level outputs: class logits [N, C, H, W] and box bins [N, 4·(reg_max+1), H, W]."""
        if len(features) != len(self.strides):
            raise ValueError(f"expected {len(self.strides)} feature levels, got {len(features)}")
        class_logits, box_bins = [], []
        for level, feature in enumerate(features):
            output = getattr(self, f"head_cls{level}")(self.conv_feat(feature, level))
            logits, bins = paddle.split(output, [self.num_classes, 4 * (self.reg_max + 1)], axis=1)
            class_logits.append(logits)
            box_bins.append(bins)
        return class_logits, box_bins

    def decode_levels(
        self, class_logits: Sequence[paddle.Tensor], box_bins: Sequence[paddle.Tensor]
    ) -> tuple[list[paddle.Tensor], list[paddle.Tensor]]:
        """Per level: sigmoid scores [N, C, H·W] and unclipped boxes [N, H·W, 4] (x1, y1, x2, y2, input pixels)."""
        scores, boxes = [], []
        for level, stride in enumerate(self.strides):
            logits, bins = class_logits[level], box_bins[level]
            _, _, height, width = logits.shape
            scores.append(F.sigmoid(logits).flatten(start_axis=2))
            distances = self.distribution_project(bins) * stride
            centers = anchor_centers(height, width, stride, self.cell_offset).unsqueeze(0)
            boxes.append(paddle.concat([centers - distances[:, :, :2], centers + distances[:, :, 2:]], axis=-1))
        return scores, boxes

    def decode(
        self, class_logits: Sequence[paddle.Tensor], box_bins: Sequence[paddle.Tensor]
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        """All anchors, stride 8 first, row-major: scores [N, C, A] and boxes [N, A, 4] in input pixels."""
        scores, boxes = self.decode_levels(class_logits, box_bins)
        return paddle.concat(scores, axis=2), paddle.concat(boxes, axis=1)
