"""HNSW graph snapshots, so that a large gallery starts without building its graph again.

The store stays the source of truth: at start a snapshot is reconciled with it (rows it lacks are
added, rows deleted since it was written are masked) and then checked like a fresh build. A snapshot
of another gallery, model or graph shape, or one that cannot be read, is ignored and rebuilt.
The flat index needs none: copying the stored vectors into it is as fast as reading a file.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.gallery.files import fsync_directory
from service.gallery.index import IndexParameters, VectorIndex

logger = logging.getLogger(__name__)

SNAPSHOT_FILE = "index.hnsw"
FORMAT_VERSION = 1
LENGTH = struct.Struct("<Q")


def remove_snapshot(directory: Path) -> None:
    """Called before embeddings change in place (reembed): the graph would hold the old vectors."""
    for path in directory.glob(f"{SNAPSHOT_FILE}*"):
        path.unlink(missing_ok=True)
    fsync_directory(directory)


class Snapshots:
    def __init__(self, directory: Path, parameters: IndexParameters, gallery_id: str, model_id: str) -> None:
        self.path = directory / SNAPSHOT_FILE
        self.parameters = parameters
        self.header: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "gallery_id": gallery_id,
            "model_id": model_id,
            "dim": parameters.dim,
            "hnsw_m": parameters.hnsw_m,
        }

    def read(self) -> VectorIndex | None:
        for leftover in self.path.parent.glob(f"{SNAPSHOT_FILE}.*.tmp"):
            leftover.unlink(missing_ok=True)
        if not self.path.is_file():
            return None
        try:
            with open(self.path, "rb") as stream:
                (length,) = LENGTH.unpack(stream.read(LENGTH.size))
                header = json.loads(stream.read(length))
                if header != self.header:
                    logger.info("ignoring the index snapshot %s: written for %s", self.path, header)
                    return None
                return VectorIndex.read_from(self.parameters, stream.read)
        except (OSError, ValueError, RuntimeError, struct.error) as error:
            logger.warning("ignoring the unreadable index snapshot %s: %s", self.path, error)
            return None

    def write(self, index: VectorIndex) -> None:
        """Atomic replace; a failure only costs a slower next start."""
        header = json.dumps(self.header).encode("utf-8")
        temporary = self.path.with_name(f"{SNAPSHOT_FILE}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as stream:
                stream.write(LENGTH.pack(len(header)))
                stream.write(header)
                index.write_to(stream.write)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
            fsync_directory(self.path.parent)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            logger.warning("could not write the index snapshot %s: %s", self.path, error)


def reconcile(index: VectorIndex, ids: NDArray[np.int64],
              vectors_of: Callable[[NDArray[np.int64]], NDArray[np.float32]]) -> int:
    """Brings a snapshot up to the store: adds the rows it lacks (their vectors read by ``vectors_of``, so a start
    reads only those from the store), masks the rows deleted since. Returns how many rows changed."""
    indexed = index.live_ids()
    missing = ids[~np.isin(ids, indexed)]
    deleted = np.setdiff1d(indexed, ids).tolist()
    index.add(missing, vectors_of(missing))
    index.remove(deleted)
    logger.info("index snapshot: %d row(s) added, %d masked", len(missing), len(deleted))
    return len(missing) + len(deleted)
