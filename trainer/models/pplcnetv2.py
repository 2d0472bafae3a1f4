"""PPLCNetV2_base as PP-ShiTuV2 uses it (PaddleClas ``PPLCNetV2_base_ShiTu``), written from the spec.

Parameter names and shapes equal PaddleClas's training ``state_dict`` so official ``.pdparams``
checkpoints load by name. The ShiTu changes are built in: the last stage runs at stride 1 (its
first block therefore gains a 1x1 re-parameterizable branch), ``last_conv`` has a bias and no
ReLU follows it, and there is no ImageNet classifier. The dropout before the neck is kept: the
released features were computed with its eval-time 0.8 scaling.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

from trainer.models.layers import batch_norm, same_conv

# Per stage: input channels (every block outputs twice as many), depthwise kernel, split pointwise,
# re-parameterizable branches, squeeze-excitation, residual (PaddleClas NET_CONFIG at scale 1.0).
STAGE_CONFIG: tuple[tuple[int, int, bool, bool, bool, bool], ...] = (
    (64, 3, False, False, False, False),
    (128, 3, False, False, False, False),
    (256, 5, True, True, True, False),
    (512, 5, False, True, False, True),
)
STAGE_DEPTHS = (2, 2, 6, 2)
STEM_CHANNELS = 32
EMBEDDING_DIM = 512
DROPOUT_PROB = 0.2


class ConvBNLayer(nn.Layer):
    """Conv (no bias) → BatchNorm → optional ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        use_act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = same_conv(in_channels, out_channels, kernel_size, stride=stride, groups=groups)
        self.bn = batch_norm(out_channels)
        self.act = nn.ReLU() if use_act else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


class SEModule(nn.Layer):
    """Squeeze-excitation with a plain Sigmoid gate (PaddleClas names the attribute ``hardsigmoid``)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = F.sigmoid(self.conv2(F.relu(self.conv1(self.avg_pool(x)))))
        return x * gate


class RepDepthwiseSeparable(nn.Layer):
    """Depthwise (optionally several parallel kernels, foldable into one) → SE → pointwise, optional residual."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        dw_size: int = 3,
        split_pw: bool = False,
        use_rep: bool = False,
        use_se: bool = False,
        use_shortcut: bool = False,
    ) -> None:
        super().__init__()
        self.use_rep = use_rep
        self.split_pw = split_pw
        self.use_shortcut = use_shortcut and stride == 1 and in_channels == out_channels
        self.is_reparameterized = False
        if use_rep:
            # A 1x1 depthwise branch would sample a different grid than the others at stride 2.
            kernels = [k for k in range(dw_size, 0, -2) if k > 1 or stride == 1]
            self.dw_conv_list = nn.LayerList(
                [ConvBNLayer(in_channels, in_channels, k, stride, groups=in_channels, use_act=False) for k in kernels]
            )
            # Receives the folded branches at export; a training parameter too, so checkpoints carry it.
            self.dw_conv = nn.Conv2D(
                in_channels, in_channels, dw_size, stride=stride, padding=(dw_size - 1) // 2, groups=in_channels
            )
        else:
            self.dw_conv = ConvBNLayer(in_channels, in_channels, dw_size, stride, groups=in_channels)
        self.se = SEModule(in_channels) if use_se else None
        if split_pw:
            middle = int(out_channels * 0.5)
            self.pw_conv_1 = ConvBNLayer(in_channels, middle, 1)
            self.pw_conv_2 = ConvBNLayer(middle, out_channels, 1)
        else:
            self.pw_conv = ConvBNLayer(in_channels, out_channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        block_input = x
        if not self.use_rep:
            x = self.dw_conv(x)
        elif self.is_reparameterized:
            x = F.relu(self.dw_conv(x))
        else:
            summed = self.dw_conv_list[0](x)
            for branch in self.dw_conv_list[1:]:
                summed = summed + branch(x)
            x = F.relu(summed)
        if self.se is not None:
            x = self.se(x)
        x = self.pw_conv_2(self.pw_conv_1(x)) if self.split_pw else self.pw_conv(x)
        return x + block_input if self.use_shortcut else x

    @paddle.no_grad()
    def re_parameterize(self) -> None:
        """Fold every branch's BN into its kernel, centre-pad to the largest kernel and sum into ``dw_conv``."""
        if not self.use_rep or self.is_reparameterized:
            return
        size = self.dw_conv.weight.shape[-1]
        kernel = paddle.zeros_like(self.dw_conv.weight)
        bias = paddle.zeros_like(self.dw_conv.bias)
        for branch in self.dw_conv_list:
            bn = branch.bn
            scale = bn.weight / paddle.sqrt(bn._variance + bn._epsilon)
            branch_kernel = branch.conv.weight * scale.reshape([-1, 1, 1, 1])
            pad = (size - branch_kernel.shape[-1]) // 2
            kernel += F.pad(branch_kernel, [pad, pad, pad, pad])
            bias += bn.bias - bn._mean * scale
        self.dw_conv.weight.set_value(kernel)
        self.dw_conv.bias.set_value(bias)
        self.is_reparameterized = True


class PPLCNetV2Backbone(nn.Layer):
    """Image [N,3,H,W] → embedding [N,512] (``last_conv`` output after dropout)."""

    def __init__(self, embedding_dim: int = EMBEDDING_DIM, dropout_prob: float = DROPOUT_PROB) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBNLayer(3, STEM_CHANNELS, 3, stride=2),
            RepDepthwiseSeparable(STEM_CHANNELS, STEM_CHANNELS * 2, stride=1, dw_size=3),
        )
        stages = []
        for index, (channels, dw_size, split_pw, use_rep, use_se, use_shortcut) in enumerate(STAGE_CONFIG):
            last_stage = index == len(STAGE_CONFIG) - 1
            blocks = [
                RepDepthwiseSeparable(
                    channels if block == 0 else channels * 2,
                    channels * 2,
                    # ShiTu keeps the last stage at stride 1 (14x14 for a 224 input).
                    stride=2 if block == 0 and not last_stage else 1,
                    dw_size=dw_size,
                    split_pw=split_pw,
                    use_rep=use_rep,
                    use_se=use_se,
                    use_shortcut=use_shortcut,
                )
                for block in range(STAGE_DEPTHS[index])
            ]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.LayerList(stages)
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.last_conv = nn.Conv2D(STAGE_CONFIG[-1][0] * 2, embedding_dim, 1)
        # downscale_in_infer: kept units are not rescaled in training and eval multiplies by 1 - p.
        self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)

    @property
    def stage_count(self) -> int:
        """The stem, then the resolution stages (the order of ``stage_layers``)."""
        return 1 + len(self.stages)

    def stage_layers(self) -> list[list[nn.Layer]]:
        """The layers of each stage, from the input side (what freezing and per-stage LRs act on)."""
        return [[self.stem], *[[stage] for stage in self.stages]]

    def run_stages(self, x: paddle.Tensor, start: int = 0, stop: int | None = None) -> paddle.Tensor:
        """Stages ``start`` .. ``stop - 1`` only: the input of stage ``start`` → the output of stage ``stop - 1``."""
        for stage in [self.stem, *self.stages][start:stop]:
            x = stage(x)
        return x

    def forward(self, x: paddle.Tensor, start_stage: int = 0) -> paddle.Tensor:
        x = self.last_conv(self.avg_pool(self.run_stages(x, start_stage)))
        return self.flatten(self.dropout(x))
