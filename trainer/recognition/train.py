"""``shitu train rec``: metric-learning training of the recognition model with the PP-ShiTuV2 recipe.

PK batches → augmentation → model → CE (FC or ArcMargin head) + TripletAngularMargin → momentum SGD with
warm-up + cosine; evaluation by recall@1/5 and mAP, checkpoints, resume, best by recall@1, export.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import paddle
from numpy.typing import NDArray

from service.inference.manifest import Preprocess
from trainer.frozen_trunk import FrozenTrunk, network_input
from trainer.models.recognition import build_recognition_model, load_recognition_checkpoint
from trainer.recognition.checkpoints import (
    MODEL_FILE,
    Progress,
    TrainingParts,
    load_checkpoint,
    read_progress,
    save_checkpoint,
)
from trainer.recognition.config import TrainRecognitionConfig
from trainer.recognition.data.augment import TrainAugment
from trainer.recognition.data.dataset import BatchLoader, RecognitionDataset
from trainer.recognition.data.labels import class_index, read_label_list
from trainer.recognition.data.sampler import PKSampler, identity_weights, nearest_identities
from trainer.recognition.evaluate import build_evaluation, evaluate
from trainer.recognition.export import export_recognition
from trainer.recognition.losses import ArcMarginHead, RecognitionLoss
from trainer.schedule import (
    WarmupCosine,
    backbone_stages,
    build_optimizer,
    freeze_stages,
    scale_stage_learning_rates,
    set_training_mode,
)

logger = logging.getLogger(__name__)
SYNTH_SUMMARY = "synth.json"

StepCallback = Callable[[int, int, int], None]  # (epoch from 1, step within the epoch from 1, steps per epoch)


@dataclass
class TrainResult:
    progress: Progress
    losses: list[float] = field(default_factory=list)  # total loss of each optimizer step, in order
    best_checkpoint: Path | None = None
    export_dir: Path | None = None


class RecognitionTrainer:
    def __init__(self, config: TrainRecognitionConfig) -> None:
        self.config = config
        paddle.set_device("gpu" if config.device == "gpu" else "cpu")
        paddle.seed(config.seed)
        data = config.data
        entries = read_label_list(data.root / data.train_list, data.root)
        self.classes = list(class_index([entry.label for entry in entries]))
        self.model = build_recognition_model(
            config.model.arch,
            len(self.classes) if config.model.head == "fc" else None,
            pretrained=config.model.pretrained,
        )
        if config.model.init_checkpoint is not None:
            load_recognition_checkpoint(self.model, config.model.init_checkpoint, skip_head=True)
        self.arc_head = self._arc_head()
        self.preprocess = deploy_preprocess(self.model.preprocess, config.model.keep_ratio)
        self.train_set = RecognitionDataset(entries, TrainAugment(data.augment, self.preprocess))
        self.train_loader = BatchLoader(self.train_set, data.num_workers)
        self.evaluation = build_evaluation(data, self.preprocess)
        self.steps_per_epoch = max(1, math.ceil(len(self.train_set) / config.global_batch))
        self.frozen = self._configure_stages()
        self.trunk = self._frozen_trunk()
        self.scheduler = WarmupCosine(
            config.learning_rate,
            round(config.optimizer.warmup_epochs * self.steps_per_epoch),
            config.epochs * self.steps_per_epoch,
        )
        parameters = list(self.model.parameters()) + (list(self.arc_head.parameters()) if self.arc_head else [])
        self.optimizer = build_optimizer(parameters, self.scheduler, config.optimizer)
        self.amp = config.amp and config.device == "gpu"
        if config.amp and not self.amp:
            logger.warning("AMP needs a GPU: training in float32 on the CPU")
        scaler = paddle.amp.GradScaler(init_loss_scaling=2.0**15) if self.amp else None
        self.parts = TrainingParts(self.model, self.arc_head, self.optimizer, scaler)
        self.loss = RecognitionLoss(config.loss)
        self.progress = Progress(seed=config.seed, classes=self.classes)

    def _arc_head(self) -> ArcMarginHead | None:
        model_config = self.config.model
        if model_config.head != "arc_margin":
            return None
        return ArcMarginHead(
            self.model.embedding_dim, len(self.classes), model_config.arc_scale, model_config.arc_margin
        )

    def _configure_stages(self) -> list[paddle.nn.Layer]:
        optimizer = self.config.optimizer
        stages = backbone_stages(self.model.backbone)
        frozen = freeze_stages(stages, optimizer.freeze_stages)
        if optimizer.slow_stages:
            scale_stage_learning_rates(stages, optimizer.freeze_stages, optimizer.slow_stages, optimizer.slow_lr_scale)
        return frozen

    def _frozen_trunk(self) -> FrozenTrunk | None:
        optimizer = self.config.optimizer
        if optimizer.frozen_runtime != "inference" or optimizer.freeze_stages == 0:
            return None
        return FrozenTrunk(
            self.model,
            optimizer.freeze_stages,
            self.config.data.augment.image_size,
            self.config.output / "frozen_trunk",
            threads=os.cpu_count() or 1,
        )

    def resume(self, checkpoint: Path) -> None:
        self.progress = load_checkpoint(checkpoint, self.parts)
        if self.progress.classes != self.classes:
            raise ValueError(f"{checkpoint} was trained on other classes than {self.config.data.train_list}")
        logger.info("resumed from %s at epoch %d, step %d", checkpoint, self.progress.epoch, self.progress.step)

    def train(self, on_step: StepCallback | None = None) -> TrainResult:
        config = self.config
        result = TrainResult(self.progress)
        while self.progress.epoch < config.epochs and not self._step_limit_reached():
            result.losses.extend(self._train_epoch(on_step))
            self.progress.epoch += 1
            self._after_epoch()
        result.best_checkpoint = self.config.output / "best"
        if not (result.best_checkpoint / MODEL_FILE).is_file():
            self._save_best()
        result.export_dir = self.export(result.best_checkpoint)
        self.train_loader.close()
        return result

    def _step_limit_reached(self) -> bool:
        return self.config.max_iterations is not None and self.progress.step >= self.config.max_iterations

    def _train_epoch(self, on_step: StepCallback | None) -> list[float]:
        epoch = self.progress.epoch
        # Every random stream restarts from (seed, epoch): resuming at an epoch boundary replays exactly.
        paddle.seed(self.config.seed * 100_003 + epoch)
        data = self.config.data
        weights = identity_weights(self.train_set.num_classes, data.upweight_ranges, data.upweight_ratio)
        sampler = PKSampler(
            self.train_set.labels.tolist(),
            self.config.batch_size,
            self.config.images_per_id,
            id_weights=weights,
            seed=self.config.seed + epoch,
            neighbours=self._look_alikes() if epoch > 0 else None,
            hard_share=self.config.hard_negative_share,
        )
        augment_rng = np.random.default_rng([self.config.seed, epoch])
        set_training_mode(self.model, self.frozen)
        losses: list[float] = []
        started = time.perf_counter()
        for step in range(self.steps_per_epoch):
            if self._step_limit_reached():
                break
            parts = self._optimizer_step(sampler, augment_rng)
            losses.append(parts["total"])
            if on_step is not None:
                on_step(epoch + 1, step + 1, self.steps_per_epoch)
            last_step = step + 1 == self.steps_per_epoch or self._step_limit_reached()
            if self.progress.step % self.config.log_interval == 0 or last_step:
                self._log_step(parts, (step + 1) * self.config.global_batch / (time.perf_counter() - started))
        if self.train_set.skipped:
            logger.warning("%d unreadable training images skipped so far", self.train_set.skipped)
        return losses

    def _look_alikes(self) -> NDArray[np.int64] | None:
        """Nearest classes by the classifier's weights (a function of the weights: a resumed epoch gets the same)."""
        if not self.config.hard_negative_share:
            return None
        if self.arc_head is not None:
            weights = self.arc_head.weight  # [D, C]
        elif self.model.head is not None:
            weights = self.model.head.fc.weight  # paddle's Linear keeps [in, out] = [D, C] too
        else:
            return None
        return nearest_identities(np.asarray(weights.numpy(), dtype=np.float32), self.config.hard_negative_neighbours)

    def _optimizer_step(self, sampler: PKSampler, augment_rng: np.random.Generator) -> dict[str, float]:
        accumulate = self.config.accumulate_steps
        totals: dict[str, float] = {}
        for _ in range(accumulate):
            batch = self.train_loader.load(sampler.sample_batch(), augment_rng)
            images, start_stage = network_input(self.trunk, batch.images)
            labels = paddle.to_tensor(batch.labels)
            with paddle.amp.auto_cast(enable=self.amp, level="O1"):
                components = self._losses(images, labels, start_stage)
            loss = components["total"] / accumulate
            scaler = self.parts.scaler
            (scaler.scale(loss) if scaler is not None else loss).backward()
            for name, value in components.items():
                totals[name] = totals.get(name, 0.0) + float(value) / accumulate
        if self.parts.scaler is not None:
            self.parts.scaler.step(self.optimizer)
            self.parts.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.clear_grad()
        self.scheduler.step()
        self.progress.step += 1
        return totals

    def _losses(self, images: paddle.Tensor, labels: paddle.Tensor, start_stage: int) -> dict[str, paddle.Tensor]:
        if self.arc_head is not None:
            features = self.model.embed(images, start_stage)
            return self.loss(features, self.arc_head(features, labels), labels)
        outputs = self.model(images, start_stage)
        return self.loss(outputs["features"], outputs["logits"], labels)

    def _log_step(self, parts: dict[str, float], images_per_second: float) -> None:
        detail = " ".join(f"{name} {value:.4f}" for name, value in parts.items() if name != "total")
        logger.info(
            "epoch %d step %d loss %.4f (%s) lr %.6f %.1f img/s",
            self.progress.epoch + 1,
            self.progress.step,
            parts["total"],
            detail,
            self.optimizer.get_lr(),
            images_per_second,
        )

    def _after_epoch(self) -> None:
        config, epoch = self.config, self.progress.epoch
        last = epoch == config.epochs or self._step_limit_reached()
        if self.evaluation is not None and (epoch % config.eval_interval == 0 or last):
            self.progress.metrics = self.evaluate()
            logger.info("epoch %d evaluation: %s", epoch, _format(self.progress.metrics))
            recall1 = self.progress.metrics["recall1"]
            if self.progress.best_recall1 is None or recall1 > self.progress.best_recall1:
                self.progress.best_recall1, self.progress.best_epoch = recall1, epoch
                self._save_best()
        if epoch % config.save_interval == 0 or last:
            save_checkpoint(self._checkpoint_dir(), self.parts, self.progress)
        if self.evaluation is None and last:
            self._save_best()

    def _checkpoint_dir(self) -> Path:
        return self.config.output / "checkpoints" / f"epoch_{self.progress.epoch:04d}"

    def _save_best(self) -> None:
        if self.evaluation is None:
            self.progress.best_epoch = self.progress.epoch
        save_checkpoint(self.config.output / "best", self.parts, self.progress)

    def evaluate(self) -> dict[str, float]:
        """recall@1, recall@5 and mAP of the current weights on the evaluation split."""
        if self.evaluation is None:
            raise RuntimeError("no evaluation list is configured (data.eval_list or data.query_list)")
        metrics = evaluate(self.model, self.evaluation, self.config.data.num_workers, self.trunk)
        set_training_mode(self.model, self.frozen)
        return metrics

    def export(self, best: Path) -> Path:
        """The best weights, without the training head, through the recognition export."""
        model = build_recognition_model(self.config.model.arch, None)
        load_recognition_checkpoint(model, best / MODEL_FILE, skip_head=True)
        best_progress = read_progress(best)
        out_dir = self.config.output / "export"
        shutil.rmtree(out_dir, ignore_errors=True)
        provenance = {
            "training": "shitu train rec (PP-ShiTuV2 recipe)",
            "train_list": str(self.config.data.train_list),
            "classes": len(self.classes),
            "epochs": best_progress.epoch,
            "steps": best_progress.step,
            "metrics": best_progress.metrics,
            "recipe": self.config.model_dump(mode="json", exclude={"output": True, "data": {"root"}}),
        }
        data = synth_summary(self.config.data.root)
        if data is not None:
            provenance["data"] = data
        export_recognition(
            model,
            out_dir,
            name=self.config.export_name,
            version=self.config.export_version,
            provenance=provenance,
            input_size=self.config.data.augment.image_size,
            keep_ratio=self.config.model.keep_ratio,
        )
        return out_dir


def deploy_preprocess(preprocess: Preprocess, keep_ratio: bool) -> Preprocess:
    """The architecture's preprocessing, letterboxed (aspect kept, padded) when the recipe says so."""
    return preprocess.model_copy(update={"keep_ratio": True, "pad": True}) if keep_ratio else preprocess


def synth_summary(root: Path) -> dict | None:
    """What ``shitu data synth`` recorded about a dataset whose lists are in ``root`` (None for other data)."""
    for candidate in (root / SYNTH_SUMMARY, root.parent / SYNTH_SUMMARY):
        if candidate.is_file():
            summary = json.loads(candidate.read_text(encoding="utf-8"))
            recorded = {key: summary.get(key) for key in ("options", "assets", "counts")}
            return {"generator": "shitu data synth", **recorded}
    return None


def _format(metrics: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.4f}" for name, value in metrics.items())


def train_recognition(
    config: TrainRecognitionConfig, *, resume: Path | None = None, on_step: StepCallback | None = None
) -> TrainResult:
    trainer = RecognitionTrainer(config)
    if resume is not None:
        trainer.resume(resume)
    return trainer.train(on_step)
