"""The detector training loop: SimOTA + VFL/DFL/GIoU, warm-up cosine momentum SGD, EMA, COCO AP, checkpoints,
resume, and the export of the (averaged) weights at the end.

Checkpoints live in ``<output_dir>/checkpoints``: ``last.*`` after every ``checkpoint_interval`` epochs and at
the end (model, optimizer, EMA and progress), ``best.pdparams`` whenever validation AP improves.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paddle
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from service.inference.manifest import ModelManifest
from trainer.detection.assigner import SimOTAAssigner
from trainer.detection.checkpoints import TrainingProgress, load_checkpoint, save_checkpoint
from trainer.detection.coco import CocoDetectionDataset
from trainer.detection.config import TrainDetectionConfig
from trainer.detection.ema import ModelEMA
from trainer.detection.evaluate import evaluate_detections
from trainer.detection.export import export_detector
from trainer.detection.loader import TrainBatchLoader
from trainer.detection.losses import LossWeights, PicoDetLoss
from trainer.detection.predict import predict_dataset
from trainer.detection.setup import build_model, build_optimizer, freeze_trunk, picodet_learning_rate
from trainer.frozen_trunk import FrozenTrunk, network_input
from trainer.models.picodet import PicoDet
from trainer.schedule import set_training_mode

logger = logging.getLogger(__name__)

EVALUATIONS_FILE = "evaluations.jsonl"


@dataclass
class TrainingResult:
    steps: int
    losses: list[float] = field(default_factory=list)  # per step of this run (resumed steps not included)
    evaluations: list[dict[str, float]] = field(default_factory=list)
    best_ap: float | None = None
    checkpoint_dir: Path | None = None
    manifest: ModelManifest | None = None


def open_datasets(config: TrainDetectionConfig) -> tuple[CocoDetectionDataset, CocoDetectionDataset | None]:
    data = config.data
    train = CocoDetectionDataset(
        data.train_annotations,
        data.train_images,
        single_class=data.single_class,
        keep_empty_images=data.keep_empty_train_images,
    )
    for extra_annotations in data.extra_train_annotations:
        train.extend(CocoDetectionDataset(extra_annotations, single_class=data.single_class,
                                          keep_empty_images=data.keep_empty_train_images))
    validation = None
    if data.val_annotations is not None:
        validation = CocoDetectionDataset(data.val_annotations, data.val_images, single_class=data.single_class)
        if validation.category_names != train.category_names:
            raise ValueError("the validation set's categories differ from the training set's")
    return train, validation


def train_loader(config: TrainDetectionConfig, dataset: CocoDetectionDataset) -> TrainBatchLoader:
    return TrainBatchLoader(
        dataset,
        config.augment,
        batch_size=config.train.batch_size,
        sizes=config.train.sizes,
        random_interpolation=config.train.random_interpolation,
        seed=config.train.seed,
        workers=config.data.workers,
    )


def train_detector(config: TrainDetectionConfig, *, resume: bool = False, progress: bool = False) -> TrainingResult:
    paddle.seed(config.train.seed)
    np.random.seed(config.train.seed)
    train_set, validation_set = open_datasets(config)
    loader = train_loader(config, train_set)
    model = build_model(config, train_set.num_classes)
    frozen = freeze_trunk(config, model)
    trunk = _frozen_trunk(config, model)
    optimizer = build_optimizer(config, model)
    settings = config.optimizer
    ema = ModelEMA(model, settings.ema_decay, settings.ema_cycle_epoch) if settings.ema else None
    criterion = _criterion(config, model)
    checkpoint_dir = config.train.output_dir / "checkpoints"
    state = load_checkpoint(checkpoint_dir, model, optimizer, ema) if resume else TrainingProgress()
    total_steps = len(loader) * config.train.epochs
    if config.train.max_steps is not None:
        total_steps = min(total_steps, config.train.max_steps)
    result = TrainingResult(steps=state.step, best_ap=state.best_ap, checkpoint_dir=checkpoint_dir)
    bar = _progress_bar() if progress else nullcontext()
    with bar as live:
        task = live.add_task("train det", total=total_steps, completed=state.step) if live else None
        while state.step < total_steps:
            set_training_mode(model, frozen)
            epoch_start, cpu_mark = time.perf_counter(), time.process_time()
            for batch in loader.epoch(state.epoch):
                lr = picodet_learning_rate(
                    state.step,
                    config.learning_rate,
                    config.optimizer.warmup_steps,
                    config.optimizer.warmup_start_factor,
                    total_steps,
                )
                optimizer.set_lr(lr)
                inputs, start_stage = network_input(trunk, batch.images)
                class_logits, box_bins = model(inputs, start_stage)
                losses = criterion(class_logits, box_bins, batch.boxes, batch.labels)
                losses["loss"].backward()
                optimizer.step()
                optimizer.clear_grad()
                if ema is not None:
                    ema.update()
                state.step += 1
                result.losses.append(float(losses["loss"]))
                if live and task is not None:
                    live.update(task, advance=1, description=f"epoch {state.epoch + 1} loss {result.losses[-1]:.3f}")
                if state.step % config.train.log_interval == 0:
                    _log_step(state, losses, lr)
                if _cpu_budget_spent(config, state.train_cpu_s + time.process_time() - cpu_mark):
                    total_steps = state.step
                if state.step >= total_steps:
                    break
            state.epoch += 1
            state.train_cpu_s += time.process_time() - cpu_mark
            logger.info("epoch %d: %.1f s (%.1f CPU-minutes of training so far)", state.epoch,
                        time.perf_counter() - epoch_start, state.train_cpu_s / 60)
            finished = state.step >= total_steps
            if validation_set is not None and (finished or state.epoch % config.train.eval_interval == 0):
                _evaluate(config, model, ema, validation_set, state, result, checkpoint_dir)
            if ema is not None and not finished:
                ema.end_epoch(state.epoch)
            if finished or state.epoch % config.train.checkpoint_interval == 0:
                save_checkpoint(checkpoint_dir, model, optimizer, ema, state)
    result.steps, result.best_ap = state.step, state.best_ap
    if config.export.enabled:
        result.manifest = _export(config, model, ema, train_set, result)
    return result


def _cpu_budget_spent(config: TrainDetectionConfig, cpu_seconds: float) -> bool:
    budget = config.train.max_cpu_minutes
    return budget is not None and cpu_seconds >= budget * 60


def _frozen_trunk(config: TrainDetectionConfig, model: PicoDet) -> FrozenTrunk | None:
    """The frozen stages as a Paddle Inference program (several times faster than their dygraph forward)."""
    if not config.model.frozen_stages:
        return None
    work_dir = config.train.output_dir / "frozen_trunk"
    return FrozenTrunk(model, config.model.frozen_stages, config.model.input_size, work_dir, os.cpu_count() or 1)


def _criterion(config: TrainDetectionConfig, model: PicoDet) -> PicoDetLoss:
    loss = config.loss
    assigner = SimOTAAssigner(loss.center_radius, loss.candidate_topk, loss.iou_weight)
    weights = LossWeights(loss.classification_weight, loss.distribution_weight, loss.giou_weight)
    return PicoDetLoss(
        model.strides,
        model.head.reg_max,
        cell_offset=model.head.cell_offset,
        assigner=assigner,
        weights=weights,
        classification=loss.classification,
    )


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=False
    )


def _log_step(state: TrainingProgress, losses: dict[str, paddle.Tensor], lr: float) -> None:
    parts = " ".join(f"{name.removeprefix('loss_')} {float(value):.4f}" for name, value in losses.items())
    logger.info("step %d epoch %d lr %.5f %s", state.step, state.epoch + 1, lr, parts)


def _evaluate(
    config: TrainDetectionConfig,
    model: PicoDet,
    ema: ModelEMA | None,
    validation_set: CocoDetectionDataset,
    state: TrainingProgress,
    result: TrainingResult,
    checkpoint_dir: Path,
) -> None:
    with ema.applied() if ema is not None else nullcontext(model):
        truths, detections = predict_dataset(
            model, validation_set, config.model.input_size, batch_size=config.train.eval_batch_size
        )
        metrics = evaluate_detections(truths, detections, validation_set.num_classes).as_dict()
        if state.best_ap is None or metrics["ap"] > state.best_ap:
            state.best_ap = metrics["ap"]
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            paddle.save(model.state_dict(), str(checkpoint_dir / "best.pdparams"))
    cpu_minutes = round(state.train_cpu_s / 60, 4)
    record = {"epoch": state.epoch, "step": state.step, "train_cpu_minutes": cpu_minutes, **metrics}
    result.evaluations.append(record)
    # one line per evaluation, kept across resumed runs: AP against CPU time (docs compare starts with it)
    with (config.train.output_dir / EVALUATIONS_FILE).open("a", encoding="utf-8") as history:
        history.write(json.dumps(record) + "\n")
    logger.info("epoch %d: AP %.4f AP50 %.4f AP75 %.4f", state.epoch, metrics["ap"], metrics["ap50"], metrics["ap75"])


def training_provenance(config: TrainDetectionConfig, architecture: str, steps: int, ema: bool) -> dict[str, Any]:
    """What a detector's manifest says about how it was made: the data (``synth.json`` when the annotations come
    from ``shitu data synth``), the whole recipe and the run."""
    provenance: dict[str, Any] = {
        "trainer": "shitu train det",
        "train_annotations": str(config.data.train_annotations),
        **({"extra_train_annotations": [str(path) for path in config.data.extra_train_annotations]}
           if config.data.extra_train_annotations else {}),
        "architecture": architecture,
        "steps": steps,
        "weights": "ema" if ema else "last",
        "recipe": config.model_dump(mode="json"),
    }
    generated = [_synth_summary(path) for path in (config.data.train_annotations, *config.data.extra_train_annotations)]
    if generated[0] is not None:
        provenance["data"] = generated[0]
    if any(summary is not None for summary in generated[1:]):
        provenance["extra_data"] = generated[1:]
    return provenance


def _synth_summary(annotations: Path) -> dict[str, Any] | None:
    """What ``shitu data synth`` recorded of the dataset these annotations belong to, if it made them."""
    synth = Path(annotations).parent.parent / "synth.json"
    if not synth.is_file():
        return None
    summary = json.loads(synth.read_text(encoding="utf-8"))
    return {"generator": "shitu data synth", **{key: summary.get(key) for key in ("options", "assets", "counts")}}


def _export(
    config: TrainDetectionConfig,
    model: PicoDet,
    ema: ModelEMA | None,
    train_set: CocoDetectionDataset,
    result: TrainingResult,
) -> ModelManifest:
    out_dir = config.export_dir
    provenance = training_provenance(config, model.architecture, result.steps, ema is not None)
    if result.evaluations:
        provenance["validation"] = result.evaluations[-1]
    with ema.applied() if ema is not None else nullcontext(model):
        manifest = export_detector(
            model,
            out_dir,
            name=config.export.name,
            version=config.export.version,
            input_size=config.model.input_size,
            labels=train_set.category_names,
            provenance=provenance,
            architecture=model.architecture,
        )
    logger.info("exported %s to %s", manifest.model_id, out_dir)
    return manifest
