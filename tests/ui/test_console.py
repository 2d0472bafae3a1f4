"""The console end to end in Chromium: recognize a demo photo, enrol a box and find it recognized, relabel,
delete, import a list; every screen's screenshot goes to docs/ui/ (shown by docs/ui.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from service.importing import item_id_for_label
from tests.ui.conftest import screenshot
from tests.ui.console import api_recognize, drawn_boxes, images_loaded, open_console, recognize, wait_recognized

UNKNOWN_SCENE = "queries/query_1.jpg"  # the test detector's one box there matches no demo product


def _item(url: str, item_id: str) -> httpx.Response:
    return httpx.get(f"{url}/gallery/items/{item_id}", timeout=30.0)


def test_recognize_a_demo_photo_draws_every_box_with_its_label(page: Any, service_url: str, demo_dir: Path,
                                                              demo_queries: list[dict[str, Any]]) -> None:
    close_up = demo_queries[0]["closeups"][0]
    photo = demo_dir / close_up["file"]
    open_console(page)
    recognize(page, photo)

    drawn = drawn_boxes(page)
    expected = api_recognize(service_url, photo)["objects"]
    screenshot(page, "recognize", full_page=True)
    assert [box["bbox"] for box in drawn] == [found["bbox"] for found in expected]
    assert [box["label"] for box in drawn] == [found["match"]["label"] if found["match"] else "" for found in expected]
    assert close_up["label"] in {box["label"] for box in drawn}
    assert [box["text"] for box in drawn] == [
        f"{n}. {found['match']['label']} {found['match']['score']:.3f}" if found["match"] else f"{n}. unknown"
        for n, found in enumerate(expected, start=1)]
    first = page.locator("#objects > li").first
    assert first.locator(".candidate").count() == len(expected[0]["candidates"])
    images_loaded(page, "#objects .candidate img")
    assert set(page.eval_on_selector_all("#timings dt", "items => items.map(i => i.textContent)")) >= {
        "decode", "detect", "embed", "search", "total"}

    # the shelf photo with sliding windows (the test detector finds no product there): several boxes
    scene = demo_queries[0]
    page.check("#sliding-windows")
    recognize(page, demo_dir / scene["file"])
    labels = {box["label"] for box in drawn_boxes(page) if box["known"]}
    images_loaded(page, "#objects .candidate img")
    screenshot(page, "recognize-scene", full_page=True)
    assert len(labels & {found["label"] for found in scene["objects"]}) >= 2, labels

    # keyboard: End puts min_score at 1, the request runs again and no box reaches it
    page.focus("#min-score")
    page.keyboard.press("End")
    page.wait_for_function("document.querySelector('#min-score-value').textContent === '1.00'")
    page.wait_for_function("[...document.querySelectorAll('#boxes .box')].every(b => b.classList.contains('unknown'))")
    assert {box["text"].split(". ", 1)[1] for box in drawn_boxes(page)} == {"unknown"}


def test_the_console_is_readable_on_a_phone(browser: Any, service_url: str, demo_dir: Path,
                                            demo_queries: list[dict[str, Any]]) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, base_url=service_url)
    page = context.new_page()
    try:
        open_console(page)
        recognize(page, demo_dir / demo_queries[1]["closeups"][0]["file"])
        width = page.evaluate("document.documentElement.scrollWidth")
        photo = page.locator("#photo").bounding_box()
        images_loaded(page, "#objects .candidate img")
        screenshot(page, "recognize-phone", full_page=True)
        assert width <= 390  # nothing wider than the screen: no sideways scrolling
        assert photo is not None and 300 <= photo["width"] <= 390
    finally:
        context.close()


def test_enrol_an_unknown_box_then_it_is_recognized_then_relabel_and_delete(
        page: Any, service_url: str, demo_dir: Path) -> None:
    scene = demo_dir / UNKNOWN_SCENE
    open_console(page)
    recognize(page, scene)
    unknown = page.locator("#boxes .box.unknown").first
    box = drawn_boxes(page)[0]["bbox"]

    # a click on the box opens the enrol dialog; a label clash is the API's 409, shown with its message
    unknown.click()
    page.fill("#enrol-label", "Shelf corner")
    page.fill("#enrol-item-id", "label-" + "0" * 16)
    httpx.post(f"{service_url}/gallery", data={"label": "Other", "item_id": "label-" + "0" * 16, "detect": "false"},
               files={"image": ("a.jpg", (demo_dir / "queries/query_2_1.jpg").read_bytes(), "image/jpeg")},
               timeout=60.0).raise_for_status()
    page.click("#enrol-submit")
    page.wait_for_function("document.querySelector('#enrol-error').textContent.includes('label_conflict')")
    assert "has label 'Other'" in page.text_content("#enrol-error")

    page.fill("#enrol-item-id", "shelf-corner")
    page.fill("#enrol-metadata", '{"aisle": 4}')
    screenshot(page, "enrol")
    page.click("#enrol-submit")
    page.wait_for_selector("#enrol-dialog", state="hidden")
    page.wait_for_function("[...document.querySelectorAll('#boxes .box')].some(b => b.dataset.label == 'Shelf corner')")
    wait_recognized(page)

    item = _item(service_url, "shelf-corner").json()
    assert item["label"] == "Shelf corner" and item["metadata"] == {"aisle": 4}
    assert [image["bbox"] for image in item["images"]] == [box]
    recognized = next(found for found in drawn_boxes(page) if found["bbox"] == box)
    assert recognized["known"] and recognized["text"] == "1. Shelf corner 1.000"
    assert "Registered this box as “Shelf corner” (shelf-corner)" in page.text_content("#notice")

    # the same box of another scene, as another image of the item, chosen in the searchable picker
    recognize(page, demo_dir / "queries/query_2.jpg")
    page.locator("#boxes .box").first.focus()  # boxes are in the Tab order; Enter opens the dialog
    page.keyboard.press("Enter")
    page.check("#enrol-form input[name=mode][value=existing]")
    page.fill("#enrol-search", "shelf")
    page.check("#enrol-choices input[value=shelf-corner]")
    page.click("#enrol-submit")
    page.wait_for_selector("#enrol-dialog", state="hidden")
    page.wait_for_function("document.querySelector('#notice-text').textContent.includes('Registered')")
    assert _item(service_url, "shelf-corner").json()["image_count"] == 2

    # relabel in the gallery
    page.click("nav a[data-screen=gallery]")
    page.fill("#gallery-label", "Shelf corner")
    page.press("#gallery-label", "Enter")
    card = page.locator("#gallery-items li[data-item-id=shelf-corner] button")
    card.wait_for()
    page.wait_for_function("document.querySelectorAll('#gallery-items img').length === 1")
    card.click()
    page.wait_for_function("document.querySelectorAll('#item-images img').length === 2")
    images_loaded(page, "#item-images img")
    page.fill("#item-label", "Shelf corner, left")
    page.click("#item-form button[type=submit]")
    page.wait_for_function("document.querySelector('#item-title').textContent === 'Shelf corner, left'")
    screenshot(page, "item")
    assert _item(service_url, "shelf-corner").json()["label"] == "Shelf corner, left"

    # another photo from the item's dialog, then delete one image (confirmed), then the item (first try cancelled)
    page.set_input_files("#item-add-photo", str(demo_dir / "queries/query_3.jpg"))
    page.wait_for_function("document.querySelectorAll('#item-images > li').length === 3")
    page.locator("#item-images button", has_text="Delete image").first.click()
    page.click("#confirm-ok")
    page.wait_for_function("document.querySelectorAll('#item-images > li').length === 2")
    assert _item(service_url, "shelf-corner").json()["image_count"] == 2
    page.click("#item-delete")
    page.keyboard.press("Escape")  # the confirmation closes, nothing is deleted
    assert _item(service_url, "shelf-corner").status_code == 200
    page.click("#item-delete")
    page.click("#confirm-ok")
    page.wait_for_selector("#item-dialog", state="hidden")
    page.wait_for_function("document.querySelector('#gallery-status').textContent.includes('No item is labelled')")
    assert _item(service_url, "shelf-corner").status_code == 404

    # and the next recognition no longer finds it
    page.click("nav a[data-screen=recognize]")
    recognize(page, scene)
    assert all(found["label"] != "Shelf corner, left" for found in drawn_boxes(page))


def test_gallery_pages_and_a_list_file_import_with_progress(page: Any, service_url: str, demo_dir: Path,
                                                            tmp_path: Path) -> None:
    listed = ["images/red-apple.jpg", "images/banana.jpg", "images/teapot.jpg"]
    list_file = tmp_path / "gallery_list.txt"
    list_file.write_text("# imported from the console\n" + "".join(
        f"{name}\tImported {Path(name).stem}\n" for name in listed) + "images/missing.jpg\tNowhere\n")
    open_console(page, "gallery")
    page.wait_for_function("document.querySelector('#gallery-page').textContent.startsWith('1–24 of')")
    page.wait_for_function("document.querySelectorAll('#gallery-items img').length === 24")
    images_loaded(page, "#gallery-items img")
    screenshot(page, "gallery", full_page=True)
    page.click("#gallery-next")
    page.wait_for_function("document.querySelector('#gallery-page').textContent.startsWith('25–')")

    page.click("#import summary")
    page.set_input_files("#import-list", str(list_file))
    page.set_input_files("#import-files", [str(demo_dir / name) for name in listed])
    page.click("#import-start")
    page.wait_for_function("document.querySelector('#import-status').textContent.startsWith('4 of 4')")
    page.wait_for_function("document.querySelectorAll('#gallery-items img').length"
                           " === document.querySelectorAll('#gallery-items li').length")  # the page reloaded
    images_loaded(page, "#gallery-items img")
    screenshot(page, "import", full_page=True)

    assert page.text_content("#import-status") == "4 of 4: 3 added, 0 unchanged, 1 failed."
    assert "line 5 (images/missing.jpg): image file not picked" in page.text_content("#import-failures")
    for name in listed:
        found = httpx.get(f"{service_url}/gallery/items", params={"label": f"Imported {Path(name).stem}"}).json()
        label = f"Imported {Path(name).stem}"
        assert found["total"] == 1 and found["items"][0]["item_id"] == item_id_for_label(label)  # the CLI's ids

    # the demo's own list with its folder: every line is already there (the service imported it at start)
    page.set_input_files("#import-list", str(demo_dir / "gallery_list.txt"))
    page.set_input_files("#import-files", [])
    page.set_input_files("#import-folder", str(demo_dir))
    page.click("#import-start")
    lines = len((demo_dir / "gallery_list.txt").read_text().splitlines())
    page.wait_for_function(f"document.querySelector('#import-status').textContent.startsWith('{lines} of {lines}')")
    assert page.text_content("#import-status") == f"{lines} of {lines}: 0 added, {lines} unchanged, 0 failed."


def test_service_screen_shows_models_thresholds_and_health(page: Any, service_url: str) -> None:
    info = httpx.get(f"{service_url}/info", timeout=30.0).json()
    open_console(page, "service")
    page.wait_for_selector("#service-health")
    text = page.text_content("#service-body")
    screenshot(page, "service", full_page=True)
    assert page.text_content("#service-health").startswith("ready")
    assert info["embedder"]["model_id"] in text and info["detector"]["model_id"] in text
    assert f"min_score{info['defaults']['min_score']}" in text.replace(" ", "")
    assert f"images{info['gallery']['images']}" in text.replace(" ", "")
    # nested entries (batching's queues) read as "name value" lists, not as raw JSON
    assert "{" not in text and "batching" in text and "since_start (" in text


def test_an_api_error_is_shown_with_its_code_and_message(page: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    open_console(page)
    page.set_input_files("#photo-input", str(broken))
    page.wait_for_selector("#notice.is-error")
    assert page.text_content("#notice-text").startswith("invalid_image: ")
    assert page.text_content("#recognize-status").startswith("Failed: invalid_image: ")
    page.click("#notice-close")
    assert page.is_hidden("#notice")


def test_background_calls_wait_out_a_429_and_run_a_few_at_a_time(page: Any) -> None:
    open_console(page, "service")
    result = page.evaluate("""async () => {
        const { ApiError, limiter } = await import('./js/api.js');
        let running = 0, most = 0, refusals = 0;
        const call = async () => {
            running += 1; most = Math.max(most, running);
            await new Promise(resolve => setTimeout(resolve, 20));
            running -= 1;
            if (refusals < 2) {
                refusals += 1;
                throw new ApiError(429, 'rate_limited', 'slow down', {retry_after_s: 0.05});
            }
            return 'done';
        };
        const run = limiter(4);
        const answers = await Promise.all(Array.from({length: 12}, () => run(call)));
        const busy = async () => { throw new ApiError(429, 'overloaded', 'busy', {retry_after_s: 0.01}); };
        const refused = await limiter(1)(busy).then(() => 'no error', error => error.code);
        return {answers, most, refusals, refused};
    }""")
    assert result["answers"] == ["done"] * 12 and result["refusals"] == 2
    assert result["most"] == 4
    assert result["refused"] == "overloaded"  # the third 429 in a row reaches the caller


def test_a_photo_arrives_by_drop_paste_or_camera(page: Any, demo_dir: Path) -> None:
    photo = demo_dir / "queries/query_5_1.jpg"
    open_console(page)
    for event in ("drop", "paste"):
        page.evaluate("document.querySelector('#recognize-status').textContent = ''")
        page.evaluate("""async ([event, bytes]) => {
            const file = new File([new Uint8Array(bytes)], 'photo.jpg', {type: 'image/jpeg'});
            const data = new DataTransfer();
            data.items.add(file);
            const target = event === 'drop' ? document.querySelector('#drop-zone') : document.body;
            target.dispatchEvent(event === 'drop'
                ? new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true})
                : new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
        }""", [event, list(photo.read_bytes())])
        wait_recognized(page)
        assert page.evaluate("document.querySelector('#photo').naturalWidth") > 0, event

    page.evaluate("document.querySelector('#recognize-status').textContent = ''")
    page.click("#camera-open")
    page.wait_for_function("document.querySelector('#camera-video').videoWidth > 0")
    video = page.evaluate("(v => [v.videoWidth, v.videoHeight])(document.querySelector('#camera-video'))")
    page.click("#camera-take")
    wait_recognized(page)

    assert page.is_hidden("#camera-dialog")
    assert page.evaluate("(i => [i.naturalWidth, i.naturalHeight])(document.querySelector('#photo'))") == video
    assert page.get_attribute("#boxes", "viewBox") == f"0 0 {video[0]} {video[1]}"  # the service saw that frame
