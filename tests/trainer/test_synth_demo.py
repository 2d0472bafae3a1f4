"""The demo gallery: shippable licences only, a readable TAB list the gallery import reads, exact query boxes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from shitu.cli import app
from trainer.recognition.data.labels import read_label_list
from trainer.synth.assets import SHIPPABLE_LICENCES, default_assets_dir
from trainer.synth.demo import EMOJI_PRODUCTS, LOGO_PRODUCTS, QUERY_COUNT


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["data", "demo", "--out", str(out), "--assets", str(default_assets_dir())])
    assert result.exit_code == 0, result.output
    return out


def test_gallery_list_names_every_product_once(demo: Path) -> None:
    entries = read_label_list(demo / "gallery_list.txt")
    labels = [entry.label for entry in entries]
    assert len(labels) == len(set(labels)) == len(EMOJI_PRODUCTS) + len(LOGO_PRODUCTS) >= 25
    assert "Sparkling wine" in labels and "Red apple" in labels
    assert all("\t" in line for line in (demo / "gallery_list.txt").read_text().splitlines())
    for entry in entries:
        image = cv2.imread(str(entry.path))
        assert image is not None and min(image.shape[:2]) >= 100


def test_only_cc0_mit_or_public_domain_assets(demo: Path) -> None:
    products = json.loads((demo / "products.json").read_text())
    assert products and all(item["licence"] in SHIPPABLE_LICENCES for item in products)


def test_query_photos_show_gallery_products_inside_the_frame(demo: Path) -> None:
    labels = {entry.label for entry in read_label_list(demo / "gallery_list.txt")}
    queries = json.loads((demo / "queries.json").read_text())
    assert len(queries) == QUERY_COUNT
    for query in queries:
        photo = cv2.imread(str(demo / query["file"]))
        height, width = photo.shape[:2]
        assert 1 <= len(query["objects"]) <= 3
        for item in query["objects"]:
            x, y, box_width, box_height = item["box"]
            assert item["label"] in labels
            assert 0 <= x and 0 <= y and x + box_width <= width and y + box_height <= height
            assert box_width * box_height >= 0.05 * width * height
        assert [closeup["label"] for closeup in query["closeups"]] == [item["label"] for item in query["objects"]]
        for closeup, item in zip(query["closeups"], query["objects"], strict=True):
            close_height, close_width = cv2.imread(str(demo / closeup["file"])).shape[:2]
            _, _, box_width, box_height = item["box"]
            # the box and up to 8 % a side, cut at the photo's edges
            assert box_width <= close_width <= round(1.16 * box_width) + 1
            assert box_height <= close_height <= round(1.16 * box_height) + 1


def test_demo_is_reproducible(demo: Path, tmp_path: Path) -> None:
    again = CliRunner().invoke(app, ["data", "demo", "--out", str(tmp_path), "--assets", str(default_assets_dir())])
    assert again.exit_code == 0, again.output
    for relative in ("gallery_list.txt", "queries.json", "queries/query_1.jpg", "queries/query_1_1.jpg",
                     "images/firefox.jpg"):
        assert (tmp_path / relative).read_bytes() == (demo / relative).read_bytes()
    refused = CliRunner().invoke(app, ["data", "demo", "--out", str(tmp_path)])
    assert refused.exit_code == 1 and "--overwrite" in refused.output
