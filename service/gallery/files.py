"""Content-addressed image files: ``images/<sha256><ext>``, written so that a crash never leaves a torn file."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/x-ms-bmp": ".bmp",
    "image/gif": ".gif",
    "image/tiff": ".tif",
}
UNKNOWN_EXTENSION = ".bin"
TEMPORARY_SUFFIX = ".tmp"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """The file's sha256, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_name_for(sha256: str, media_type: str) -> str:
    return sha256 + EXTENSIONS.get(media_type, UNKNOWN_EXTENSION)


def fsync_directory(directory: Path) -> None:
    """Makes a rename or unlink inside ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class ImageFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, file_name: str) -> Path:
        return self.directory / file_name

    def write(self, file_name: str, data: bytes) -> bool:
        """Stores ``data`` durably; returns False when an identical file was already there."""
        target = self.path(file_name)
        if target.is_file() and target.stat().st_size == len(data):
            return False
        temporary = target.with_name(f"{file_name}.{os.getpid()}{TEMPORARY_SUFFIX}")
        try:
            with open(temporary, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        fsync_directory(self.directory)
        return True

    def remove(self, file_name: str) -> None:
        """Best effort: a file left behind is only disk space, swept at the next start."""
        try:
            self.path(file_name).unlink(missing_ok=True)
        except OSError as error:
            logger.warning("could not remove image file %s: %s", file_name, error)

    def sweep(self, referenced: set[str]) -> int:
        """Removes temporary files and files no stored image refers to (left by a crash); returns how many."""
        removed = 0
        for path in self.directory.iterdir():
            if path.is_file() and path.name not in referenced:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
        if removed:
            fsync_directory(self.directory)
            logger.info("removed %d unreferenced file(s) from %s", removed, self.directory)
        return removed
