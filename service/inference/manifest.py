"""The contract between an exported model directory and the service.

Every number the service needs to run a model (input size, resize interpolation, normalisation,
embedding size, default thresholds) is read from the model directory, never from code:
our own ``manifest.json`` first, else PaddleDetection's ``infer_cfg.yml`` or PaddleClas's
``inference.yml`` for models exported by those tools.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.inference.types import ObjectSource

MANIFEST_FILE = "manifest.json"
MODEL_STEMS = ("inference", "model")


class ModelKind(str, Enum):
    detector = "detector"
    embedder = "embedder"


class Interpolation(str, Enum):
    """cv2 interpolation names as PaddleClas / PaddleDetection configs spell them."""

    nearest = "nearest"
    linear = "linear"
    cubic = "cubic"
    area = "area"


class Preprocess(BaseModel):
    """Image → tensor: RGB uint8 HWC, resized to ``size`` (w, h), ``(x * scale - mean) / std``, CHW."""

    model_config = ConfigDict(extra="forbid")

    size: tuple[int, int] = Field(description="target (width, height) in pixels")
    interpolation: Interpolation = Interpolation.linear
    keep_ratio: bool = False
    pad: bool = Field(False, description="with keep_ratio: centre the aspect-kept image on a `size` canvas of the "
                      "mean colour (zero after normalisation), so a tall bottle keeps its label (embedders)")
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: Literal["RGB", "BGR"] = "RGB"

    @model_validator(mode="after")
    def _pad_keeps_the_ratio(self) -> Preprocess:
        if self.pad and not self.keep_ratio:
            raise ValueError("preprocess.pad needs keep_ratio (a stretched image fills the size already)")
        return self

    @property
    def pad_colour(self) -> tuple[int, int, int]:
        """The mean colour in pixels (0-255, the model's channel order undone): zero after normalisation."""
        colour = tuple(max(0, min(255, round(mean / self.scale))) for mean in self.mean)
        red, green, blue = colour if self.channel_order == "RGB" else colour[::-1]
        return red, green, blue


class DetectorDefaults(BaseModel):
    """PP-ShiTu selection rule: keep the ``max_detections`` best boxes, then drop those under ``score_threshold``."""

    model_config = ConfigDict(extra="forbid")

    score_threshold: float = 0.2
    max_detections: int = 5
    main_object_area_weight: float = Field(
        0.0, ge=0.0, le=4.0,
        description="order of the selected boxes, main object first: by score x (area / largest area)^weight; "
        "0 keeps PP-ShiTu's order by score (calibrated by `shitu eval --record-detector`)",
    )


class EmbedderDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match_threshold: float = Field(0.5, description="cosine score a match needs (PP-ShiTu: 0.5)")
    source_match_thresholds: dict[ObjectSource, float] = Field(
        default_factory=dict,
        description="the score a match needs per candidate source (detector box, whole image, window), calibrated "
        "end to end by `shitu eval --record`; a source not listed needs match_threshold",
    )


class ModelManifest(BaseModel):
    """``manifest.json`` beside ``inference.json|pdmodel`` + ``inference.pdiparams``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: Literal[1] = 1
    kind: ModelKind
    name: str
    version: str = "0"
    architecture: str = ""
    preprocess: Preprocess
    inputs: list[str] = Field(default_factory=list, description="input tensor names, for documentation")
    embedding_dim: int | None = Field(None, description="embedder output size")
    labels: list[str] = Field(default_factory=list, description="detector class names")
    detector: DetectorDefaults | None = None
    embedder: EmbedderDefaults | None = None
    metric: Literal["inner_product"] = "inner_product"
    provenance: dict[str, Any] = Field(default_factory=dict, description="how it was made: data, recipe, scores")

    @model_validator(mode="after")
    def _kind_fields(self) -> ModelManifest:
        if self.kind is ModelKind.embedder:
            if not self.embedding_dim or self.embedding_dim <= 0:
                raise ValueError("an embedder manifest needs a positive embedding_dim")
            self.embedder = self.embedder or EmbedderDefaults()
        else:
            self.detector = self.detector or DetectorDefaults()
        return self

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    def write(self, model_dir: Path) -> Path:
        path = Path(model_dir) / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=2, exclude_none=True) + "\n", encoding="utf-8")
        return path


class ManifestError(ValueError):
    """A model directory is missing files or describes itself inconsistently."""


def load_manifest(model_dir: Path, *, embedding_dim: Callable[[], int] | None = None) -> ModelManifest:
    """Read ``manifest.json``, else translate ``infer_cfg.yml`` / ``inference.yml``.

    ``embedding_dim`` is called for PaddleClas exports, whose config does not state the feature size.
    """
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST_FILE
    if path.is_file():
        try:
            return ModelManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as error:
            raise ManifestError(f"{path}: {error}") from error
    from service.inference.paddle_configs import manifest_from_paddle_config

    manifest = manifest_from_paddle_config(model_dir, embedding_dim=embedding_dim)
    if manifest is None:
        raise ManifestError(
            f"{model_dir} has no {MANIFEST_FILE}, infer_cfg.yml or inference.yml; write one with "
            f"`shitu models manifest {model_dir} --config <the PaddleClas/PaddleDetection training YAML it was "
            "exported with>` or `--preset ppshituv2-rec|ppshituv2-det` (PP-ShiTuV2's preprocessing)"
        )
    return manifest
