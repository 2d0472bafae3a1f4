"""Label lists, the dataset's handling of bad files, the PK sampler and the augmentation steps."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from service.inference.manifest import Preprocess
from trainer.recognition.config import AugmentConfig
from trainer.recognition.data.augment import EvalTransform, TrainAugment, random_crop, rotate
from trainer.recognition.data.dataset import BatchLoader, RecognitionDataset, UnreadableImage
from trainer.recognition.data.labels import LabelEntry, LabelListError, class_index, read_label_list
from trainer.recognition.data.sampler import PKSampler, identity_weights

PREPROCESS = Preprocess(size=(224, 224))


def test_label_list_spaces_tabs_unique_ids_and_comments(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text(
        "# comment\na/1.jpg 7\n\nb/my photo.jpg\t红牛-强化型\tid 3\nc/2.jpg  7  u9\n",
        encoding="utf-8",
    )
    entries = read_label_list(tmp_path / "list.txt", tmp_path / "root")
    assert entries == [
        LabelEntry(tmp_path / "root" / "a/1.jpg", "7"),
        LabelEntry(tmp_path / "root" / "b/my photo.jpg", "红牛-强化型", "id 3"),
        LabelEntry(tmp_path / "root" / "c/2.jpg", "7", "u9"),
    ]
    assert class_index([entry.label for entry in entries]) == {"7": 0, "红牛-强化型": 1}


@pytest.mark.parametrize("line", ["only_a_path.jpg", "a.jpg 1 2 3", "a.jpg\t\t1"])
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str) -> None:
    (tmp_path / "list.txt").write_text(f"ok.jpg 1\n{line}\n", encoding="utf-8")
    with pytest.raises(LabelListError, match=r"list\.txt:2: expected 'path label \[unique_id\]'"):
        read_label_list(tmp_path / "list.txt")


def test_missing_or_empty_list(tmp_path: Path) -> None:
    with pytest.raises(LabelListError, match="cannot read"):
        read_label_list(tmp_path / "absent.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(LabelListError, match="no entries"):
        read_label_list(tmp_path / "empty.txt")


def _write_images(root: Path, count: int, label: str) -> list[LabelEntry]:
    entries = []
    for index in range(count):
        path = root / f"{label}_{index}.png"
        cv2.imwrite(str(path), np.full((20, 30, 3), 40 * index, np.uint8))
        entries.append(LabelEntry(path, label))
    return entries


def _shape_only(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return pixels.astype(np.float32).transpose(2, 0, 1)


def test_missing_files_are_counted_and_corrupt_ones_replaced_by_their_class(tmp_path: Path) -> None:
    entries = _write_images(tmp_path, 3, "a") + _write_images(tmp_path, 2, "b")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    entries += [LabelEntry(tmp_path / "broken.png", "a"), LabelEntry(tmp_path / "gone.png", "b")]
    dataset = RecognitionDataset(entries, _shape_only)
    assert dataset.missing == 1 and len(dataset) == 6
    assert dataset.labels.tolist() == [0, 0, 0, 1, 1, 0]
    loader = BatchLoader(dataset, workers=2)
    batch = loader.load([5, 5, 3, 4], np.random.default_rng(0))
    assert batch.images.shape == (4, 3, 20, 30) and batch.labels.tolist() == [0, 0, 1, 1]
    # The broken class-"a" image came back as one of the readable class-"a" images (values 0, 40, 80).
    assert {float(image[0, 0, 0]) for image in batch.images[:2]} <= {0.0, 40.0, 80.0}
    assert dataset.skipped == 1
    evaluated = list(loader.evaluation_batches(4))
    assert [batch.indices.tolist() for batch in evaluated] == [[0, 1, 2, 3], [4]]
    loader.close()


def test_a_class_without_readable_images_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"garbage")
    dataset = RecognitionDataset([LabelEntry(tmp_path / "broken.png", "a")], _shape_only)
    with pytest.raises(UnreadableImage, match="no readable image left for class 'a'"):
        dataset.load(0, np.random.default_rng(0))


def test_pk_sampler_batches() -> None:
    labels = [0] * 6 + [1] * 5 + [2] * 2 + [3] * 8 + [4] * 4
    sampler = PKSampler(labels, batch_size=8, images_per_id=4, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4  # ceil(25 / 8)
    for batch in batches:
        per_identity = Counter(labels[index] for index in batch)
        assert len(batch) == 8 and sorted(per_identity.values()) == [4, 4]
        for identity in per_identity:
            images = [index for index in batch if labels[index] == identity]
            if identity != 2:  # identities with >= K images are drawn without replacement
                assert len(set(images)) == 4
    assert [list(batch) for batch in PKSampler(labels, 8, 4, seed=3)] == batches


def test_identity_weights_upweight_inclusive_ranges() -> None:
    weights = identity_weights(8, [(1, 2), (5, 5)], 4.0)
    assert weights is not None and weights.tolist() == [1, 4, 4, 1, 1, 4, 1, 1]
    assert identity_weights(8, [], 4.0) is None
    with pytest.raises(ValueError, match="outside the 8 identities"):
        identity_weights(8, [(6, 8)], 4.0)


def test_pk_sampler_weights_and_errors() -> None:
    labels = [0] * 4 + [1] * 4 + [2] * 4
    sampler = PKSampler(labels, 8, 4, id_weights=np.array([0.0, 1.0, 1.0]), seed=0)
    assert all({labels[index] for index in sampler.sample_batch()} == {1, 2} for _ in range(5))
    with pytest.raises(ValueError, match="needs 4 identities"):
        PKSampler(labels, 16, 4)
    with pytest.raises(ValueError, match="multiple"):
        PKSampler(labels, 10, 4)


def test_random_crop_keeps_the_inclusive_upper_bound() -> None:
    padded = np.arange(244 * 244, dtype=np.int64).reshape(244, 244, 1)
    rng = np.random.default_rng(0)
    shapes = Counter(random_crop(padded, 224, rng).shape[:2] for _ in range(2000))
    # Offsets 0..21: 21 gives a 223-px side, so about 1 in 22 crops per axis is short (as in PaddleClas).
    assert set(shapes) == {(224, 224), (223, 224), (224, 223), (223, 223)}
    assert 0.02 < shapes[(223, 224)] / 2000 < 0.08


def test_rotation_is_counter_clockwise_about_the_centre() -> None:
    image = np.zeros((41, 41, 3), np.uint8)
    image[20, 35] = 255  # right of the centre (20.5, 20.5)
    turned = rotate(image, 90.0)
    row, column = np.unravel_index(turned[:, :, 0].argmax(), turned.shape[:2])
    assert column in (20, 21) and row < 10  # moved to the top


def test_train_augment_without_random_steps_is_the_eval_transform() -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    still = AugmentConfig(image_size=32, flip_prob=0.0, pad=0, rotation_prob=0.0)
    augmented = TrainAugment(still, PREPROCESS)(pixels, np.random.default_rng(1))
    np.testing.assert_array_equal(augmented, EvalTransform(still, PREPROCESS)(pixels))
    assert augmented.shape == (3, 32, 32) and augmented.dtype == np.float32


def test_train_augment_is_random_but_reproducible() -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    augment = TrainAugment(AugmentConfig(image_size=48), PREPROCESS)
    first = augment(pixels, np.random.default_rng(5))
    np.testing.assert_array_equal(first, augment(pixels, np.random.default_rng(5)))
    assert not np.array_equal(first, augment(pixels, np.random.default_rng(6)))
    assert first.shape == (3, 48, 48)


def test_flip_always() -> None:
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[:, :8] = 255
    config = AugmentConfig(image_size=16, flip_prob=1.0, pad=0, rotation_prob=0.0)
    flipped = TrainAugment(config, Preprocess(size=(16, 16), scale=1.0, mean=(0, 0, 0), std=(1, 1, 1)))
    result = flipped(pixels, np.random.default_rng(0))
    assert result[0, :, :8].max() == 0 and result[0, :, 8:].min() == 255
