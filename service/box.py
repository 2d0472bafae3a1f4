"""The one box type of the service: detections, candidates, enrolment regions and stored gallery boxes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Box:
    """Pixel box, exclusive end: the crop is ``image[y1:y2, x1:x2]``."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(x1, y1, x2, y2)``; as a list it is the JSON form of the API and of the gallery store."""
        return (self.x1, self.y1, self.x2, self.y2)
