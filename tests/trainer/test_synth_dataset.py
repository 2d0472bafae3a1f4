"""A small ``shitu data synth`` run from the installed assets: determinism, leak-free splits, valid outputs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from shitu.cli import app
from trainer.synth.assets import AssetsMissingError, default_assets_dir, is_drawable, load_object, require_npm_assets
from trainer.synth.catalog import Catalog, discover_catalog, render_product
from trainer.synth.dataset import synthesize
from trainer.synth.difficulty import preset
from trainer.synth.generator import SynthOptions
from trainer.synth.splits import SPLITS, split_of_key
from trainer.synth.writer import read_label_list

OPTIONS = SynthOptions(seed=0, classes=10, scenes_per_class=1, gallery_views=2, scene_size=192, open_set_share=0.5)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    try:
        require_npm_assets(default_assets_dir())
    except AssetsMissingError as error:
        pytest.fail(f"{error} (make test runs it)")
    found = discover_catalog(default_assets_dir())
    # Keep the run fast: 5k-pixel PNG wallpapers take a second each to decode; the split rules stay the same.
    quick = [item for item in found.backgrounds if item.source != "plasma" or item.locator.endswith(".jpg")]
    return dataclasses.replace(found, backgrounds=quick)


@pytest.fixture(scope="module")
def runs(catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    first, second, reseeded = (tmp_path_factory.mktemp(name) for name in ("first", "second", "reseeded"))
    synthesize(first, OPTIONS, default_assets_dir(), workers=1, catalog=catalog)
    synthesize(second, OPTIONS, default_assets_dir(), workers=2, catalog=catalog)
    synthesize(reseeded, OPTIONS.model_copy(update={"seed": 1}), default_assets_dir(), workers=1, catalog=catalog)
    return first, second, reseeded


def _hashes(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}  # fmt: skip


def test_same_seed_same_bytes_whatever_the_worker_count(runs: tuple[Path, Path, Path]) -> None:
    first, second, reseeded = runs
    hashes = _hashes(first)
    assert len([name for name in hashes if name.endswith(".jpg")]) >= 10 * 3
    assert hashes == _hashes(second)
    other = _hashes(reseeded)
    assert other["classes.json"] == hashes["classes.json"]  # the seed changes photos, not products
    scene = "images/scenes/train/000000.jpg"
    assert other[scene] != hashes[scene]


def test_classes_split_by_key_with_contiguous_ids(runs: tuple[Path, Path, Path]) -> None:
    classes = json.loads((runs[0] / "classes.json").read_text())
    assert [item["id"] for item in classes] == list(range(len(classes))) and len(classes) == 10
    assert [item["split"] for item in classes] == sorted((item["split"] for item in classes), key=["train", "val",
                                                         "test"].index)  # fmt: skip
    for item in classes:
        assert item["split"] == split_of_key(item["key"]).value
    sides = {}
    for item in classes:
        sides.setdefault(item["key"], set()).add(item["split"])
    assert all(len(splits) == 1 for splits in sides.values())
    assert {item["split"] for item in classes} == {"train", "val", "test"}
    assert not any(item["open_set"] for item in classes if item["split"] == "train")


def test_recognition_lists_parse_and_keep_open_set_out_of_the_gallery(runs: tuple[Path, Path, Path]) -> None:
    root = runs[0]
    classes = {item["id"]: item for item in json.loads((root / "classes.json").read_text())}
    for split in ("train", "val", "test"):
        entries = read_label_list(root / "recognition" / f"{split}_list.txt")
        assert entries, split
        for image, label in entries:
            assert (root / "recognition" / image).is_file()
            assert classes[int(label)]["split"] == split
    for split in ("val", "test"):
        folder = root / "recognition"
        gallery = {int(label) for _, label in read_label_list(folder / f"{split}_gallery_list.txt")}
        queries = {int(label) for _, label in read_label_list(folder / f"{split}_query_list.txt")}
        open_set = {int(label) for _, label in read_label_list(folder / f"{split}_openset_list.txt")}
        assert gallery and queries <= gallery and not open_set & gallery
        assert {key for key, item in classes.items() if item["split"] == split and item["open_set"]} >= open_set


def test_coco_json_is_valid_with_main_object_and_crops_match_boxes(runs: tuple[Path, Path, Path]) -> None:
    root = runs[0]
    for split in ("train", "val", "test"):
        document = json.loads((root / "detection" / f"{split}.json").read_text())
        assert document["categories"] == [{"id": 1, "name": "foreground", "supercategory": "object"}]
        images = {image["id"]: image for image in document["images"]}
        assert images and len(images) == len(document["images"])
        by_image: dict[int, list[dict]] = {}
        for annotation in document["annotations"]:
            image = images[annotation["image_id"]]
            x, y, width, height = annotation["bbox"]
            assert annotation["category_id"] == 1
            assert annotation["iscrowd"] == 0 or image["scene_kind"] == "shelf"  # only a shelf hides products
            assert 0 <= x and 0 <= y and width > 0 and height > 0
            assert x + width <= image["width"] and y + height <= image["height"]
            assert 0 < annotation["area"] <= width * height
            by_image.setdefault(image["id"], []).append(annotation)
        for image_id, image in images.items():
            photo = cv2.imread(str(root / "detection" / image["file_name"]))
            assert photo.shape[:2] == (image["height"], image["width"])
            if image["scene_kind"] == "standard":
                largest = max(by_image[image_id], key=lambda annotation: annotation["area"])
                assert image["main_annotation_id"] == largest["id"]
    query = read_label_list(root / "recognition" / "test_list.txt")
    crops = [image for image, _ in query if "/crops/" in image]
    document = json.loads((root / "detection" / "test.json").read_text())
    standard = {image["id"] for image in document["images"] if image["scene_kind"] == "standard"}
    boxes = [annotation["bbox"] for annotation in document["annotations"] if annotation["image_id"] in standard]
    assert len(crops) == len(boxes)
    for image, (_, _, width, height) in zip(crops, boxes, strict=True):
        assert cv2.imread(str(root / "recognition" / image)).shape[:2] == (height, width)


def test_backgrounds_are_split_and_never_shared(runs: tuple[Path, Path, Path]) -> None:
    root = runs[0]
    summary = json.loads((root / "synth.json").read_text())
    assigned = {split: set(names) for split, names in summary["backgrounds"].items()}
    for first in SPLITS:
        for second in SPLITS:
            if first is not second:
                assert not assigned[first.value] & assigned[second.value]
    assert all(name.startswith(("plasma:", "generated:")) for name in assigned["train"])
    assert any(name.startswith("skimage:") for name in assigned["test"])
    for split in ("train", "val", "test"):
        document = json.loads((root / "detection" / f"{split}.json").read_text())
        assert {image["background"] for image in document["images"]} <= assigned[split]


def test_synth_json_records_everything_needed_to_rerun(runs: tuple[Path, Path, Path]) -> None:
    summary = json.loads((runs[0] / "synth.json").read_text())
    assert SynthOptions.model_validate(summary["options"]) == OPTIONS
    assert summary["options"]["difficulty"]["rotation_deg"] == preset("default").rotation_deg
    assert {"@iconify-json/logos", "simple-icons", "fluentui-emoji", "scikit-image"} <= set(summary["assets"])
    assert summary["counts"]["detection_train_images"] == sum(1 for _ in (runs[0] / "images/scenes/train").iterdir())


def test_svg_quirks_render_or_are_left_out(catalog: Catalog) -> None:
    products = {asset.name: asset for asset in catalog.products}
    for name in ("logos:deploy", "logos:waffle-icon"):  # bodies that use an undeclared xlink: prefix
        card = render_product(products[name], catalog.modules)
        assert card.shape[2] == 4 and (card[..., :3].std(axis=(0, 1)) > 10).any()
    blank = products["logos:million-icon"]
    with pytest.raises(ValueError, match="transparent"):
        load_object(blank, catalog.modules, 64)
    assert not is_drawable(blank)


def test_missing_assets_name_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(AssetsMissingError, match="install-assets.sh"):
        discover_catalog(tmp_path)
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "out"), "--assets", str(tmp_path)])
    assert result.exit_code == 1 and "install-assets.sh" in result.output


def test_cli_refuses_to_mix_two_runs(runs: tuple[Path, Path, Path]) -> None:
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(runs[0]), "--classes", "3"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(runs[0]), "--difficulty", "extreme"])
    assert result.exit_code == 2 and "unknown difficulty" in result.output


def test_scene_kinds_in_the_detection_json_and_out_of_the_recognition_lists(runs: tuple[Path, Path, Path]) -> None:
    root = runs[0]
    coco = json.loads((root / "detection" / "train.json").read_text())
    kinds = {image["id"]: image["scene_kind"] for image in coco["images"]}
    standard = sum(kind == "standard" for kind in kinds.values())
    assert sum(kind == "shelf" for kind in kinds.values()) == round(standard * OPTIONS.shelf_share) > 0
    assert sum(kind == "empty" for kind in kinds.values()) == round(standard * OPTIONS.empty_share) > 0
    boxes: dict[int, int] = {}
    for annotation in coco["annotations"]:
        boxes[annotation["image_id"]] = boxes.get(annotation["image_id"], 0) + 1
    for image in coco["images"]:
        kind = image["scene_kind"]
        assert (image["main_annotation_id"] is not None) == (kind == "standard")
        assert boxes.get(image["id"], 0) == 0 if kind == "empty" else boxes[image["id"]] >= 1
        if kind != "standard":
            assert Path(image["file_name"]).name.startswith(kind + "_")
    listed = (root / "recognition" / "train_list.txt").read_text()
    assert "shelf_" not in listed and "empty_" not in listed
