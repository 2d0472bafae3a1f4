from __future__ import annotations

import cv2
import numpy as np
import pytest

from service.config import LimitsSettings, Settings
from service.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType
from service.inference.image import DecodeLimits, decode_image, normalize, resize
from service.inference.manifest import Interpolation, Preprocess
from tests.service.images import coffee, encode, png_header

LIMITS = DecodeLimits(max_pixels=40_000_000, max_side_px=16_384)


def _swatch() -> np.ndarray:
    image = np.zeros((8, 12, 3), dtype=np.uint8)
    image[:, :4] = (255, 0, 0)
    image[:, 4:8] = (0, 255, 0)
    image[:, 8:] = (0, 0, 255)
    return image


@pytest.mark.parametrize("suffix, media_type", [(".png", "image/png"), (".bmp", "image/bmp"), (".webp", "image/webp")])
def test_lossless_formats_decode_to_the_same_rgb_pixels(suffix: str, media_type: str) -> None:
    swatch = _swatch()
    extra = [1, 100] if suffix == ".webp" else []
    import cv2

    data = cv2.imencode(suffix, swatch[:, :, ::-1], extra)[1].tobytes()

    decoded = decode_image(data, LIMITS)

    assert decoded.media_type == media_type
    np.testing.assert_array_equal(decoded.pixels, swatch)


def test_jpeg_decodes_as_rgb_like_cv2_imread_reversed() -> None:
    photo = coffee()

    decoded = decode_image(encode(photo), LIMITS)

    assert decoded.media_type == "image/jpeg"
    assert (decoded.width, decoded.height) == (photo.shape[1], photo.shape[0])
    assert np.abs(decoded.pixels.astype(int) - photo.astype(int)).mean() < 3.0


def test_empty_and_foreign_bytes_are_rejected() -> None:
    with pytest.raises(InvalidImage):
        decode_image(b"", LIMITS)
    with pytest.raises(UnsupportedMediaType):
        decode_image(b"GIF89a" + b"\0" * 100, LIMITS)


def test_truncated_jpeg_and_png_are_rejected() -> None:
    jpeg = encode(coffee())
    png = encode(coffee(), ".png")

    with pytest.raises(InvalidImage, match="truncated"):
        decode_image(jpeg[: len(jpeg) // 2], LIMITS)
    with pytest.raises(InvalidImage):
        decode_image(png[: len(png) // 2], LIMITS)


def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = png_header(60_000, 60_000)

    with pytest.raises(ImageTooLarge) as raised:
        decode_image(bomb, LIMITS)

    assert raised.value.details == {"width": 60_000, "height": 60_000}


def test_side_limit_and_zero_size_header() -> None:
    with pytest.raises(ImageTooLarge):
        decode_image(png_header(20_000, 10), LIMITS)
    with pytest.raises(InvalidImage):
        decode_image(png_header(0, 10), LIMITS)


def test_resize_reports_y_then_x_scale_and_normalize_matches_paddleclas() -> None:
    preprocess = Preprocess(size=(640, 640), interpolation=Interpolation.cubic)
    image = np.full((300, 400, 3), 255, dtype=np.uint8)

    resized, (scale_y, scale_x) = resize(image, preprocess)
    tensor = normalize(resized, preprocess)

    assert resized.shape == (640, 640, 3)
    assert (scale_y, scale_x) == (640 / 300, 640 / 400)
    assert tensor.shape == (3, 640, 640)
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(tensor[:, 0, 0], expected, rtol=1e-6)


@pytest.mark.parametrize("channel_order", ["RGB", "BGR"])
def test_normalize_is_the_float32_formula_bit_for_bit(channel_order: str) -> None:
    preprocess = Preprocess(size=(176, 176), scale=1 / 255, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3),
                            channel_order=channel_order)
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    view = image[5:80, 7:110]  # a crop: a strided view, as the pipeline passes
    ordered = view[:, :, ::-1] if channel_order == "BGR" else view
    mean, std = np.asarray(preprocess.mean, np.float32), np.asarray(preprocess.std, np.float32)
    formula = ((ordered.astype(np.float32) * np.float32(preprocess.scale) - mean) / std).transpose(2, 0, 1)

    tensor = normalize(view, preprocess)

    assert tensor.dtype == np.float32 and tensor.flags.c_contiguous
    assert np.array_equal(tensor, formula)


def test_a_jpeg_with_bytes_after_its_end_still_decodes() -> None:
    ok, buffer = cv2.imencode(".jpg", np.full((40, 60, 3), 128, dtype=np.uint8))
    assert ok

    decoded = decode_image(buffer.tobytes() + b"trailing bytes a camera appended", LIMITS)

    assert (decoded.width, decoded.height) == (60, 40)


def test_big_jpegs_decode_reduced_by_default_and_in_full_in_parity_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    ok, buffer = cv2.imencode(".jpg", np.zeros((3000, 4000, 3), dtype=np.uint8))
    assert ok
    monkeypatch.setenv("SHITU_LIMITS__DECODE_MAX_SIDE_PX", "none")
    parity = Settings().limits
    monkeypatch.delenv("SHITU_LIMITS__DECODE_MAX_SIDE_PX")

    reduced = decode_image(buffer.tobytes(), DecodeLimits.of(LimitsSettings()))
    full = decode_image(buffer.tobytes(), DecodeLimits.of(parity.model_copy(update={"max_image_pixels": 12_000_000})))

    assert (reduced.width, reduced.height) == (1000, 750)  # 1/4: the longer side stays >= 640
    assert (full.width, full.height, parity.decode_max_side_px) == (4000, 3000, None)
