"""The models ``shitu models pull`` knows by name: where each one lives and how it installs.

The official PP-ShiTuV2 inference tars carry no ``manifest.json``; their entries hold the manifest
that ``pull`` writes beside the model files, with the numbers of PaddleClas's ``inference_general.yaml``
(rec: 224x224 bilinear, 512-d, match at 0.5) and ``infer_cfg`` of the main-body PicoDet
(det: 640x640 cubic, no aspect keep, top 5 boxes over 0.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from service.inference.manifest import (
    DetectorDefaults,
    EmbedderDefaults,
    Interpolation,
    ModelKind,
    ModelManifest,
    Preprocess,
)

_PADDLECLAS = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph"
_PADDLEDETECTION = "https://paddledet.bj.bcebos.com/models"


class ArtifactKind(str, Enum):
    """What a download is; inference models install under the directory of their kind."""

    embedder = "embedder"
    detector = "detector"
    checkpoint = "checkpoint"


CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_SUFFIX = ".pdparams"


@dataclass(frozen=True)
class KnownModel:
    name: str
    kind: ArtifactKind
    url: str
    description: str
    size_bytes: int | None = None
    """Exact size of the download; checked when known."""
    sha256: str | None = None
    """Checksum of the download; without it the pull says "not verified" and records what it got."""
    reported_size_mb: float | None = None
    """Size the publisher reports for the model, shown by ``shitu models list`` only."""
    manifest: ModelManifest | None = None
    """Written into the model directory when the archive carries no ``manifest.json``."""

    @property
    def is_archive(self) -> bool:
        return self.kind is not ArtifactKind.checkpoint

    def install_path(self, store: Path) -> Path:
        """``<store>/<kind>/<name>`` for inference models, ``<store>/checkpoints/<name>.pdparams`` for weights."""
        if self.is_archive:
            return Path(store) / self.kind.value / self.name
        return Path(store) / CHECKPOINT_DIR / f"{self.name}{CHECKPOINT_SUFFIX}"

    def is_installed(self, store: Path) -> bool:
        path = self.install_path(store)
        return path.is_dir() if self.is_archive else path.is_file()


class UnknownModelError(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown model {self.name!r}; known models: {', '.join(KNOWN_MODELS)}"


_RECOGNITION_MANIFEST = ModelManifest(
    kind=ModelKind.embedder,
    name="ppshituv2-rec",
    version="1.0",
    architecture="PPLCNetV2_base_ShiTu",
    preprocess=Preprocess(size=(224, 224), interpolation=Interpolation.linear, keep_ratio=False),
    inputs=["x"],
    embedding_dim=512,
    embedder=EmbedderDefaults(match_threshold=0.5),
)

_DETECTION_MANIFEST = ModelManifest(
    kind=ModelKind.detector,
    name="ppshituv2-det",
    version="1.0",
    architecture="PicoDet-LCNet_x2_5",
    preprocess=Preprocess(size=(640, 640), interpolation=Interpolation.cubic, keep_ratio=False),
    inputs=["image", "im_shape", "scale_factor"],
    labels=["foreground"],
    detector=DetectorDefaults(score_threshold=0.2, max_detections=5),
)

_ALL = (
    KnownModel(
        name="ppshituv2-rec",
        kind=ArtifactKind.embedder,
        url=f"{_PADDLECLAS}/rec/models/inference/PP-ShiTuV2/general_PPLCNetV2_base_pretrained_v1.0_infer.tar",
        description="official PP-ShiTuV2 recognizer, PPLCNetV2_base 512-d",
        reported_size_mb=19.0,
        manifest=_RECOGNITION_MANIFEST,
    ),
    KnownModel(
        name="ppshituv2-det",
        kind=ArtifactKind.detector,
        url=f"{_PADDLECLAS}/rec/models/inference/picodet_PPLCNet_x2_5_mainbody_lite_v1.0_infer.tar",
        description="official main-body detector, PicoDet-LCNet_x2_5 640",
        reported_size_mb=30.1,
        manifest=_DETECTION_MANIFEST,
    ),
    KnownModel(
        name="ppshituv2-rec-pretrained",
        kind=ArtifactKind.checkpoint,
        url=f"{_PADDLECLAS}/rec/models/pretrain/PPShiTuV2/general_PPLCNetV2_base_pretrained_v1.0.pdparams",
        description="weights of ppshituv2-rec, for fine-tuning",
    ),
    KnownModel(
        name="ppshituv2-det-pretrained",
        kind=ArtifactKind.checkpoint,
        url=f"{_PADDLECLAS}/rec/models/pretrain/picodet_PPLCNet_x2_5_mainbody_lite_v1.0_pretrained.pdparams",
        description="weights of ppshituv2-det, for fine-tuning",
    ),
    KnownModel(
        name="pplcnetv2-base-ssld",
        kind=ArtifactKind.checkpoint,
        url=f"{_PADDLECLAS}/legendary_models/PPLCNetV2_base_ssld_pretrained.pdparams",
        description="ImageNet SSLD PPLCNetV2_base, recognizer init",
    ),
    KnownModel(
        name="lcnet-x2_5-ssld",
        kind=ArtifactKind.checkpoint,
        url=f"{_PADDLEDETECTION}/pretrained/LCNet_x2_5_ssld_pretrained.pdparams",
        description="ImageNet SSLD LCNet_x2_5, detector init",
    ),
)

KNOWN_MODELS: dict[str, KnownModel] = {model.name: model for model in _ALL}


def get_known_model(name: str) -> KnownModel:
    try:
        return KNOWN_MODELS[name]
    except KeyError:
        raise UnknownModelError(name) from None
