"""What a dataset is made of: the product classes of each split, their backgrounds and distractors.

The choice of classes does not depend on the seed (a seed changes the photos, not the products), and a
product's card design is drawn from its own name, so galleries and queries of different runs match.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from trainer.synth import assets, backgrounds
from trainer.synth.assets import ObjectAsset
from trainer.synth.backgrounds import BackgroundAsset
from trainer.synth.cards import CARD_SIDE, design_card, render_card
from trainer.synth.splits import SPLITS, Split, split_of_key, stable_hash

SPLIT_SHARES = {Split.train: 0.7, Split.val: 0.1, Split.test: 0.2}
DEBIAN_PACKAGES = ("openclipart-png", "plasma-workspace-wallpapers", "mate-backgrounds", "gnome-backgrounds")
CARD_STREAM = 0xCA4D
_TONES = frozenset({"light", "medium", "dark"})


@dataclass(frozen=True)
class ProductClass:
    class_id: int
    asset: ObjectAsset
    split: Split
    open_set: bool


@dataclass(frozen=True)
class Catalog:
    products: list[ObjectAsset]
    distractors: list[ObjectAsset]
    backgrounds: list[BackgroundAsset]
    versions: dict[str, str]
    modules: Path
    heldout: bool = False  # the families kept out of training (no train split)


def discover_catalog(assets_dir: Path, families: str = "training") -> Catalog:
    """``training``: the families fine for training; ``heldout``: the ones kept out of it (evaluation only)."""
    if families == "heldout":
        return _heldout_catalog(assets_dir)
    if families != "training":
        raise ValueError(f"unknown families {families!r}: training or heldout")
    modules = assets.require_npm_assets(assets_dir)
    emoji = _default_skin_tones(assets.fluentui_emoji(modules, "modern"))
    clipart = assets.openclipart()
    products = [
        *assets.iconify_logos(modules),
        *assets.simple_icons(modules),
        *emoji,
        *(asset for asset in clipart if assets.is_product_clipart(asset)),
    ]
    # Without Debian's clip art, the flat emoji style serves as unlabelled clutter.
    distractors = clipart or _default_skin_tones(assets.fluentui_emoji(modules, "flat"))
    versions = {**assets.npm_versions(assets_dir), **backgrounds.versions(), **debian_versions(), **library_versions()}
    return Catalog(products, distractors, backgrounds.discover_backgrounds(), versions, modules)


def _heldout_catalog(assets_dir: Path) -> Catalog:
    """OpenMoji and Twemoji share their code points: each code point goes to one of them (by hash), so one
    benchmark never holds the same emoji twice as two products."""
    modules = assets.require_heldout_assets(assets_dir)
    emoji = [asset for asset in [*assets.openmoji(modules), *assets.twemoji(modules)]
             if (stable_hash("family:" + asset.key) % 2 == 0) == (asset.source == "openmoji")]
    products = [*emoji, *assets.flag_icons(modules), *assets.cryptocurrency_icons(modules)]
    training = _default_skin_tones(assets.fluentui_emoji(modules, "flat"))
    versions = {**assets.npm_versions(assets_dir, assets.NPM_PACKAGES + assets.HELDOUT_NPM_PACKAGES),
                **backgrounds.versions(), **debian_versions(), **library_versions()}
    return Catalog(products, assets.openclipart() or training, backgrounds.discover_backgrounds(), versions, modules,
                   heldout=True)


def choose_classes(products: list[ObjectAsset], count: int | None, open_set_share: float, heldout: bool = False
                   ) -> list[ProductClass]:
    """``count`` classes (all when ``None``) shared 70/10/20 over the splits; ids are contiguous from train.

    ``heldout`` (families never trained on): no train split; the val bucket stays val (to calibrate ``min_score``)
    and every other bucket is test, shared 10/90 by ``count``.
    """
    by_split: dict[Split, list[ObjectAsset]] = {split: [] for split in SPLITS}
    for asset in products:
        split = split_of_key(asset.key)
        by_split[Split.test if heldout and split is Split.train else split].append(asset)
    available = {split: len(members) for split, members in by_split.items()}
    quotas = _heldout_quotas(count, available) if heldout else _quotas(count, available)
    classes: list[ProductClass] = []
    for split in SPLITS:
        ranked = sorted(by_split[split], key=lambda asset: (stable_hash("select:" + asset.name), asset.name))
        chosen = sorted(_first_drawable(ranked, quotas[split]), key=lambda asset: asset.name)
        open_keys = _open_set_keys(chosen, open_set_share) if split is not Split.train else set()
        classes += [
            ProductClass(len(classes) + offset, asset, split, asset.key in open_keys)
            for offset, asset in enumerate(chosen)
        ]
    return classes


def render_product(asset: ObjectAsset, modules: Path) -> np.ndarray:
    """The product's card (RGBA); its design depends only on the asset's name."""
    logo = assets.load_object(asset, modules, CARD_SIDE)
    design = design_card(np.random.default_rng([CARD_STREAM, stable_hash(asset.name)]), logo)
    return render_card(logo, design)


def library_versions() -> dict[str, str]:
    """Rasterising, warping and JPEG coding can change bytes between library versions."""
    import cv2

    return {"numpy": np.__version__, "opencv": cv2.__version__, "cairosvg": metadata.version("cairosvg")}


def debian_versions() -> dict[str, str]:
    if shutil.which("dpkg-query") is None:
        return {}
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Version} ${db:Status-Status}\\n", *DEBIAN_PACKAGES],
        capture_output=True,
        text=True,
        check=False,
    )
    versions = {}
    for line in result.stdout.splitlines():
        package, version, status = (line.split() + ["", ""])[:3]
        if status == "installed":
            versions[package] = version
    return versions


def _heldout_quotas(count: int | None, available: dict[Split, int]) -> dict[Split, int]:
    if count is None:
        return dict(available)
    val = max(1, math.floor(count * 0.1)) if count >= 3 else 0
    wanted = {Split.train: 0, Split.val: val, Split.test: count - val}
    return {split: min(value, available[split]) for split, value in wanted.items()}


def _quotas(count: int | None, available: dict[Split, int]) -> dict[Split, int]:
    if count is None:
        return dict(available)
    wanted = {
        Split.val: math.floor(count * SPLIT_SHARES[Split.val]),
        Split.test: math.floor(count * SPLIT_SHARES[Split.test]),
    }
    if count >= 3:
        wanted = {split: max(1, value) for split, value in wanted.items()}
    wanted[Split.train] = count - wanted[Split.val] - wanted[Split.test]
    return {split: min(value, available[split]) for split, value in wanted.items()}


def _first_drawable(ranked: list[ObjectAsset], count: int) -> list[ObjectAsset]:
    chosen: list[ObjectAsset] = []
    for asset in ranked:
        if len(chosen) == count:
            break
        if assets.is_drawable(asset):
            chosen.append(asset)
    return chosen


def _open_set_keys(chosen: list[ObjectAsset], share: float) -> set[str]:
    """Whole keys leave the gallery, so an open-set query has no look-alike of the same brand there."""
    keys = sorted({asset.key for asset in chosen}, key=lambda key: (stable_hash("open-set:" + key), key))
    if share <= 0 or len(keys) < 2:
        return set()
    return set(keys[: min(len(keys) - 1, max(1, round(share * len(keys))))])


def _default_skin_tones(emoji: list[ObjectAsset]) -> list[ObjectAsset]:
    """One emoji per skin-tone family: ``waving-hand-default`` stays, ``waving-hand-dark`` goes."""
    names = {asset.name for asset in emoji}
    kept = []
    for asset in emoji:
        base, _, tone = asset.name.rpartition("-")
        if tone in _TONES and f"{base}-default" in names:
            continue
        if base.endswith("-medium") and f"{base.removesuffix('-medium')}-default" in names:
            continue
        kept.append(asset)
    return kept
