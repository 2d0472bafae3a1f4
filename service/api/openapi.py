"""The OpenAPI document as clients should read it.

Multipart forms cannot carry a JSON null: an optional form field is one a client leaves out. FastAPI writes
``anyOf: [X, null]`` for them, which tells a generated client (or a fuzzer) to send the text ``null``, which
no field accepts. Here such a property becomes plain ``X``; leaving it out is still allowed (not required).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_NULL = {"type": "null"}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for component in _multipart_components(schema):
                for name, field in component.get("properties", {}).items():
                    component["properties"][name] = _without_null(field)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _multipart_components(schema: dict[str, Any]) -> list[dict[str, Any]]:
    components = schema.get("components", {}).get("schemas", {})
    found = []
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            content = operation.get("requestBody", {}).get("content", {})
            reference = content.get("multipart/form-data", {}).get("schema", {}).get("$ref", "")
            if reference.startswith("#/components/schemas/"):
                found.append(components[reference.rsplit("/", 1)[1]])
    return found


def _without_null(field: dict[str, Any]) -> dict[str, Any]:
    options = field.get("anyOf")
    if not options or _NULL not in options or len(options) != 2:
        return field
    rest = {key: value for key, value in field.items() if key not in ("anyOf", "default")}
    return {**next(option for option in options if option != _NULL), **rest}
