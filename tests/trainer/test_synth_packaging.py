"""Packaged products: the five kinds, catalogue views, shop photos with the hidden share of each product, and a
small ``--products package`` dataset (deterministic, per-crop attributes, one kind per class)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.synth.assets import AssetsMissingError, default_assets_dir, require_npm_assets
from trainer.synth.catalog import Catalog, discover_catalog
from trainer.synth.dataset import synthesize
from trainer.synth.difficulty import preset
from trainer.synth.generator import SynthOptions
from trainer.synth.packaging import PACKAGE_KINDS, PackageKind, design_package, package_kind, render_package
from trainer.synth.shop import catalogue_view, compose_shop_photo

OPTIONS = SynthOptions(seed=0, classes=12, scenes_per_class=1, gallery_views=2, scene_size=192, open_set_share=0.3,
                       products="package", shelf_share=0.2, empty_share=0.0)


def _card(width: int = 200, height: int = 160) -> np.ndarray:
    """A striped card: its columns tell where the label sits on a cylinder."""
    card = np.zeros((height, width, 4), np.uint8)
    card[..., 3] = 255
    card[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    card[..., 1] = 120
    card[: height // 4, :, 2] = 255
    return card


def _extent(rgba: np.ndarray) -> tuple[int, int]:
    visible = rgba[..., 3] > 128
    rows, columns = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(columns[-1] - columns[0] + 1)


@pytest.mark.parametrize("kind", PACKAGE_KINDS)
def test_every_kind_renders_an_opaque_silhouette_of_the_package_side(kind: PackageKind) -> None:
    design = design_package(kind, np.random.default_rng(0))
    package = render_package(_card(), design, turn=0.0)
    assert package.dtype == np.uint8 and package.shape[2] == 4
    assert max(package.shape[:2]) == 256
    assert (package[..., 3] > 128).mean() > 0.4
    height, width = _extent(package)
    if kind in (PackageKind.can, PackageKind.bottle):
        assert height > width * (1.5 if kind is PackageKind.bottle else 1.1)  # they stand taller than wide


def test_a_turned_cylinder_shows_another_part_of_its_wrap() -> None:
    design = design_package(PackageKind.can, np.random.default_rng(0))
    front, turned = (render_package(_card(), design, turn=turn) for turn in (0.0, 0.8))
    middle = front.shape[0] // 2
    # the red ramp runs along the card: turning the can moves which columns face the camera
    assert abs(int(front[middle, front.shape[1] // 2, 0]) - int(turned[middle, turned.shape[1] // 2, 0])) > 30


def test_a_box_shows_its_front_and_a_side_face() -> None:
    design = design_package(PackageKind.box, np.random.default_rng(0))
    box = render_package(_card(), design, turn=1.0)  # turned to the left: the right side shows
    row = box[box.shape[0] * 2 // 3].astype(np.float32)
    visible = np.flatnonzero(row[:, 3] > 128)
    # green is one value all over the card: the side face, turned from the light, is clearly darker than the front
    assert row[visible[-6:], 1].mean() < 0.8 * row[visible, 1].max()
    assert row[visible[: len(visible) // 2], 1].mean() > 0.85 * row[visible, 1].max()


def test_the_kind_is_fixed_per_class_and_every_kind_is_used() -> None:
    names = [f"logos:brand-{number}" for number in range(500)]
    assert [package_kind(name) for name in names] == [package_kind(name) for name in names]
    counts = Counter(package_kind(name) for name in names)
    assert set(counts) == set(PACKAGE_KINDS) and min(counts.values()) > 60


def test_a_catalogue_view_is_frontal_on_a_light_background() -> None:
    design = design_package(PackageKind.bottle, np.random.default_rng(0))
    view = catalogue_view(render_package(_card(), design), np.random.default_rng(1), plain=True)
    assert view.shape[0] == view.shape[1]
    assert (view[:4, :4] == 255).all() and (view[-4:, -4:] > 200).all()


def test_shop_photos_report_how_much_of_each_product_is_hidden() -> None:
    rng = np.random.default_rng(3)
    background = rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)
    package = render_package(_card(), design_package(PackageKind.box, np.random.default_rng(0)))
    neighbour = render_package(_card(120, 200), design_package(PackageKind.can, np.random.default_rng(1)))
    hidden = preset("default").model_copy(update={"occlusion_probability": 1.0})
    clear = preset("default").model_copy(update={"occlusion_probability": 0.0})
    occluded = compose_shop_photo(background, [package], [neighbour], [], np.random.default_rng(5), hidden, 256)
    untouched = compose_shop_photo(background, [package], [neighbour], [], np.random.default_rng(5), clear, 256)
    assert 0.05 < occluded.occluded[0] < 0.9
    assert untouched.occluded == [0.0]
    assert untouched.areas[0] > 0 and untouched.image.shape == (256, 256, 3)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    try:
        require_npm_assets(default_assets_dir())
    except AssetsMissingError as error:
        pytest.fail(f"{error} (make test runs it)")
    found = discover_catalog(default_assets_dir())
    quick = [item for item in found.backgrounds if item.source != "plasma" or item.locator.endswith(".jpg")]
    return dataclasses.replace(found, backgrounds=quick)


@pytest.fixture(scope="module")
def runs(catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    first, second = (tmp_path_factory.mktemp(name) for name in ("package-one", "package-two"))
    synthesize(first, OPTIONS, default_assets_dir(), workers=1, catalog=catalog)
    synthesize(second, OPTIONS, default_assets_dir(), workers=2, catalog=catalog)
    return first, second


def _hashes(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}  # fmt: skip


def test_a_package_dataset_is_the_same_bytes_whatever_the_worker_count(runs: tuple[Path, Path]) -> None:
    first, second = runs
    assert _hashes(first) == _hashes(second)


def test_each_class_names_its_package_and_each_crop_its_hidden_share(runs: tuple[Path, Path]) -> None:
    root = runs[0]
    classes = json.loads((root / "classes.json").read_text())
    assert {entry["package"] for entry in classes} <= {kind.value for kind in PACKAGE_KINDS}
    attributes = json.loads((root / "recognition/crop_attributes.json").read_text())
    crops = [line.split()[0] for line in (root / "recognition/test_query_list.txt").read_text().splitlines()]
    assert crops and all(crop in attributes for crop in crops)
    assert all(0.0 <= item["occluded"] <= 1.0 for item in attributes.values())


def test_gallery_views_are_catalogue_shots_on_white(runs: tuple[Path, Path]) -> None:
    root = runs[0]
    views = sorted((root / "images/gallery/test").glob("*_0.jpg"))
    assert views
    for path in views:
        image = cv2.imread(str(path))
        assert image.shape[0] == image.shape[1]
        assert image[:3, :3].mean() > 245  # view 0: the package frontal on white
