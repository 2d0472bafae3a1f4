"""``--families heldout``: openmoji, twemoji, flag-icons and cryptocurrency-icons, never trained on.

The packages are laid out as npm installs them, with a few real (tiny) SVG files each, so discovery, keys and
the split rule run on files, as they do on the installed packages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trainer.synth.assets import AssetsMissingError, codepoint_key, default_assets_dir, require_npm_assets
from trainer.synth.catalog import choose_classes, discover_catalog
from trainer.synth.splits import Split

SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="8" height="6" fill="#{0}"/></svg>'


def _package(modules: Path, name: str, files: dict[str, str]) -> None:
    (modules / name).mkdir(parents=True, exist_ok=True)
    (modules / name / "package.json").write_text(json.dumps({"name": name, "version": "0.0.1"}))
    for relative, text in files.items():
        path = modules / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def assets_dir(tmp_path: Path) -> Path:
    try:
        source = require_npm_assets(default_assets_dir())
    except AssetsMissingError as error:
        pytest.fail(f"{error} (make test runs it)")
    modules = tmp_path / "node_modules"
    for name in ("@iconify-json/logos", "simple-icons", "fluentui-emoji"):  # required beside the held-out ones
        (modules / name).parent.mkdir(parents=True, exist_ok=True)
        (modules / name).symlink_to(source / name)
    codepoints = [f"1F{600 + number:03X}" for number in range(40)]
    _package(modules, "openmoji", {f"color/svg/{point}.svg": SVG.format("f00") for point in codepoints})
    _package(modules, "@twemoji/svg", {f"{point.lower()}.svg": SVG.format("0f0") for point in codepoints})
    countries = [{"code": code, "name": code.upper(), "flag_4x3": f"flags/4x3/{code}.svg"}
                 for code in ("no", "is", "se", "fi", "dk")]
    _package(modules, "flag-icons", {"country.json": json.dumps(countries),
                                     **{f"flags/4x3/{item['code']}.svg": SVG.format("00f") for item in countries}})
    _package(modules, "cryptocurrency-icons", {f"svg/color/{coin}.svg": SVG.format("ff0") for coin in ("btc", "eth")})
    return tmp_path


def test_one_emoji_code_point_is_one_product_of_one_family(assets_dir: Path) -> None:
    catalog = discover_catalog(assets_dir, "heldout")
    sources = {asset.source for asset in catalog.products}
    assert sources == {"openmoji", "twemoji", "flag-icons", "cryptocurrency-icons"}
    emoji = [asset for asset in catalog.products if asset.source in ("openmoji", "twemoji")]
    assert len(emoji) == 40 and len({asset.key for asset in emoji}) == 40
    assert codepoint_key("1F600") == codepoint_key("1f600") == codepoint_key("1F600-FE0F")
    assert catalog.heldout and not any(asset.source == "fluentui-emoji" for asset in catalog.products)


def test_held_out_families_have_no_train_split(assets_dir: Path) -> None:
    catalog = discover_catalog(assets_dir, "heldout")
    classes = choose_classes(catalog.products, None, 0.2, heldout=True)
    splits = {item.split for item in classes}
    assert Split.train not in splits and Split.test in splits
    assert len(classes) == len(catalog.products)


def test_missing_held_out_packages_name_the_install_option(assets_dir: Path) -> None:
    shutil.rmtree(assets_dir / "node_modules" / "flag-icons")
    with pytest.raises(AssetsMissingError, match="--heldout"):
        discover_catalog(assets_dir, "heldout")
