"""The faiss index over the stored embeddings: inner product on L2-normalised vectors (cosine).

``flat`` is exact and removes vectors for real. ``hnsw`` cannot remove, so deleted ids stay in the
graph and are masked by an ID selector at search time until a rebuild drops them.
A metadata filter arrives as the ids it selects (from SQLite) and becomes one more ID selector, so faiss
searches only those; an HNSW search over a small selection is done exactly instead, since a graph walk that
may only collect a few of the vectors it visits loses recall.
The class is not thread-safe: :class:`service.gallery.search.SearchIndex` guards it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import faiss
import numpy as np
from numpy.typing import NDArray

from service.config import GallerySettings, IndexKind

# Below this many selected rows a filtered HNSW search compares the query with each of them (exact, and at
# 512 dimensions a few milliseconds); above it the graph is searched with the selection as an ID selector.
EXACT_SELECTION_ROWS = 20_000
MAX_FILTERED_EF_SEARCH = 4096


@dataclass(frozen=True, slots=True)
class IndexParameters:
    kind: IndexKind
    dim: int
    hnsw_m: int = 32
    hnsw_ef_search: int = 64
    hnsw_ef_construction: int = 160

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

    def search(
        self, queries: NDArray[np.float32], k: int, selected: NDArray[np.int64] | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Scores and ids (-1 where fewer than ``k`` live vectors were found), best first; ``selected``: only
        these ids (all of them in the index and live)."""
        if selected is None:
            return self._search(queries, k, self._selector, self.parameters.hnsw_ef_search)
        if self.parameters.kind is IndexKind.hnsw and len(selected) <= EXACT_SELECTION_ROWS:
            return self._search_exactly(queries, k, selected)
        batch = faiss.IDSelectorBatch(len(selected), faiss.swig_ptr(selected))
        if self.parameters.kind is IndexKind.flat:
            return self._index.search(queries, k, params=faiss.SearchParameters(sel=batch))  # type: ignore[call-arg]
        # the graph walk visits about ef vectors of which only a fraction is selected: widen it by that fraction
        widened = int(self.parameters.hnsw_ef_search * self.size / max(len(selected), 1))
        ef_search = min(max(widened, self.parameters.hnsw_ef_search), MAX_FILTERED_EF_SEARCH)
        return self._search(queries, k, batch, ef_search)

    def _search(
        self, queries: NDArray[np.float32], k: int, selector: faiss.IDSelector | None, ef_search: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        if self.parameters.kind is IndexKind.hnsw:
            # A fresh parameters object per call: IndexIDMap2 swaps its selector in and out during the search.
            parameters = faiss.SearchParametersHNSW(efSearch=max(ef_search, k))  # type: ignore[attr-defined]
            if selector is not None:
                parameters.sel = selector
            return self._index.search(queries, k, params=parameters)
        if selector is not None:
            return self._index.search(queries, k, params=faiss.SearchParameters(sel=selector))  # type: ignore[call-arg]
        return self._index.search(queries, k)

    def _search_exactly(
        self, queries: NDArray[np.float32], k: int, selected: NDArray[np.int64]
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        if len(selected):
            vectors = self._index.reconstruct_batch(selected)
            all_scores = queries @ vectors.T
            found = min(k, len(selected))
            best = np.argsort(-all_scores, axis=1, kind="stable")[:, :found]
            scores[:, :found] = np.take_along_axis(all_scores, best, axis=1)
            ids[:, :found] = selected[best]
        return scores, ids

    def _refresh_selector(self) -> None:
        masked = np.fromiter(self._masked, dtype=np.int64)
        batch = faiss.IDSelectorBatch(len(masked), faiss.swig_ptr(masked))
        selector = faiss.IDSelectorNot(batch)
        self._selector_parts = (batch, masked)  # the Not selector points at the batch: keep both alive
        self._selector = selector
