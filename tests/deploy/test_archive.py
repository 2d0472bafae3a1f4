from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from service.registry import UnsafeArchiveError, extract_archive
from service.registry.archive import safe_relative_path


def _zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return path


def _zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def test_zip_archive_extracts_its_files(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "model.zip", [("top/inference.json", b"{}"), ("top/inference.pdiparams", b"p")])

    written = extract_archive(archive, tmp_path / "out")

    assert written == [PurePosixPath("top/inference.json"), PurePosixPath("top/inference.pdiparams")]
    assert (tmp_path / "out" / "top" / "inference.pdiparams").read_bytes() == b"p"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (("top/../../evil", b"x"), "points outside the target"),
        (("/abs/evil", b"x"), "absolute path"),
        (("C:\\windows\\evil", b"x"), "absolute path"),
        (("top\\..\\..\\evil", b"x"), "points outside the target"),
        (_zip_symlink("top/link", "/etc/passwd"), "is a link"),
    ],
)
def test_unsafe_zip_member_is_refused_before_anything_is_written(
    tmp_path: Path, entry: tuple[str | zipfile.ZipInfo, bytes], message: str
) -> None:
    archive = _zip(tmp_path / "evil.zip", [("top/inference.pdiparams", b"p"), entry])

    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, tmp_path / "out")

    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_file_that_is_no_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.tar"
    path.write_bytes(b"<html>an error page from a proxy</html>")

    with pytest.raises(UnsafeArchiveError, match="neither a tar nor a zip archive"):
        extract_archive(path, tmp_path / "out")


@pytest.mark.parametrize(("name", "expected"), [("./a/b", "a/b"), ("a//b/./c", "a/b/c"), ("a\\b", "a/b")])
def test_harmless_names_are_normalised(name: str, expected: str) -> None:
    assert safe_relative_path(name) == PurePosixPath(expected)
