"""The model classes see a runtime only through the session protocol: their numpy pre- and post-processing
runs on any session. These sessions replay fixed outputs to reach the rows a real detector rarely emits
(the "nothing found" row, class -1 padding, boxes out of frame); the real runtime runs in test_runtime."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from service.errors import ModelError
from service.inference.detector import Detector
from service.inference.embedder import Embedder
from service.inference.manifest import ModelKind, ModelManifest, Preprocess
from service.inference.session import Array, Session, SessionInfo


class ReplaySession:
    """Records every feed and answers with ``outputs(feed)``."""

    def __init__(self, names: tuple[str, ...], outputs: object) -> None:
        self.input_names = names
        self.feeds: list[Mapping[str, Array]] = []
        self._outputs = outputs

    @property
    def info(self) -> SessionInfo:
        return SessionInfo(directory="replay", format="numpy")

    def run(self, feed: Mapping[str, Array]) -> list[Array]:
        self.feeds.append(feed)
        return self._outputs(feed)  # type: ignore[operator, no-any-return]

    def clone(self) -> Session:
        return self


def _manifest(kind: ModelKind, **fields: object) -> ModelManifest:
    return ModelManifest.model_validate({"kind": kind, "name": "replay", "preprocess": Preprocess(size=(64, 48)),
                                         **fields})


def test_the_detector_sorts_drops_padding_and_clips_on_any_session() -> None:
    rows = np.array([[0, 0.3, 10.7, 5.2, 30.9, 40.0],    # kept, coordinates truncated
                     [-1, 0.9, 0, 0, 5, 5],              # padding row of a fixed-size output
                     [1, 0.8, -12, -3, 150, 70]], dtype=np.float32)  # out of the 100x60 frame
    session = ReplaySession(("image", "im_shape", "scale_factor"), lambda feed: [rows])
    detector = Detector(session, _manifest(ModelKind.detector, labels=["product", "shelf"]))

    found = detector.detect(np.zeros((60, 100, 3), dtype=np.uint8))

    assert [(d.label, d.score, d.box.as_tuple()) for d in found] == [
        ("shelf", pytest.approx(0.8), (0, 0, 100, 60)),
        ("product", pytest.approx(0.3), (10, 5, 30, 40)),
    ]
    feed = session.feeds[0]
    assert feed["image"].shape == (1, 3, 48, 64)
    assert feed["im_shape"].tolist() == [[48.0, 64.0]]
    assert feed["scale_factor"][0].tolist() == pytest.approx([0.8, 0.64])


def test_an_empty_detector_output_means_nothing_found() -> None:
    session = ReplaySession(("image", "im_shape", "scale_factor"), lambda feed: [np.zeros((1,), np.float32)])
    detector = Detector(session, _manifest(ModelKind.detector))

    assert detector.detect(np.zeros((60, 100, 3), dtype=np.uint8)) == []


def test_the_embedder_batches_and_normalises_on_any_session() -> None:
    def features(feed: Mapping[str, Array]) -> list[Array]:
        batch = feed["x"]
        return [np.tile(np.array([[3.0, 4.0]], dtype=np.float32), (len(batch), 1)) * np.arange(len(batch))[:, None]]

    session = ReplaySession(("x",), features)
    embedder = Embedder(session, _manifest(ModelKind.embedder, embedding_dim=2), max_batch_size=2)

    rows = embedder.embed([np.zeros((10, 10, 3), dtype=np.uint8)] * 3)

    assert [len(feed["x"]) for feed in session.feeds] == [2, 1]
    assert rows.tolist() == [[0.0, 0.0], pytest.approx([0.6, 0.8]), [0.0, 0.0]]


def test_an_embedder_whose_features_disagree_with_its_manifest_is_refused() -> None:
    session = ReplaySession(("x",), lambda feed: [np.ones((len(feed["x"]), 3), dtype=np.float32)])
    embedder = Embedder(session, _manifest(ModelKind.embedder, embedding_dim=2), max_batch_size=4)

    with pytest.raises(ModelError, match="3-d features"):
        embedder.embed([np.zeros((10, 10, 3), dtype=np.uint8)])
