"""The ``SHITU_*`` environment variable names that ``service.config.Settings`` reads."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from service.config import Settings

PREFIX = "SHITU_"


def _names(model: type[BaseModel], path: tuple[str, ...]) -> Iterable[str]:
    for field_name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _names(annotation, (*path, field_name))
        else:
            yield PREFIX + "__".join((*path, field_name)).upper()


def setting_names() -> set[str]:
    """``SHITU_RUNTIME__DEVICE``, ``SHITU_MODELS__STORE``… one per leaf field of the settings tree."""
    return set(_names(Settings, ()))


def assert_real_settings(names: Iterable[str]) -> None:
    unknown = sorted(set(names) - setting_names())
    assert not unknown, f"not fields of service.config.Settings: {unknown}"
