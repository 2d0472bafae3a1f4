"""Test archives shaped like the official model tars, and a snapshot of a directory tree."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

OFFICIAL_TOP_DIR = "general_PPLCNetV2_base_pretrained_v1.0"


def add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def official_like_tar(params_size: int = 256 * 1024, extra: dict[str, bytes] | None = None) -> bytes:
    """One top folder with the three model files, like the official inference tars.

    The parameters are incompressible bytes, so a response cut short really leaves a partial file.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directory = tarfile.TarInfo(OFFICIAL_TOP_DIR)
        directory.type = tarfile.DIRTYPE
        archive.addfile(directory)
        add_file(archive, f"{OFFICIAL_TOP_DIR}/inference.pdmodel", b"graph bytes")
        add_file(archive, f"{OFFICIAL_TOP_DIR}/inference.pdiparams", random.Random(params_size).randbytes(params_size))
        add_file(archive, f"{OFFICIAL_TOP_DIR}/inference.pdiparams.info", b"info")
        for name, data in (extra or {}).items():
            add_file(archive, name, data)
    return buffer.getvalue()


def tar_with(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                add_file(archive, *member)
    return buffer.getvalue()


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every path under ``directory`` with its content, to prove that a failed pull left it unchanged."""
    return {
        str(path.relative_to(directory)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(directory.rglob("*"))
    }
