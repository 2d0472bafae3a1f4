"""``shitu train rec`` configuration: one YAML file validated by pydantic (the base: :mod:`trainer.yaml_config`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from trainer.yaml_config import ConfigSection, load_yaml_config


class AugmentConfig(ConfigSection):
    """GeneralRecognitionV2 train augmentation; a probability or size of 0 switches a step off.

    Normalization is not configured here: it is the model's own (its manifest's) preprocessing.
    """

    image_size: int = Field(224, ge=16, description="square network input side in pixels")
    flip_prob: float = Field(0.5, ge=0.0, le=1.0)
    pad: int = Field(10, ge=0, description="black border added before the random crop")
    rotation_prob: float = Field(0.5, ge=0.0, le=1.0)
    rotation_degrees: float = Field(90.0, ge=0.0, le=180.0, description="angle drawn from U[-d, +d]")
    # PP-ShiTuV2's RandomErasing (EPSILON 0.5, sl 0.02, sh 0.4, r1 0.3); 0 switches it off
    erase_prob: float = Field(0.0, ge=0.0, le=1.0, description="chance of one erased rectangle (occlusion)")
    erase_area: tuple[float, float] = Field((0.02, 0.4), description="erased share of the image area")
    erase_ratio: float = Field(0.3, gt=0.0, le=1.0, description="aspect drawn from [r, 1/r] (log-uniform)")
    erase_edge_prob: float = Field(0.0, ge=0.0, le=1.0,
                                   description="chance that the rectangle touches a side: a neighbour in front")


class DataConfig(ConfigSection):
    root: Path = Field(description="directory the list paths are relative to (relative: to the working directory)")
    train_list: Path
    eval_list: Path | None = Field(None, description="query = gallery list; needs a unique id in column 3")
    query_list: Path | None = None
    gallery_list: Path | None = None
    augment: AugmentConfig = AugmentConfig()
    num_workers: int = Field(0, ge=0, description="decode/augment threads; 0 decodes in the training thread")
    upweight_ranges: list[tuple[int, int]] = Field(
        default_factory=list,
        description="inclusive class-index ranges (first-appearance order in train_list) drawn upweight_ratio "
        "times as often; PP-ShiTuV2: [[50030, 80700], [92019, 96015]] (VeRI-Wild and Inshop) x 4",
    )
    upweight_ratio: float = Field(4.0, gt=0.0)

    @model_validator(mode="after")
    def _one_evaluation_source(self) -> DataConfig:
        split = (self.query_list is None, self.gallery_list is None)
        if split[0] != split[1]:
            raise ValueError("data.query_list and data.gallery_list go together")
        if self.eval_list is not None and self.query_list is not None:
            raise ValueError("give either data.eval_list or data.query_list + data.gallery_list, not both")
        return self


class ModelConfig(ConfigSection):
    arch: Literal["pplcnetv2_base", "efficientnet_lite0"] = "pplcnetv2_base"
    pretrained: bool = Field(False, description="ImageNet backbone weights (offline only for efficientnet_lite0)")
    init_checkpoint: Path | None = Field(None, description="a .pdparams to start from, e.g. PP-ShiTuV2's; head skipped")
    head: Literal["fc", "arc_margin"] = "fc"
    keep_ratio: bool = Field(False, description="deploy preprocessing keeps the aspect and pads to the square "
                             "input (manifest preprocess.keep_ratio + pad): a tall bottle keeps its label")
    arc_scale: float = Field(30.0, gt=0.0, description="ArcMargin s")
    arc_margin: float = Field(0.15, ge=0.0, lt=1.5, description="ArcMargin m in radians")


class LossConfig(ConfigSection):
    ce_weight: float = Field(1.0, ge=0.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    triplet_weight: float = Field(1.0, ge=0.0)
    triplet_margin: float = 0.5
    absolute_weight: float = Field(0.1, ge=0.0, description="weight of the ap/an absolute terms")
    ap_value: float = 0.8
    an_value: float = 0.4


class OptimizerConfig(ConfigSection):
    base_lr: float = Field(0.06, gt=0.0, description="LR at reference_batch images per step")
    reference_batch: int | None = Field(
        2048, ge=1, description="LR is base_lr * global_batch / reference_batch; null = base_lr is absolute"
    )
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(1e-5, ge=0.0)
    warmup_epochs: float = Field(5.0, ge=0.0)
    freeze_stages: int = Field(0, ge=0, description="leading backbone stages kept frozen (eval mode, no gradient)")
    slow_stages: int = Field(0, ge=0, description="leading trainable stages whose LR is multiplied by slow_lr_scale")
    slow_lr_scale: float = Field(0.1, gt=0.0, le=1.0)
    frozen_runtime: Literal["dygraph", "inference"] = Field(
        "dygraph",
        description="where frozen stages run: dygraph, or an exported Paddle Inference predictor (CPU only; "
        "several times faster when only the last stages train)",
    )


class TrainRecognitionConfig(ConfigSection):
    data: DataConfig
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    epochs: int = Field(100, ge=1)
    max_iterations: int | None = Field(None, ge=1, description="stop early after this many optimizer steps")
    batch_size: int = Field(256, ge=2, description="images per forward pass (P identities x K images)")
    images_per_id: int = Field(4, ge=2, description="K of the PK sampler")
    hard_negative_share: float = Field(
        0.0, ge=0.0, lt=1.0, description="share of a batch's identities drawn as look-alikes of the others "
        "(nearest by the classifier's weights, refreshed each epoch from the second on)")
    hard_negative_neighbours: int = Field(8, ge=1, description="look-alikes kept per class")
    accumulate_steps: int = Field(1, ge=1, description="forward passes per optimizer step")
    amp: bool = Field(False, description="float16 autocast with loss scaling; used only on a GPU")
    device: Literal["cpu", "gpu"] = "cpu"
    seed: int = 0
    output: Path = Path("runs/recognition")
    log_interval: int = Field(10, ge=1, description="iterations between log lines")
    eval_interval: int = Field(1, ge=1, description="epochs between evaluations")
    save_interval: int = Field(1, ge=1, description="epochs between checkpoints")
    export_name: str = "embedder"
    export_version: str = "0"

    @model_validator(mode="after")
    def _frozen_runtime(self) -> TrainRecognitionConfig:
        if self.optimizer.frozen_runtime == "inference" and self.device != "cpu":
            raise ValueError("optimizer.frozen_runtime=inference runs the frozen stages on the CPU: use device=cpu")
        return self

    @model_validator(mode="after")
    def _pk_batches(self) -> TrainRecognitionConfig:
        if self.batch_size % self.images_per_id:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of images_per_id {self.images_per_id}")
        if self.batch_size < 2 * self.images_per_id:
            raise ValueError("batch_size must hold at least two identities (the triplet loss needs negatives)")
        return self

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.accumulate_steps

    @property
    def learning_rate(self) -> float:
        """Peak LR after warm-up (PP-ShiTuV2: 0.06 at a global batch of 2048)."""
        reference = self.optimizer.reference_batch
        scale = self.global_batch / reference if reference else 1.0
        return self.optimizer.base_lr * scale


def load_recognition_config(path: Path, overrides: Mapping[str, Any] | Sequence[str] | None = None
                             ) -> TrainRecognitionConfig:
    """The YAML file with dotted overrides (see :mod:`trainer.yaml_config`), validated."""
    return load_yaml_config(path, TrainRecognitionConfig, overrides)
