"""PaddleClas label lists: ``relative/path.jpg<space or TAB>class_id[<space or TAB>unique_id]`` per line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class LabelListError(ValueError):
    """A label list cannot be read or has a malformed line."""


@dataclass(frozen=True, slots=True)
class LabelEntry:
    path: Path
    label: str
    unique_id: str | None = None


def read_label_list(list_file: Path, root: Path | None = None) -> list[LabelEntry]:
    """Read a list; paths are relative to ``root`` (default: the list's directory).

    A line with a TAB is split on TABs only, so paths and labels may contain spaces
    (the drink demo's lists use TABs); otherwise it is split on whitespace.
    """
    list_file = Path(list_file)
    root = Path(root) if root is not None else list_file.parent
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise LabelListError(f"cannot read the label list {list_file}: {error}") from error
    entries = [_parse_line(line, root, list_file, number) for number, line in enumerate(lines, start=1)]
    present = [entry for entry in entries if entry is not None]
    if not present:
        raise LabelListError(f"the label list {list_file} has no entries")
    return present


def _parse_line(line: str, root: Path, list_file: Path, number: int) -> LabelEntry | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    fields = [field.strip() for field in text.split("\t")] if "\t" in text else text.split()
    if len(fields) not in (2, 3) or not all(fields):
        raise LabelListError(
            f"{list_file}:{number}: expected 'path label [unique_id]' separated by a space or TAB, got {line!r}"
        )
    unique_id = fields[2] if len(fields) == 3 else None
    return LabelEntry(path=root / fields[0], label=fields[1], unique_id=unique_id)


def class_index(labels: list[str]) -> dict[str, int]:
    """Contiguous class ids in first-appearance order (the sampler's up-weighting ranges refer to this order)."""
    mapping: dict[str, int] = {}
    for label in labels:
        mapping.setdefault(label, len(mapping))
    return mapping
