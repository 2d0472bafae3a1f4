"""``keep_ratio`` + ``pad``: an embedder's crop keeps its aspect, centred on the mean colour; the trainer's eval
transform is the service's (one definition)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from service.config import RuntimeSettings
from service.errors import ModelError
from service.inference.image import fit, normalize
from service.inference.manifest import Preprocess
from service.inference.models import load_embedder
from trainer.recognition.config import AugmentConfig
from trainer.recognition.data.augment import EvalTransform, TrainAugment

LETTERBOX = Preprocess(size=(64, 64), keep_ratio=True, pad=True, scale=1.0, mean=(127.0,) * 3, std=(128.0,) * 3)


def test_a_tall_bottle_is_letterboxed_not_squashed() -> None:
    bottle = np.zeros((200, 50, 3), np.uint8)
    bottle[:, :, 0] = 255
    fitted = fit(bottle, LETTERBOX)
    assert fitted.shape == (64, 64, 3)
    assert (fitted[:, 24:40, 0] == 255).all()  # 16 px wide: the 1:4 aspect kept
    assert (fitted[:, :20] == 127).all() and (fitted[:, -20:] == 127).all()
    assert (normalize(fitted, LETTERBOX)[:, :, :20] == 0).all()  # the padding normalises to zero


def test_without_pad_the_crop_is_stretched_as_before() -> None:
    plain = LETTERBOX.model_copy(update={"keep_ratio": False, "pad": False})
    assert fit(np.zeros((200, 50, 3), np.uint8), plain).shape == (64, 64, 3)


def test_pad_without_keep_ratio_is_refused() -> None:
    with pytest.raises(ValidationError, match="keep_ratio"):
        Preprocess(size=(64, 64), pad=True)


def test_the_pad_colour_is_the_mean_in_pixels_whatever_the_channel_order() -> None:
    imagenet = Preprocess(size=(8, 8), keep_ratio=True, pad=True)
    assert imagenet.pad_colour == (124, 116, 104)
    bgr = imagenet.model_copy(update={"channel_order": "BGR", "mean": (0.406, 0.456, 0.485)})
    assert bgr.pad_colour == (124, 116, 104)


def test_the_trainer_sees_crops_as_the_service_does() -> None:
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (90, 30, 3), dtype=np.uint8)
    config = AugmentConfig(image_size=64)
    assert np.array_equal(EvalTransform(config, LETTERBOX)(crop), normalize(fit(crop, LETTERBOX), LETTERBOX))
    still = AugmentConfig(image_size=64, flip_prob=0, pad=0, rotation_prob=0)
    assert np.allclose(TrainAugment(still, LETTERBOX)(crop, rng), normalize(fit(crop, LETTERBOX), LETTERBOX))


def _with_preprocess(source: Path, target: Path, **update: object) -> Path:
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["preprocess"].update(update)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_a_letterboxing_embedder_batches_crops_of_any_shape(model_store_dir: Path, tmp_path: Path) -> None:
    directory = _with_preprocess(model_store_dir / "embedder" / "default", tmp_path / "letterbox",
                                 keep_ratio=True, pad=True)
    embedder = load_embedder(directory, RuntimeSettings(cpu_threads=1), max_batch_size=4)
    rng = np.random.default_rng(1)
    tall, wide = rng.integers(0, 256, (300, 90, 3), dtype=np.uint8), rng.integers(0, 256, (80, 240, 3), dtype=np.uint8)
    features = embedder.embed([tall, wide, tall])
    assert features.shape == (3, 512) and np.allclose(features[0], features[2], atol=1e-5)


def test_keep_ratio_without_pad_is_refused_for_an_embedder(model_store_dir: Path, tmp_path: Path) -> None:
    directory = _with_preprocess(model_store_dir / "embedder" / "default", tmp_path / "ragged", keep_ratio=True)
    with pytest.raises(ModelError, match="pad"):
        load_embedder(directory, RuntimeSettings(cpu_threads=1), max_batch_size=4)
