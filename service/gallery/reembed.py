"""Embedding a stored gallery again with a new embedder (``shitu gallery reembed``).

Runs on a closed gallery (it takes the directory lock). Each batch is committed on its own and keeps
its faiss ids, so an interrupted run is resumed by running it again: rows already carrying the new
``model_id`` are skipped. Until it completes, :meth:`Gallery.open` refuses the mixed gallery.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from service.box import Box
from service.config import GallerySettings
from service.errors import GalleryError, InvalidRequest
from service.gallery.files import ImageFiles
from service.gallery.opening import DATABASE_FILE, IMAGES_DIRECTORY, open_store
from service.gallery.snapshot import remove_snapshot
from service.gallery.store import stored_box
from service.gallery.validation import check_embedding

logger = logging.getLogger(__name__)

EmbedFunction = Callable[[list[tuple[bytes, Box | None]]], NDArray[np.float32]]
ProgressFunction = Callable[[int, int], None]


def reembed_gallery(
    settings: GallerySettings,
    *,
    embedding_dim: int,
    model_id: str,
    embed: EmbedFunction,
    batch_size: int = 32,
    progress: ProgressFunction | None = None,
) -> int:
    """Replaces the embedding of every image not embedded by ``model_id``; returns how many were redone.

    ``embed`` gets (original bytes, stored box) pairs and returns their (N, embedding_dim) L2-normalised
    float32 embeddings; ``progress(done, total)`` is called after each committed batch.
    """
    if not (settings.path / DATABASE_FILE).is_file():
        raise GalleryError(f"no gallery in {settings.path}")
    store, lock = open_store(settings.path)
    try:
        files = ImageFiles(settings.path / IMAGES_DIRECTORY)
        rows = store.rows_to_reembed(model_id, embedding_dim)
        if rows:
            remove_snapshot(settings.path)
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            vectors = _embed_batch(embed, files, batch, embedding_dim)
            with store.write() as connection:
                store.replace_embeddings(connection, [row["row_id"] for row in batch], vectors, model_id)
            if progress is not None:
                progress(start + len(batch), len(rows))
        with store.write() as connection:
            store.set_meta(connection, "embedding_dim", str(embedding_dim))
            store.set_meta(connection, "model_id", model_id)
    finally:
        store.close()
        lock.release()
    logger.info("re-embedded %d image(s) of %s with %s", len(rows), settings.path, model_id)
    return len(rows)


def _embed_batch(
    embed: EmbedFunction, files: ImageFiles, batch: list[sqlite3.Row], embedding_dim: int
) -> list[NDArray[np.float32]]:
    inputs = []
    for row in batch:
        path = files.path(row["file_name"])
        if not path.is_file():
            raise GalleryError(f"the stored image file {path} is missing: cannot embed it again")
        inputs.append((path.read_bytes(), stored_box(row["box"])))
    embeddings = embed(inputs)
    if not isinstance(embeddings, np.ndarray) or embeddings.shape != (len(batch), embedding_dim):
        shape = getattr(embeddings, "shape", None)
        raise GalleryError(f"the embedder returned shape {shape} for {len(batch)} images, expected {embedding_dim}")
    try:
        return [check_embedding(vector, embedding_dim) for vector in embeddings]
    except InvalidRequest as error:
        raise GalleryError(f"the embedder returned an unusable embedding: {error.message}") from error
