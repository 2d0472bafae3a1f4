"""Results of the core, independent of any web framework."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from service.box import Box
from service.gallery import GalleryMatch


@dataclass(frozen=True, slots=True)
class Detection:
    box: Box
    score: float
    class_id: int
    label: str


class ObjectSource(str, Enum):
    detector = "detector"
    whole_image = "whole_image"
    window = "window"  # a sliding window (no detector; ``sliding_windows``)


@dataclass(frozen=True, slots=True)
class RecognizedObject:
    box: Box
    source: ObjectSource
    detection_score: float
    match: GalleryMatch | None
    candidates: list[GalleryMatch]


@dataclass(frozen=True, slots=True)
class Recognition:
    width: int
    height: int
    objects: list[RecognizedObject]
    timings_ms: dict[str, float] = field(default_factory=dict)

