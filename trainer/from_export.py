"""A start from one of our own exports (``model_store/<kind>/<version>``): fine-tune a shipped model.

An export keeps its weights under the names of the process that saved it (``conv2d_41.w_0``), not the network's
(``backbone.stem.conv.weight``). The program's operations read them in an order that the architecture alone fixes,
so a fresh network of the same architecture, each of its tensors filled with its own index and exported, names
the shipped weights position by position; each shape is checked. Detector and embedder wrappers build the network
from the manifest and export the marked copy with their own exporter.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paddle
from paddle import nn


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


def state_from_export(
    model: nn.Layer, program_prefix: Path, export_marked: Callable[[Path], Path]
) -> tuple[dict[str, np.ndarray], set[str]]:
    """The export's weights under ``model``'s parameter names, and the names the program reads; tensors it never
    reads (a training head, the detector's per-level ``scale_reg``) keep ``model``'s values. ``model`` is an
    untrained network of the export's architecture: each tensor is filled with its own index, ``export_marked``
    exports it into the given scratch directory and returns the program prefix there, and the indices read back in
    the program's order name the export's weights in the same order. ``model`` is left as it was."""
    if not program_prefix.with_suffix(".json").is_file():
        raise ConversionError(f"{program_prefix.parent} holds no {program_prefix.name}.json export")
    shipped = _weights_in_use_order(program_prefix)
    own = {name: tensor.numpy().copy() for name, tensor in model.state_dict().items()}
    names = list(own)
    with paddle.no_grad():
        for index, tensor in enumerate(model.state_dict().values()):
            tensor.set_value(paddle.full(tensor.shape, float(index + 1), dtype=tensor.dtype))
    try:
        with tempfile.TemporaryDirectory() as scratch:
            marked = _weights_in_use_order(export_marked(Path(scratch)))
    finally:
        model.set_state_dict({name: paddle.to_tensor(value) for name, value in own.items()})
    if len(shipped) != len(marked):
        raise ConversionError(f"{program_prefix.parent} holds {len(shipped)} weights, this architecture exports "
                              f"{len(marked)}")
    state, read = dict(own), set()
    for position, (values, markers) in enumerate(zip(shipped, marked, strict=True)):
        name = names[round(float(markers.reshape(-1)[0])) - 1]
        if values.shape != own[name].shape:
            raise ConversionError(f"weight {position} ({name}): shape {values.shape} in the export, "
                                  f"{own[name].shape} in the architecture")
        state[name] = values
        read.add(name)
    return state, read


def save_state(state: dict[str, np.ndarray], out: Path) -> Path:
    """Write ``state`` as a ``.pdparams`` for ``model.init_checkpoint``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paddle.save({name: paddle.to_tensor(value) for name, value in state.items()}, str(out))
    return out
