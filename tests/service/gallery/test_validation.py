from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.box import Box
from service.errors import InvalidRequest
from service.gallery import Gallery

from .conftest import DIM, add, image_bytes, snapshot, unit_vectors

GOOD_VECTOR = unit_vectors(1, seed=30)[0]


def _arguments(**changes: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = dict(
        label="juice", embedding=GOOD_VECTOR, image_bytes=image_bytes(100), media_type="image/png", item_id="sku-9"
    )
    arguments.update(changes)
    return arguments


BAD_INPUTS = {
    "empty label": _arguments(label=""),
    "blank label": _arguments(label="  \t "),
    "long label": _arguments(label="x" * 201),
    "tab in label": _arguments(label="a\tb"),
    "newline in label": _arguments(label="a\nb"),
    "label not a string": _arguments(label=5),
    "item id with slash": _arguments(item_id="a/b"),
    "item id with space": _arguments(item_id="a b"),
    "empty item id": _arguments(item_id=""),
    "long item id": _arguments(item_id="a" * 129),
    "metadata list": _arguments(metadata=[1, 2]),
    "metadata too big": _arguments(metadata={"blob": "x" * 16_400}),
    "metadata not json": _arguments(metadata={"when": object()}),
    "metadata nan": _arguments(metadata={"x": float("nan")}),
    "metadata int key": _arguments(metadata={1: "x"}),
    "float64 embedding": _arguments(embedding=GOOD_VECTOR.astype(np.float64)),
    "short embedding": _arguments(embedding=GOOD_VECTOR[:-1] / np.linalg.norm(GOOD_VECTOR[:-1])),
    "batch of two": _arguments(embedding=unit_vectors(2, seed=31)),
    "list embedding": _arguments(embedding=GOOD_VECTOR.tolist()),
    "nan embedding": _arguments(embedding=np.full(DIM, np.nan, dtype=np.float32)),
    "zero embedding": _arguments(embedding=np.zeros(DIM, dtype=np.float32)),
    "unnormalised embedding": _arguments(embedding=GOOD_VECTOR * 2),
    "box x2 <= x1": _arguments(box=Box(10, 0, 10, 5)),
    "box y2 <= y1": _arguments(box=Box(0, 9, 5, 3)),
    "negative box": _arguments(box=Box(-1, 0, 5, 5)),
    "float box": _arguments(box=Box(0.5, 0, 5, 5)),  # type: ignore[arg-type]
    "tuple box": _arguments(box=(0, 0, 5, 5)),
    "empty image": _arguments(image_bytes=b""),
    "bad media type": _arguments(media_type="jpeg"),
}


@pytest.mark.parametrize("arguments", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_invalid_enrolment_changes_nothing(gallery: Gallery, arguments: dict[str, Any]) -> None:
    add(gallery, "juice", unit_vectors(1, seed=32)[0], 1, item_id="sku-9", metadata={"k": 1})
    before = snapshot(gallery)

    with pytest.raises(InvalidRequest) as raised:
        gallery.add_image(**arguments)

    assert raised.value.status == 422 and raised.value.message
    assert snapshot(gallery) == before


@pytest.mark.parametrize(
    "changes", [{"label": " "}, {"label": "y" * 300}, {"metadata": "text"}, {"metadata": {"x": float("inf")}}]
)
def test_invalid_update_changes_nothing(gallery: Gallery, changes: dict[str, Any]) -> None:
    add(gallery, "juice", GOOD_VECTOR, 1, item_id="sku-9")
    before = snapshot(gallery)

    with pytest.raises(InvalidRequest):
        gallery.update_item("sku-9", **changes)

    assert snapshot(gallery) == before


def test_embedding_of_shape_one_by_d_is_accepted_and_label_is_trimmed(gallery: Gallery) -> None:
    enrolment = gallery.add_image(**_arguments(embedding=GOOD_VECTOR[None, :], label="  juice "))

    assert enrolment.item.label == "juice"
    [[match]] = gallery.search(GOOD_VECTOR[None, :], top_k=1)
    assert match.score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("queries", "top_k"),
    [
        (unit_vectors(2, seed=33).astype(np.float64), 3),
        (np.ones((2, DIM + 1), dtype=np.float32), 3),
        (np.full((1, DIM), np.inf, dtype=np.float32), 3),
        (unit_vectors(2, seed=33), 0),
    ],
    ids=["float64", "wrong dim", "infinite", "top_k 0"],
)
def test_invalid_search_is_rejected(gallery: Gallery, queries: np.ndarray, top_k: int) -> None:
    with pytest.raises(InvalidRequest):
        gallery.search(queries, top_k=top_k)


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0), (0, 1001)])
def test_invalid_page_is_rejected(gallery: Gallery, offset: int, limit: int) -> None:
    with pytest.raises(InvalidRequest):
        gallery.list_items(offset=offset, limit=limit)
