"""The console's files: served by the app at /ui, shipped in the package, nothing fetched from the internet."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fastapi.testclient import TestClient

from service.app import UI_DIRECTORY, create_app
from service.config import Settings

REPO = Path(__file__).resolve().parents[2]
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def _files() -> set[Path]:
    return {path for path in UI_DIRECTORY.rglob("*") if path.is_file()}


def test_the_console_is_served_at_ui_without_the_models_loaded() -> None:
    client = TestClient(create_app(Settings()))  # no lifespan: static files need no models

    redirect = client.get("/ui", follow_redirects=False)
    page = client.get("/ui/")
    module = client.get("/ui/js/app.js")

    assert redirect.status_code in (301, 307) and redirect.headers["location"].endswith("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/app.js">' in page.text
    assert module.status_code == 200 and "javascript" in module.headers["content-type"]
    assert client.get("/ui/js/nope.js").json()["error"]["code"] == "not_found"


def test_every_module_and_stylesheet_the_page_names_exists() -> None:
    named = set()
    for path in _files():
        text = path.read_text()
        references = re.findall(r'from "(\./[^"]+)"', text) + re.findall(r'(?:src|href)="((?!#|data:)[^"]+)"', text)
        named |= {(path.parent / reference).resolve() for reference in references}
    assert named and named <= _files()


def test_nothing_is_loaded_from_the_internet() -> None:
    for path in _files():
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*", path.read_text())) - {SVG_NAMESPACE}
        assert not urls, (path, urls)


def test_the_package_data_ships_every_console_file() -> None:
    """A non-editable install (the Docker image's `pip install .`) copies only what package-data names."""
    line = re.search(r"^service = (\[.*\])", (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert line, "pyproject.toml's [tool.setuptools.package-data] has no service line"
    patterns = ast.literal_eval(line.group(1))
    package = UI_DIRECTORY.parent
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    assert _files() <= shipped
