"""Metadata filters of ``/recognize``: one grammar, parsed once, then translated by each back end.

The JSON shape, like the cloud image-search APIs' filters::

    {"key": "brand", "eq": "acme"}
    {"key": "price", "gte": 1, "lt": 5}                 several operators on one key: all must hold
    {"key": "size", "in": ["S", "M"]}
    {"and": [filter, ...]}   {"or": [filter, ...]}

Keys are top-level keys of the item's metadata. A comparison holds only when the key is present with a value
of the operand's kind (string, number or boolean); so ``ne`` matches items whose value is another value of that
kind, never items without the key. Ranges (``lt``, ``lte``, ``gt``, ``gte``) compare numbers only. The back ends
translate the parsed tree (SQLite SQL for the embedded back end, a Milvus expression for the cluster) and tests
hold both to :func:`matches`, the reference.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from service.errors import InvalidRequest

KEY_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_TEXT_CHARS = 16 * 1024
MAX_DEPTH = 8
MAX_COMPARISONS = 64
MAX_IN_VALUES = 100
MAX_NUMBER = 2**53 - 1  # the metadata's own bound: larger numbers are never stored
Kind = Literal["string", "number", "boolean"]
Operator = Literal["eq", "ne", "lt", "lte", "gt", "gte"]
ORDERING: tuple[Operator, ...] = ("lt", "lte", "gt", "gte")
Scalar = StrictStr | StrictBool | StrictInt | StrictFloat
Number = StrictInt | StrictFloat


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    key: str = Field(pattern=KEY_PATTERN)
    eq: Scalar | None = None
    ne: Scalar | None = None
    in_: list[Scalar] | None = Field(None, alias="in", min_length=1, max_length=MAX_IN_VALUES)
    lt: Number | None = None
    lte: Number | None = None
    gt: Number | None = None
    gte: Number | None = None

    @model_validator(mode="after")
    def _has_an_operator(self) -> Condition:
        if all(getattr(self, name) is None for name in ("eq", "ne", "in_", *ORDERING)):
            raise ValueError("a condition needs one of eq, ne, in, lt, lte, gt, gte")
        values = [self.eq, self.ne, *(self.in_ or []), *(getattr(self, name) for name in ORDERING)]
        for value in values:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("numbers must be finite")
            if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
                raise ValueError(f"numbers must be within ±{MAX_NUMBER}")
            if isinstance(value, str) and any(ord(char) < 32 for char in value):
                raise ValueError("strings must not contain control characters")
        return self


class AllOf(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    all_of: list[FilterModel] = Field(alias="and", min_length=1, max_length=MAX_COMPARISONS)


class AnyOf(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    any_of: list[FilterModel] = Field(alias="or", min_length=1, max_length=MAX_COMPARISONS)


def _shape(value: Any) -> str:
    """Which model a filter object is meant as, so that an error names that model's field, not three guesses."""
    if isinstance(value, dict):
        return "and" if "and" in value else "or" if "or" in value else "condition"
    return "and" if isinstance(value, AllOf) else "or" if isinstance(value, AnyOf) else "condition"


FilterModel = Annotated[
    Annotated[Condition, Tag("condition")] | Annotated[AllOf, Tag("and")] | Annotated[AnyOf, Tag("or")],
    Discriminator(_shape),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
_ADAPTER: TypeAdapter[Condition | AllOf | AnyOf] = TypeAdapter(FilterModel)


# -- the parsed tree the back ends translate -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    key: str
    operator: Operator
    value: str | float | bool

    @property
    def kind(self) -> Kind:
        return kind_of(self.value)  # type: ignore[return-value]  # filter operands always have a kind


@dataclass(frozen=True, slots=True)
class Conjunction:
    parts: tuple[MetadataFilter, ...]


@dataclass(frozen=True, slots=True)
class Disjunction:
    parts: tuple[MetadataFilter, ...]


MetadataFilter = Comparison | Conjunction | Disjunction


def kind_of(value: Any) -> Kind | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def parse_filter(text: str | bytes | Mapping[str, Any]) -> MetadataFilter:
    """The filter of a request (JSON text or decoded JSON); :class:`InvalidRequest` (422) when it is malformed."""
    try:
        if isinstance(text, str | bytes):
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidRequest(f"filter is longer than {MAX_TEXT_CHARS} characters", field="filter")
            model = _ADAPTER.validate_json(text)
        else:
            model = _ADAPTER.validate_python(text)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        raise InvalidRequest(f"invalid filter at {_location(first['loc'])}: {first['msg']}", field="filter") from None
    except RecursionError:
        raise InvalidRequest("filter is nested too deeply", field="filter") from None
    parsed = _convert(model)
    if depth(parsed) > MAX_DEPTH:
        raise InvalidRequest(f"filter is nested deeper than {MAX_DEPTH} levels", field="filter")
    if len(comparisons(parsed)) > MAX_COMPARISONS:
        raise InvalidRequest(f"filter has more than {MAX_COMPARISONS} comparisons", field="filter")
    return parsed


def _location(loc: tuple[int | str, ...]) -> str:
    """``and.0.price`` from pydantic's location, without its union tags and type names."""
    parts: list[str] = ["filter"]
    for part in loc:
        text = str(part)
        if text in ("condition", "str", "int", "float", "bool") or "[" in text or text == parts[-1]:
            continue
        parts.append(text)
    return ".".join(parts)


def _convert(model: Condition | AllOf | AnyOf) -> MetadataFilter:
    if isinstance(model, AllOf):
        return Conjunction(tuple(_convert(part) for part in model.all_of))
    if isinstance(model, AnyOf):
        return Disjunction(tuple(_convert(part) for part in model.any_of))
    parts: list[MetadataFilter] = []
    for operator in ("eq", "ne", *ORDERING):
        value = getattr(model, operator)
        if value is not None:
            parts.append(Comparison(model.key, operator, _operand(value)))
    if model.in_ is not None:
        parts.append(Disjunction(tuple(Comparison(model.key, "eq", _operand(value)) for value in model.in_)))
    return parts[0] if len(parts) == 1 else Conjunction(tuple(parts))


def _operand(value: str | bool | float) -> str | bool | float:
    return value if isinstance(value, str | bool) else float(value)


def depth(node: MetadataFilter) -> int:
    if isinstance(node, Comparison):
        return 1
    return 1 + max(depth(part) for part in node.parts)


def comparisons(node: MetadataFilter) -> list[Comparison]:
    if isinstance(node, Comparison):
        return [node]
    return [leaf for part in node.parts for leaf in comparisons(part)]


# -- the reference semantics ------------------------------------------------------------------------------

_HOLDS: dict[Operator, Callable[[Any, Any], bool]] = {
    "eq": lambda stored, operand: stored == operand,
    "ne": lambda stored, operand: stored != operand,
    "lt": lambda stored, operand: stored < operand,
    "lte": lambda stored, operand: stored <= operand,
    "gt": lambda stored, operand: stored > operand,
    "gte": lambda stored, operand: stored >= operand,
}


def matches(node: MetadataFilter, metadata: Mapping[str, Any]) -> bool:
    """Whether an item's metadata satisfies the filter (the definition the back ends' translations follow)."""
    if isinstance(node, Conjunction):
        return all(matches(part, metadata) for part in node.parts)
    if isinstance(node, Disjunction):
        return any(matches(part, metadata) for part in node.parts)
    stored = metadata.get(node.key)
    return kind_of(stored) == node.kind and _HOLDS[node.operator](stored, node.value)


def filterable(metadata: Mapping[str, Any]) -> dict[str, str | float | bool]:
    """The metadata as typed keys (``s:brand``, ``n:price``, ``b:fresh``), for stores whose JSON comparisons
    coerce between kinds (Milvus): with one kind per key, an expression compares like :func:`matches`."""
    typed: dict[str, str | float | bool] = {}
    for key, value in metadata.items():
        kind = kind_of(value)
        if kind is not None and isinstance(key, str) and _is_key(key):
            typed[f"{kind[0]}:{key}"] = value if kind != "number" else float(value)
    return typed


def _is_key(key: str) -> bool:
    return 0 < len(key) <= 64 and all(char.isascii() and (char.isalnum() or char in "_-") for char in key)


def describe(node: MetadataFilter) -> str:
    """A compact JSON form of the parsed filter (logs, benchmark output)."""
    def plain(part: MetadataFilter) -> Any:
        if isinstance(part, Comparison):
            return {"key": part.key, part.operator: part.value}
        return {"and" if isinstance(part, Conjunction) else "or": [plain(child) for child in part.parts]}

    return json.dumps(plain(node), separators=(",", ":"))
