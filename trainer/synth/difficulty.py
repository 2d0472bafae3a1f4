"""How hard the generated photos are: one pydantic model, with named presets.

``default`` is the verified prototype's setting (rotation 30°, perspective 0.18, occlusion 0.25), under which an
ImageNet backbone without fine-tuning reaches recall@1 ≈ 0.11: the level the trained embedder is judged at.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Difficulty(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rotation_deg: float = Field(30.0, ge=0, le=180, description="objects turn by up to ± this many degrees")
    perspective: float = Field(0.18, ge=0, lt=0.5, description="each card corner moves by up to this share of its size")
    scale: tuple[float, float] = Field(
        (0.2, 0.65), description="longest object side as a share of the scene side (x n^-0.35 for n products)"
    )
    occlusion_probability: float = Field(0.25, ge=0, le=1, description="chance of a bar across an object")
    occlusion_extent: tuple[float, float] = Field((0.15, 0.35), description="bar width as a share of the object")
    photometric: float = Field(1.0, ge=0, le=3, description="strength of lighting, colour cast and noise")
    shadow_probability: float = Field(0.5, ge=0, le=1)
    blur_probability: float = Field(0.3, ge=0, le=1)
    blur_sigma: tuple[float, float] = Field((0.5, 1.5), description="Gaussian blur sigma in pixels")
    jpeg_quality: tuple[int, int] = Field((50, 95), description="JPEG quality of the saved scene")
    targets: tuple[int, int] = Field((1, 3), description="products per scene")
    distractors: tuple[int, int] = Field((0, 3), description="unlabelled clip-art objects per scene")

    @model_validator(mode="after")
    def _ordered_ranges(self) -> Difficulty:
        for name in ("scale", "occlusion_extent", "blur_sigma", "jpeg_quality", "targets", "distractors"):
            low, high = getattr(self, name)
            if low > high or low < 0:
                raise ValueError(f"{name} must be a (low, high) range with 0 <= low <= high")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError("jpeg_quality must lie in [1, 100]")
        if self.targets[0] < 1:
            raise ValueError("a scene needs at least one target")
        if self.scale[1] > 0.95:
            raise ValueError("scale above 0.95 leaves no room to place an object")
        return self


PRESETS: dict[str, Difficulty] = {
    # Paste and scale only: the sanity level (R@1 ≈ 1.0 for any sensible embedder).
    "clean": Difficulty(
        rotation_deg=0,
        perspective=0,
        occlusion_probability=0,
        photometric=0,
        shadow_probability=0,
        blur_probability=0,
        jpeg_quality=(95, 95),
        distractors=(0, 0),
    ),
    "mild": Difficulty(rotation_deg=10, perspective=0.08, occlusion_probability=0.1, photometric=0.6),
    "default": Difficulty(),
    "hard": Difficulty(
        rotation_deg=60,
        perspective=0.25,
        scale=(0.15, 0.55),
        occlusion_probability=0.4,
        occlusion_extent=(0.2, 0.45),
        photometric=1.5,
        blur_probability=0.5,
        blur_sigma=(0.8, 2.0),
        jpeg_quality=(30, 85),
        distractors=(1, 5),
    ),
}


def preset(name: str) -> Difficulty:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown difficulty {name!r}; choose one of {', '.join(PRESETS)}") from None
