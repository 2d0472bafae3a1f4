"""An OpenAPI fuzzer (schemathesis) against the real app: no request gets a 5xx, and none that the schema calls
valid is refused (a 404 for an id that does not exist, or a 409 for an item id taken by another label, is the
state of the gallery, not a refusal). Bounded: a few dozen examples per operation, a couple of minutes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from service.gallery.validation import MAX_METADATA_INTEGER
from tests.service.test_server import running_server

pytestmark = pytest.mark.slow
IMAGE_SIDE = 64  # every generated photo is at least this big, so every generated bbox fits inside


def _image(seed: int, suffix: str, width: int, height: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, buffer = cv2.imencode(suffix, pixels)
    assert ok
    return buffer.tobytes()


_images = st.builds(_image, st.integers(0, 2**16), st.sampled_from([".jpg", ".png", ".bmp", ".webp"]),
                    st.integers(IMAGE_SIDE, 160), st.integers(IMAGE_SIDE, 160))
_scalars = st.one_of(st.text(max_size=50), st.integers(-MAX_METADATA_INTEGER, MAX_METADATA_INTEGER),
                     st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none())
_metadata = st.recursive(_scalars, lambda children: st.lists(children, max_size=4)
                         | st.dictionaries(st.text(max_size=20), children, max_size=4), max_leaves=12)
_boxes = st.tuples(st.integers(0, IMAGE_SIDE - 2), st.integers(0, IMAGE_SIDE - 2)).flatmap(
    lambda corner: st.tuples(st.just(corner), st.integers(corner[0] + 1, IMAGE_SIDE),
                             st.integers(corner[1] + 1, IMAGE_SIDE)))
schemathesis.openapi.format("image", _images)
schemathesis.openapi.format("json-object", st.dictionaries(st.text(max_size=20), _metadata, max_size=6).map(json.dumps))
_filter_keys = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
_filter_texts = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=20)  # filters refuse controls
_filter_values = st.one_of(_filter_texts, st.integers(-1000, 1000), st.booleans())
_conditions = st.one_of(
    st.builds(lambda key, op, value: {"key": key, op: value}, _filter_keys,
              st.sampled_from(["eq", "ne"]), _filter_values),
    st.builds(lambda key, op, value: {"key": key, op: value}, _filter_keys,
              st.sampled_from(["lt", "lte", "gt", "gte"]), st.integers(-1000, 1000)),
    st.builds(lambda key, values: {"key": key, "in": values}, _filter_keys,
              st.lists(_filter_texts, min_size=1, max_size=4)))
_filters = st.recursive(_conditions, lambda children: st.builds(
    lambda op, parts: {op: parts}, st.sampled_from(["and", "or"]), st.lists(children, min_size=1, max_size=3)),
    max_leaves=6)
schemathesis.openapi.format("metadata-filter", _filters.map(json.dumps))
schemathesis.openapi.format("bbox", _boxes.map(lambda box: f"{box[0][0]},{box[0][1]},{box[1]},{box[2]}"))


@pytest.fixture(scope="module")
def api(model_store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    """A real server over HTTP (its own process owns the gallery; schemathesis only sends requests)."""
    gallery = tmp_path_factory.mktemp("fuzz-gallery")
    with running_server(model_store_dir, gallery, SHITU_LIMITS__MAX_CONCURRENT_REQUESTS="64",
                        SHITU_LIMITS__MAX_CONCURRENT_WRITES="64") as (url, _):
        for seed, label in enumerate(("cup", "cat", "rocket")):
            httpx.post(f"{url}/gallery", files={"image": ("p.png", _image(seed, ".png", 96, 96), "image/png")},
                       data={"label": label, "item_id": label, "detect": "false"}, timeout=60)
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          positive_data_acceptance]


def test_no_server_errors_and_no_valid_request_refused(api: schemathesis.BaseSchema) -> None:
    """Valid cases: 2xx (or 404/409 for ids absent or taken); invalid cases (negative mode): never a 5xx."""
    # Driven by hand rather than by schemathesis's pytest plugin, which does not run on this pytest.
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10

    negative = []
    for operation in operations:
        _fuzz(operation, GenerationMode.POSITIVE, CHECKS)
        try:
            _fuzz(operation, GenerationMode.NEGATIVE, [not_a_server_error])
        except Unsatisfiable:
            continue  # nothing of it can be made invalid (no inputs, or only an unconstrained path string)
        negative.append(operation.label)
    assert {"POST /recognize", "POST /gallery", "GET /gallery/items", "PATCH /gallery/items/{item_id}"} <= set(negative)


def _fuzz(operation: Any, mode: GenerationMode, checks: list[Any]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=checks)

    fuzz()
