"""A start from one of our own exported detectors (``model_store/detector/<version>``): fine-tune a shipped model.

An export keeps its weights under the names of the process that saved it (``conv2d_41.w_0``), not the network's
(``backbone.stem.conv.weight``). The program's operations read them in an order that the architecture alone fixes,
so a fresh network of the same architecture, each of its tensors filled with its own index and exported, names
the shipped weights position by position; each shape is checked.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import paddle
from pydantic import ValidationError

from service.inference.manifest import ManifestError, ModelKind, load_manifest
from trainer.detection.config import DataConfig, ModelConfig, TrainConfig, TrainDetectionConfig
from trainer.detection.export import PROGRAM_STEM, export_detector
from trainer.detection.setup import build_model
from trainer.models.picodet import PicoDet


class ConversionError(ValueError):
    """The export does not hold the network this architecture builds."""


def _weights_in_use_order(program_prefix: Path) -> list[np.ndarray]:
    """The program's weights in the order its operations first read them: the network's structure fixes that
    order, whatever names the weights were saved under (those depend on what the saving process built before)."""
    paddle.enable_static()
    try:
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            program, _, _ = paddle.static.load_inference_model(
                str(program_prefix), paddle.static.Executor(paddle.CPUPlace())
            )
            names: dict[str, None] = {}  # first use first: a dict keeps insertion order
            for operation in program.global_block().ops:
                for operand in operation.operands_source():
                    source = operand.get_defining_op()
                    if source is not None and source.name() == "builtin.parameter":
                        names.setdefault(source.attrs()["parameter_name"])
            return [np.array(scope.find_var(name).get_tensor()) for name in names]
    finally:
        paddle.disable_static()


def state_from_export(model: PicoDet, model_dir: Path, input_size: int) -> dict[str, np.ndarray]:
    """The exported detector's weights under ``model``'s parameter names; tensors the program never reads (the
    per-level ``scale_reg`` kept for PaddleDetection's names) keep ``model``'s values. ``model`` is an untrained
    network of the export's architecture: its every tensor is filled with its own index, exported, and the indices
    read back in the program's order name the export's weights in the same order."""
    prefix = Path(model_dir) / PROGRAM_STEM
    if not prefix.with_suffix(".json").is_file():
        raise ConversionError(f"{model_dir} holds no {PROGRAM_STEM}.json export")
    shipped = _weights_in_use_order(prefix)
    own = {name: tensor.numpy().copy() for name, tensor in model.state_dict().items()}
    names = list(own)
    with paddle.no_grad():
        for index, tensor in enumerate(model.state_dict().values()):
            tensor.set_value(paddle.full(tensor.shape, float(index + 1), dtype=tensor.dtype))
    with tempfile.TemporaryDirectory() as scratch:
        export_detector(model, Path(scratch), name="markers", version="0", input_size=input_size,
                        labels=[f"class{index}" for index in range(model.num_classes)])
        marked = _weights_in_use_order(Path(scratch) / PROGRAM_STEM)
    model.set_state_dict({name: paddle.to_tensor(value) for name, value in own.items()})
    if len(shipped) != len(marked):
        raise ConversionError(f"{model_dir} holds {len(shipped)} weights, this architecture exports {len(marked)}")
    state = dict(own)
    for position, (values, markers) in enumerate(zip(shipped, marked, strict=True)):
        name = names[round(float(markers.reshape(-1)[0])) - 1]
        if values.shape != own[name].shape:
            raise ConversionError(f"weight {position} ({name}): shape {values.shape} in the export, "
                                  f"{own[name].shape} in the architecture")
        state[name] = values
    return state


def export_network(model_dir: Path) -> tuple[PicoDet, ModelConfig]:
    """A random network of the architecture the export's manifest records (``provenance.recipe.model``)."""
    try:
        manifest = load_manifest(Path(model_dir))
        settings = ModelConfig.model_validate(manifest.provenance["recipe"]["model"])
    except (ManifestError, KeyError, TypeError, ValidationError) as error:
        raise ConversionError(f"{model_dir}: no detector trained by `shitu train det` ({error})") from error
    if manifest.kind is not ModelKind.detector:
        raise ConversionError(f"{model_dir} holds a {manifest.kind.value}, not a detector")
    # only the network is built from it: no data is read, no weights but the export's are wanted
    recipe = TrainDetectionConfig(
        data=DataConfig(train_annotations=Path("unused.json")),
        model=settings.model_copy(update={"imagenet_backbone": False, "init_checkpoint": None,
                                          "backbone_checkpoint": None}),
        train=TrainConfig(sizes=[settings.input_size]),
    )
    return build_model(recipe, len(manifest.labels)), settings


def write_start(model_dir: Path, out: Path) -> Path:
    """Write the export's weights as a whole-detector ``.pdparams`` for ``model.init_checkpoint``."""
    model, settings = export_network(model_dir)
    state = state_from_export(model, model_dir, settings.input_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    paddle.save({name: paddle.to_tensor(value) for name, value in state.items()}, str(out))
    return out
