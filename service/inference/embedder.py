"""Feature model: crops → L2-normalised embeddings, all crops of a request in one batch."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from service.errors import ModelError
from service.inference.image import RGBImage, fit, normalize
from service.inference.manifest import ModelKind, ModelManifest
from service.inference.session import Session


class Embedder:
    """Embeds RGB crops with the model's own preprocessing; rows are unit vectors (cosine = inner product)."""

    def __init__(self, session: Session, manifest: ModelManifest, *, max_batch_size: int) -> None:
        if manifest.kind is not ModelKind.embedder or manifest.embedding_dim is None:
            raise ModelError(f"{manifest.name} is a {manifest.kind.value} model, not an embedder")
        if manifest.preprocess.keep_ratio and not manifest.preprocess.pad:
            raise ModelError(f"{manifest.name}: preprocess.keep_ratio without pad gives crops of other sizes than "
                             "the model's input; set preprocess.pad (letterbox)")
        if len(session.input_names) != 1:
            raise ModelError(f"an embedder takes one input, {manifest.name} takes {list(session.input_names)}")
        self.session = session
        self.manifest = manifest
        self.embedding_dim: int = manifest.embedding_dim
        self.max_batch_size = max_batch_size

    def clone(self) -> Embedder:
        return Embedder(self.session.clone(), self.manifest, max_batch_size=self.max_batch_size)

    def embed(self, crops: list[RGBImage]) -> NDArray[np.float32]:
        if not crops:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        preprocess = self.manifest.preprocess
        batch = np.stack([normalize(fit(crop, preprocess), preprocess) for crop in crops])
        size = self.max_batch_size
        features = [self._run(batch[start : start + size]) for start in range(0, len(batch), size)]
        return l2_normalize(np.concatenate(features))

    def _run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        output = np.asarray(self.session.run({self.session.input_names[0]: batch})[0], dtype=np.float32)
        output = output.reshape(len(batch), -1)
        if output.shape[1] != self.embedding_dim:
            raise ModelError(
                f"{self.manifest.name} returned {output.shape[1]}-d features, its manifest says {self.embedding_dim}"
            )
        return output


def l2_normalize(features: NDArray[np.float32]) -> NDArray[np.float32]:
    """PP-ShiTu divides by the L2 norm with no epsilon; a zero row stays zero instead of becoming NaN."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.where(norms > 0, norms, 1.0)).astype(np.float32)
