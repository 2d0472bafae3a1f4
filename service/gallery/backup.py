"""Online backup and verified restore of a gallery directory, while a service may be writing to it.

A backup is a consistent copy: SQLite's online backup API copies one snapshot of the database (WAL mode lets
the service go on writing), then every image file that snapshot refers to. Files are content-addressed and
never rewritten, so a file that exists is the right one; one deleted after the snapshot makes the copy start
again. The HNSW snapshot is not copied: the index is rebuilt from the database when the gallery opens.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

from service.errors import GalleryError
from service.gallery.files import file_sha256, sha256_hex
from service.gallery.opening import DATABASE_FILE, IMAGES_DIRECTORY, GalleryLock

BACKUP_FILE = "backup.json"
ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class BackupSummary:
    items: int
    images: int
    files: int
    database_sha256: str
    created_at: float


def backup_gallery(gallery_dir: Path, out_dir: Path) -> BackupSummary:
    """Copy the gallery in ``gallery_dir`` to the new directory ``out_dir``."""
    database = gallery_dir / DATABASE_FILE
    if not database.is_file():
        raise GalleryError(f"no gallery in {gallery_dir}")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise GalleryError(f"{out_dir} is not empty")
    for _ in range(ATTEMPTS):
        staging = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / IMAGES_DIRECTORY).mkdir(parents=True)
        _snapshot_database(database, staging / DATABASE_FILE)
        if _copy_files(gallery_dir / IMAGES_DIRECTORY, staging):
            summary = _summary(staging)
            (staging / BACKUP_FILE).write_text(json.dumps(asdict(summary), indent=2) + "\n", encoding="utf-8")
            out_dir.mkdir(parents=True, exist_ok=True)
            out_dir.rmdir()
            os.replace(staging, out_dir)
            return summary
    raise GalleryError(f"images kept disappearing while {gallery_dir} was copied ({ATTEMPTS} attempts)")


def restore_gallery(backup_dir: Path, gallery_dir: Path) -> BackupSummary:
    """Verify the backup in ``backup_dir``, then install it as the new gallery ``gallery_dir``."""
    expected = verify_backup(backup_dir)
    if (gallery_dir / DATABASE_FILE).exists():
        raise GalleryError(f"{gallery_dir} already holds a gallery; restore into a new directory")
    gallery_dir.mkdir(parents=True, exist_ok=True)
    lock = GalleryLock.acquire(gallery_dir)
    try:
        staging = gallery_dir / ".restoring"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(backup_dir / IMAGES_DIRECTORY, staging / IMAGES_DIRECTORY)
        shutil.copyfile(backup_dir / DATABASE_FILE, staging / DATABASE_FILE)
        os.replace(staging / IMAGES_DIRECTORY, gallery_dir / IMAGES_DIRECTORY)
        os.replace(staging / DATABASE_FILE, gallery_dir / DATABASE_FILE)  # last: the gallery exists from here
        staging.rmdir()
    finally:
        lock.release()
    return expected


def verify_backup(backup_dir: Path) -> BackupSummary:
    """The database is intact and hashes as recorded, every image file is there with its recorded sha256."""
    try:
        recorded = BackupSummary(**json.loads((backup_dir / BACKUP_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as error:
        raise GalleryError(f"{backup_dir} is not a gallery backup ({BACKUP_FILE} unreadable)") from error
    if file_sha256(backup_dir / DATABASE_FILE) != recorded.database_sha256:
        raise GalleryError(f"{backup_dir / DATABASE_FILE} does not match the backup's checksum")
    with _read_only(backup_dir / DATABASE_FILE) as connection:
        if connection.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise GalleryError(f"{backup_dir / DATABASE_FILE} fails SQLite's integrity check")
        files = connection.execute("SELECT DISTINCT file_name, sha256 FROM images").fetchall()
    for file_name, sha256 in files:
        path = backup_dir / IMAGES_DIRECTORY / file_name
        if not path.is_file() or sha256_hex(path.read_bytes()) != sha256:
            raise GalleryError(f"the image file {file_name} of the backup is missing or damaged")
    if _summary(backup_dir, created_at=recorded.created_at) != recorded:
        raise GalleryError(f"{backup_dir} does not hold the counts its {BACKUP_FILE} records")
    return recorded


def _snapshot_database(source: Path, target: Path) -> None:
    with _read_only(source) as connection, closing(sqlite3.connect(target)) as copy:
        connection.backup(copy)
        # A self-contained file: the copy's journal goes back to DELETE mode, so no -wal file belongs to it.
        copy.execute("PRAGMA journal_mode=DELETE")


def _copy_files(images_dir: Path, staging: Path) -> bool:
    """Hard links where the file system allows (instant, no extra space), copies elsewhere."""
    with _read_only(staging / DATABASE_FILE) as connection:
        names = [row[0] for row in connection.execute("SELECT DISTINCT file_name FROM images")]
    for name in names:
        source, target = images_dir / name, staging / IMAGES_DIRECTORY / name
        try:
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        except FileNotFoundError:
            return False
    return True


def _summary(directory: Path, created_at: float | None = None) -> BackupSummary:
    with _read_only(directory / DATABASE_FILE) as connection:
        items = connection.execute("SELECT count(*) FROM items").fetchone()[0]
        images = connection.execute("SELECT count(*) FROM images").fetchone()[0]
        files = connection.execute("SELECT count(DISTINCT file_name) FROM images").fetchone()[0]
    return BackupSummary(items=items, images=images, files=files,
                         database_sha256=file_sha256(directory / DATABASE_FILE),
                         created_at=time.time() if created_at is None else created_at)


def _read_only(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))

