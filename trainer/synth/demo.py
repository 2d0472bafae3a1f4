"""The demo gallery: 30 products rendered from CC0/MIT assets and five query photos of them.

``make run`` generates it at start-up (nothing rendered is committed), and the service imports
``gallery_list.txt`` into an empty gallery, so a new user can send ``queries/query_1.jpg`` (with a detector) or
its close-ups ``queries/query_1_1.jpg``… (one product each) and see them recognised.
Backgrounds of the query photos are public-domain/CC0 scikit-image photos and generated textures only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from service.box import Box
from service.inference.image import crop
from trainer.synth import assets, backgrounds
from trainer.synth.assets import ObjectAsset
from trainer.synth.cards import flatten_card
from trainer.synth.catalog import render_product
from trainer.synth.difficulty import Difficulty
from trainer.synth.scenes import compose_scene, encode_jpeg
from trainer.synth.writer import prepare_output, write_json, write_label_list

# fluentui-emoji (MIT) name → product label
EMOJI_PRODUCTS = {
    "red-apple": "Red apple",
    "banana": "Banana",
    "baguette-bread": "Baguette",
    "cheese-wedge": "Cheese",
    "canned-food": "Canned food",
    "teapot": "Teapot",
    "hot-beverage": "Coffee",
    "bottle-with-popping-cork": "Sparkling wine",
    "baby-bottle": "Baby bottle",
    "glass-of-milk": "Milk",
    "chocolate-bar": "Chocolate bar",
    "lollipop": "Lollipop",
    "honey-pot": "Honey",
    "pineapple": "Pineapple",
    "watermelon": "Watermelon",
    "mobile-phone": "Mobile phone",
    "laptop": "Laptop",
    "camera": "Camera",
    "headphone": "Headphones",
    "lipstick": "Lipstick",
    "teddy-bear": "Teddy bear",
    "battery": "Battery",
}
# @iconify-json/logos (CC0) name → product label
LOGO_PRODUCTS = {
    "firefox": "Firefox",
    "chrome": "Chrome",
    "python": "Python",
    "docker-icon": "Docker",
    "android-icon": "Android",
    "nvidia": "NVIDIA",
    "ubuntu": "Ubuntu",
    "spotify-icon": "Spotify",
}
QUERY_COUNT = 5
DEMO_OUTPUTS = ("images", "queries", "gallery_list.txt", "queries.json", "products.json")
DEMO_SEED = 2024
# Close to a shop photo: a little turn and tilt, soft light, no occlusion, big enough to read.
QUERY_DIFFICULTY = Difficulty(
    rotation_deg=10, perspective=0.05, scale=(0.3, 0.5), occlusion_probability=0, photometric=0.4,
    shadow_probability=0.5, blur_probability=0, jpeg_quality=(90, 90), targets=(1, 3), distractors=(0, 0),
)  # fmt: skip


def demo_products(modules: Path) -> list[tuple[ObjectAsset, str]]:
    """The products with their labels; all of them CC0 or MIT."""
    emoji = {asset.name.split(":", 1)[1]: asset for asset in assets.fluentui_emoji(modules, "modern")}
    logos = {asset.name.split(":", 1)[1]: asset for asset in assets.iconify_logos(modules)}
    chosen = [(emoji[name], label) for name, label in EMOJI_PRODUCTS.items()]
    chosen += [(logos[name], label) for name, label in LOGO_PRODUCTS.items()]
    not_shippable = [asset.name for asset, _ in chosen if not asset.shippable]
    if not_shippable:
        raise ValueError(f"demo assets must be CC0/MIT/public domain: {not_shippable}")
    return chosen


def build_demo(out: Path, assets_dir: Path | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Writes ``images/``, ``gallery_list.txt`` (path TAB label), ``queries/`` and ``queries.json``."""
    modules = assets.require_npm_assets(assets_dir or assets.default_assets_dir())
    out = Path(out)
    prepare_output(out, overwrite, DEMO_OUTPUTS)
    products = demo_products(modules)
    cards = {asset.name: render_product(asset, modules) for asset, _ in products}
    entries, provenance = [], []
    for asset, label in products:
        file = f"images/{asset.name.split(':', 1)[1]}.jpg"
        _write(out / file, encode_jpeg(flatten_card(cards[asset.name]), 95))
        entries.append((file, label))
        provenance.append({"file": file, "label": label, "asset": asset.name, "licence": asset.licence})
    write_label_list(out / "gallery_list.txt", entries, separator="\t")
    write_json(out / "products.json", provenance)
    queries = _queries(out, products, cards)
    write_json(out / "queries.json", queries)
    return {"products": len(products), "queries": len(queries)}


def _queries(out: Path, products: list[tuple[ObjectAsset, str]], cards: dict[str, np.ndarray]) -> list[dict]:
    scenery = [item for item in backgrounds.discover_backgrounds() if item.source in {"skimage", "generated"}]
    scenery = [item for item in scenery if item.shippable]
    records = []
    for number in range(1, QUERY_COUNT + 1):
        rng = np.random.default_rng([DEMO_SEED, number])
        count = int(rng.integers(QUERY_DIFFICULTY.targets[0], QUERY_DIFFICULTY.targets[1] + 1))
        chosen = [products[index] for index in rng.choice(len(products), count, replace=False)]
        background = backgrounds.load_background(scenery[int(rng.integers(len(scenery)))], 640)
        scene = compose_scene(background, [cards[asset.name] for asset, _ in chosen], [], rng, QUERY_DIFFICULTY, 512)
        file = f"queries/query_{number}.jpg"
        _write(out / file, encode_jpeg(scene.image, scene.jpeg_quality))
        objects = [{"label": label, "box": list(box)} for (_, label), box in zip(chosen, scene.boxes, strict=True)]
        closeups = []
        for index, ((_, label), box) in enumerate(zip(chosen, scene.boxes, strict=True), start=1):
            # One product a photo: what a service without a detector can answer (the default, for now).
            closeup = f"queries/query_{number}_{index}.jpg"
            _write(out / closeup, encode_jpeg(_closeup(scene.image, box), scene.jpeg_quality))
            closeups.append({"file": closeup, "label": label})
        records.append({"file": file, "objects": objects, "closeups": closeups})
    return records


def _closeup(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The product's box (x, y, width, height) with a margin of 8 % a side, inside the photo."""
    x, y, width, height = box
    margin_x, margin_y = round(0.08 * width), round(0.08 * height)
    # slicing stops at the far edges by itself; the near ones are clamped
    return crop(image, Box(max(0, x - margin_x), max(0, y - margin_y), x + width + margin_x, y + height + margin_y))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
