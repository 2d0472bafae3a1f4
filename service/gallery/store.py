"""The SQLite store, source of truth of the gallery (WAL, ``synchronous=FULL``: a commit is on disk).

One connection writes (the caller serialises writers); each reading thread gets its own connection,
so reads run concurrently with each other and with a write (WAL snapshots).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.box import Box
from service.gallery.backend import StoredImage, evenly_spaced, sampled_from_rows, stored_image_from_row
from service.gallery.filter_sql import to_sqlite
from service.gallery.filters import MetadataFilter
from service.gallery.types import GalleryImage, GalleryItem

SQL_VARIABLES = 10_000  # under SQLite's limit of bound parameters in one statement (32,766 since 3.32)

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_label ON items (label, created_at, item_id);
CREATE INDEX IF NOT EXISTS items_by_time ON items (created_at, item_id);
-- row_id is the faiss id: AUTOINCREMENT so that an id is never reused after a delete.
CREATE TABLE IF NOT EXISTS images (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id TEXT NOT NULL UNIQUE,
    item_id TEXT NOT NULL REFERENCES items (item_id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    file_name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    box TEXT,
    model_id TEXT NOT NULL,
    embedding BLOB NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (item_id, sha256)
);
CREATE INDEX IF NOT EXISTS images_by_file ON images (file_name);
"""
ITEM_COLUMNS = (
    "item_id, label, metadata, created_at, updated_at, "
    "(SELECT COUNT(*) FROM images WHERE images.item_id = items.item_id) AS image_count"
)
IMAGE_COLUMNS = "image_id, item_id, box, model_id, sha256, media_type, created_at"


def _item(row: sqlite3.Row) -> GalleryItem:
    return GalleryItem(
        item_id=row["item_id"],
        label=row["label"],
        metadata=json.loads(row["metadata"]),
        image_count=row["image_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def stored_box(text: str | None) -> Box | None:
    """The ``box`` column: ``[x1, y1, x2, y2]`` as JSON, or NULL for the whole image."""
    return Box(*json.loads(text)) if text is not None else None


def _image(row: sqlite3.Row) -> GalleryImage:
    return GalleryImage(
        image_id=row["image_id"],
        item_id=row["item_id"],
        box=stored_box(row["box"]),
        model_id=row["model_id"],
        sha256=row["sha256"],
        media_type=row["media_type"],
        created_at=row["created_at"],
    )


class GalleryStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = self._connect()
        self._writer.executescript(SCHEMA)
        self._writer.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        # tells this gallery's index snapshot from one copied over from another gallery
        self._writer.execute("INSERT OR IGNORE INTO meta VALUES ('gallery_id', ?)", (uuid.uuid4().hex,))

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) in write().
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    def _reader(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    @property
    def writer(self) -> sqlite3.Connection:
        """The writing connection; reads through it see the writer's own state (the caller holds the write lock)."""
        return self._writer

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction on the writer connection; committed (and fsynced) on success, rolled back on error."""
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            yield self._writer
        except BaseException:
            self._writer.execute("ROLLBACK")
            raise
        self._writer.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    @staticmethod
    def set_meta(connection: sqlite3.Connection, key: str, value: str) -> None:
        connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- reads --------------------------------------------------------------------------------------------

    def get_item(self, item_id: str, connection: sqlite3.Connection | None = None) -> GalleryItem | None:
        connection = connection or self._reader()
        row = connection.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE item_id = ?", (item_id,)).fetchone()
        return None if row is None else _item(row)

    def list_items(self, offset: int, limit: int, label: str | None) -> tuple[list[GalleryItem], int]:
        connection = self._reader()
        where, parameters = ("WHERE label = ?", [label]) if label is not None else ("", [])
        total = connection.execute(f"SELECT COUNT(*) FROM items {where}", parameters).fetchone()[0]
        rows = connection.execute(
            f"SELECT {ITEM_COLUMNS} FROM items {where} ORDER BY created_at, item_id LIMIT ? OFFSET ?",
            [*parameters, limit, offset],
        ).fetchall()
        return [_item(row) for row in rows], total

    def item_images(self, item_id: str) -> list[GalleryImage]:
        rows = (
            self._reader()
            .execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE item_id = ? ORDER BY row_id", (item_id,))
            .fetchall()
        )
        return [_image(row) for row in rows]

    def get_image(self, image_id: str, connection: sqlite3.Connection | None = None) -> GalleryImage | None:
        connection = connection or self._reader()
        row = connection.execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE image_id = ?", (image_id,)).fetchone()
        return None if row is None else _image(row)

    def image_row(self, image_id: str, connection: sqlite3.Connection | None = None) -> sqlite3.Row | None:
        connection = connection or self._reader()
        return connection.execute(
            "SELECT row_id, item_id, file_name FROM images WHERE image_id = ?", (image_id,)
        ).fetchone()

    def find_image(self, connection: sqlite3.Connection, item_id: str, sha256: str) -> GalleryImage | None:
        row = connection.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images WHERE item_id = ? AND sha256 = ?", (item_id, sha256)
        ).fetchone()
        return None if row is None else _image(row)

    def iter_images(self) -> Iterator[tuple[GalleryImage, str, str]]:
        """Every image with its item's label and its file name, in enrolment order."""
        rows = self._reader().execute(
            f"SELECT {', '.join('images.' + c for c in IMAGE_COLUMNS.split(', '))}, items.label, images.file_name "
            "FROM images JOIN items USING (item_id) ORDER BY images.row_id"
        )
        for row in rows:
            yield _image(row), row["label"], row["file_name"]

    def counts(self) -> tuple[int, int]:
        connection = self._reader()
        items = connection.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        images = connection.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        return items, images

    def file_in_use(self, connection: sqlite3.Connection, file_name: str) -> bool:
        return (
            connection.execute("SELECT 1 FROM images WHERE file_name = ? LIMIT 1", (file_name,)).fetchone() is not None
        )

    def file_names(self) -> set[str]:
        return {row[0] for row in self._reader().execute("SELECT DISTINCT file_name FROM images")}

    def embedding_spaces(self) -> tuple[set[str], set[int]]:
        """The model ids and embedding sizes (bytes) present among stored images."""
        connection = self._reader()
        models = {row[0] for row in connection.execute("SELECT DISTINCT model_id FROM images")}
        sizes = {row[0] for row in connection.execute("SELECT DISTINCT length(embedding) FROM images")}
        return models, sizes

    @contextmanager
    def private_reader(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own for a short-lived thread (the background rebuild), closed afterwards."""
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            yield connection
        finally:
            connection.close()

    def index_rows(
        self, dim: int, connection: sqlite3.Connection | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.float32], list[tuple[str, str]]]:
        """All rows for the index: faiss ids, (N, dim) vectors and (image_id, item_id) per row."""
        connection = connection or self._reader()
        rows = connection.execute("SELECT row_id, image_id, item_id, embedding FROM images ORDER BY row_id").fetchall()
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(row[3] for row in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vectors, [(row[1], row[2]) for row in rows]

    def index_references(self) -> tuple[NDArray[np.int64], list[tuple[str, str]]]:
        """Faiss ids and (image_id, item_id) per row, without the vectors (a start from a snapshot)."""
        rows = self._reader().execute("SELECT row_id, image_id, item_id FROM images ORDER BY row_id").fetchall()
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        return ids, [(row[1], row[2]) for row in rows]

    def row_ids(self, connection: sqlite3.Connection) -> NDArray[np.int64]:
        rows = connection.execute("SELECT row_id FROM images").fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    def row_id_fingerprint(self, connection: sqlite3.Connection) -> tuple[int, int, int, int]:
        """(count, sum, min, max) of the row ids, computed inside SQLite."""
        row = connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(row_id), 0), COALESCE(MIN(row_id), 0), COALESCE(MAX(row_id), 0) FROM images"
        ).fetchone()
        return (row[0], row[1], row[2], row[3])

    def vectors_for(self, connection: sqlite3.Connection, row_ids: list[int], dim: int) -> NDArray[np.float32]:
        blobs = [
            connection.execute("SELECT embedding FROM images WHERE row_id = ?", (row_id,)).fetchone()[0]
            for row_id in row_ids
        ]
        return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(row_ids), dim)

    def rows_to_reembed(self, model_id: str, dim: int) -> list[sqlite3.Row]:
        return self._writer.execute(
            "SELECT row_id, file_name, box FROM images WHERE model_id != ? OR length(embedding) != ? ORDER BY row_id",
            (model_id, dim * 4),
        ).fetchall()

    def selected_row_ids(self, metadata_filter: MetadataFilter) -> NDArray[np.int64]:
        """The row ids of the images whose item's metadata passes the filter (a scan of the items)."""
        condition, parameters = to_sqlite(metadata_filter)
        rows = (
            self._reader()
            # the condition is evaluated once per item, not once per image
            .execute(f"SELECT row_id FROM images WHERE item_id IN (SELECT item_id FROM items WHERE {condition})",
                     parameters)
            .fetchall()
        )
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    def stored_images(self, dim: int) -> Iterator[StoredImage]:
        """Every image with its item and embedding, in enrolment order (``shitu gallery migrate``)."""
        rows = self._reader().execute(
            f"SELECT {', '.join('images.' + c for c in IMAGE_COLUMNS.split(', '))}, images.file_name, "
            "images.embedding, items.label, items.metadata, items.created_at AS item_created_at, "
            "items.updated_at AS item_updated_at FROM images JOIN items USING (item_id) ORDER BY images.row_id"
        )
        for row in rows:
            yield stored_image_from_row(row, _image(row), dim)

    def sampled_embeddings(self, count: int, dim: int) -> tuple[list[str], NDArray[np.float32]]:
        """Up to ``count`` evenly spaced images' item ids and embeddings: one pass over the row ids, then only the
        picked rows' embeddings."""
        reader = self._reader()
        row_ids = [row[0] for row in reader.execute("SELECT row_id FROM images ORDER BY row_id")]
        picked = evenly_spaced(row_ids, count)
        rows = []
        for start in range(0, len(picked), SQL_VARIABLES):  # SQLite caps the variables of one statement
            chunk = picked[start : start + SQL_VARIABLES]
            marks = ", ".join("?" * len(chunk))
            rows += reader.execute(
                f"SELECT item_id, embedding FROM images WHERE row_id IN ({marks}) ORDER BY row_id", chunk
            ).fetchall()
        return sampled_from_rows(rows, dim)

    def labels(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self._reader().execute("SELECT item_id, label FROM items")}

    # -- writes (inside write()) --------------------------------------------------------------------------

    @staticmethod
    def insert_item(connection: sqlite3.Connection, item_id: str, label: str, metadata: str, now: float) -> None:
        connection.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?)", (item_id, label, metadata, now, now))

    @staticmethod
    def update_item(connection: sqlite3.Connection, item_id: str, changes: dict[str, Any], now: float) -> None:
        assignments = "".join(f"{column} = ?, " for column in changes)
        connection.execute(
            f"UPDATE items SET {assignments}updated_at = ? WHERE item_id = ?", [*changes.values(), now, item_id]
        )

    @staticmethod
    def insert_image(
        connection: sqlite3.Connection,
        *,
        image_id: str,
        item_id: str,
        sha256: str,
        file_name: str,
        media_type: str,
        box: Box | None,
        model_id: str,
        embedding: NDArray[np.float32],
        now: float,
    ) -> int:
        cursor = connection.execute(
            "INSERT INTO images (image_id, item_id, sha256, file_name, media_type, box, model_id, embedding,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                image_id,
                item_id,
                sha256,
                file_name,
                media_type,
                None if box is None else json.dumps(list(box.as_tuple())),
                model_id,
                embedding.astype(np.float32).tobytes(),
                now,
            ),
        )
        return int(cursor.lastrowid)  # type: ignore[arg-type]

    @staticmethod
    def insert_stored_image(connection: sqlite3.Connection, record: StoredImage) -> int:
        """An image moved from another gallery, with its own id, time and embedding."""
        image = record.image
        cursor = connection.execute(
            "INSERT INTO images (image_id, item_id, sha256, file_name, media_type, box, model_id, embedding,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                image.image_id,
                image.item_id,
                image.sha256,
                record.file_name,
                image.media_type,
                None if image.box is None else json.dumps(list(image.box.as_tuple())),
                image.model_id,
                record.embedding.astype(np.float32).tobytes(),
                image.created_at,
            ),
        )
        return int(cursor.lastrowid)  # type: ignore[arg-type]

    @staticmethod
    def replace_embeddings(
        connection: sqlite3.Connection, row_ids: list[int], vectors: list[NDArray[np.float32]], model_id: str
    ) -> None:
        connection.executemany(
            "UPDATE images SET embedding = ?, model_id = ? WHERE row_id = ?",
            [(vector.tobytes(), model_id, row_id) for row_id, vector in zip(row_ids, vectors, strict=True)],
        )

    @staticmethod
    def delete_image(connection: sqlite3.Connection, image_id: str) -> None:
        connection.execute("DELETE FROM images WHERE image_id = ?", (image_id,))

    @staticmethod
    def delete_item(connection: sqlite3.Connection, item_id: str) -> list[sqlite3.Row]:
        """Deletes the item and its images; returns the deleted images' (row_id, file_name)."""
        rows = connection.execute("SELECT row_id, file_name FROM images WHERE item_id = ?", (item_id,)).fetchall()
        connection.execute("DELETE FROM items WHERE item_id = ?", (item_id,))
        return rows
