from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import InvalidRequest
from service.gallery import Gallery, ListEntry, export_gallery, read_list_file

from .conftest import add, image_bytes, unit_vectors


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("a.jpg", "b.jpg", "sub/c d.png"):
        (tmp_path / "root" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "root" / name).write_bytes(b"x")
    return tmp_path / "root"


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_reads_tab_and_space_separated_lines(root: Path, tmp_path: Path) -> None:
    text = "\ufeff# drinks\na.jpg\t元气森林\r\n\n  \nsub/c d.png\t红牛 强化型\nb.jpg 脉动\n"

    entries = read_list_file(_write(tmp_path / "list.txt", text), root)

    assert entries == [
        ListEntry(root / "a.jpg", "元气森林"),
        ListEntry(root / "sub/c d.png", "红牛 强化型"),
        ListEntry(root / "b.jpg", "脉动"),
    ]
    assert [entry.line_number for entry in entries] == [2, 5, 6]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("a.jpg\tok\nb.jpg\n", 2, "expected 'path<TAB>label'"),
        ("a.jpg\tok\n\nsub/c d.png label\n", 3, "expected 'path<TAB>label'"),
        ("a.jpg\tx\ty\n", 1, "expected 'path<TAB>label'"),
        ("a.jpg\t\n", 1, "expected 'path<TAB>label'"),
        ("# c\nmissing.jpg\tlabel\n", 2, "not found"),
        ("a.jpg\t" + "x" * 201 + "\n", 1, "longer than 200"),
    ],
    ids=["no label", "space in path", "three columns", "empty label", "missing file", "long label"],
)
def test_malformed_lines_name_the_line(root: Path, tmp_path: Path, text: str, line: int, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason) as raised:
        read_list_file(_write(tmp_path / "list.txt", text), root)

    assert raised.value.details["line"] == line
    assert f"list.txt:{line}:" in raised.value.message


def test_invalid_utf8_names_the_line(root: Path, tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_bytes(b"a.jpg\tok\nb.jpg\t\xff\xfe\n")

    with pytest.raises(InvalidRequest, match="UTF-8") as raised:
        read_list_file(tmp_path / "list.txt", root)

    assert raised.value.details["line"] == 2


def test_missing_list_file_is_a_clear_error(root: Path) -> None:
    with pytest.raises(InvalidRequest, match="cannot read list file"):
        read_list_file(root / "nope.txt", root)


def test_export_then_read_round_trips_labels_and_bytes(gallery: Gallery, tmp_path: Path) -> None:
    vectors = unit_vectors(4, seed=60)
    labels = ["元气森林", "红牛 强化型", "元气森林", "脉动"]
    for number, label in enumerate(labels):
        add(gallery, label, vectors[number], number, item_id=f"item-{labels.index(label)}")

    list_path = export_gallery(gallery, tmp_path / "export")
    entries = read_list_file(list_path, list_path.parent)

    assert list_path == tmp_path / "export" / "gallery_list.txt"
    assert [entry.label for entry in entries] == labels
    assert [entry.path.read_bytes() for entry in entries] == [image_bytes(number) for number in range(4)]
    assert all("\t" in line for line in list_path.read_text(encoding="utf-8").splitlines())
