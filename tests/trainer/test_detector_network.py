"""PicoDet-LCNet x2.5 against PaddleDetection's reference: parameter names and per-anchor outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from tests.trainer.detector_weights import detector_input, fill_state
from trainer.checkpoint import CheckpointMismatch
from trainer.models.csp_pan import upsample_nearest_2x
from trainer.models.picodet import PicoDet, build_picodet, build_picodet_architecture, load_picodet_checkpoint

PARITY_SIZE = 640
IMAGES = (0, 1, 2)


@pytest.fixture(scope="session")
def reference_entries(parity_dir: Path) -> list[tuple[str, list[int]]]:
    params = json.loads((parity_dir / "det_params.json").read_text(encoding="utf-8"))["params"]
    return [(entry["name"], entry["shape"]) for entry in params]


@pytest.fixture(scope="session")
def parity_model(reference_entries: list[tuple[str, list[int]]]) -> PicoDet:
    model = build_picodet(2.5, 1)
    load_picodet_checkpoint(model, fill_state(reference_entries))
    model.eval()
    return model


@pytest.fixture(scope="session")
def parity_outputs(parity_model: PicoDet, parity_dir: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    outputs = {}
    with paddle.no_grad():
        for index in IMAGES:
            image = paddle.to_tensor(detector_input(parity_dir / f"img{index}.png", PARITY_SIZE))
            scores, boxes = parity_model.predict(image)
            outputs[index] = (scores.numpy(), boxes.numpy())
    return outputs


def test_state_dict_names_and_shapes_equal_paddledetection(reference_entries: list[tuple[str, list[int]]]) -> None:
    own = {name: list(tensor.shape) for name, tensor in build_picodet(2.5, 1).state_dict().items()}
    assert own == dict(reference_entries)
    assert len(own) == 491


@pytest.mark.parametrize("index", IMAGES)
def test_scores_match_reference(parity_outputs: dict, parity_dir: Path, index: int) -> None:
    expected = np.load(parity_dir / f"det_img{index}_scores.npy")
    scores, _ = parity_outputs[index]
    assert scores.shape == expected.shape == (1, 1, 8500)
    assert np.abs(scores - expected).max() < 1e-4


@pytest.mark.parametrize("index", IMAGES)
def test_boxes_match_reference(parity_outputs: dict, parity_dir: Path, index: int) -> None:
    expected = np.load(parity_dir / f"det_img{index}_boxes.npy")
    _, boxes = parity_outputs[index]
    assert boxes.shape == expected.shape == (1, 8500, 4)
    assert np.abs(boxes - expected).max() < 1e-2


def test_training_forward_gives_raw_levels_for_any_multiple_of_32() -> None:
    model = build_picodet(0.35, 3)
    logits, bins = model(paddle.zeros([2, 3, 96, 160]))
    assert [list(level.shape) for level in logits] == [[2, 3, 12, 20], [2, 3, 6, 10], [2, 3, 3, 5], [2, 3, 2, 3]]
    assert [list(level.shape) for level in bins] == [[2, 32, 12, 20], [2, 32, 6, 10], [2, 32, 3, 5], [2, 32, 2, 3]]


def test_decode_places_integral_distances_around_cell_centres() -> None:
    head = build_picodet(0.35, 1).head
    sizes = [(4, 6), (2, 3), (1, 2), (1, 1)]
    logits = [paddle.zeros([1, 1, h, w]) for h, w in sizes]
    # Bin 2 wins for left/top, bin 5 for right/bottom: distances 2 and 5 cells (softmax of 30 vs 0 is ~1).
    side_bins = np.zeros([4, 8], dtype=np.float32)
    side_bins[[0, 1], 2] = 30.0
    side_bins[[2, 3], 5] = 30.0
    bins = [paddle.to_tensor(np.broadcast_to(side_bins.reshape(1, 32, 1, 1), (1, 32, h, w)).copy()) for h, w in sizes]
    scores, boxes = head.decode(logits, bins)
    assert list(scores.shape) == [1, 1, 24 + 6 + 2 + 1]
    np.testing.assert_allclose(scores.numpy(), 0.5)
    expected = []
    for (height, width), stride in zip(sizes, (8, 16, 32, 64), strict=True):
        for row in range(height):
            for column in range(width):
                x, y = (column + 0.5) * stride, (row + 0.5) * stride
                expected.append([x - 2 * stride, y - 2 * stride, x + 5 * stride, y + 5 * stride])
    np.testing.assert_allclose(boxes.numpy()[0], np.array(expected), atol=1e-3)


def test_sizes_not_multiple_of_32_are_refused() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        build_picodet(0.35, 1).predict(paddle.zeros([1, 3, 100, 96]))


def test_mismatched_checkpoint_lists_every_difference() -> None:
    small = build_picodet(0.35, 1)
    state = {name: tensor.numpy() for name, tensor in build_picodet(0.5, 1).state_dict().items()}
    state.pop("head.distribution_project.project")
    state["neck.extra.weight"] = np.zeros([1], dtype=np.float32)
    with pytest.raises(CheckpointMismatch) as caught:
        load_picodet_checkpoint(small, state)
    error = caught.value
    assert error.missing == ["head.distribution_project.project"]
    assert error.unexpected == ["neck.extra.weight"]
    mismatched = {name for name, _, _ in error.mismatched}
    assert "backbone.blocks6.1.pw_conv.conv.weight" in mismatched
    assert "neck.conv_t.convs.2.conv.weight" in mismatched
    message = str(error)
    assert "head.distribution_project.project" in message and "neck.extra.weight" in message
    assert f"{len(error.mismatched)} shape differs" in message


def test_checkpoint_round_trip_through_pdparams(tmp_path: Path) -> None:
    source = build_picodet_architecture("picodet_lcnet_x0_35")
    path = tmp_path / "model.pdparams"
    paddle.save(source.state_dict(), str(path))
    target = build_picodet_architecture("picodet_lcnet_x0_35")
    loaded = load_picodet_checkpoint(target, path)
    assert len(loaded) == len(source.state_dict())
    for name, tensor in target.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), source.state_dict()[name].numpy())


def test_fine_tuning_to_other_classes_skips_only_the_class_convs() -> None:
    one_class = {name: tensor.numpy() for name, tensor in build_picodet(0.35, 1).state_dict().items()}
    three_classes = build_picodet(0.35, 3)
    with pytest.raises(CheckpointMismatch):
        load_picodet_checkpoint(three_classes, one_class)
    loaded = load_picodet_checkpoint(three_classes, one_class, skip_head_classes=True)
    assert not any(name.startswith("head.head_cls") for name in loaded)
    assert len(loaded) == len(one_class) - 8


@pytest.mark.parametrize("name", ["picodet_lcnet_x2_5", "picodet_lcnet_x1_0", "picodet_lcnet_x0_35"])
def test_architecture_name_round_trips(name: str) -> None:
    assert build_picodet_architecture(name).architecture == name


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="picodet_lcnet_x2_5"):
        build_picodet_architecture("picodet_lcnet_x9")


def test_upsampling_equals_nearest_interpolation() -> None:
    features = paddle.to_tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32))
    expected = F.interpolate(features, scale_factor=2.0, mode="nearest")
    np.testing.assert_array_equal(upsample_nearest_2x(features).numpy(), expected.numpy())
