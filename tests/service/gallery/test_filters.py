from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from service.config import GallerySettings, IndexKind
from service.errors import InvalidRequest
from service.gallery import Gallery
from service.gallery.filters import matches, parse_filter

from .conftest import DIM, MODEL_ID, add, unit_vectors

# Every kind of value, missing keys and look-alikes of other kinds ("5" next to 5, true next to 1).
CATALOGUE: list[dict[str, Any]] = [
    {"brand": "acme", "price": 3, "fresh": True},
    {"brand": "acme", "price": 7.5, "fresh": False},
    {"brand": "bolt", "price": "5", "fresh": 1},
    {"brand": "bolt", "price": 5},
    {"brand": 'q"uo\\te', "price": -2.25},
    {"brand": None, "price": True},
    {"price": 12345678901234},
    {"brand": "Acme", "size": ["S", "M"]},
    {},
]
OPERATOR_CASES = {
    "eq string": {"key": "brand", "eq": "acme"},
    "eq string with quote and backslash": {"key": "brand", "eq": 'q"uo\\te'},
    "eq number": {"key": "price", "eq": 5},
    "eq large integer": {"key": "price", "eq": 12345678901234},
    "eq boolean": {"key": "fresh", "eq": True},
    "ne string": {"key": "brand", "ne": "acme"},
    "ne number": {"key": "price", "ne": 3},
    "ne boolean": {"key": "fresh", "ne": True},
    "in": {"key": "brand", "in": ["bolt", "Acme", 5]},
    "lt": {"key": "price", "lt": 5},
    "lte": {"key": "price", "lte": 5},
    "gt": {"key": "price", "gt": 3},
    "gte": {"key": "price", "gte": 7.5},
    "range on one key": {"key": "price", "gt": -3, "lte": 5},
    "and": {"and": [{"key": "brand", "eq": "acme"}, {"key": "price", "lt": 5}]},
    "or": {"or": [{"key": "brand", "eq": "bolt"}, {"key": "fresh", "eq": False}]},
    "nested": {"and": [{"or": [{"key": "brand", "eq": "acme"}, {"key": "brand", "eq": "bolt"}]},
                       {"key": "price", "gte": 5}]},
    "matches nothing": {"key": "colour", "eq": "red"},
}


def exact_filtered_search(
    vectors: NDArray[np.float32], items: list[str], metadata: dict[str, dict[str, Any]], queries: NDArray[np.float32],
    top_k: int, metadata_filter: Any,
) -> list[list[tuple[str, float]]]:
    """Brute force: each passing item's best image, best first (the reference of every back end)."""
    allowed = np.array([matches(metadata_filter, metadata[item]) for item in items])
    results = []
    for query in queries:
        scores = vectors @ query
        best: dict[str, float] = {}
        for item, score, ok in zip(items, scores.tolist(), allowed, strict=True):
            if ok and score > best.get(item, -np.inf):
                best[item] = score
        results.append(sorted(best.items(), key=lambda pair: -pair[1])[:top_k])
    return results


@pytest.mark.parametrize("case", OPERATOR_CASES, ids=list(OPERATOR_CASES))
def test_each_operator_selects_exactly_the_matching_items(gallery: Gallery, case: str) -> None:
    vectors = unit_vectors(len(CATALOGUE), seed=30)
    for number, metadata in enumerate(CATALOGUE):
        add(gallery, f"product {number}", vectors[number], number, item_id=f"item-{number}", metadata=metadata)
    metadata_filter = parse_filter(OPERATOR_CASES[case])
    expected = {f"item-{number}" for number, metadata in enumerate(CATALOGUE) if matches(metadata_filter, metadata)}

    [found] = gallery.search(unit_vectors(1, seed=31), top_k=100, metadata_filter=metadata_filter)

    assert {match.item_id for match in found} == expected
    assert case == "matches nothing" or expected  # every other case selects something


def test_the_reference_semantics_of_kinds_and_missing_keys() -> None:
    assert matches(parse_filter({"key": "price", "eq": 5}), {"price": 5.0})
    assert not matches(parse_filter({"key": "price", "eq": 5}), {"price": "5"})
    assert not matches(parse_filter({"key": "fresh", "eq": 1}), {"fresh": True})
    assert not matches(parse_filter({"key": "brand", "ne": "acme"}), {})
    assert not matches(parse_filter({"key": "brand", "ne": "acme"}), {"brand": None})
    assert matches(parse_filter({"key": "brand", "ne": "acme"}), {"brand": "bolt"})


def test_metadata_changes_reach_the_filter(gallery: Gallery) -> None:
    vector = unit_vectors(1, seed=32)
    add(gallery, "tea", vector[0], 0, item_id="tea", metadata={"brand": "acme"})
    acme = parse_filter({"key": "brand", "eq": "acme"})
    assert [m.item_id for m in gallery.search(vector, top_k=5, metadata_filter=acme)[0]] == ["tea"]

    gallery.update_item("tea", metadata={"brand": "bolt"})
    assert gallery.search(vector, top_k=5, metadata_filter=acme) == [[]]
    add(gallery, "tea", vector[0], 0, item_id="tea", metadata={"brand": "acme"})  # same bytes, new metadata

    assert [m.item_id for m in gallery.search(vector, top_k=5, metadata_filter=acme)[0]] == ["tea"]


@pytest.mark.parametrize("index", [IndexKind.flat, IndexKind.hnsw])
def test_filtered_search_equals_exact_filtered_search(settings: GallerySettings, index: IndexKind) -> None:
    rng = np.random.default_rng(33)
    brands = ["acme", "bolt", "core", "dune"]
    count = 240
    vectors = unit_vectors(count, seed=34)
    items = [f"item-{number % 120}" for number in range(count)]  # two images per item
    metadata = {item: {"brand": brands[int(rng.integers(4))], "price": int(rng.integers(0, 100))} for item in items}
    filters = [
        {"key": "brand", "eq": "acme"},
        {"key": "price", "lt": 10},
        {"or": [{"key": "brand", "in": ["bolt", "dune"]}, {"key": "price", "gte": 90}]},
        {"and": [{"key": "brand", "ne": "core"}, {"key": "price", "gt": 20, "lte": 60}]},
    ]
    queries = unit_vectors(8, seed=35)
    # the cluster back end's counterpart of the embedded HNSW index is Milvus's
    cluster = settings.cluster.model_copy(update={"milvus_index": index.value.upper()})
    settings = settings.model_copy(update={"index": index, "cluster": cluster})
    with Gallery.open(settings, embedding_dim=DIM, model_id=MODEL_ID) as gallery:
        for number, item in enumerate(items):
            add(gallery, item, vectors[number], number, item_id=item, metadata=metadata[item])

        for raw in filters:
            metadata_filter = parse_filter(raw)
            found = gallery.search(queries, top_k=5, metadata_filter=metadata_filter)
            expected = exact_filtered_search(vectors, items, metadata, queries, 5, metadata_filter)
            for got, want in zip(found, expected, strict=True):
                assert [m.item_id for m in got] == [item for item, _ in want]
                assert [m.score for m in got] == pytest.approx([score for _, score in want], abs=1e-5)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"key": "brand"}', "needs one of"),
        ('{"key": "price", "lt": "5"}', "filter.lt"),
        ('{"key": "a b", "eq": 1}', "filter.key"),
        ('{"key": "a", "eq": 1, "like": "x"}', "filter.like"),
        ('{"and": []}', "filter.and"),
        ('{"or": [{"key": "a", "in": []}]}', "filter.or.0.in"),
        ('{"key": "a", "eq": null}', "needs one of"),
        ('{"key": "a", "eq": "line\\nbreak"}', "control characters"),
        ('{"key": "a", "gt": 1e300}', "within"),
        ('{"key": "a", "eq": [1]}', "filter.eq"),
        ("[1]", "object"),
        ("not json", "Invalid JSON"),
        ("{" * 5000, "too deeply|Invalid JSON|longer"),
        ('{"and": [' * 9 + '{"key": "a", "eq": 1}' + "]}" * 9, "deeper than"),
    ],
)
def test_malformed_filters_are_refused_with_422(raw: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as raised:
        parse_filter(raw)

    assert raised.value.status == 422 and raised.value.details["field"] == "filter"
