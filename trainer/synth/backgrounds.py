"""Scene backgrounds: Debian wallpapers, scikit-image photos and generated textures, each with its split.

Backgrounds are split too, so a detector is evaluated on backgrounds it never saw: Plasma wallpapers train,
MATE backgrounds validate, GNOME backgrounds and scikit-image photos test. Generated textures always exist
(the npm-only install has no wallpapers) and split by the hash of their key.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trainer.synth.splits import Split, split_of_key

PLASMA_DIR = Path("/usr/share/wallpapers")
MATE_DIR = Path("/usr/share/backgrounds/mate")
GNOME_DIR = Path("/usr/share/backgrounds/gnome")
SOURCE_SPLITS = {"plasma": Split.train, "mate": Split.val, "gnome": Split.test, "skimage": Split.test}
# scikit-image sample photos whose docstrings say public domain or CC0.
SKIMAGE_PHOTOS = {
    "astronaut": "public-domain",
    "chelsea": "CC0-1.0",
    "coffee": "CC0-1.0",
    "rocket": "public-domain",
    "hubble_deep_field": "public-domain",
    "brick": "CC0-1.0",
    "grass": "CC0-1.0",
    "gravel": "CC0-1.0",
}
GENERATED_COUNT = 60
SHIPPABLE_LICENCES = frozenset({"CC0-1.0", "public-domain", "generated"})
_RESOLUTION = re.compile(r"(\d+)x(\d+)")


@dataclass(frozen=True)
class BackgroundAsset:
    name: str
    source: str
    key: str
    licence: str
    locator: str

    @property
    def split(self) -> Split:
        return SOURCE_SPLITS.get(self.source) or split_of_key(self.key)

    @property
    def shippable(self) -> bool:
        return self.licence in SHIPPABLE_LICENCES


def discover_backgrounds() -> list[BackgroundAsset]:
    return [*plasma_wallpapers(), *mate_backgrounds(), *gnome_backgrounds(), *skimage_photos(), *generated()]


def plasma_wallpapers(root: Path = PLASMA_DIR) -> list[BackgroundAsset]:
    assets = []
    for folder in sorted(path for path in root.glob("*/contents/images") if path.is_dir()):
        name = folder.parents[1].name
        chosen = _pick_resolution(sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png")))
        if chosen is not None:
            assets.append(BackgroundAsset(f"plasma:{name}", "plasma", f"plasma:{name}", "GPL-2.0+", str(chosen)))
    return assets


def mate_backgrounds(root: Path = MATE_DIR) -> list[BackgroundAsset]:
    groups: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in {".jpg", ".png"}:
            groups.setdefault(re.sub(r"_\d+x\d+$", "", path.stem), []).append(path)
    # The plain file name is the smallest size of each picture; the _WxH files are larger copies.
    return [
        BackgroundAsset(f"mate:{stem}", "mate", f"mate:{stem}", "GPL-2.0+/CC-BY-SA-4.0", str(paths[0]))
        for stem, paths in sorted(groups.items())
    ]


def gnome_backgrounds(root: Path = GNOME_DIR) -> list[BackgroundAsset]:
    return [
        BackgroundAsset(
            f"gnome:{path.stem}", "gnome", "gnome:" + re.sub(r"-[dl]$", "", path.stem), "CC-BY-SA-3.0", str(path)
        )
        for path in sorted(root.glob("*.webp"))
    ]


def skimage_photos() -> list[BackgroundAsset]:
    return [
        BackgroundAsset(f"skimage:{name}", "skimage", f"skimage:{name}", licence, name)
        for name, licence in sorted(SKIMAGE_PHOTOS.items())
    ]


def generated(count: int = GENERATED_COUNT) -> list[BackgroundAsset]:
    return [
        BackgroundAsset(f"generated:{index:03d}", "generated", f"generated:{index:03d}", "generated", str(index))
        for index in range(count)
    ]


def versions() -> dict[str, str]:
    import skimage

    return {"scikit-image": skimage.__version__,  # type: ignore[attr-defined]  # set at import, not in the stubs
            "generated-backgrounds": f"v1x{GENERATED_COUNT}"}


@functools.lru_cache(maxsize=128)
def load_background(asset: BackgroundAsset, short_side: int) -> np.ndarray:
    """RGB uint8 with its shorter side ``short_side`` pixels (cached: wallpapers decode slowly)."""
    if asset.source == "generated":
        image = generated_texture(int(asset.locator))
    elif asset.source == "skimage":
        import skimage.data

        image = getattr(skimage.data, asset.locator)()
    else:
        image = cv2.imread(asset.locator, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read background {asset.locator}")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    image = np.ascontiguousarray(image[..., :3])
    scale = short_side / min(image.shape[:2])
    size = (max(short_side, round(image.shape[1] * scale)), max(short_side, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def generated_texture(index: int, side: int = 256) -> np.ndarray:
    """A tabletop-like texture: a two-colour gradient with low-frequency noise, and stripes or checks."""
    rng = np.random.default_rng([0x5EED, index])
    low, high = rng.uniform(20, 235, size=(2, 3))
    angle = rng.uniform(0, np.pi)
    grid_y, grid_x = np.mgrid[0:side, 0:side] / side
    direction = (np.cos(angle) * grid_x + np.sin(angle) * grid_y)[..., None]
    image = low + (high - low) * np.clip(direction, 0, 1)
    noise = cv2.resize(rng.normal(0, 1, (8, 8)).astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    image = image + noise[..., None] * rng.uniform(5, 25)
    pattern = index % 3
    if pattern == 1:
        stripes = np.sin(direction[..., 0] * rng.uniform(20, 120) + noise * 2)
        image = image * (1 + 0.12 * stripes[..., None])
    elif pattern == 2:
        cells = int(rng.integers(4, 16))
        checks = ((grid_x * cells).astype(int) + (grid_y * cells).astype(int)) % 2
        image = image * (0.85 + 0.15 * checks[..., None])
    return np.clip(image, 0, 255).astype(np.uint8)


def _pick_resolution(paths: list[Path]) -> Path | None:
    """The smallest picture at least 1024 pixels on its short side (else the largest)."""
    sized = []
    for path in paths:
        match = _RESOLUTION.fullmatch(path.stem)
        if match:
            width, height = int(match.group(1)), int(match.group(2))
            sized.append(
                (
                    min(width, height) < 1024,
                    width * height if min(width, height) >= 1024 else -width * height,
                    str(path),
                    path,
                )
            )
    return min(sized)[3] if sized else None
