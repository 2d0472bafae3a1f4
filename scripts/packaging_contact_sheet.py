"""The contact sheet of docs/data.md: the five package kinds, catalogue views and shop photos with their crops.

    .venv/bin/shitu data synth --out data/pack-sheet --classes 60 --scenes-per-class 1 --products package \\
        --shelf-share 0 --empty-share 0
    .venv/bin/python scripts/packaging_contact_sheet.py data/pack-sheet docs/packaging/contact_sheet.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from trainer.synth.assets import default_assets_dir
from trainer.synth.catalog import discover_catalog, render_product
from trainer.synth.packaging import PACKAGE_KINDS, design_package, render_package
from trainer.synth.splits import stable_hash

TILE = 160
SHOWCASE = ("logos:firefox", "simple-icons:cocacola", "fluentui-modern:red-apple")


def tile(image: np.ndarray, caption: str, background: int = 235) -> np.ndarray:
    """The image fitted into a square tile (RGB) with a caption under it."""
    canvas = np.full((TILE + 22, TILE, 3), background, np.uint8)
    if image.shape[2] == 4:
        alpha = image[..., 3:4] / 255.0
        image = (image[..., :3] * alpha + background * (1 - alpha)).astype(np.uint8)
    scale = (TILE - 8) / max(image.shape[:2])
    fitted = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                        interpolation=cv2.INTER_AREA)
    top, left = (TILE - fitted.shape[0]) // 2, (TILE - fitted.shape[1]) // 2
    canvas[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    cv2.putText(canvas, caption, (4, TILE + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (20, 20, 20), 1, cv2.LINE_AA)
    return canvas


def kinds_rows() -> list[np.ndarray]:
    catalog = discover_catalog(default_assets_dir())
    products = {asset.name: asset for asset in catalog.products}
    rows = []
    for name in SHOWCASE:
        card = render_product(products[name], catalog.modules)
        tiles = []
        for kind in PACKAGE_KINDS:
            design = design_package(kind, np.random.default_rng(stable_hash(name)))
            for turn in (0.0, 0.8):
                tiles.append(tile(render_package(card, design, turn=turn), f"{kind.value} turn {turn}"))
        rows.append(np.hstack(tiles))
    return rows


def dataset_rows(root: Path, columns: int) -> list[np.ndarray]:
    classes = {entry["id"]: entry for entry in json.loads((root / "classes.json").read_text())}
    views = sorted((root / "images/gallery/train").glob("*.jpg"))[: columns]
    gallery = [tile(_rgb(path), f"catalogue {classes[int(path.stem.split('_')[0])]['package']} "
                    f"v{path.stem.split('_')[1]}") for path in views]
    attributes = json.loads((root / "recognition/crop_attributes.json").read_text())
    scenes = sorted((root / "images/scenes/train").glob("0*.jpg"))[: columns // 2]
    photos = []
    for scene in scenes:
        photos.append(tile(_rgb(scene), "shop photo"))
        crop = root / "images/crops/train" / f"{scene.stem}_0.jpg"
        hidden = attributes[f"../images/crops/train/{crop.name}"]["occluded"]
        photos.append(tile(_rgb(crop), f"its crop, {hidden:.0%} hidden"))
    occluded = [name for name, value in attributes.items() if value["occluded"] >= 0.2 and "/train/" in name]
    extra = [tile(_rgb(root / "recognition" / name), f"crop {attributes[name]['occluded']:.0%} hidden")
             for name in occluded[: columns]]
    return [np.hstack(row + [np.full((TILE + 22, TILE, 3), 235, np.uint8)] * (columns - len(row)))
            for row in (gallery, photos, extra) if row]


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def main() -> None:
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = kinds_rows()
    rows += dataset_rows(root, len(PACKAGE_KINDS) * 2)
    sheet = np.vstack(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    sys.stdout.write(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]})\n")


if __name__ == "__main__":
    main()
