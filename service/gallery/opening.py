"""Start-up steps of :meth:`service.gallery.Gallery.open`: directory lock, embedding-space check, index rebuild."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from service.config import GallerySettings, IndexKind
from service.errors import GalleryError
from service.gallery.files import ImageFiles
from service.gallery.index import IndexParameters, VectorIndex
from service.gallery.search import SearchIndex
from service.gallery.snapshot import Snapshots, reconcile
from service.gallery.store import GalleryStore

LOCK_FILE = "gallery.lock"
DATABASE_FILE = "gallery.db"
IMAGES_DIRECTORY = "images"
FLOAT32_BYTES = 4


@dataclass
class GalleryLock:
    """An exclusive ``flock`` on the gallery directory: two processes with their own in-memory index would
    diverge. The kernel drops it when the process dies, so a crash never leaves a stale lock."""

    descriptor: int | None

    @classmethod
    def acquire(cls, directory: Path) -> GalleryLock:
        descriptor = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            os.close(descriptor)
            raise GalleryError(f"the gallery {directory} is open in another process") from error
        return cls(descriptor)

    def release(self) -> None:
        if self.descriptor is not None:
            fcntl.flock(self.descriptor, fcntl.LOCK_UN)
            os.close(self.descriptor)
            self.descriptor = None


def check_embedding_space(store: GalleryStore, directory: Path, embedding_dim: int, model_id: str) -> None:
    """Refuses to mix embeddings of two models (or sizes) in one index; records the space of an empty gallery."""
    models, sizes = store.embedding_spaces()
    if sizes and sizes != {embedding_dim * FLOAT32_BYTES}:
        stored = sorted(size // FLOAT32_BYTES for size in sizes)
        raise GalleryError(
            f"the gallery {directory} holds embeddings of size {stored}, the embedder gives {embedding_dim}; "
            "run `shitu gallery reembed` or use another gallery path",
            stored_dims=stored,
            embedding_dim=embedding_dim,
        )
    if models and models != {model_id}:
        raise GalleryError(
            f"the gallery {directory} was embedded by {sorted(models)}, the loaded embedder is {model_id!r}; "
            "run `shitu gallery reembed` to embed the stored images again with the new model",
            stored_models=sorted(models),
            model_id=model_id,
        )
    with store.write() as connection:
        store.set_meta(connection, "embedding_dim", str(embedding_dim))
        store.set_meta(connection, "model_id", model_id)


def build_search_index(store: GalleryStore, parameters: IndexParameters, snapshots: Snapshots | None) -> SearchIndex:
    """The index of every stored row: from the HNSW snapshot reconciled with the store, else built afresh."""
    hnsw = parameters.kind is IndexKind.hnsw
    index = snapshots.read() if snapshots is not None and hnsw else None
    changes = 0
    if index is not None:
        ids, references = store.index_references()
        changes = reconcile(index, ids, lambda missing: store.vectors_for(store.writer, missing.tolist(),
                                                                          parameters.dim))
    else:
        ids, vectors, references = store.index_rows(parameters.dim)
        index = VectorIndex.build(parameters, ids, vectors)
        del vectors  # a million rows are 2 GB: not held twice while the maps below are built
        if snapshots is not None and hnsw and len(ids):
            snapshots.write(index)
    rows = dict(zip(ids.tolist(), references, strict=True))
    return SearchIndex(index, rows, store.labels(), mutations=changes)


def open_store(directory: Path) -> tuple[GalleryStore, GalleryLock]:
    """Takes the directory lock and opens (or creates) the database."""
    lock = GalleryLock.acquire(directory)
    try:
        return GalleryStore(directory / DATABASE_FILE), lock
    except sqlite3.DatabaseError as error:
        lock.release()
        raise GalleryError(f"cannot open the gallery database in {directory}: {error}") from error


@dataclass
class GalleryParts:
    store: GalleryStore
    files: ImageFiles
    search_index: SearchIndex
    lock: GalleryLock
    snapshots: Snapshots | None


def open_parts(settings: GallerySettings, embedding_dim: int, model_id: str) -> GalleryParts:
    """Locks the directory, opens (or creates) the store, sweeps crash leftovers and loads the index."""
    if not isinstance(embedding_dim, int) or embedding_dim < 1:
        raise GalleryError(f"embedding_dim must be a positive integer, got {embedding_dim!r}")
    if not isinstance(model_id, str) or not model_id:
        raise GalleryError("model_id must be a non-empty string")
    settings.path.mkdir(parents=True, exist_ok=True)
    store, lock = open_store(settings.path)
    try:
        check_embedding_space(store, settings.path, embedding_dim, model_id)
        files = ImageFiles(settings.path / IMAGES_DIRECTORY)
        files.sweep(store.file_names())
        parameters = IndexParameters.from_settings(settings, embedding_dim, images=store.counts()[1])
        snapshots = None
        if settings.index is not IndexKind.flat:  # auto may switch to HNSW while running: its graph is saved too
            snapshots = Snapshots(settings.path, parameters.with_kind(IndexKind.hnsw),
                                  store.get_meta("gallery_id") or "", model_id)
        search_index = build_search_index(store, parameters, snapshots)
    except BaseException:
        store.close()
        lock.release()
        raise
    return GalleryParts(store, files, search_index, lock, snapshots)


def read_embedding_space(directory: Path) -> tuple[int, str]:
    """The (embedding_dim, model_id) a gallery was last opened with."""
    if not (directory / DATABASE_FILE).is_file():
        raise GalleryError(f"no gallery in {directory}")
    store, lock = open_store(directory)
    try:
        embedding_dim, model_id = store.get_meta("embedding_dim"), store.get_meta("model_id")
    finally:
        store.close()
        lock.release()
    if embedding_dim is None or model_id is None:
        raise GalleryError(f"the gallery in {directory} was never opened with an embedder")
    return int(embedding_dim), model_id
