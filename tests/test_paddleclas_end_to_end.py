"""End to end against PaddleClas itself: our exports, our gallery import and ``/recognize`` give the boxes,
labels and scores of PaddleClas's ``predict_system.py`` (fixture ``tests/fixtures/ppshitu_e2e``, its README).

The path is the one a PaddleClas user takes: two ``.pdparams`` checkpoints (the fixture's seed-1 weights),
``shitu export rec`` and ``shitu export det``, ``shitu gallery import gallery_list.txt``, then every query
posted to the running service. The weights are untrained, so the labels mean nothing: what is checked is
the mechanics (preprocessing, the detector's post-processing, box handling, crops, search, thresholds, NMS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paddle
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.parity_weights import RECOGNITION, fill_state
from tests.trainer.detector_weights import fill_state as fill_detector_state
from trainer.models import build_recognition_model
from trainer.models.picodet import build_picodet

pytestmark = pytest.mark.slow

FIXTURE_CLASSES = 16
BOX_TOLERANCE_PX = 1
SCORE_TOLERANCE = 1e-3


def _checkpoints(parity_dir: Path, out: Path) -> tuple[Path, Path]:
    """The fixture's two checkpoints, as ``paddle.save`` writes them (what PaddleClas and PaddleDetection save)."""
    rec_entries = json.loads((parity_dir / "rec_params.json").read_text(encoding="utf-8"))["params"]
    recognizer = build_recognition_model("pplcnetv2_base", FIXTURE_CLASSES)
    rec_state = fill_state(((entry["name"], entry["shape"]) for entry in rec_entries), RECOGNITION)
    assert set(rec_state) == set(recognizer.state_dict())
    det_entries = json.loads((parity_dir / "det_params.json").read_text(encoding="utf-8"))["params"]
    det_state = fill_detector_state((entry["name"], entry["shape"]) for entry in det_entries)
    assert set(det_state) == set(build_picodet(2.5, 1).state_dict())
    rec_path, det_path = out / "rec_seed1.pdparams", out / "det_seed1.pdparams"
    paddle.save({name: paddle.to_tensor(value) for name, value in rec_state.items()}, str(rec_path))
    paddle.save({name: paddle.to_tensor(value) for name, value in det_state.items()}, str(det_path))
    return rec_path, det_path


def _shitu(*arguments: str, env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "shitu", *arguments]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module", params=[True, False], ids=["onednn", "plain"])
def paddleclas_client(request: pytest.FixtureRequest, parity_dir: Path, end_to_end_dir: Path,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    onednn: bool = request.param
    work = tmp_path_factory.mktemp("paddleclas_e2e")
    rec_weights, det_weights = _checkpoints(parity_dir, work)
    store = work / "model_store"
    environment = {
        "SHITU_MODELS__STORE": str(store),
        "SHITU_MODELS__EMBEDDER": "embedder/seed1",
        "SHITU_MODELS__DETECTOR": "detector/seed1",
        "SHITU_GALLERY__PATH": str(work / "gallery"),
        "SHITU_RUNTIME__CPU_THREADS": "2",
        "SHITU_RUNTIME__ONEDNN": str(onednn).lower(),
    }
    _shitu("export", "rec", "--arch", "pplcnetv2_base", "--weights", str(rec_weights),
           "--out", str(store / "embedder" / "seed1"), env=environment)
    _shitu("export", "det", "--arch", "picodet_lcnet_x2_5", "--weights", str(det_weights),
           "--out", str(store / "detector" / "seed1"), env=environment)
    imported = _shitu("gallery", "import", str(end_to_end_dir / "gallery" / "gallery_list.txt"), env=environment)
    settings = Settings.model_validate({
        "models": {"store": str(store), "embedder": "embedder/seed1", "detector": "detector/seed1"},
        "gallery": {"path": str(work / "gallery")},
        "runtime": {"cpu_threads": 2, "onednn": onednn},
    })
    with TestClient(create_app(settings)) as client:
        yield client, imported


def _expected() -> dict[str, list[dict[str, Any]]]:
    path = Path(__file__).parent / "fixtures" / "ppshitu_e2e" / "expected.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _same(found: dict[str, Any], expected: dict[str, Any]) -> bool:
    return (found["match"]["label"] == expected["rec_docs"]
            and abs(found["match"]["score"] - expected["rec_scores"]) <= SCORE_TOLERANCE
            and all(abs(a - b) <= BOX_TOLERANCE_PX for a, b in zip(found["bbox"], expected["bbox"], strict=True)))


def test_gallery_import_embeds_whole_images_as_paddleclas(paddleclas_client: tuple[TestClient, str]) -> None:
    client, imported = paddleclas_client
    assert "whole images" in imported and "added 13" in imported
    assert client.get("/info").json()["gallery"]["images"] == 13


@pytest.mark.parametrize("query", sorted(_expected()))
def test_recognize_gives_paddleclas_results(paddleclas_client: tuple[TestClient, str], end_to_end_dir: Path,
                                            query: str) -> None:
    client, _ = paddleclas_client
    expected = _expected()[query]
    data = (end_to_end_dir / "queries" / query).read_bytes()
    # PaddleClas returns matched boxes only; unknown detections are our addition.
    response = client.post("/recognize", files={"image": (query, data, "application/octet-stream")},
                           data={"include_unknown": "false"})
    assert response.status_code == 200, response.text
    objects = response.json()["objects"]
    assert len(objects) == len(expected) > 0, (objects, expected)
    unmatched = list(objects)
    for reference in expected:
        counterpart = next((found for found in unmatched if _same(found, reference)), None)
        assert counterpart is not None, f"{query}: no counterpart for {reference} in {objects}"
        unmatched.remove(counterpart)
