"""A metadata filter as a Milvus boolean expression over the collection's ``metadata`` JSON field.

The field holds :func:`service.gallery.filters.filterable`'s typed keys (``s:brand``, ``n:price``, ``b:fresh``):
a key has one kind, so a comparison never meets a value of another kind, and ``exists`` keeps ``ne`` from
matching items without the key, as :func:`service.gallery.filters.matches` defines it.
"""

from __future__ import annotations

from service.gallery.filters import Comparison, Conjunction, MetadataFilter

MILVUS_OPERATORS = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
FIELD = "metadata"


def to_milvus(node: MetadataFilter) -> str:
    if isinstance(node, Comparison):
        return _comparison(node)
    joiner = " and " if isinstance(node, Conjunction) else " or "
    return "(" + joiner.join(to_milvus(part) for part in node.parts) + ")"


def _comparison(node: Comparison) -> str:
    path = f'{FIELD}["{node.kind[0]}:{node.key}"]'  # keys are [A-Za-z0-9_-]: nothing to escape
    condition = f"{path} {MILVUS_OPERATORS[node.operator]} {literal(node.value)}"
    return f"(exists {path} and {condition})" if node.operator == "ne" else f"({condition})"


def literal(value: str | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    # filter strings hold no control characters (parse_filter refuses them): only the quote and backslash to escape
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def string_list(values: list[str]) -> str:
    """``["a", "b"]`` for ``field in [...]`` (item ids: [A-Za-z0-9._:-])."""
    return "[" + ", ".join(literal(value) for value in values) + "]"
