"""EfficientNet-Lite0: the packaged ImageNet weights read without torch, checked on a real photo, and exported."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import paddle
import pytest
import skimage.data

from service.inference.manifest import load_manifest
from tests.trainer.recognition_helpers import service_embeddings, to_batch, unit_rows
from trainer.models import build_recognition_model
from trainer.models.efficientnet_lite import (
    EfficientNetLite0,
    SameConv2D,
    imagenet_weights_path,
    load_imagenet_weights,
)
from trainer.models.recognition import PREPROCESS
from trainer.recognition.export import export_imagenet_embedder
from trainer.torch_legacy import TorchFormatError, load_legacy_state_dict

ESPRESSO = 967  # ImageNet-1k class index
PACKAGED_TENSORS = 296
PACKAGED_VALUES = 4_694_073


def test_legacy_torch_file_reads_without_torch() -> None:
    state = load_legacy_state_dict(imagenet_weights_path())
    assert len(state) == PACKAGED_TENSORS
    assert sum(value.size for value in state.values()) == PACKAGED_VALUES
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64


def test_reader_refuses_other_files_and_code_in_the_pickle(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(TorchFormatError, match="not a legacy torch pickle"):
        load_legacy_state_dict(plain)

    class Exploit:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    hostile = tmp_path / "hostile.pth"
    with open(hostile, "wb") as file:
        for header in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(header, file)
        pickle.dump(Exploit(), file)
    with pytest.raises(TorchFormatError, match="builtins.print"):
        load_legacy_state_dict(hostile)


def test_same_padding_puts_the_extra_pixel_bottom_right_on_each_axis() -> None:
    conv = SameConv2D(1, 1, 3, stride=2)
    conv.weight.set_value(np.ones([1, 1, 3, 3], dtype=np.float32))
    image = np.arange(7 * 10, dtype=np.float32).reshape(1, 1, 7, 10)
    output = conv(paddle.to_tensor(image)).numpy()[0, 0]
    # TF SAME: height 7 pads (1, 1), width 10 pads (0, 1); the output is ceil(size / 2) on each axis.
    padded = np.pad(image[0, 0], ((1, 1), (0, 1)))
    expected = np.array([[padded[r : r + 3, c : c + 3].sum() for c in range(0, 10, 2)] for r in range(0, 7, 2)])
    np.testing.assert_allclose(output, expected, rtol=1e-6)


def test_converted_classifier_puts_espresso_first_on_the_coffee_photo() -> None:
    classifier = EfficientNetLite0(num_classes=1000)
    load_imagenet_weights(classifier)
    classifier.eval()
    batch = to_batch([skimage.data.coffee()], PREPROCESS["efficientnet_lite0"])
    with paddle.no_grad():
        probabilities = paddle.nn.functional.softmax(classifier(paddle.to_tensor(batch))).numpy()[0]
    assert int(probabilities.argmax()) == ESPRESSO
    assert probabilities[ESPRESSO] > 0.8


@pytest.fixture(scope="module")
def imagenet_embedder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("imagenet_embedder")
    export_imagenet_embedder(out_dir)
    return out_dir


def test_imagenet_embedder_manifest(imagenet_embedder_dir: Path) -> None:
    manifest = load_manifest(imagenet_embedder_dir)
    assert manifest.architecture == "efficientnet_lite0" and manifest.embedding_dim == 512
    assert manifest.preprocess.scale == 1.0 and manifest.preprocess.mean == (127.0, 127.0, 127.0)
    assert manifest.preprocess.std == (128.0, 128.0, 128.0) and manifest.preprocess.channel_order == "RGB"
    assert manifest.embedder is not None and manifest.embedder.match_threshold == 0.5
    assert "ImageNet" in manifest.provenance["backbone_weights"]


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [skimage.data.coffee(), skimage.data.chelsea(), skimage.data.astronaut()]


@pytest.fixture(scope="module")
def dynamic_graph_features(photos: list[np.ndarray]) -> np.ndarray:
    model = build_recognition_model("efficientnet_lite0", pretrained=True)
    model.eval()
    with paddle.no_grad():
        return unit_rows(model.embed(paddle.to_tensor(to_batch(photos, model.preprocess))).numpy())


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "plain"])
def test_imagenet_embedder_in_the_service_embedder_matches_the_dynamic_graph(
    imagenet_embedder_dir: Path, photos: list[np.ndarray], dynamic_graph_features: np.ndarray, onednn: bool
) -> None:
    exported = service_embeddings(imagenet_embedder_dir, photos, onednn=onednn, batch_size=3)
    assert exported.shape == (3, 512)
    assert np.abs(exported - dynamic_graph_features).max() < 1e-4
    # ImageNet features already tell a cup from a cat: distinct photos are far from identical.
    assert (exported @ exported.T)[np.triu_indices(3, 1)].max() < 0.9
