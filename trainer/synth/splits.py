"""Which split an asset belongs to: a stable hash of a normalised key, so nothing leaks across splits.

Keys group assets that look alike: one brand across simple-icons and iconify (``adobe-photoshop``,
``adobephotoshop``, ``adobe-photoshop-icon`` → ``adobephotoshop``), every style and skin tone of one emoji, the
numbered variants of one clip-art file. ``sha1(key) % 10``: 0-6 train, 7 val, 8-9 test.
"""

from __future__ import annotations

import hashlib
import re
from enum import Enum


class Split(str, Enum):
    train = "train"
    val = "val"
    test = "test"


SPLITS = (Split.train, Split.val, Split.test)

# iconify names variants of one logo with these suffixes; simple-icons has one slug per brand.
_BRAND_SUFFIXES = ("-icon", "-wordmark", "-horizontal", "-vertical", "-monochrome", "-text", "-logo", "-mark")
_BRAND_VARIANT = re.compile(r"(-(dark|light|alt|\d+))+$")
_SKIN_TONE = re.compile(r"-(default|light|medium-light|medium|medium-dark|dark)$")
_CLIPART_NUMBER = re.compile(r"[_\-\s]*\d*$")


def stable_hash(text: str) -> int:
    """A hash that does not change between runs or Python versions (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def bucket(key: str) -> int:
    return stable_hash(key) % 10


def split_of_key(key: str) -> Split:
    value = bucket(key)
    if value <= 6:
        return Split.train
    return Split.val if value == 7 else Split.test


def brand_key(name: str) -> str:
    """``adobe-photoshop-icon`` and simple-icons' ``adobephotoshop`` give the same key."""
    stem = name.lower()
    changed = True
    while changed:
        changed = False
        for suffix in _BRAND_SUFFIXES:
            if stem.endswith(suffix) and len(stem) > len(suffix):
                stem, changed = stem[: -len(suffix)], True
        trimmed = _BRAND_VARIANT.sub("", stem)
        if trimmed and trimmed != stem:
            stem, changed = trimmed, True
    return re.sub(r"[^a-z0-9]", "", stem) or name.lower()


def emoji_key(name: str) -> str:
    """Every style (flat, modern, high contrast) and skin tone of one emoji share a key."""
    return "emoji:" + _SKIN_TONE.sub("", name.lower())


def clipart_key(stem: str) -> str:
    """``chemistry_flask_matthew__01`` and ``…__02`` share a key."""
    return "clipart:" + (_CLIPART_NUMBER.sub("", stem.lower()) or stem.lower())
