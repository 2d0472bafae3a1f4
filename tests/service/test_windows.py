"""Sliding windows: every pixel covered at every scale, windows inside the photo, half a window apart."""

from __future__ import annotations

import numpy as np
import pytest

from service.config import PipelineSettings
from service.inference.windows import sliding_windows


@pytest.mark.parametrize(("width", "height"), [(512, 512), (640, 480), (300, 1000), (37, 20)])
def test_each_scale_covers_the_photo_with_windows_inside_it(width: int, height: int) -> None:
    scales = (0.35, 0.5, 0.7)
    boxes = sliding_windows(width, height, scales)
    sides = sorted({box.width for box in boxes})
    assert sides == sorted({max(1, round(scale * min(width, height))) for scale in scales})
    for side in sides:
        covered = np.zeros((height, width), dtype=bool)
        same = [box for box in boxes if box.width == side]
        for box in same:
            assert box.height == side and 0 <= box.x1 and 0 <= box.y1 and box.x2 <= width and box.y2 <= height
            covered[box.y1 : box.y2, box.x1 : box.x2] = True
        assert covered.all()
        # neighbours at most half a window apart, so a product of that size is inside some window
        lefts = sorted({box.x1 for box in same})
        assert all(0 < b - a <= side / 2 + 1 for a, b in zip(lefts, lefts[1:], strict=False))


def test_the_default_scales_give_38_windows_on_a_square_photo() -> None:
    boxes = sliding_windows(512, 512, PipelineSettings().window_scales)
    assert len(boxes) == 25 + 9 + 4 and len(set(boxes)) == len(boxes)


def test_scales_are_fractions_of_the_shorter_side() -> None:
    with pytest.raises(ValueError, match="fractions of the shorter side"):
        PipelineSettings(window_scales=(0.5, 1.5))
