"""Look-alike identities in the same PK batch, and the occlusion augmentation (RandomErasing at an edge)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.trainer.recognition_helpers import make_shapes_dataset
from trainer.recognition.config import AugmentConfig, load_recognition_config
from trainer.recognition.data.augment import random_erase
from trainer.recognition.data.sampler import PKSampler, nearest_identities
from trainer.recognition.train import RecognitionTrainer

CI_CONFIG = Path(__file__).resolve().parents[2] / "trainer" / "configs" / "recognition_ci.yaml"


def test_nearest_identities_follow_the_classifier_weights() -> None:
    # classes 0/1 and 2/3 point the same way (look-alikes); 4 is alone
    weights = np.array([[1, 0.95, 0, 0.05, -1], [0, 0.3, 1, 0.97, 0.2]], np.float32)
    nearest = nearest_identities(weights, 1)
    assert nearest[:4, 0].tolist() == [1, 0, 3, 2]


def test_a_hard_share_puts_look_alikes_into_the_batch() -> None:
    labels = np.repeat(np.arange(40), 4).tolist()
    neighbours = np.array([[identity ^ 1] for identity in range(40)], np.int64)  # pairs (0,1), (2,3), …
    plain = PKSampler(labels, 32, 4, seed=1)
    hard = PKSampler(labels, 32, 4, seed=1, neighbours=neighbours, hard_share=0.5)

    def pairs(sampler: PKSampler) -> float:
        found = []
        for _ in range(50):
            ids = {labels[index] for index in sampler.sample_batch()}
            assert len(ids) == 8  # P identities, each K times
            found.append(sum(identity ^ 1 in ids for identity in ids) / len(ids))
        return float(np.mean(found))

    assert pairs(hard) > 0.9 and pairs(plain) < 0.4  # random batches: about 7 / 39


def test_random_erasing_covers_a_share_of_the_image_with_the_mean_colour() -> None:
    config = AugmentConfig(erase_prob=1.0, erase_area=(0.1, 0.2), erase_edge_prob=1.0)
    image = np.zeros((80, 80, 3), np.uint8)
    for seed in range(20):
        erased = random_erase(image, np.random.default_rng(seed), config, (127, 127, 127))
        mask = (erased == 127).all(axis=2)
        assert 0.09 <= mask.mean() <= 0.21
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        assert 0 in (rows[0], columns[0]) or 79 in (rows[-1], columns[-1])  # against a side: a neighbour


@pytest.mark.slow  # two short trainings and an export
def test_the_second_recipe_trains_resumes_and_exports_a_letterboxing_embedder(tmp_path: Path) -> None:
    """recognition_ci.yaml with the v2 parts on: letterbox, erasing at the edges, look-alike batches from epoch 2.
    A run resumed at the end of epoch 1 replays epoch 2 exactly: the look-alike table comes from the weights."""
    data = make_shapes_dataset(tmp_path / "data")
    extra = ["model.keep_ratio=true", "data.augment.erase_prob=0.5", "data.augment.erase_edge_prob=0.5",
             "hard_negative_share=0.5", "epochs=2"]

    def config(output: Path):  # noqa: ANN202 - the config type is obvious
        return load_recognition_config(CI_CONFIG, [f"data.root={data}", f"output={output}", *extra])

    whole = RecognitionTrainer(config(tmp_path / "whole")).train()
    resumed = RecognitionTrainer(config(tmp_path / "resumed"))
    resumed.resume(tmp_path / "whole" / "checkpoints" / "epoch_0001")
    replayed = resumed.train()
    np.testing.assert_allclose(replayed.losses, whole.losses[len(whole.losses) - len(replayed.losses):], rtol=1e-5)
    assert replayed.export_dir is not None
    manifest = json.loads((replayed.export_dir / "manifest.json").read_text())
    assert manifest["preprocess"]["keep_ratio"] is True and manifest["preprocess"]["pad"] is True
    assert manifest["provenance"]["recipe"]["hard_negative_share"] == 0.5
