"""Split keys, difficulty knobs and exact boxes: the pure parts of the synthetic data generator."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.synth.cards import CardDesign, render_card
from trainer.synth.command import difficulty_with_overrides
from trainer.synth.difficulty import PRESETS, Difficulty, preset
from trainer.synth.scenes import compose_empty, compose_scene, compose_shelf, mask_box
from trainer.synth.splits import Split, brand_key, clipart_key, emoji_key, split_of_key

# Geometry only: no lighting, shadow, noise, blur or occlusion changes a pixel outside the objects.
GEOMETRY_ONLY = Difficulty(
    rotation_deg=40, perspective=0.2, scale=(0.3, 0.7), occlusion_probability=0, photometric=0,
    shadow_probability=0, blur_probability=0, targets=(1, 1), distractors=(0, 0),
)  # fmt: skip


def test_one_brand_one_key_across_simple_icons_and_iconify() -> None:
    assert brand_key("adobe-photoshop") == brand_key("adobephotoshop") == brand_key("adobe-photoshop-icon")
    assert brand_key("airbnb-icon") == brand_key("airbnb") == "airbnb"
    assert brand_key("github-octocat") != brand_key("github")


def test_emoji_styles_and_skin_tones_share_a_key() -> None:
    assert emoji_key("thumbs-up-default") == emoji_key("thumbs-up-medium-dark") == emoji_key("thumbs-up")
    assert emoji_key("red-apple") != emoji_key("green-apple")
    assert clipart_key("chemistry_flask_matthew__01") == clipart_key("chemistry_flask_matthew__02")


def test_split_shares_follow_the_hash_buckets() -> None:
    splits = [split_of_key(f"brand{index}") for index in range(20_000)]
    shares = {split: splits.count(split) / len(splits) for split in Split}
    assert shares[Split.train] == pytest.approx(0.7, abs=0.015)
    assert shares[Split.val] == pytest.approx(0.1, abs=0.01)
    assert shares[Split.test] == pytest.approx(0.2, abs=0.01)
    assert [split_of_key(f"brand{index}") for index in range(50)] == splits[:50]


def test_presets_grade_the_difficulty() -> None:
    assert preset("default").rotation_deg == 30 and preset("default").perspective == 0.18
    assert preset("default").occlusion_probability == 0.25
    rotations = [PRESETS[name].rotation_deg for name in ("clean", "mild", "default", "hard")]
    assert rotations == sorted(rotations) and rotations[0] == 0
    with pytest.raises(ValueError, match="unknown difficulty"):
        preset("extreme")


def test_knob_overrides_parse_numbers_and_ranges() -> None:
    tuned = difficulty_with_overrides("mild", ["rotation_deg=45", "scale=0.1,0.5", "jpeg_quality=60,70"])
    assert tuned.rotation_deg == 45 and tuned.scale == (0.1, 0.5) and tuned.jpeg_quality == (60, 70)
    assert tuned.perspective == preset("mild").perspective
    with pytest.raises(ValueError, match="knob=value"):
        difficulty_with_overrides("default", ["spin=3"])
    with pytest.raises(ValueError):
        difficulty_with_overrides("default", ["scale=0.7,0.2"])


@pytest.mark.parametrize("seed", range(6))
def test_box_is_the_tight_box_of_the_pasted_card(seed: int) -> None:
    """A white card on black: the pixels at >= half brightness are exactly those with warped alpha >= 0.5."""
    background = np.zeros((300, 300, 3), np.uint8)
    card = np.full((90, 150, 4), 255, np.uint8)
    scene = compose_scene(background, [card], [], np.random.default_rng(seed), GEOMETRY_ONLY, 256)
    brightness = scene.image.max(axis=2).astype(np.float32) / 255.0
    assert scene.boxes[0] == mask_box(brightness, 0.5)
    x, y, width, height = scene.boxes[0]
    assert 0 <= x and 0 <= y and x + width <= 256 and y + height <= 256
    assert scene.areas[0] == int((brightness >= 0.5).sum())


@pytest.mark.parametrize("seed", range(4))
def test_box_of_a_designed_card_matches_its_silhouette(seed: int) -> None:
    """A real card (logo, band, rounded corners) on a plain background far from the card's colours."""
    rng = np.random.default_rng(seed)
    logo = np.zeros((60, 80, 4), np.uint8)
    logo[10:50, 10:70] = (20, 120, 200, 255)
    design = CardDesign((240, 235, 220), (200, 30, 30), 0.12, 0.18, 0.06)
    card = render_card(logo, design, side=200)
    background = np.full((300, 300, 3), (0, 60, 0), np.uint8)
    scene = compose_scene(background, [card], [], rng, GEOMETRY_ONLY, 256)
    difference = np.abs(scene.image.astype(np.int32) - background[0, 0]).sum(axis=2)
    silhouette = mask_box((difference > 40).astype(np.float32), 0.5)
    assert silhouette is not None
    # The visible silhouette (any trace of the card) holds the alpha >= 0.5 box and exceeds it by at most the
    # one pixel of anti-aliased edge on each side.
    box_x, box_y, box_width, box_height = scene.boxes[0]
    seen_x, seen_y, seen_width, seen_height = silhouette
    assert 0 <= box_x - seen_x <= 1 and 0 <= box_y - seen_y <= 1
    assert 0 <= (seen_x + seen_width) - (box_x + box_width) <= 1
    assert 0 <= (seen_y + seen_height) - (box_y + box_height) <= 1


def test_several_targets_get_one_box_each_inside_the_scene() -> None:
    card = np.full((80, 80, 4), 255, np.uint8)
    difficulty = preset("hard").model_copy(update={"targets": (3, 3)})
    for seed in range(5):
        scene = compose_scene(np.zeros((256, 256, 3), np.uint8), [card] * 3, [card], np.random.default_rng(seed),
                              difficulty, 200)  # fmt: skip
        assert len(scene.boxes) == 3
        for x, y, width, height in scene.boxes:
            assert x >= 0 and y >= 0 and width > 0 and height > 0 and x + width <= 200 and y + height <= 200
        assert difficulty.jpeg_quality[0] <= scene.jpeg_quality <= difficulty.jpeg_quality[1]


def test_scene_is_a_pure_function_of_its_generator() -> None:
    card = np.full((80, 120, 4), 200, np.uint8)
    background = np.random.default_rng(9).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    first = compose_scene(background, [card, card], [card], np.random.default_rng(3), preset("default"), 128)
    again = compose_scene(background, [card, card], [card], np.random.default_rng(3), preset("default"), 128)
    other = compose_scene(background, [card, card], [card], np.random.default_rng(4), preset("default"), 128)
    assert np.array_equal(first.image, again.image) and first.boxes == again.boxes
    assert not np.array_equal(first.image, other.image)


@pytest.mark.parametrize("seed", range(4))
def test_shelf_boxes_are_the_visible_parts_of_products_in_rows(seed: int) -> None:
    cards = [np.full((100, 80, 4), 255, np.uint8), np.full((60, 120, 4), 255, np.uint8)]
    shelf = compose_shelf(np.zeros((300, 300, 3), np.uint8), cards, [], np.random.default_rng(seed), GEOMETRY_ONLY,
                          256, (5, 30))  # fmt: skip
    assert 3 <= len(shelf.boxes) <= 30 and len(shelf.boxes) == len(shelf.hidden) == len(shelf.products)
    for (x, y, width, height), area in zip(shelf.boxes, shelf.areas, strict=True):
        assert 0 <= x and 0 <= y and x + width <= 256 and y + height <= 256
        assert 0 < area <= width * height
    # white cards on black: every bright pixel lies in some product's visible box (give or take the one pixel of
    # anti-aliased edge where two cards overlap and neither shows half of itself)
    bright = shelf.image.max(axis=2) >= 128
    covered = np.zeros_like(bright)
    for x, y, width, height in shelf.boxes:
        covered[max(0, y - 1) : y + height + 1, max(0, x - 1) : x + width + 1] = True
    assert not (bright & ~covered).any()
    assert {pick for pick in shelf.products} <= {0, 1}


def test_an_empty_scene_has_clutter_and_no_product() -> None:
    clutter = np.zeros((50, 50, 4), np.uint8)
    clutter[10:40, 10:40] = 255
    image = compose_empty(np.zeros((300, 300, 3), np.uint8), [clutter], np.random.default_rng(0), GEOMETRY_ONLY, 128)
    assert image.shape == (128, 128, 3) and image.max() > 0
