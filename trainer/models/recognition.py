"""The recognition network: backbone → optional embedding projection → BNNeck → optional FC classifier.

Mirrors PaddleClas's ``RecModel`` (state-dict prefixes ``backbone.``, ``neck.feat_bn.``, ``head.fc.``)
so PP-ShiTuV2 checkpoints load by name. ``features`` (the BNNeck output, not normalized) is what
retrieval uses and what export keeps; ``logits`` exist only with a classifier head, for the CE loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import paddle
from paddle import nn

from service.inference.manifest import Interpolation, Preprocess
from trainer.checkpoint import load_checked, read_pdparams
from trainer.models.efficientnet_lite import HEAD_CHANNELS, EfficientNetLite0, load_imagenet_weights
from trainer.models.pplcnetv2 import PPLCNetV2Backbone

ARCHITECTURES = ("pplcnetv2_base", "efficientnet_lite0")
EMBEDDING_DIM = 512
INPUT_SIZE = (224, 224)
HEAD_PREFIX = "head."
# A fixed seed keeps the projection of an untrained EfficientNet embedder identical across builds and exports.
PROJECTION_SEED = 20240601

PREPROCESS: dict[str, Preprocess] = {
    # PaddleClas RecPreProcess: RGB, 224x224 bilinear without keeping the aspect, ImageNet mean/std after /255.
    "pplcnetv2_base": Preprocess(size=INPUT_SIZE, interpolation=Interpolation.linear),
    # The TF EfficientNet-Lite recipe; (x - 127) / 128 classifies the sample photos better than ImageNet mean/std.
    "efficientnet_lite0": Preprocess(
        size=INPUT_SIZE, interpolation=Interpolation.linear, scale=1.0, mean=(127.0,) * 3, std=(128.0,) * 3
    ),
}


class BNNeck(nn.Layer):
    """BatchNorm1D over the embedding; its shift is effectively frozen at 0 (learning rate 1e-20, as PaddleClas)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.feat_bn = nn.BatchNorm1D(
            channels,
            weight_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(1.0)),
            bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0), learning_rate=1.0e-20),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.feat_bn(paddle.flatten(x, start_axis=1))


class ClassifierHead(nn.Layer):
    """Plain linear classifier without bias, margin or normalisation (PaddleClas ``FC``)."""

    def __init__(self, embedding_dim: int, class_num: int) -> None:
        super().__init__()
        self.fc = nn.Linear(
            embedding_dim,
            class_num,
            weight_attr=paddle.ParamAttr(initializer=nn.initializer.Normal(0.0, 0.001)),
            bias_attr=False,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(x)


class RecognitionModel(nn.Layer):
    """``forward`` returns ``{"features": [N, D]}`` plus ``"logits"`` when built with a class count."""

    def __init__(
        self,
        arch: str,
        backbone: nn.Layer,
        embedding_dim: int,
        class_num: int | None = None,
        embedding: nn.Layer | None = None,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = backbone
        self.embedding = embedding
        self.neck = BNNeck(embedding_dim)
        self.head = ClassifierHead(embedding_dim, class_num) if class_num else None
        self.embedding_dim = embedding_dim
        self.class_num = class_num

    @property
    def preprocess(self) -> Preprocess:
        return PREPROCESS[self.arch]

    def embed(self, x: paddle.Tensor, start_stage: int = 0) -> paddle.Tensor:
        """Image batch → BNNeck features (not normalized).

        With ``start_stage`` > 0, ``x`` is the output of the backbone's stage ``start_stage - 1``
        (from a frozen trunk run elsewhere, see ``trainer.frozen_trunk``).
        """
        x = self.backbone(x, start_stage)
        if self.embedding is not None:
            x = self.embedding(x)
        return self.neck(x)

    def forward(self, x: paddle.Tensor, start_stage: int = 0) -> dict[str, paddle.Tensor]:
        features = self.embed(x, start_stage)
        if self.head is None:
            return {"features": features}
        return {"features": features, "logits": self.head(features)}

    def reparameterize(self) -> None:
        """Fold re-parameterizable branches for inference (mutates this model)."""
        for layer in self.sublayers():
            if hasattr(layer, "re_parameterize"):
                layer.re_parameterize()


def _orthogonal_projection(in_features: int, out_features: int) -> np.ndarray:
    """[in, out] with orthonormal columns (orthonormal rows when ``out > in``)."""
    rng = np.random.default_rng(PROJECTION_SEED)
    tall = (max(in_features, out_features), min(in_features, out_features))
    basis, _ = np.linalg.qr(rng.standard_normal(tall))
    return (basis if in_features >= out_features else basis.T).astype(np.float32)


def _build_efficientnet(class_num: int | None, pretrained: bool, embedding_dim: int) -> RecognitionModel:
    backbone = EfficientNetLite0()
    if pretrained:
        load_imagenet_weights(backbone)
    embedding = nn.Linear(HEAD_CHANNELS, embedding_dim)
    # A random orthonormal projection roughly keeps the pretrained features' cosine similarities.
    embedding.weight.set_value(_orthogonal_projection(HEAD_CHANNELS, embedding_dim))
    embedding.bias.set_value(np.zeros(embedding_dim, dtype=np.float32))
    return RecognitionModel("efficientnet_lite0", backbone, embedding_dim, class_num, embedding)


def build_recognition_model(
    arch: str, class_num: int | None = None, *, pretrained: bool = False, embedding_dim: int = EMBEDDING_DIM
) -> RecognitionModel:
    """Build ``pplcnetv2_base`` (PP-ShiTuV2) or ``efficientnet_lite0``; ``class_num`` adds the CE head.

    ``pretrained`` loads ImageNet weights into the backbone; only EfficientNet-Lite0 has them offline
    (PP-ShiTuV2 weights come from a PaddleClas checkpoint via :func:`load_recognition_checkpoint`).
    """
    if arch == "pplcnetv2_base":
        if pretrained:
            raise ValueError(
                "no offline ImageNet weights exist for pplcnetv2_base; "
                "load a PaddleClas checkpoint with load_recognition_checkpoint() instead"
            )
        return RecognitionModel(arch, PPLCNetV2Backbone(embedding_dim), embedding_dim, class_num)
    if arch == "efficientnet_lite0":
        return _build_efficientnet(class_num, pretrained, embedding_dim)
    raise ValueError(f"unknown recognition architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def load_recognition_checkpoint(
    model: RecognitionModel, checkpoint: Path | Mapping[str, object], *, skip_head: bool = False
) -> list[str]:
    """Load a ``.pdparams`` file (or a state dict) into ``model``, checking every name and shape.

    ``skip_head`` ignores ``head.*`` on both sides: a classifier with another class count, or a
    model built without a head for export. Returns the names loaded.
    """
    source = str(checkpoint) if isinstance(checkpoint, Path | str) else "state dict"
    state = read_pdparams(Path(checkpoint)) if isinstance(checkpoint, Path | str) else checkpoint
    return load_checked(model, state, skip_prefixes=(HEAD_PREFIX,) if skip_head else (), source=source)
