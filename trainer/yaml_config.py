"""The one YAML configuration base of ``shitu train rec`` and ``shitu train det``.

- A config file is a YAML mapping validated by a pydantic model whose sections derive from
  :class:`ConfigSection`: an unknown or misspelt key is an error, not a silent default.
- ``--set section.key=value`` overrides (the value read as YAML: ``null``, numbers, lists) apply to the
  document before validation; missing sections are created. :func:`parse_overrides` is the one parser.
- Relative paths, in the file or in an override, are relative to the working directory, as in PaddleClas
  and PaddleDetection, whose commands are run from the repository root too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict

Config = TypeVar("Config", bound=BaseModel)


class ConfigSection(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["train.epochs=3", "data.single_class=null"]`` → ``{"train.epochs": 3, "data.single_class": None}``."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def load_yaml_config(path: Path, schema: type[Config],
                     overrides: Mapping[str, Any] | Sequence[str] | None = None) -> Config:
    """Read ``path``, apply ``overrides`` (dotted keys, or ``--set`` strings), validate against ``schema``."""
    path = Path(path)
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(document, dict):
        raise ValueError(f"{path}: the config must be a mapping")
    if overrides is not None and not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    for dotted, value in (overrides or {}).items():
        _set(document, dotted, value)
    return schema.model_validate(document)


def _set(document: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    section = document
    for part in parents:
        child = section.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"override {dotted}: {part} is not a section")
        section = child
    section[leaf] = value
