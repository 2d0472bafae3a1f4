"""The cluster back end's vectors: one Milvus collection per gallery, derived from PostgreSQL, never the truth.

Each row is an image: ``row_id`` (PostgreSQL's id, the primary key), ``item_id``, ``image_id``, the item's
metadata as typed filter keys, and the embedding. Every call asks for Strong consistency, so a write one
replica acknowledged is seen by the next search of any other.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pymilvus import DataType, MilvusClient, MilvusException

from service.config import ClusterSettings, GallerySettings
from service.errors import GalleryError
from service.gallery.filters import filterable

logger = logging.getLogger(__name__)
CONSISTENCY = "Strong"
MAX_ITEM_ID_CHARS = 128
PAGE = 1000


# pymilvus pings every 10 s even on an idle channel; a gRPC server with the default enforcement (milvus-lite's)
# answers that with GOAWAY "too_many_pings" and the replica loses its channel. Ping only during calls, at the
# servers' default minimum interval.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False}

class MilvusIndex:
    def __init__(self, settings: GallerySettings, dim: int) -> None:
        cluster: ClusterSettings = settings.cluster
        self.collection = cluster.name
        self.dim = dim
        self._settings = settings
        try:
            self._client = MilvusClient(uri=cluster.milvus_uri, token=cluster.milvus_token or "",
                                        timeout=cluster.timeout_s, grpc_options=GRPC_OPTIONS)
            self._ensure_collection()
        except MilvusException as error:
            raise GalleryError(f"cannot open the Milvus collection {self.collection}: {error.message}") from error

    def _ensure_collection(self) -> None:
        if self._client.has_collection(self.collection) and self._stored_dim() not in (None, self.dim):
            self._client.load_collection(self.collection)
            if self.count():
                raise GalleryError(f"the Milvus collection {self.collection} holds embeddings of size "
                                   f"{self._stored_dim()}, the embedder gives {self.dim}",
                                   stored_dims=[self._stored_dim()], embedding_dim=self.dim)
            self._client.drop_collection(self.collection)  # empty: a new embedder may take it, as in SQLite
        if not self._client.has_collection(self.collection):
            schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("row_id", DataType.INT64, is_primary=True)
            schema.add_field("item_id", DataType.VARCHAR, max_length=MAX_ITEM_ID_CHARS)
            schema.add_field("image_id", DataType.VARCHAR, max_length=64)
            schema.add_field("metadata", DataType.JSON)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            index = self._client.prepare_index_params()
            index.add_index("vector", index_type=self._settings.cluster.milvus_index, metric_type="IP",
                            params=self._index_params())
            try:
                self._client.create_collection(self.collection, schema=schema, index_params=index,
                                               consistency_level=CONSISTENCY)
            except MilvusException:
                if not self._client.has_collection(self.collection):  # another replica created it first
                    raise
        self._client.load_collection(self.collection)

    def _stored_dim(self) -> int | None:
        described = self._client.describe_collection(self.collection)
        dims = [field.get("params", {}).get("dim") for field in described["fields"] if field["name"] == "vector"]
        return int(dims[0]) if dims and dims[0] is not None else None

    def _index_params(self) -> dict[str, Any]:
        if self._settings.cluster.milvus_index == "HNSW":
            return {"M": self._settings.hnsw_m, "efConstruction": self._settings.hnsw_ef_construction}
        return {}

    def _search_params(self, top_k: int) -> dict[str, Any]:
        if self._settings.cluster.milvus_index == "HNSW":
            return {"metric_type": "IP", "params": {"ef": max(self._settings.hnsw_ef_search, top_k)}}
        return {"metric_type": "IP"}

    def close(self) -> None:
        self._client.close()

    # -- writes: idempotent, so a repair may run them again ------------------------------------------------

    def upsert(self, rows: list[dict[str, Any]]) -> None:
        """``rows`` as PostgresStore.index_rows gives them."""
        if rows:
            self._client.upsert(self.collection, [self._entity(row) for row in rows])

    def _entity(self, row: dict[str, Any]) -> dict[str, Any]:
        vector = np.frombuffer(row["embedding"], dtype=np.float32)
        return {"row_id": int(row["row_id"]), "item_id": row["item_id"], "image_id": row["image_id"],
                "metadata": filterable(json.loads(row["metadata"])), "vector": vector.tolist()}

    def delete(self, row_ids: list[int]) -> None:
        if row_ids:
            self._client.delete(self.collection, ids=[int(row_id) for row_id in row_ids])

    def item_row_ids(self, item_id: str) -> list[int]:
        rows = self._client.query(self.collection, filter=f"item_id == {json.dumps(item_id)}",
                                  output_fields=["row_id"], consistency_level=CONSISTENCY)
        return [int(row["row_id"]) for row in rows]

    # -- reads ----------------------------------------------------------------------------------------------

    def search(self, queries: NDArray[np.float32], limit: int, expression: str) -> list[list[tuple[int, float]]]:
        """Per query, (row_id, score) of the best image of up to ``limit`` distinct items, best first."""
        results = self._client.search(
            self.collection,
            data=queries.tolist(),
            limit=limit,
            filter=expression,
            group_by_field="item_id",
            output_fields=["row_id"],
            search_params=self._search_params(limit),
            consistency_level=CONSISTENCY,
        )
        return [[(int(hit["row_id"]), float(hit["distance"])) for hit in hits] for hits in results]

    def rows(self) -> dict[int, str]:
        """row_id -> item_id of every row in the collection (``check(thorough=True)`` at start)."""
        iterator = self._client.query_iterator(self.collection, batch_size=PAGE, filter="row_id >= 0",
                                               output_fields=["row_id", "item_id"], consistency_level=CONSISTENCY)
        rows: dict[int, str] = {}
        try:
            while batch := iterator.next():
                rows.update((int(row["row_id"]), row["item_id"]) for row in batch)
        finally:
            iterator.close()
        return rows

    def count(self) -> int:
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"],
                                  consistency_level=CONSISTENCY)
        return int(rows[0]["count(*)"])


def drop_collection(settings: GallerySettings) -> None:
    client = MilvusClient(uri=settings.cluster.milvus_uri, token=settings.cluster.milvus_token or "",
                          grpc_options=GRPC_OPTIONS)
    try:
        if client.has_collection(settings.cluster.name):
            client.drop_collection(settings.cluster.name)
    finally:
        client.close()
