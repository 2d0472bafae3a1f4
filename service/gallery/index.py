"""The faiss index over the stored embeddings: inner product on L2-normalised vectors (cosine).

``flat`` is exact and removes vectors for real. ``hnsw`` cannot remove, so deleted ids stay in the
graph and are masked by an ID selector at search time until a rebuild drops them.
The class is not thread-safe: :class:`service.gallery.search.SearchIndex` guards it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import faiss
import numpy as np
from numpy.typing import NDArray

from service.config import GallerySettings, IndexKind


@dataclass(frozen=True, slots=True)
class IndexParameters:
    kind: IndexKind
    dim: int
    hnsw_m: int = 32
    hnsw_ef_search: int = 64
    hnsw_ef_construction: int = 40

    @classmethod
    def from_settings(cls, settings: GallerySettings, dim: int, images: int) -> IndexParameters:
        """The parameters for a gallery of ``images``: ``auto`` resolves to flat or HNSW by its size."""
        return cls(index_kind_for(settings, images), dim, settings.hnsw_m, settings.hnsw_ef_search,
                   settings.hnsw_ef_construction)

    def with_kind(self, kind: IndexKind) -> IndexParameters:
        return replace(self, kind=kind)


def index_kind_for(settings: GallerySettings, images: int) -> IndexKind:
    """``flat`` or ``hnsw``: the configured kind, or for ``auto`` exact search below ``exact_max_images``."""
    if settings.index is not IndexKind.auto:
        return settings.index
    return IndexKind.hnsw if images >= settings.exact_max_images else IndexKind.flat


class VectorIndex:
    def __init__(self, parameters: IndexParameters, loaded: faiss.IndexIDMap2 | None = None) -> None:
        self.parameters = parameters
        if loaded is not None:
            self._index = loaded  # deserialised indexes own their inner index
        else:
            graph: faiss.Index
            if parameters.kind is IndexKind.hnsw:
                graph = faiss.IndexHNSWFlat(parameters.dim, parameters.hnsw_m, faiss.METRIC_INNER_PRODUCT)
                graph.hnsw.efConstruction = parameters.hnsw_ef_construction
                graph.hnsw.efSearch = parameters.hnsw_ef_search
            else:
                graph = faiss.IndexFlatIP(parameters.dim)
            self._inner = graph  # IndexIDMap2 does not own an inner index built from Python: keep it alive
            self._index = faiss.IndexIDMap2(graph)
        self._masked: set[int] = set()
        self._selector: faiss.IDSelector | None = None
        self._selector_parts: tuple[object, ...] = ()

    @classmethod
    def build(cls, parameters: IndexParameters, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> VectorIndex:
        index = cls(parameters)
        index.add(ids, vectors)
        return index

    @classmethod
    def read_from(cls, parameters: IndexParameters, read: Callable[[int], bytes]) -> VectorIndex:
        """Streams a written index in (no second copy of a large graph in memory, as ``deserialize`` makes)."""
        loaded = faiss.read_index(faiss.PyCallbackIOReader(read))  # type: ignore[attr-defined]  # not in stubs
        if not isinstance(loaded, faiss.IndexIDMap2) or loaded.d != parameters.dim:
            raise ValueError("the serialised index is not an IndexIDMap2 of the expected dimension")
        return cls(parameters, loaded)

    def write_to(self, write: Callable[[bytes], object]) -> None:
        """The graph with its masked vectors; the masks themselves are recomputed from the store on load."""
        faiss.write_index(self._index, faiss.PyCallbackIOWriter(write))  # type: ignore[attr-defined]  # not in stubs

    @property
    def size(self) -> int:
        """Vectors in the graph, masked ones included."""
        return int(self._index.ntotal)

    @property
    def masked(self) -> int:
        return len(self._masked)

    @property
    def masked_fraction(self) -> float:
        return self.masked / self.size if self.size else 0.0

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))

    def remove(self, ids: list[int]) -> None:
        if not ids:
            return
        if self.parameters.kind is IndexKind.hnsw:
            self._masked.update(ids)
            self._refresh_selector()
        else:
            # faiss's Python wrapper turns an id array into an IDSelectorBatch; its stubs know only the selector
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]

    def live_ids(self) -> NDArray[np.int64]:
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if self._masked:
            ids = ids[~np.isin(ids, np.fromiter(self._masked, dtype=np.int64))]
        return ids

    def search(self, queries: NDArray[np.float32], k: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Scores and ids (-1 where fewer than ``k`` live vectors were found), best first."""
        if self.parameters.kind is IndexKind.hnsw:
            # A fresh parameters object per call: IndexIDMap2 swaps its selector in and out during the search.
            ef_search = max(self.parameters.hnsw_ef_search, k)
            parameters = faiss.SearchParametersHNSW(efSearch=ef_search)  # type: ignore[attr-defined]  # not in stubs
            if self._selector is not None:
                parameters.sel = self._selector
            return self._index.search(queries, k, params=parameters)
        return self._index.search(queries, k)

    def _refresh_selector(self) -> None:
        masked = np.fromiter(self._masked, dtype=np.int64)
        batch = faiss.IDSelectorBatch(len(masked), faiss.swig_ptr(masked))
        selector = faiss.IDSelectorNot(batch)
        self._selector_parts = (batch, masked)  # the Not selector points at the batch: keep both alive
        self._selector = selector
