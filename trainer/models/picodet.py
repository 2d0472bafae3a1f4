"""PicoDet v1 with an LCNet backbone: the PP-ShiTuV2 main-body detector network.

``build_picodet(2.5, 1)`` is ``picodet_lcnet_x2_5_640_mainbody`` parameter for parameter: its
``state_dict()`` has the names and shapes of PaddleDetection's, so the official checkpoint loads
with :func:`load_picodet_checkpoint` and fine-tuning starts from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import paddle
from paddle import nn

from trainer.checkpoint import load_checked, read_pdparams
from trainer.models.csp_pan import CSPPAN
from trainer.models.lcnet import LCNet
from trainer.models.pico_head import PicoHead

# Architecture names the CLI accepts, with their LCNet width multiplier.
DETECTOR_ARCHITECTURES: dict[str, float] = {
    "picodet_lcnet_x2_5": 2.5,
    "picodet_lcnet_x1_0": 1.0,
    "picodet_lcnet_x0_5": 0.5,
    "picodet_lcnet_x0_35": 0.35,
}
SIZE_MULTIPLE = 32


class PicoDet(nn.Layer):
    """Backbone → CSP-PAN → PicoHead. ``forward`` gives the raw per-level outputs training needs."""

    def __init__(self, backbone: LCNet, neck: CSPPAN, head: PicoHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head

    def forward(
        self, image: paddle.Tensor, start_stage: int = 0
    ) -> tuple[list[paddle.Tensor], list[paddle.Tensor]]:
        """Class logits [N, C, H/s, W/s] and box bins [N, 4·(reg_max+1), H/s, W/s] per stride s.

        ``start_stage`` > 0: ``image`` is the output of a frozen trunk's last stage (backbones that have stages).
        """
        features = self.backbone(image, start_stage) if start_stage else self.backbone(image)
        return self.head(self.neck(features))

    def predict(self, image: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        """Every anchor before NMS: scores [N, C, A] (sigmoid) and boxes [N, A, 4] in input pixels, unclipped."""
        _check_size(image)
        return self.head.decode(*self.forward(image))

    @property
    def strides(self) -> tuple[int, ...]:
        return self.head.strides

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def architecture(self) -> str:
        """``picodet_lcnet_x2_5`` style name of the backbone scale (the names ``DETECTOR_ARCHITECTURES`` uses)."""
        named = getattr(self.backbone, "detector_architecture", None)
        if named:
            return named
        whole, _, fraction = f"{self.backbone.scale:.2f}".rstrip("0").partition(".")
        return f"picodet_lcnet_x{whole}_{fraction or '0'}"


def _check_size(image: paddle.Tensor) -> None:
    height, width = image.shape[-2:]
    # At export time the sizes are fixed integers too; -1 would mean a dynamic size nobody checked.
    if height > 0 and width > 0 and (height % SIZE_MULTIPLE or width % SIZE_MULTIPLE):
        raise ValueError(f"PicoDet needs input sides that are multiples of {SIZE_MULTIPLE}, got {height}x{width}")


def build_picodet(
    scale: float = 2.5,
    num_classes: int = 1,
    *,
    neck_channels: int = 128,
    head_convs: int = 4,
    strides: tuple[int, ...] = (8, 16, 32, 64),
    reg_max: int = 7,
) -> PicoDet:
    """PicoDet-LCNet; the defaults are the PP-ShiTuV2 main-body detector (x2.5, one class ``foreground``)."""
    backbone = LCNet(scale=scale, feature_maps=(3, 4, 5))
    return assemble_picodet(backbone, num_classes, neck_channels=neck_channels, head_convs=head_convs,
                            strides=strides, reg_max=reg_max)


def assemble_picodet(backbone: nn.Layer, num_classes: int, *, neck_channels: int, head_convs: int,
                     strides: tuple[int, ...], reg_max: int) -> PicoDet:
    """A backbone's stride 8/16/32 features → CSP-PAN (with the extra levels ``strides`` asks for) → PicoHead."""
    neck = CSPPAN(backbone.out_channels, out_channels=neck_channels, kernel_size=5, num_features=len(strides))
    head = PicoHead(num_classes=num_classes, in_channels=neck_channels, feat_channels=neck_channels,
                    num_convs=head_convs, strides=strides, reg_max=reg_max)
    return PicoDet(backbone, neck, head)


# The EfficientNet-Lite0 detector (trainer/models/picodet_efficientnet.py) and the NanoDet-g CSP one
# (trainer/models/nanodet_csp.py), with their recipes' neck and head widths.
EFFICIENTNET_ARCHITECTURE = "picodet_efficientnet_lite0"
NANODET_CSP_ARCHITECTURE = "picodet_nanodet_csp"


def build_picodet_architecture(name: str, num_classes: int = 1) -> PicoDet:
    # random trunks: the caller loads a whole detector checkpoint over them
    if name == EFFICIENTNET_ARCHITECTURE:
        from trainer.models.picodet_efficientnet import build_picodet_efficientnet

        return build_picodet_efficientnet(num_classes, imagenet=False)
    if name == NANODET_CSP_ARCHITECTURE:
        from trainer.models.nanodet_csp import build_picodet_nanodet_csp

        return build_picodet_nanodet_csp(num_classes)
    if name not in DETECTOR_ARCHITECTURES:
        known = ", ".join([*DETECTOR_ARCHITECTURES, EFFICIENTNET_ARCHITECTURE, NANODET_CSP_ARCHITECTURE])
        raise ValueError(f"unknown detector architecture {name!r}; known: {known}")
    return build_picodet(DETECTOR_ARCHITECTURES[name], num_classes)


def load_picodet_checkpoint(
    model: PicoDet, checkpoint: Path | Mapping[str, np.ndarray], *, skip_head_classes: bool = False
) -> list[str]:
    """Load a PaddleDetection (or our own) PicoDet ``.pdparams`` after checking every name and shape.

    Raises ``trainer.checkpoint.CheckpointMismatch`` listing missing, unexpected and reshaped entries.
    ``skip_head_classes`` leaves the per-level output convs out, for fine-tuning to another class count.
    """
    source = str(checkpoint) if isinstance(checkpoint, Path) else "state dict"
    state = read_pdparams(checkpoint) if isinstance(checkpoint, Path) else dict(checkpoint)
    skip = tuple(f"head.head_cls{level}." for level in range(len(model.strides))) if skip_head_classes else ()
    return load_checked(model, state, skip_prefixes=skip, source=source)
