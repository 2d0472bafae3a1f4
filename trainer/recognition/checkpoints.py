"""Recognition training checkpoints: one directory per save, resumable to the exact same state.

``model.pdparams`` holds the :class:`RecognitionModel` state dict with PaddleClas names (it loads with
``load_recognition_checkpoint``), ``arc_head.pdparams`` the ArcMargin head if any, ``optimizer.pdopt``
the momentum buffers and LR schedule (plus the AMP loss scaler), ``state.json`` the progress counters,
the best metric and the class list. Random streams are re-seeded from (seed, epoch) at each epoch start,
so a checkpoint taken between epochs carries the whole random state in ``seed`` and ``epoch``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import paddle
from paddle import nn

from trainer.checkpoint import load_checked, read_pdparams

MODEL_FILE = "model.pdparams"
HEAD_FILE = "arc_head.pdparams"
OPTIMIZER_FILE = "optimizer.pdopt"
SCALER_FILE = "scaler.pdparams"
STATE_FILE = "state.json"


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    seed: int = 0
    best_recall1: float | None = None
    best_epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)


@dataclass
class TrainingParts:
    model: nn.Layer
    arc_head: nn.Layer | None
    optimizer: paddle.optimizer.Optimizer
    scaler: paddle.amp.GradScaler | None = None


def save_checkpoint(directory: Path, parts: TrainingParts, progress: Progress) -> Path:
    """Write into a temporary sibling, then rename, so a crash never leaves a half-written checkpoint."""
    directory = Path(directory)
    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    paddle.save(parts.model.state_dict(), str(staging / MODEL_FILE))
    if parts.arc_head is not None:
        paddle.save(parts.arc_head.state_dict(), str(staging / HEAD_FILE))
    optimizer_state = _rename_state(parts.optimizer.state_dict(), _parameter_names(parts))
    paddle.save(optimizer_state, str(staging / OPTIMIZER_FILE))
    if parts.scaler is not None:
        paddle.save(parts.scaler.state_dict(), str(staging / SCALER_FILE))
    (staging / STATE_FILE).write_text(json.dumps(asdict(progress), indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return directory


def load_checkpoint(directory: Path, parts: TrainingParts) -> Progress:
    directory = Path(directory)
    state_path = directory / STATE_FILE
    if not state_path.is_file():
        raise FileNotFoundError(f"{directory} is not a training checkpoint (no {STATE_FILE})")
    _load_layer(parts.model, directory / MODEL_FILE)
    if parts.arc_head is not None:
        _load_layer(parts.arc_head, directory / HEAD_FILE)
    portable = {value: key for key, value in _parameter_names(parts).items()}
    parts.optimizer.set_state_dict(_rename_state(paddle.load(str(directory / OPTIMIZER_FILE)), portable))
    if parts.scaler is not None and (directory / SCALER_FILE).is_file():
        parts.scaler.load_state_dict(paddle.load(str(directory / SCALER_FILE)))
    return read_progress(directory)


def read_progress(directory: Path) -> Progress:
    return Progress(**json.loads((Path(directory) / STATE_FILE).read_text(encoding="utf-8")))


def _load_layer(layer: nn.Layer, path: Path) -> None:
    load_checked(layer, read_pdparams(path), source=str(path))


def resolve_checkpoint(path: Path) -> Path:
    """``path`` itself if it is a checkpoint, else the newest ``checkpoints/epoch_*`` under a run directory."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    saved = sorted((path / "checkpoints").glob("epoch_*[0-9]"))
    saved = [candidate for candidate in saved if (candidate / STATE_FILE).is_file()]
    if not saved:
        raise FileNotFoundError(f"{path} is neither a checkpoint nor a run directory with checkpoints")
    return saved[-1]


def _parameter_names(parts: TrainingParts) -> dict[str, str]:
    """Paddle's generated parameter names (``conv2d_12.w_0``, numbered per process) → state-dict names.

    The optimizer keys its buffers by generated names, which differ in a new process or for a second model;
    checkpoints store the stable state-dict names instead.
    """
    layers = {"model.": parts.model, "arc_head.": parts.arc_head}
    return {
        parameter.name: prefix + name
        for prefix, layer in layers.items()
        if layer is not None
        for name, parameter in layer.named_parameters()
    }


def _rename_state(state: dict[str, object], names: dict[str, str]) -> dict[str, object]:
    """Rename ``<parameter>_<buffer>`` keys and the master-weight table; longest parameter name wins."""
    ordered = sorted(names, key=len, reverse=True)
    renamed: dict[str, object] = {}
    for key, value in state.items():
        if isinstance(value, dict) and key == "master_weights":
            renamed[key] = {names.get(name, name): weight for name, weight in value.items()}
            continue
        owner = next((name for name in ordered if key.startswith(name + "_")), None)
        renamed[names[owner] + key[len(owner) :] if owner else key] = value
    return renamed
