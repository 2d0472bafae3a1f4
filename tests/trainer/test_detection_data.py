"""COCO reading with broken annotations, augmentations that keep boxes on their objects, batches, preview."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.trainer.detection_synthetic import make_synthetic_coco
from trainer.detection.augment import (
    Annotated,
    AugmentConfig,
    augment_sample,
    normalize,
    random_crop,
    random_expand,
    random_flip,
    resize,
)
from trainer.detection.coco import CocoDetectionDataset, DetectionDataError
from trainer.detection.loader import TrainBatchLoader, write_augmentation_preview


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_coco(tmp_path_factory.mktemp("coco"), count=8, size=64)


def _write_broken(root: Path) -> Path:
    cv2.imwrite(str(root / "a.png"), np.zeros((40, 50, 3), np.uint8))
    cv2.imwrite(str(root / "b.png"), np.zeros((30, 30, 3), np.uint8))
    document = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 50, "height": 40},
            {"id": 2, "file_name": "b.png"},  # no size: read from the file
            {"id": 3, "file_name": "missing.png", "width": 10, "height": 10},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [5, 5, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [40, 30, 20, 20]},  # clipped to 10×10
            {"id": 3, "image_id": 1, "category_id": 3, "bbox": [5, 5, 0, 10]},  # zero width
            {"id": 4, "image_id": 1, "category_id": 3, "bbox": [60, 5, 10, 10]},  # right of the image
            {"id": 5, "image_id": 1, "category_id": 99, "bbox": [5, 5, 10, 10]},  # unknown category
            {"id": 6, "image_id": 2, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 1},
            {"id": 7, "image_id": 3, "category_id": 3, "bbox": [1, 1, 5, 5]},
            {"id": 8, "image_id": 42, "category_id": 3, "bbox": [1, 1, 5, 5]},  # unknown image
            {"id": 9, "image_id": 2, "category_id": 3, "bbox": [1, 2]},
        ],
        "categories": [{"id": 7, "name": "can"}, {"id": 3, "name": "box"}],
    }
    path = root / "broken.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_broken_annotations_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        dataset = CocoDetectionDataset(_write_broken(tmp_path), single_class=None)
    assert dataset.category_names == ["box", "can"]  # ascending category id → contiguous index
    assert dict(dataset.report.skipped) == {
        "boxes of non-positive size": 1,
        "boxes outside the image": 1,
        "boxes of unknown categories": 1,
        "missing image files": 1,
        "annotations of unknown images": 1,
        "malformed boxes": 1,
    }
    first, second = dataset.samples
    np.testing.assert_array_equal(first.boxes, [[5, 5, 15, 15], [40, 30, 50, 40]])
    np.testing.assert_array_equal(first.labels, [1, 0])
    assert (second.width, second.height) == (30, 30)
    assert second.crowd.tolist() == [True] and len(second.training_boxes[0]) == 0
    assert "missing image files" in caplog.text


def test_single_class_maps_every_category(tmp_path: Path) -> None:
    dataset = CocoDetectionDataset(_write_broken(tmp_path), single_class="foreground", keep_empty_images=False)
    assert dataset.category_names == ["foreground"]
    assert dataset.samples[0].labels.tolist() == [0, 0]
    assert len(dataset) == 2  # image 2 has a (crowd) box, so it is not empty


def test_nothing_valid_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "gone.png"}], "annotations": [],
                                "categories": [{"id": 1, "name": "x"}]}))  # fmt: skip
    with pytest.raises(DetectionDataError, match="nothing valid.*1 missing image files"):
        CocoDetectionDataset(path)
    path.write_text("{not json")
    with pytest.raises(DetectionDataError, match="cannot read"):
        CocoDetectionDataset(path)
    path.write_text(json.dumps({"images": [{"file_name": "a.png"}], "categories": [{"id": 1}]}))
    with pytest.raises(DetectionDataError, match="malformed"):
        CocoDetectionDataset(path)
    path.write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(DetectionDataError, match="no categories"):
        CocoDetectionDataset(path)


def _square_scene() -> Annotated:
    image = np.zeros((60, 80, 3), np.uint8)
    image[10:30, 20:50] = 255
    return Annotated(image, np.array([[20, 10, 50, 30]], np.float32), np.array([0]))


def _white_extent(image: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(image[..., 0] > 127)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("seed", range(6))
def test_geometric_augmentations_keep_boxes_on_the_object(seed: int) -> None:
    config = AugmentConfig(expand_probability=1.0, flip_probability=0.5, distort=False)
    rng = np.random.default_rng(seed)
    sample = random_flip(random_crop(random_expand(_square_scene(), config, rng), config, rng), config, rng)
    if len(sample.boxes):
        np.testing.assert_allclose(sample.boxes[0], _white_extent(sample.image), atol=1.0)
    resized = resize(sample, 32)
    assert resized.image.shape == (32, 32, 3)
    np.testing.assert_allclose(resized.boxes[0], _white_extent(resized.image), atol=1.5)


def test_flip_mirrors_boxes_exactly() -> None:
    flipped = random_flip(_square_scene(), AugmentConfig(flip_probability=1.0), np.random.default_rng(0))
    np.testing.assert_array_equal(flipped.boxes, [[30, 10, 60, 30]])
    assert _white_extent(flipped.image) == [30, 10, 60, 30]


def test_colour_distortion_changes_pixels_not_geometry() -> None:
    scene = _square_scene()
    scene.image[..., 1] = 90
    changed = augment_sample(scene, AugmentConfig(crop=False, flip_probability=0.0, distort_probability=1.0),
                             np.random.default_rng(3))  # fmt: skip
    assert changed.image.shape == scene.image.shape and changed.image.dtype == np.uint8
    assert not np.array_equal(changed.image, scene.image)
    np.testing.assert_array_equal(changed.boxes, scene.boxes)


def test_normalize_is_imagenet_chw() -> None:
    result = normalize(np.full((2, 3, 3), 255, np.uint8))
    assert result.shape == (3, 2, 3)
    np.testing.assert_allclose(result[:, 0, 0], (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225],
                               rtol=1e-6)  # fmt: skip


def test_batches_are_multi_scale_and_reproducible(synthetic: Path) -> None:
    dataset = CocoDetectionDataset(synthetic)
    loader = TrainBatchLoader(dataset, AugmentConfig(), batch_size=3, sizes=[32, 64, 96], seed=5)
    first = list(loader.epoch(0))
    again = list(loader.epoch(0))
    assert len(first) == 2  # drop_last
    assert {batch.images.shape[2] for batch in loader.epoch(1)} | {b.images.shape[2] for b in first} <= {32, 64, 96}
    for batch, repeat in zip(first, again, strict=True):
        assert batch.images.shape[:2] == (3, 3) and batch.images.shape[2] == batch.images.shape[3]
        np.testing.assert_array_equal(batch.images, repeat.images)
        assert all((boxes >= 0).all() and (boxes <= batch.images.shape[2]).all() for boxes in batch.boxes)


def test_an_undecodable_image_is_replaced_mid_epoch(synthetic: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    root.mkdir()
    for item in synthetic.parent.iterdir():
        (root / item.name).write_bytes(item.read_bytes())
    (root / "0003.png").write_bytes(b"not a png")
    loader = TrainBatchLoader(CocoDetectionDataset(root / "annotations.json"), AugmentConfig(), batch_size=4,
                              sizes=[32])  # fmt: skip
    batches = list(loader.epoch(0))
    assert len(batches) == 2 and all(len(batch.boxes) == 4 for batch in batches)
    assert len(loader.unreadable) == 1


def test_preview_writes_a_png_grid(synthetic: Path, tmp_path: Path) -> None:
    loader = TrainBatchLoader(CocoDetectionDataset(synthetic), AugmentConfig(), batch_size=2, sizes=[64])
    out = write_augmentation_preview(loader, tmp_path / "preview.png", count=4, tile=48)
    picture = cv2.imread(str(out))
    assert picture.shape == (96, 96, 3)
    # the boxes are drawn in red (BGR 32, 32, 255)
    assert ((picture[..., 2] == 255) & (picture[..., 0] == 32)).any()
