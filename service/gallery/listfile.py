"""PaddleClas gallery list files: one ``relative/path<TAB>label`` line per image (UTF-8).

A line without a tab may separate path and label by spaces instead (PaddleClas's scenario lists do);
then neither may contain a space. Blank lines and ``#`` comments are skipped.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from service.errors import InvalidRequest
from service.gallery.validation import check_label

if TYPE_CHECKING:
    from service.gallery.gallery import Gallery

LIST_FILE = "gallery_list.txt"
IMAGES_DIRECTORY = "images"


@dataclass(frozen=True, slots=True)
class ListEntry:
    path: Path
    label: str
    line_number: int = field(default=0, compare=False)


def _decode(list_path: Path) -> str:
    try:
        raw = list_path.read_bytes()
    except OSError as error:
        raise InvalidRequest(f"cannot read list file {list_path}: {error}", file=str(list_path)) from error
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_number = raw.count(b"\n", 0, error.start) + 1
        raise InvalidRequest(
            f"{list_path}:{line_number}: not valid UTF-8", file=str(list_path), line=line_number
        ) from error


def _split(line: str) -> tuple[str, str] | None:
    if "\t" in line:
        path, _, label = line.partition("\t")
        if "\t" in label:
            return None
        return path.strip(), label.strip()
    columns = line.split()
    return (columns[0], columns[1]) if len(columns) == 2 else None


def read_list_file(path: Path, root: Path, *, allow_outside_root: bool = False) -> list[ListEntry]:
    """Parses the list and checks that every image file exists under ``root``; errors name the line.

    Lines end at ``\n`` only (``str.splitlines`` would also split at U+2028, U+0085…, which a label may not hold
    but a path may). A path that leads out of ``root`` (absolute, ``..``, a symlink) is refused unless
    ``allow_outside_root``: a list file must not make the importer read arbitrary files.
    """
    entries = []
    resolved_root = root.resolve()
    for line_number, line in enumerate(_decode(path).split("\n"), start=1):
        line = line.removesuffix("\r")
        text = line.strip()
        if not text or text.startswith("#"):
            continue

        def fail(reason: str, line_number: int = line_number) -> InvalidRequest:
            return InvalidRequest(f"{path}:{line_number}: {reason}", file=str(path), line=line_number)

        columns = _split(line)
        if columns is None or not columns[0] or not columns[1]:
            raise fail(f"expected 'path<TAB>label' (or 'path label' without other spaces), got {text!r}")
        image_path = root / columns[0]
        try:
            label = check_label(columns[1])
        except InvalidRequest as error:
            raise fail(error.message) from error
        if not allow_outside_root and not image_path.resolve().is_relative_to(resolved_root):
            raise fail(f"{columns[0]} is outside the root {root} (--allow-outside-root lifts this)")
        if not image_path.is_file():
            raise fail(f"image file not found: {image_path}")
        entries.append(ListEntry(image_path, label, line_number))
    return entries


def export_gallery(gallery: Gallery, out_dir: Path) -> Path:
    """Writes ``out_dir/images/<image_id><ext>`` copies and ``out_dir/gallery_list.txt``; returns the list path.

    Boxes, item ids and metadata are not part of the format: an import embeds the images again.
    """
    images_dir = out_dir / IMAGES_DIRECTORY
    images_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for image, label in gallery.images_with_labels():
        source = gallery.image_path(image.image_id)
        file_name = image.image_id + source.suffix
        shutil.copyfile(source, images_dir / file_name)
        lines.append(f"{IMAGES_DIRECTORY}/{file_name}\t{label}\n")
    list_path = out_dir / LIST_FILE
    list_path.write_text("".join(lines), encoding="utf-8")
    return list_path
