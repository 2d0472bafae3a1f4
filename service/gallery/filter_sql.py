"""A metadata filter as an SQLite condition on ``items.metadata`` (the embedded back end's translation).

``json_type`` pins each comparison to the operand's kind, as :func:`service.gallery.filters.matches` does:
SQLite would otherwise order every integer before every string and read JSON booleans as 1 and 0.
"""

from __future__ import annotations

from typing import Any

from service.gallery.filters import Comparison, Conjunction, MetadataFilter

SQL_OPERATORS = {"eq": "=", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
JSON_TYPES = {"string": "('text')", "number": "('integer', 'real')"}


def to_sqlite(node: MetadataFilter) -> tuple[str, list[Any]]:
    """``(condition, parameters)`` over a row with the item's ``metadata`` column."""
    if isinstance(node, Comparison):
        return _comparison(node)
    joiner = " AND " if isinstance(node, Conjunction) else " OR "
    parts = [to_sqlite(part) for part in node.parts]
    return "(" + joiner.join(sql for sql, _ in parts) + ")", [value for _, values in parts for value in values]


def _comparison(node: Comparison) -> tuple[str, list[Any]]:
    path = f'$."{node.key}"'  # keys are [A-Za-z0-9_-]: nothing to escape
    if node.kind == "boolean":
        wanted = node.value if node.operator == "eq" else not node.value
        return "json_type(metadata, ?) = ?", [path, "true" if wanted else "false"]
    kind, operator = JSON_TYPES[node.kind], SQL_OPERATORS[node.operator]
    return f"(json_type(metadata, ?) IN {kind} AND json_extract(metadata, ?) {operator} ?)", [path, path, node.value]
