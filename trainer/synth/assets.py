"""The installed object assets (logos, emoji, clip art): discovery and rasterising to RGBA arrays.

npm packages live under ``.cache/assets/node_modules`` (``scripts/install-assets.sh``), Debian's clip art under
``/usr/share/openclipart``. Every asset carries its split key and licence, so shipped outputs can keep to
CC0/MIT/public-domain assets.
"""

from __future__ import annotations

import functools
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trainer.synth.splits import brand_key, clipart_key, emoji_key

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "scripts/install-assets.sh (or `make assets`)"
OPENCLIPART_DIR = Path("/usr/share/openclipart/png")
NPM_PACKAGES = ("@iconify-json/logos", "simple-icons", "fluentui-emoji")
# Families never trained on (GUIDE.md): they measure generalisation to other artwork (`--families heldout`).
HELDOUT_NPM_PACKAGES = ("openmoji", "@twemoji/svg", "flag-icons", "cryptocurrency-icons")
SHIPPABLE_LICENCES = frozenset({"CC0-1.0", "MIT", "public-domain"})
# Clip-art categories whose items read as products; every category can serve as a distractor.
PRODUCT_CATEGORIES = frozenset(
    {"food", "tools", "office", "electronics", "containers", "recreation", "transportation", "science", "education"}
)
# Series of near-identical pictures (playing cards, pictograms, road signs) would be look-alikes across splits.
EXCLUDED_PRODUCT_FOLDERS = (
    "recreation/games/cards/",
    "transportation/aiga-symbols/",
    "transportation/roadsigns/",
    "tools/weapons/",
)
MIN_VISIBLE_PIXELS, MIN_VISIBLE_SIDE = 64, 8
# Rendering every SVG asset of the pinned versions (6 min) left this one blank: its gradients have singular
# transforms. Checking each SVG while choosing classes would double the rendering work of a full run.
UNDRAWABLE_SVG = frozenset({"logos:million-icon"})
# Some openclipart files are 168 Mpx and slow to decode; larger ones are skipped (by header: deterministic).
MAX_CLIPART_SIDE = 2048


class AssetsMissingError(RuntimeError):
    """The npm or Debian packages the generator draws from are not installed."""


@dataclass(frozen=True)
class ObjectAsset:
    """One drawable object. ``name`` is unique (``source:item``); ``key`` decides its split."""

    name: str
    source: str
    key: str
    licence: str
    title: str
    locator: str
    colour: str | None = None

    @property
    def shippable(self) -> bool:
        return self.licence in SHIPPABLE_LICENCES


def default_assets_dir() -> Path:
    return Path(os.environ.get("SHITU_ASSETS_DIR", REPO_ROOT / ".cache" / "assets"))


def node_modules(assets_dir: Path) -> Path:
    return Path(assets_dir) / "node_modules"


def require_npm_assets(assets_dir: Path) -> Path:
    modules = node_modules(assets_dir)
    missing = [name for name in NPM_PACKAGES if not (modules / name / "package.json").is_file()]
    if missing:
        raise AssetsMissingError(f"npm assets {', '.join(missing)} not found under {modules}; run {INSTALL_HINT}")
    return modules


def require_heldout_assets(assets_dir: Path) -> Path:
    modules = require_npm_assets(assets_dir)
    missing = [name for name in HELDOUT_NPM_PACKAGES if not (modules / name / "package.json").is_file()]
    if missing:
        raise AssetsMissingError(
            f"held-out families {', '.join(missing)} not found under {modules}; run scripts/install-assets.sh --heldout"
        )
    return modules


def npm_versions(assets_dir: Path, packages: tuple[str, ...] = NPM_PACKAGES) -> dict[str, str]:
    modules = node_modules(assets_dir)
    return {name: json.loads((modules / name / "package.json").read_text())["version"] for name in packages}


def openmoji(modules: Path) -> list[ObjectAsset]:
    """OpenMoji colour SVGs (CC-BY-SA-4.0): evaluation only."""
    folder = modules / "openmoji/color/svg"
    return [_heldout_svg(path, modules, "openmoji", codepoint_key(path.stem), "CC-BY-SA-4.0")
            for path in sorted(folder.glob("*.svg"))]


def twemoji(modules: Path) -> list[ObjectAsset]:
    """Twemoji SVGs (graphics CC-BY-4.0): evaluation only."""
    folder = modules / "@twemoji/svg"
    return [_heldout_svg(path, modules, "twemoji", codepoint_key(path.stem), "CC-BY-4.0")
            for path in sorted(folder.glob("*.svg"))]


def flag_icons(modules: Path) -> list[ObjectAsset]:
    """Country flags, 4x3 (MIT): flat, and full of look-alikes (Norway/Iceland, Chad/Romania)."""
    countries = json.loads((modules / "flag-icons/country.json").read_text(encoding="utf-8"))
    assets = []
    for country in countries:
        path = modules / "flag-icons" / country["flag_4x3"]
        if path.is_file():
            assets.append(ObjectAsset(f"flag-icons:{country['code']}", "flag-icons", f"flag:{country['code']}", "MIT",
                                      country["name"], str(path.relative_to(modules))))
    return sorted(assets, key=lambda asset: asset.name)


def cryptocurrency_icons(modules: Path) -> list[ObjectAsset]:
    """Round coin logos, colour style (CC0-1.0)."""
    folder = modules / "cryptocurrency-icons/svg/color"
    return [_heldout_svg(path, modules, "cryptocurrency-icons", f"coin:{path.stem.lower()}", "CC0-1.0")
            for path in sorted(folder.glob("*.svg"))]


def codepoint_key(stem: str) -> str:
    """OpenMoji's ``1F600`` and Twemoji's ``1f600`` (without the ``FE0F`` selector) share a key."""
    parts = [part for part in stem.lower().split("-") if part != "fe0f"]
    return "emoji-codepoint:" + "-".join(parts)


def _heldout_svg(path: Path, modules: Path, source: str, key: str, licence: str) -> ObjectAsset:
    return ObjectAsset(f"{source}:{path.stem}", source, key, licence, _title(path.stem),
                       str(path.relative_to(modules)))


def iconify_logos(modules: Path) -> list[ObjectAsset]:
    data = json.loads((modules / "@iconify-json/logos/icons.json").read_text(encoding="utf-8"))
    return [
        ObjectAsset(f"logos:{name}", "iconify-logos", brand_key(name), "CC0-1.0", _title(name), name)
        for name in sorted(data["icons"])
    ]


def simple_icons(modules: Path) -> list[ObjectAsset]:
    data = json.loads((modules / "simple-icons/data/simple-icons.json").read_text(encoding="utf-8"))
    assets = []
    for icon in data:
        slug = icon.get("slug") or _simple_icons_slug(icon["title"])
        # An icon without its own licence field falls under the package's CC0.
        licence = icon.get("license", {}).get("type", "CC0-1.0")
        assets.append(
            ObjectAsset(
                f"simple-icons:{slug}", "simple-icons", brand_key(slug), licence, icon["title"], slug, icon["hex"]
            )
        )
    return sorted(assets, key=lambda asset: asset.name)


def fluentui_emoji(modules: Path, style: str) -> list[ObjectAsset]:
    folder = modules / "fluentui-emoji/icons" / style
    return [
        ObjectAsset(
            f"fluentui-{style}:{path.stem}",
            "fluentui-emoji",
            emoji_key(path.stem),
            "MIT",
            _title(path.stem),
            str(path.relative_to(modules)),
        )
        for path in sorted(folder.glob("*.svg"))
    ]


def openclipart(root: Path = OPENCLIPART_DIR) -> list[ObjectAsset]:
    if not root.is_dir():
        return []
    assets = []
    for path in sorted(root.rglob("*.png")):
        # special/ holds gradients and fill patterns, not objects.
        if max(_png_size(path)) > MAX_CLIPART_SIDE or path.relative_to(root).parts[0] == "special":
            continue
        relative = path.relative_to(root)
        assets.append(
            ObjectAsset(
                f"openclipart:{relative.with_suffix('')}",
                "openclipart",
                clipart_key(path.stem),
                "public-domain",
                _title(path.stem),
                str(path),
            )
        )
    return assets


def is_product_clipart(asset: ObjectAsset) -> bool:
    relative = asset.name.split(":", 1)[1]
    return (
        asset.source == "openclipart"
        and relative.split("/", 1)[0] in PRODUCT_CATEGORIES
        and not relative.startswith(EXCLUDED_PRODUCT_FOLDERS)
    )


@functools.lru_cache(maxsize=4)
def _iconify_data(modules: str) -> dict:
    return json.loads((Path(modules) / "@iconify-json/logos/icons.json").read_text(encoding="utf-8"))


def svg_source(asset: ObjectAsset, modules: Path) -> str:
    if asset.source == "iconify-logos":
        data = _iconify_data(str(modules))
        icon = data["icons"][asset.locator]
        width, height = icon.get("width", data.get("width", 16)), icon.get("height", data.get("height", 16))
        return (
            # Some bodies use xlink:href without declaring the prefix (the iconify runtime adds it).
            f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{width}" height="{height}" '
            f'viewBox="{icon.get("left", 0)} {icon.get("top", 0)} {width} {height}">{icon["body"]}</svg>'
        )
    if asset.source == "simple-icons":
        text = (modules / "simple-icons/icons" / f"{asset.locator}.svg").read_text(encoding="utf-8")
        # The files are single-colour paths without a fill: paint them in the brand colour.
        return text.replace("<svg ", f'<svg fill="#{asset.colour}" ', 1)
    return (modules / asset.locator).read_text(encoding="utf-8")


def load_object(asset: ObjectAsset, modules: Path, longest_side: int) -> np.ndarray:
    """RGBA uint8, cropped to the alpha bounding box, longest side ``longest_side`` pixels."""
    if asset.source == "openclipart":
        rgba = _read_png_rgba(Path(asset.locator))
    else:
        import cairosvg

        svg = svg_source(asset, modules)
        png = cairosvg.svg2png(bytestring=svg.encode("utf-8"), output_width=longest_side * 2)
        rgba = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    rgba = crop_to_alpha(rgba)
    scale = longest_side / max(rgba.shape[:2])
    size = (max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale)))
    return cv2.resize(rgba, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def crop_to_alpha(rgba: np.ndarray) -> np.ndarray:
    visible = rgba[..., 3] > 8
    rows, columns = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    if visible.sum() < MIN_VISIBLE_PIXELS or min(rows.size, columns.size) < MIN_VISIBLE_SIDE:
        raise ValueError("the asset is (almost) fully transparent")
    return rgba[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def is_drawable(asset: ObjectAsset) -> bool:
    """Some clip-art files are empty or transparent; of the SVG sets only ``UNDRAWABLE_SVG`` fails to render."""
    if asset.source != "openclipart":
        return asset.name not in UNDRAWABLE_SVG
    try:
        crop_to_alpha(_read_png_rgba(Path(asset.locator)))
    except ValueError:
        return False
    return True


def _read_png_rgba(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read {path}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return np.dstack([cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), np.full(image.shape, 255, np.uint8)])
    if image.shape[2] == 3:
        return np.dstack([cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.full(image.shape[:2], 255, np.uint8)])
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)


def _png_size(path: Path) -> tuple[int, int]:
    with path.open("rb") as handle:
        header = handle.read(24)
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        return (MAX_CLIPART_SIDE + 1, 0)
    return struct.unpack(">II", header[16:24])


def _simple_icons_slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]", "", title.lower())


def _title(name: str) -> str:
    words = re.sub(r"[_\-]+", " ", name).strip()
    return words[:1].upper() + words[1:]
