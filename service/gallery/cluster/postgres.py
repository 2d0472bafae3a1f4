"""The cluster back end's PostgreSQL store: items, images (with their embeddings) and metadata, the source of truth.

One schema per gallery. ``pending`` lists the items whose Milvus rows may differ from their rows here: a
write records its item there in the same transaction as its change and clears it once Milvus matches, so a
replica that dies in between leaves the item listed for :meth:`ClusterGallery.repair`. Writers of one item
hold an advisory lock on it, across replicas.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from service.box import Box
from service.gallery.backend import StoredImage, evenly_spaced, sampled_from_rows, stored_image_from_row
from service.gallery.store import stored_box
from service.gallery.types import GalleryImage, GalleryItem

Connection = psycopg.Connection[dict[str, Any]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS {schema}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.items (
    item_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_label ON {schema}.items (label, created_at, item_id);
CREATE INDEX IF NOT EXISTS items_by_time ON {schema}.items (created_at, item_id);
-- row_id is the Milvus primary key: a sequence never hands an id out twice, whichever replica asks.
CREATE TABLE IF NOT EXISTS {schema}.images (
    row_id BIGSERIAL PRIMARY KEY,
    image_id TEXT NOT NULL UNIQUE,
    item_id TEXT NOT NULL REFERENCES {schema}.items (item_id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    file_name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    box TEXT,
    model_id TEXT NOT NULL,
    embedding BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (item_id, sha256)
);
CREATE INDEX IF NOT EXISTS images_by_file ON {schema}.images (file_name);
CREATE TABLE IF NOT EXISTS {schema}.pending (item_id TEXT PRIMARY KEY, since DOUBLE PRECISION NOT NULL);
"""
ITEM_COLUMNS = (
    "item_id, label, metadata, created_at, updated_at, "
    "(SELECT COUNT(*) FROM {schema}.images WHERE images.item_id = items.item_id) AS image_count"
)
IMAGE_COLUMNS = "image_id, item_id, box, model_id, sha256, media_type, created_at"
# one key space for this project's advisory locks: (namespace, crc32 of "<schema>/<item_id>")
LOCK_NAMESPACE = 0x5117


def _item(row: dict[str, Any]) -> GalleryItem:
    return GalleryItem(
        item_id=row["item_id"],
        label=row["label"],
        metadata=json.loads(row["metadata"]),
        image_count=row["image_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _image(row: dict[str, Any]) -> GalleryImage:
    return GalleryImage(
        image_id=row["image_id"],
        item_id=row["item_id"],
        box=stored_box(row["box"]),
        model_id=row["model_id"],
        sha256=row["sha256"],
        media_type=row["media_type"],
        created_at=row["created_at"],
    )


def box_text(box: Box | None) -> str | None:
    return None if box is None else json.dumps(list(box.as_tuple()))


class PostgresStore:
    def __init__(self, dsn: str, schema: str, *, pool_size: int, timeout_s: float) -> None:
        self.schema = schema
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            timeout=timeout_s,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": True, "connect_timeout": max(1, int(timeout_s))},
        )
        self._pool.open(wait=True, timeout=timeout_s)
        with self.transaction() as connection:
            # one replica creates the schema at a time: CREATE ... IF NOT EXISTS races with itself otherwise
            connection.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_NAMESPACE,))
            connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            for statement in self._sql(SCHEMA).split(";"):
                if statement.strip():
                    connection.execute(statement)

    def _sql(self, text: str) -> str:
        return text.replace("{schema}", f'"{self.schema}"')  # the schema name matches [a-z_][a-z0-9_]*

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        with self._pool.connection() as connection:
            yield connection

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction, committed on success (PostgreSQL's commit is durable: ``synchronous_commit``)."""
        with self._pool.connection() as connection, connection.transaction():
            yield connection

    @contextmanager
    def item_lock(self, item_id: str) -> Iterator[Connection]:
        """Holds the item's advisory lock (every replica's writers of that item wait); a connection that dies
        drops it, so a killed replica never leaves an item locked."""
        key = zlib.crc32(f"{self.schema}/{item_id}".encode()) - 2**31
        with self._pool.connection() as connection:
            connection.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, key))
            try:
                yield connection
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, key))

    def try_item_lock(self, connection: Connection, item_id: str) -> bool:
        key = zlib.crc32(f"{self.schema}/{item_id}".encode()) - 2**31
        row = connection.execute("SELECT pg_try_advisory_lock(%s, %s) AS locked", (LOCK_NAMESPACE, key)).fetchone()
        return bool(row and row["locked"])

    def unlock_item(self, connection: Connection, item_id: str) -> None:
        key = zlib.crc32(f"{self.schema}/{item_id}".encode()) - 2**31
        connection.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, key))

    def lock_file(self, connection: Connection, file_name: str) -> None:
        """Until the transaction ends: a file is written and referenced, or found unreferenced and removed,
        by one replica at a time (images of two items may share one content-addressed file)."""
        key = zlib.crc32(f"{self.schema}/{file_name}".encode()) - 2**31
        connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE + 1, key))

    def execute(self, connection: Connection, text: str, parameters: Any = ()) -> psycopg.Cursor[dict[str, Any]]:
        return connection.execute(self._sql(text), parameters)

    def query(self, text: str, parameters: Any = ()) -> list[dict[str, Any]]:
        with self.connection() as connection:
            return self.execute(connection, text, parameters).fetchall()

    # -- meta ---------------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM {schema}.meta WHERE key = %s", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, connection: Connection, key: str, value: str) -> None:
        self.execute(connection, "INSERT INTO {schema}.meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET "
                     "value = EXCLUDED.value", (key, value))

    # -- reads --------------------------------------------------------------------------------------------

    def get_item(self, item_id: str, connection: Connection | None = None) -> GalleryItem | None:
        text = f"SELECT {ITEM_COLUMNS} FROM {{schema}}.items WHERE item_id = %s"
        if connection is not None:
            row = self.execute(connection, text, (item_id,)).fetchone()
            return None if row is None else _item(row)
        rows = self.query(text, (item_id,))
        return _item(rows[0]) if rows else None

    def list_items(self, offset: int, limit: int, label: str | None) -> tuple[list[GalleryItem], int]:
        where, parameters = ("WHERE label = %s", [label]) if label is not None else ("", [])
        with self.connection() as connection:
            total = self.execute(connection, f"SELECT COUNT(*) AS n FROM {{schema}}.items {where}", parameters)
            count = total.fetchone()["n"]  # type: ignore[index]
            rows = self.execute(
                connection,
                f"SELECT {ITEM_COLUMNS} FROM {{schema}}.items {where} ORDER BY created_at, item_id LIMIT %s OFFSET %s",
                [*parameters, limit, offset],
            ).fetchall()
        return [_item(row) for row in rows], count

    def item_images(self, item_id: str) -> list[GalleryImage]:
        rows = self.query(f"SELECT {IMAGE_COLUMNS} FROM {{schema}}.images WHERE item_id = %s ORDER BY row_id",
                          (item_id,))
        return [_image(row) for row in rows]

    def get_image(self, image_id: str, connection: Connection | None = None) -> GalleryImage | None:
        text = f"SELECT {IMAGE_COLUMNS} FROM {{schema}}.images WHERE image_id = %s"
        rows = self.execute(connection, text, (image_id,)).fetchall() if connection else self.query(text, (image_id,))
        return _image(rows[0]) if rows else None

    def image_row(self, image_id: str, connection: Connection | None = None) -> dict[str, Any] | None:
        text = "SELECT row_id, item_id, file_name FROM {schema}.images WHERE image_id = %s"
        rows = self.execute(connection, text, (image_id,)).fetchall() if connection else self.query(text, (image_id,))
        return rows[0] if rows else None

    def find_image(self, connection: Connection, item_id: str, sha256: str) -> GalleryImage | None:
        row = self.execute(
            connection, f"SELECT {IMAGE_COLUMNS} FROM {{schema}}.images WHERE item_id = %s AND sha256 = %s",
            (item_id, sha256),
        ).fetchone()
        return None if row is None else _image(row)

    def images_with_labels(self) -> list[tuple[GalleryImage, str]]:
        columns = ", ".join("images." + column for column in IMAGE_COLUMNS.split(", "))
        rows = self.query(f"SELECT {columns}, items.label FROM {{schema}}.images JOIN {{schema}}.items "
                          "USING (item_id) ORDER BY images.row_id")
        return [(_image(row), row["label"]) for row in rows]

    def matches(self, row_ids: list[int]) -> dict[int, tuple[str, str, str]]:
        """row_id -> (image_id, item_id, label) of the rows that still exist (search results)."""
        rows = self.query("SELECT images.row_id, images.image_id, images.item_id, items.label FROM {schema}.images "
                          "JOIN {schema}.items USING (item_id) WHERE images.row_id = ANY(%s)", (row_ids,))
        return {row["row_id"]: (row["image_id"], row["item_id"], row["label"]) for row in rows}

    def counts(self) -> tuple[int, int]:
        rows = self.query("SELECT (SELECT COUNT(*) FROM {schema}.items) AS items, "
                          "(SELECT COUNT(*) FROM {schema}.images) AS images")
        return rows[0]["items"], rows[0]["images"]

    def file_in_use(self, connection: Connection, file_name: str) -> bool:
        text = "SELECT 1 FROM {schema}.images WHERE file_name = %s LIMIT 1"
        return self.execute(connection, text, (file_name,)).fetchone() is not None

    def embedding_spaces(self) -> tuple[set[str], set[int]]:
        models = {row["model_id"] for row in self.query("SELECT DISTINCT model_id FROM {schema}.images")}
        sizes = {row["size"] for row in self.query("SELECT DISTINCT length(embedding) AS size FROM {schema}.images")}
        return models, sizes

    def index_rows(self, connection: Connection, item_id: str) -> list[dict[str, Any]]:
        """The item's rows as Milvus holds them: row_id, image_id, item_id, embedding, the item's metadata."""
        return self.execute(
            connection,
            "SELECT images.row_id, images.image_id, images.item_id, images.embedding, items.metadata FROM "
            "{schema}.images JOIN {schema}.items USING (item_id) WHERE images.item_id = %s ORDER BY row_id",
            (item_id,),
        ).fetchall()

    def row_ids(self) -> NDArray[np.int64]:
        rows = self.query("SELECT row_id FROM {schema}.images")
        return np.fromiter((row["row_id"] for row in rows), dtype=np.int64, count=len(rows))

    def pending_items(self, older_than: float) -> list[str]:
        rows = self.query("SELECT item_id FROM {schema}.pending WHERE since <= %s ORDER BY since", (older_than,))
        return [row["item_id"] for row in rows]

    def stored_images(self, dim: int) -> Iterator[StoredImage]:
        columns = ", ".join("images." + column for column in IMAGE_COLUMNS.split(", "))
        with self.connection() as connection, connection.transaction():
            cursor = connection.cursor(name="stored_images")  # server-side: a large gallery is not read at once
            cursor.execute(self._sql(
                f"SELECT {columns}, images.file_name, images.embedding, items.label, items.metadata, "
                "items.created_at AS item_created_at, items.updated_at AS item_updated_at FROM {schema}.images "
                "JOIN {schema}.items USING (item_id) ORDER BY images.row_id"))
            for row in cursor:
                yield stored_image_from_row(row, _image(row), dim)

    def sampled_embeddings(self, count: int, dim: int) -> tuple[list[str], NDArray[np.float32]]:
        """Up to ``count`` evenly spaced images' item ids and embeddings: one pass over the row ids, then only the
        picked rows' embeddings."""
        row_ids = [row["row_id"] for row in self.query("SELECT row_id FROM {schema}.images ORDER BY row_id")]
        rows = self.query("SELECT item_id, embedding FROM {schema}.images WHERE row_id = ANY(%s) ORDER BY row_id",
                          (evenly_spaced(row_ids, count),))
        return sampled_from_rows(rows, dim)

    # -- writes (inside transaction()) --------------------------------------------------------------------

    def mark_pending(self, connection: Connection, item_id: str, now: float) -> None:
        self.execute(connection, "INSERT INTO {schema}.pending VALUES (%s, %s) ON CONFLICT (item_id) DO NOTHING",
                     (item_id, now))

    def clear_pending(self, connection: Connection, item_id: str) -> None:
        self.execute(connection, "DELETE FROM {schema}.pending WHERE item_id = %s", (item_id,))

    def insert_item(self, connection: Connection, item_id: str, label: str, metadata: str, now: float) -> None:
        self.execute(connection, "INSERT INTO {schema}.items VALUES (%s, %s, %s, %s, %s)",
                     (item_id, label, metadata, now, now))

    def update_item(self, connection: Connection, item_id: str, changes: dict[str, Any], now: float) -> None:
        assignments = "".join(f"{column} = %s, " for column in changes)  # column names are the caller's constants
        self.execute(connection, f"UPDATE {{schema}}.items SET {assignments}updated_at = %s WHERE item_id = %s",
                     [*changes.values(), now, item_id])

    def insert_image(self, connection: Connection, image: GalleryImage, file_name: str,
                     embedding: NDArray[np.float32]) -> int:
        row = self.execute(
            connection,
            "INSERT INTO {schema}.images (image_id, item_id, sha256, file_name, media_type, box, model_id, embedding,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING row_id",
            (image.image_id, image.item_id, image.sha256, file_name, image.media_type, box_text(image.box),
             image.model_id, embedding.astype(np.float32).tobytes(), image.created_at),
        ).fetchone()
        return int(row["row_id"])  # type: ignore[index]

    def delete_image(self, connection: Connection, image_id: str) -> None:
        self.execute(connection, "DELETE FROM {schema}.images WHERE image_id = %s", (image_id,))

    def delete_item(self, connection: Connection, item_id: str) -> list[dict[str, Any]]:
        """Deletes the item and its images; returns the deleted images' (row_id, file_name)."""
        rows = self.execute(connection, "SELECT row_id, file_name FROM {schema}.images WHERE item_id = %s",
                            (item_id,)).fetchall()
        self.execute(connection, "DELETE FROM {schema}.items WHERE item_id = %s", (item_id,))
        return rows


def drop_schema(dsn: str, schema: str) -> None:
    """Removes a gallery's schema (tests, ``migrate`` into a fresh cluster gallery after a failed attempt)."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
