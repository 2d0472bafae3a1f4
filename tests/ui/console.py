"""Steps the console tests share: open a screen, send a photo, read what was drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx


def open_console(page: Any, screen: str = "recognize") -> None:
    page.goto(f"/ui/#{screen}")
    page.wait_for_selector("body[data-ready=yes]")
    page.wait_for_function("document.querySelector('#min-score-value').textContent !== ''")  # /info arrived


def recognize(page: Any, photo: Path) -> None:
    page.evaluate("document.querySelector('#recognize-status').textContent = ''")
    page.set_input_files("#photo-input", str(photo))
    wait_recognized(page)


def wait_recognized(page: Any) -> None:
    page.wait_for_function("/recognized|Failed/.test(document.querySelector('#recognize-status').textContent)")
    assert "Failed" not in page.text_content("#recognize-status")


def drawn_boxes(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all("#boxes .box", """boxes => boxes.map(box => {
        const rect = box.querySelector('rect');
        const [x, y, w, h] = ['x', 'y', 'width', 'height'].map(name => Number(rect.getAttribute(name)));
        return {bbox: [x, y, x + w, y + h], text: box.querySelector('text').textContent,
                known: box.classList.contains('known'), label: box.dataset.label};
    })""")


def images_loaded(page: Any, selector: str) -> None:
    page.wait_for_function(f"[...document.querySelectorAll({selector!r})].every(i => i.complete && i.naturalWidth)")


def api_recognize(url: str, photo: Path, headers: dict[str, str] | None = None, **fields: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/recognize", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
                          data={"include_unknown": "true", **fields}, headers=headers, timeout=60.0)
    assert response.status_code == 200, response.text
    return response.json()
