from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import socket
import tarfile
from pathlib import Path

import pytest

from service.config import ModelSettings
from service.inference.manifest import ModelKind, load_manifest
from service.registry import KNOWN_MODELS, ArtifactKind, KnownModel, PullError, pull_model
from tests.deploy.archives import OFFICIAL_TOP_DIR, official_like_tar, snapshot, tar_with
from tests.deploy.file_server import FileServer

RECOGNIZER = KNOWN_MODELS["ppshituv2-rec"]


def _with_checksum(model: KnownModel, body: bytes) -> KnownModel:
    return dataclasses.replace(model, sha256=hashlib.sha256(body).hexdigest())


@pytest.fixture
def store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    (store / "detector" / "default").mkdir(parents=True)
    (store / "detector" / "default" / "manifest.json").write_text("{}")
    return store


def test_good_archive_installs_flat_with_the_registry_manifest(file_server: FileServer, store: Path) -> None:
    body = official_like_tar()
    url = file_server.serve("rec.tar", body)

    result = pull_model(_with_checksum(RECOGNIZER, body), store, url=url)

    target = store / "embedder" / "ppshituv2-rec"
    assert result.path == target and result.verified
    assert sorted(path.name for path in target.iterdir()) == [
        "inference.pdiparams",
        "inference.pdiparams.info",
        "inference.pdmodel",
        "manifest.json",
    ]
    manifest = load_manifest(ModelSettings(store=store, embedder="embedder/ppshituv2-rec").embedder_dir)
    assert manifest.kind is ModelKind.embedder and manifest.embedding_dim == 512
    assert manifest.preprocess.size == (224, 224) and manifest.embedder.match_threshold == 0.5
    assert manifest.provenance["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest.provenance["sha256_verified"] is True and manifest.provenance["url"] == url
    assert sorted(path.name for path in store.iterdir()) == ["detector", "embedder"]


def test_detector_manifest_carries_the_picodet_numbers(file_server: FileServer, store: Path) -> None:
    url = file_server.serve("det.tar", official_like_tar(params_size=1024))

    pull_model(KNOWN_MODELS["ppshituv2-det"], store, url=url)

    manifest = load_manifest(store / "detector" / "ppshituv2-det")
    assert manifest.kind is ModelKind.detector and manifest.labels == ["foreground"]
    assert manifest.preprocess.size == (640, 640) and manifest.preprocess.interpolation.value == "cubic"
    assert manifest.detector.score_threshold == 0.2 and manifest.detector.max_detections == 5


def test_unknown_checksum_installs_unverified_and_records_what_was_downloaded(
    file_server: FileServer, store: Path
) -> None:
    body = official_like_tar(params_size=1024)
    url = file_server.serve("rec.tar", body)

    result = pull_model(RECOGNIZER, store, url=url)

    assert not result.verified and result.sha256 == hashlib.sha256(body).hexdigest()
    provenance = load_manifest(result.path).provenance
    assert provenance["sha256"] == result.sha256 and provenance["sha256_verified"] is False


def test_wrong_checksum_fails_clearly_and_leaves_the_store_unchanged(file_server: FileServer, store: Path) -> None:
    url = file_server.serve("rec.tar", official_like_tar())
    before = snapshot(store)

    with pytest.raises(PullError, match="checksum mismatch for ppshituv2-rec: expected sha256 0000"):
        pull_model(dataclasses.replace(RECOGNIZER, sha256="0" * 64), store, url=url)

    assert snapshot(store) == before


def test_interrupted_download_fails_then_resumes_with_a_range_request(file_server: FileServer, store: Path) -> None:
    body = official_like_tar()
    url = file_server.serve("rec.tar", body)
    file_server.cut_next_response("rec.tar", after_bytes=100_000)
    model = _with_checksum(RECOGNIZER, body)

    with pytest.raises(PullError, match="interrupted after 100000 bytes.*run the same command again to resume"):
        pull_model(model, store, url=url)
    (part,) = (store / ".downloads").iterdir()
    assert part.stat().st_size == 100_000
    assert not (store / "embedder").exists()

    progress: list[tuple[int, int | None]] = []
    result = pull_model(model, store, url=url, on_progress=lambda done, total: progress.append((done, total)))

    assert file_server.state.range_headers == [None, "bytes=100000-"]
    assert progress[0][0] > 100_000 and progress[-1] == (len(body), len(body))
    assert result.verified and (result.path / "inference.pdiparams").is_file()
    assert not (store / ".downloads").exists()


def test_server_that_ignores_ranges_restarts_the_download(file_server: FileServer, store: Path) -> None:
    body = official_like_tar()
    url = file_server.serve("rec.tar", body)
    file_server.cut_next_response("rec.tar", after_bytes=50_000)
    file_server.state.honour_ranges = False
    model = _with_checksum(RECOGNIZER, body)
    with pytest.raises(PullError):
        pull_model(model, store, url=url)

    result = pull_model(model, store, url=url)

    assert file_server.state.range_headers == [None, "bytes=50000-"]
    assert result.verified and result.size_bytes == len(body)


def _tar_member(name: str, member_type: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = member_type
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ((f"{OFFICIAL_TOP_DIR}/../../evil", b"x"), "points outside the target"),
        (("/abs/evil", b"x"), "has an absolute path"),
        (_tar_member(f"{OFFICIAL_TOP_DIR}/link", tarfile.SYMTYPE, "/etc/passwd"), "is a link to '/etc/passwd'"),
        (_tar_member(f"{OFFICIAL_TOP_DIR}/hard", tarfile.LNKTYPE, "../../x"), "is a link"),
        (_tar_member(f"{OFFICIAL_TOP_DIR}/fifo", tarfile.FIFOTYPE), "not a regular file or directory"),
    ],
)
def test_unsafe_archive_is_refused_and_the_store_is_unchanged(
    file_server: FileServer, store: Path, member: tarfile.TarInfo | tuple[str, bytes], message: str
) -> None:
    good_files = [(f"{OFFICIAL_TOP_DIR}/inference.pdmodel", b"g"), (f"{OFFICIAL_TOP_DIR}/inference.pdiparams", b"p")]
    url = file_server.serve("evil.tar", tar_with([*good_files, member]))
    before = snapshot(store)

    with pytest.raises(PullError, match=f"refused to install ppshituv2-rec: .*{message}"):
        pull_model(RECOGNIZER, store, url=url)

    assert snapshot(store) == before
    assert not (store.parent / "evil").exists()


def test_archive_over_the_size_limit_is_refused(file_server: FileServer, store: Path) -> None:
    url = file_server.serve("rec.tar", official_like_tar(params_size=4096))
    before = snapshot(store)

    with pytest.raises(PullError, match="over the limit of 1000"):
        pull_model(RECOGNIZER, store, url=url, max_extracted_bytes=1000)

    assert snapshot(store) == before


def test_archive_without_a_model_is_refused(file_server: FileServer, store: Path) -> None:
    url = file_server.serve("empty.tar", tar_with([("readme.txt", b"no model here")]))
    before = snapshot(store)

    with pytest.raises(PullError, match="holds no Paddle inference model directories"):
        pull_model(RECOGNIZER, store, url=url)

    assert snapshot(store) == before


def test_missing_file_on_the_server_is_a_clear_error(file_server: FileServer, store: Path) -> None:
    url = file_server.serve("rec.tar", b"") + ".missing"
    before = snapshot(store)

    with pytest.raises(PullError, match=r"GET .*rec\.tar\.missing answered HTTP 404"):
        pull_model(RECOGNIZER, store, url=url)

    assert snapshot(store) == before


def test_unreachable_server_is_a_clear_error(store: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/rec.tar"
    before = snapshot(store)

    with pytest.raises(PullError, match=rf"could not download {re.escape(url)}: .*refused"):
        pull_model(RECOGNIZER, store, url=url)

    assert snapshot(store) == before


def test_installed_model_needs_force_and_force_replaces_it(file_server: FileServer, store: Path) -> None:
    first = official_like_tar(params_size=1024)
    second = official_like_tar(params_size=2048)
    pull_model(RECOGNIZER, store, url=file_server.serve("one.tar", first))

    with pytest.raises(PullError, match="already installed .* pass --force"):
        pull_model(RECOGNIZER, store, url=file_server.serve("two.tar", second))
    result = pull_model(RECOGNIZER, store, url=file_server.serve("two.tar", second), force=True)

    assert (result.path / "inference.pdiparams").stat().st_size == 2048
    assert sorted(path.name for path in store.iterdir()) == ["detector", "embedder"]


def test_checkpoint_installs_as_one_file_with_its_provenance(file_server: FileServer, store: Path) -> None:
    weights = b"pdparams bytes" * 100
    model = _with_checksum(KNOWN_MODELS["pplcnetv2-base-ssld"], weights)
    assert model.kind is ArtifactKind.checkpoint

    result = pull_model(model, store, url=file_server.serve("w.pdparams", weights))

    assert result.path == store / "checkpoints" / "pplcnetv2-base-ssld.pdparams"
    assert result.path.read_bytes() == weights
    provenance = json.loads((store / "checkpoints" / "pplcnetv2-base-ssld.json").read_text())
    assert provenance["sha256"] == hashlib.sha256(weights).hexdigest() and provenance["sha256_verified"]
