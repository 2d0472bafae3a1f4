"""The console against a service that wants API keys (issue 13): the key field, sent as X-API-Key on every
request (thumbnails too), kept for the browser session, and the 401/403 answers shown with their messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.auth import key_digest
from tests.service.test_server import running_server
from tests.ui.conftest import screenshot
from tests.ui.console import drawn_boxes, images_loaded, recognize, wait_recognized

READER = "reader-key-for-the-console"
WRITER = "writer-key-for-the-console"
KEYS = [{"name": "shelf-viewer", "sha256": key_digest(READER), "scopes": ["read"]},
        {"name": "shelf-editor", "sha256": key_digest(WRITER), "scopes": ["read", "write"]}]


@pytest.fixture(scope="module")
def keyed_url(ui_model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty gallery behind keys; without a key nothing at all is allowed, reads included."""
    gallery = tmp_path_factory.mktemp("ui-keyed") / "gallery"
    with running_server(ui_model_store, gallery, SHITU_AUTH__KEYS=json.dumps(KEYS),
                        SHITU_AUTH__ANONYMOUS_SCOPES="[]") as (url, _):
        yield url


@pytest.fixture
def keyed_page(browser: Any, keyed_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=keyed_url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


def _use_key(page: Any, key: str) -> None:
    page.fill("#api-key", key)
    page.press("#api-key", "Enter")  # the form submits; /info is asked again with the key
    page.wait_for_function("document.querySelector('#key-state').textContent.includes('key set')")


def _enrol_first_box(page: Any, label: str) -> None:
    page.locator("#boxes .box").first.click()
    page.fill("#enrol-label", label)
    page.click("#enrol-submit")


def test_keys_reach_the_service_and_its_refusals_reach_the_person(keyed_page: Any, keyed_url: str,
                                                                   demo_dir: Path) -> None:
    page = keyed_page
    sent: list[tuple[str, str | None]] = []
    page.on("request", lambda request: sent.append((request.url, request.headers.get("x-api-key"))))
    photo = demo_dir / "queries/query_4.jpg"

    # no key: the first look at /info is a 401, with the service's message and what to do
    page.goto("/ui/#service")
    page.wait_for_selector("#notice.is-error")
    assert page.text_content("#notice-text").startswith("unauthorized: this needs an API key with the read scope")
    assert "enter a valid API key at the top of the page" in page.text_content("#notice-text")

    # a read-only key: recognition works, enrolling is a 403 shown in the dialog
    _use_key(page, READER)
    page.wait_for_selector("#service-health")
    assert "shown to keys with the details scope" in page.text_content("#service-body")
    page.click("nav a[data-screen=recognize]")
    recognize(page, photo)
    _enrol_first_box(page, "Viewer's try")
    page.wait_for_function("document.querySelector('#enrol-error').textContent.startsWith('forbidden')")
    assert "the key 'shelf-viewer' lacks the write scope" in page.text_content("#enrol-error")
    screenshot(page, "enrol-forbidden")
    page.click("#enrol-cancel")
    assert httpx.get(f"{keyed_url}/gallery/items", headers={"X-API-Key": READER}).json()["total"] == 0

    # a writing key, kept across a reload: the box is enrolled and recognized; its thumbnail needed the key too
    _use_key(page, WRITER)
    page.reload()
    page.wait_for_function("document.querySelector('#min-score-value').textContent !== ''")
    assert page.input_value("#api-key") == WRITER
    recognize(page, photo)
    _enrol_first_box(page, "Editor's box")
    page.wait_for_selector("#enrol-dialog", state="hidden")
    page.wait_for_function("label => [...document.querySelectorAll('#boxes .box')].some(b => b.dataset.label == label)",
                           arg="Editor's box")
    wait_recognized(page)
    images_loaded(page, "#objects .candidate img")
    assert page.locator("#objects .candidate img").count() >= 1
    assert any(box["label"] == "Editor's box" for box in drawn_boxes(page))
    api = [(url, key) for url, key in sent if url.startswith(keyed_url) and "/ui/" not in url]
    with_writer = api[api.index(next(request for request in api if request[1] == WRITER)):]
    assert {"/info", "/recognize", "/gallery"} <= {httpx.URL(url).path for url, _ in with_writer}
    assert any("/gallery/images/" in url for url, _ in with_writer)
    assert all(key == WRITER for _, key in with_writer), with_writer

    # a wrong key is refused everywhere, and forgetting it stops sending any
    _use_key(page, "not-a-key")
    page.wait_for_function("document.querySelector('#notice-text').textContent.includes('the API key is not valid')")
    page.click("#key-forget")
    sent.clear()
    with page.expect_response(lambda response: response.url.endswith("/info")) as answer:
        page.click("nav a[data-screen=service]")
    assert answer.value.status == 401
    assert sent and all(key is None for _, key in sent)
