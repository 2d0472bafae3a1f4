"""Safe extraction of downloaded tar and zip archives.

Every member is checked before anything is written: no absolute paths, no ``..`` components, no
links or device files (a link could point out of the target even when its own name is harmless), and
a cap on the total uncompressed size. Files are written by this module, so the archive's owners and
permission bits never reach the disk.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

MAX_EXTRACTED_BYTES = 1 << 30
_COPY_CHUNK = 1 << 20


class UnsafeArchiveError(ValueError):
    """The archive is malformed or would write outside its target; nothing was extracted."""


@dataclass(frozen=True)
class _Member:
    name: str
    is_dir: bool
    size: int
    open: Callable[[], IO[bytes] | None]


def safe_relative_path(name: str) -> PurePosixPath:
    """The member's path inside the target, or :class:`UnsafeArchiveError` when it could leave it."""
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"archive member {name!r} points outside the target ('..')")
    parts = [part for part in path.parts if part not in ("", ".")]
    if not parts:
        raise UnsafeArchiveError(f"archive member {name!r} has an empty path")
    return PurePosixPath(*parts)


def _tar_members(archive: tarfile.TarFile) -> list[_Member]:
    members = []
    for info in archive.getmembers():
        if info.issym() or info.islnk():
            raise UnsafeArchiveError(f"archive member {info.name!r} is a link to {info.linkname!r}; links are refused")
        if not (info.isfile() or info.isdir()):
            raise UnsafeArchiveError(f"archive member {info.name!r} is not a regular file or directory")
        size = info.size if info.isfile() else 0
        members.append(_Member(info.name, info.isdir(), size, partial(archive.extractfile, info)))
    return members


def _zip_members(archive: zipfile.ZipFile) -> list[_Member]:
    members = []
    for info in archive.infolist():
        # Unix zips keep st_mode in the high bits; many writers set permissions without a file type
        file_type = stat.S_IFMT(info.external_attr >> 16)
        if file_type == stat.S_IFLNK:
            raise UnsafeArchiveError(f"archive member {info.filename!r} is a link; links are refused")
        if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(f"archive member {info.filename!r} is not a regular file or directory")
        members.append(_Member(info.filename, info.is_dir(), info.file_size, partial(archive.open, info)))
    return members


@contextmanager
def _open_archive(path: Path) -> Iterator[list[_Member]]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zip_archive:
            yield _zip_members(zip_archive)
        return
    try:
        tar_archive = tarfile.open(path, "r:*")
    except tarfile.TarError as error:
        raise UnsafeArchiveError(f"{path.name} is neither a tar nor a zip archive: {error}") from error
    with tar_archive:
        yield _tar_members(tar_archive)


def _copy_capped(source: IO[bytes], target: Path, budget: int, name: str) -> int:
    """Copy at most ``budget`` bytes; members that are larger than they declared still hit the cap."""
    written = 0
    with target.open("wb") as output:
        while chunk := source.read(_COPY_CHUNK):
            written += len(chunk)
            if written > budget:
                raise UnsafeArchiveError(f"archive member {name!r} exceeds the size limit while extracting")
            output.write(chunk)
    return written


def extract_archive(archive_path: Path, target: Path, max_bytes: int = MAX_EXTRACTED_BYTES) -> list[PurePosixPath]:
    """Extract into the empty or new directory ``target``; returns the relative paths of the files written.

    On :class:`UnsafeArchiveError` the caller must discard ``target``: a member that lies about its
    size is only caught while it is written.
    """
    target.mkdir(parents=True, exist_ok=True)
    try:
        with _open_archive(archive_path) as members:
            paths = [safe_relative_path(member.name) for member in members]
            declared = sum(member.size for member in members)
            if declared > max_bytes:
                raise UnsafeArchiveError(f"archive would extract {declared} bytes, over the limit of {max_bytes}")
            written_files: list[PurePosixPath] = []
            budget = max_bytes
            for member, relative in zip(members, paths, strict=True):
                destination = target.joinpath(*relative.parts)
                if member.is_dir:
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                stream = member.open()
                if stream is None:
                    raise UnsafeArchiveError(f"archive member {member.name!r} has no data")
                with stream:
                    budget -= _copy_capped(stream, destination, budget, member.name)
                written_files.append(relative)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
        raise UnsafeArchiveError(f"{archive_path.name} is damaged: {error}") from error
    return written_files
