"""``last.*`` checkpoints of a detection run: model, optimizer (under stable names), EMA and progress.

The optimizer keys its buffers by Paddle's generated parameter names (``conv2d_12.w_0_velocity_0``), which are
numbered per process; checkpoints store the state-dict names instead so that a new process can resume.
``last.json`` is written last: it marks a complete checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import paddle

from trainer.detection.ema import ModelEMA

logger = logging.getLogger(__name__)

PROGRESS_FILE = "last.json"


@dataclass
class TrainingProgress:
    epoch: int = 0  # completed epochs
    step: int = 0
    best_ap: float | None = None
    train_cpu_s: float = 0.0  # process CPU time spent training (all threads, evaluation excluded)


def save_checkpoint(
    directory: Path,
    model: paddle.nn.Layer,
    optimizer: paddle.optimizer.Optimizer,
    ema: ModelEMA | None,
    progress: TrainingProgress,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    paddle.save(model.state_dict(), str(directory / "last.pdparams"))
    paddle.save(_rename(optimizer.state_dict(), _generated_to_stable(model)), str(directory / "last.pdopt"))
    if ema is not None:
        paddle.save(ema.state_dict(), str(directory / "last.ema"))
    (directory / PROGRESS_FILE).write_text(json.dumps(asdict(progress), indent=2) + "\n", encoding="utf-8")


def load_checkpoint(
    directory: Path, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer, ema: ModelEMA | None
) -> TrainingProgress:
    progress_file = directory / PROGRESS_FILE
    if not progress_file.is_file():
        raise FileNotFoundError(f"nothing to resume: {progress_file} does not exist")
    model.set_state_dict(paddle.load(str(directory / "last.pdparams")))
    stable_to_generated = {stable: generated for generated, stable in _generated_to_stable(model).items()}
    optimizer.set_state_dict(_rename(paddle.load(str(directory / "last.pdopt")), stable_to_generated))
    if ema is not None:
        ema.set_state_dict(paddle.load(str(directory / "last.ema")))
    progress = TrainingProgress(**json.loads(progress_file.read_text(encoding="utf-8")))
    logger.info("resuming after epoch %d, step %d", progress.epoch, progress.step)
    return progress


def _generated_to_stable(model: paddle.nn.Layer) -> dict[str, str]:
    return {parameter.name: name for name, parameter in model.named_parameters()}


def _rename(state: dict[str, object], names: dict[str, str]) -> dict[str, object]:
    """Rename ``<parameter>_<buffer>`` keys (longest parameter name first: one may prefix another)."""
    ordered = sorted(names, key=len, reverse=True)
    renamed: dict[str, object] = {}
    for key, value in state.items():
        if isinstance(value, dict):  # the master-weight table of multi-precision training
            renamed[key] = {names.get(name, name): weight for name, weight in value.items()}
            continue
        owner = next((name for name in ordered if key.startswith(name + "_")), None)
        renamed[names[owner] + key[len(owner) :] if owner else key] = value
    return renamed
