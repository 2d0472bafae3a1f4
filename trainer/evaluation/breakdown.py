"""Recall per group of queries: per asset family, per package kind, occluded crops against clear ones.

The groups come from the dataset itself: ``classes.json`` names each class's ``source`` (its family) and, for
package datasets, its ``package`` kind; ``recognition/crop_attributes.json`` gives the share of each crop's
product that neighbours or bars hide. A group a dataset does not describe is left out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.gallery import ListEntry

CROP_ATTRIBUTES = "crop_attributes.json"  # trainer.synth.dataset.CROP_ATTRIBUTES
# A crop counts as occluded from this hidden share of its product on: a few pixels of a bar's end are not.
OCCLUDED_FROM = 0.05

Groups = dict[str, str]  # group name (family, package, occlusion) → the value of one query


@dataclass(frozen=True)
class GroupRecall:
    queries: int
    recall1: float


def class_groups(data_dir: Path) -> dict[str, Groups]:
    """Class id (as the lists spell it) → its family and, in package datasets, its package kind."""
    path = Path(data_dir) / "classes.json"
    if not path.is_file():
        return {}
    groups: dict[str, Groups] = {}
    for entry in json.loads(path.read_text(encoding="utf-8")):
        own = {"family": str(entry["source"])} if "source" in entry else {}
        if "package" in entry:
            own["package"] = str(entry["package"])
        groups[str(entry["id"])] = own
    return groups


def crop_groups(data_dir: Path, entries: Sequence[ListEntry], classes: dict[str, Groups]) -> list[Groups]:
    """Per query crop: its class's groups and, where the dataset records it, ``occlusion`` (clear | occluded)."""
    path = Path(data_dir) / "recognition" / CROP_ATTRIBUTES
    hidden: dict[Path, float] = {}
    if path.is_file():
        folder = path.parent
        for name, attributes in json.loads(path.read_text(encoding="utf-8")).items():
            if attributes.get("occluded") is not None:
                hidden[Path(os.path.normpath(folder / name))] = float(attributes["occluded"])
    groups = []
    for entry in entries:
        own = dict(classes.get(entry.label, {}))
        share = hidden.get(Path(os.path.normpath(entry.path)))
        if share is not None:
            own["occlusion"] = "occluded" if share >= OCCLUDED_FROM else "clear"
        groups.append(own)
    return groups


def recall_by_group(groups: Sequence[Groups], correct: Sequence[bool]) -> dict[str, dict[str, GroupRecall]]:
    """{group name: {value: recall@1 of the queries with that value}}, values sorted."""
    tallies: dict[str, dict[str, list[int]]] = {}
    for own, hit in zip(groups, correct, strict=True):
        for name, value in own.items():
            tally = tallies.setdefault(name, {}).setdefault(value, [0, 0])
            tally[0] += 1
            tally[1] += int(hit)
    return {name: {value: GroupRecall(count, hits / count) for value, (count, hits) in sorted(values.items())}
            for name, values in sorted(tallies.items())}
