"""The web console in a real Chromium (Debian's, driven by Playwright) against a real service on a free port:
the shipped embedder, the test detector (so that boxes are drawn) and the demo gallery, imported at start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service.test_server import running_server

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; scripts/install-chromium.sh (make test) installs it
# what works as root in a container, with nothing reaching out to the network
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  # a generated test pattern as the camera, allowed without asking: the camera button's test
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
SCREENSHOTS = REPO / "docs" / "ui"


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.synth.assets import AssetsMissingError, default_assets_dir, require_npm_assets
    from trainer.synth.demo import build_demo

    try:
        require_npm_assets(default_assets_dir())
    except AssetsMissingError as error:
        pytest.fail(f"{error} (make test runs it)")
    demo = tmp_path_factory.mktemp("ui-demo") / "demo"
    build_demo(demo, default_assets_dir())
    return demo


@pytest.fixture(scope="session")
def demo_queries(demo_dir: Path) -> list[dict[str, Any]]:
    return json.loads((demo_dir / "queries.json").read_text())


@pytest.fixture(scope="session")
def ui_model_store(model_store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped embedder (model_store/embedder/default) beside the test detector."""
    store = tmp_path_factory.mktemp("ui-models")
    (store / "embedder").mkdir()
    (store / "detector").mkdir()
    (store / "embedder" / "default").symlink_to(REPO / "model_store" / "embedder" / "default")
    (store / "detector" / "default").symlink_to(model_store_dir / "detector" / "default")
    return store


@pytest.fixture(scope="module")
def service_url(ui_model_store: Path, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gallery = tmp_path_factory.mktemp("ui-gallery") / "gallery"
    with running_server(ui_model_store, gallery, SHITU_GALLERY__DEMO=str(demo_dir / "gallery_list.txt")) as (url, _):
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: scripts/install-chromium.sh installs it (make test runs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, service_url: str) -> Iterator[Any]:
    """A fresh browser session (own sessionStorage) on a desktop-sized window, failing on any page error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=service_url)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, errors


def screenshot(page: Any, name: str, **options: Any) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), **options)
    return path
