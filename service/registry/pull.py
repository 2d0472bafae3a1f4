"""``shitu models pull``: download a known model, verify it, and install it atomically into the store.

Layout inside the store while a pull runs: ``.downloads/<name>-<url hash>.part`` (kept only when a
download is interrupted, so the next pull resumes) and ``.pull-<name>-*/`` (staging, always removed).
The model appears at its final path through one ``os.replace``; on any failure the store keeps
what it had.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from service.gallery.files import file_sha256
from service.inference.manifest import MANIFEST_FILE, MODEL_STEMS, ModelManifest
from service.registry.archive import MAX_EXTRACTED_BYTES, UnsafeArchiveError, extract_archive
from service.registry.download import DownloadError, ProgressCallback, download
from service.registry.known import KnownModel

DOWNLOAD_DIR = ".downloads"
_PARAMS_SUFFIX = ".pdiparams"
_GRAPH_SUFFIXES = (".json", ".pdmodel")
_TIMEOUT = httpx.Timeout(30.0, read=60.0)


class PullError(RuntimeError):
    """A pull failed; the message says why and what to do. The store is as it was."""


@dataclass(frozen=True)
class PullResult:
    name: str
    path: Path
    sha256: str
    verified: bool
    size_bytes: int


def _part_path(store: Path, model: KnownModel, url: str) -> Path:
    url_hash = hashlib.sha256(url.encode()).hexdigest()[:12]
    return store / DOWNLOAD_DIR / f"{model.name}-{url_hash}.part"


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass


def _find_model_dir(root: Path) -> Path:
    """The one directory of the extracted archive that holds ``inference.pdiparams`` and its graph."""
    found = []
    for params in root.rglob(f"*{_PARAMS_SUFFIX}"):
        stem = params.name.removesuffix(_PARAMS_SUFFIX)
        has_graph = any((params.parent / f"{stem}{suffix}").is_file() for suffix in _GRAPH_SUFFIXES)
        if stem in MODEL_STEMS and has_graph:
            found.append(params.parent)
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise PullError(f"the archive holds {what} Paddle inference model directories, expected exactly one")
    return found[0]


def _write_manifest(model_dir: Path, model: KnownModel, provenance: dict[str, Any]) -> None:
    existing = model_dir / MANIFEST_FILE
    if existing.is_file():
        try:
            manifest = ModelManifest.model_validate(json.loads(existing.read_text(encoding="utf-8")))
        except ValueError as error:
            raise PullError(f"the archive's {MANIFEST_FILE} is invalid: {error}") from error
    elif model.manifest is not None:
        manifest = model.manifest
    else:
        raise PullError(f"the archive has no {MANIFEST_FILE} and the registry holds none for {model.name}")
    manifest.model_copy(update={"provenance": {**manifest.provenance, **provenance}}).write(model_dir)


def _replace_atomically(staged: Path, target: Path, scratch: Path) -> None:
    """Move ``staged`` to ``target``; an existing ``target`` is swapped out first and restored on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = scratch / "previous"
    if target.exists():
        os.replace(target, previous)
    try:
        os.replace(staged, target)
    except OSError:
        if previous.exists():
            os.replace(previous, target)
        raise


def _install_archive(
    model: KnownModel, archive: Path, target: Path, scratch: Path, provenance: dict[str, Any], limit: int
) -> None:
    extracted = scratch / "extracted"
    try:
        extract_archive(archive, extracted, max_bytes=limit)
    except UnsafeArchiveError as error:
        raise PullError(f"refused to install {model.name}: {error}") from error
    model_dir = _find_model_dir(extracted)
    _write_manifest(model_dir, model, provenance)
    _replace_atomically(model_dir, target, scratch)


def _install_checkpoint(checkpoint: Path, target: Path, scratch: Path, provenance: dict[str, Any]) -> None:
    staged = scratch / target.name
    os.replace(checkpoint, staged)
    sidecar = target.with_suffix(".json")
    staged_sidecar = scratch / sidecar.name
    staged_sidecar.write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    _replace_atomically(staged, target, scratch)
    os.replace(staged_sidecar, sidecar)


def _verify(model: KnownModel, part: Path) -> str:
    digest = file_sha256(part)
    if model.sha256 is not None and digest != model.sha256.lower():
        part.unlink()
        raise PullError(
            f"checksum mismatch for {model.name}: expected sha256 {model.sha256}, got {digest}; "
            "the download was discarded (a mirror with other content, or a corrupted transfer)"
        )
    return digest


def pull_model(
    model: KnownModel,
    store: Path,
    *,
    url: str | None = None,
    force: bool = False,
    client: httpx.Client | None = None,
    on_progress: ProgressCallback | None = None,
    max_extracted_bytes: int = MAX_EXTRACTED_BYTES,
) -> PullResult:
    """Download, verify and install ``model`` into ``store``; raises :class:`PullError` on any failure."""
    store = Path(store)
    source = url or model.url
    target = model.install_path(store)
    if target.exists() and not force:
        raise PullError(f"{model.name} is already installed at {target}; pass --force to replace it")
    part = _part_path(store, model, source)
    part.parent.mkdir(parents=True, exist_ok=True)
    owned_client = client is None
    http = client or httpx.Client(timeout=_TIMEOUT, follow_redirects=True)
    try:
        download(source, part, client=http, expected_size=model.size_bytes, on_progress=on_progress)
        digest = _verify(model, part)
        size = part.stat().st_size
        provenance = {
            "url": source,
            "sha256": digest,
            "sha256_verified": model.sha256 is not None,
            "downloaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        scratch = Path(tempfile.mkdtemp(prefix=f".pull-{model.name}-", dir=store))
        try:
            if model.is_archive:
                _install_archive(model, part, target, scratch, provenance, max_extracted_bytes)
            else:
                _install_checkpoint(part, target, scratch, provenance)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        part.unlink(missing_ok=True)
    except DownloadError as error:
        if not error.resumable:
            part.unlink(missing_ok=True)
        raise PullError(str(error)) from error
    except PullError:
        part.unlink(missing_ok=True)
        raise
    finally:
        if owned_client:
            http.close()
        _remove_if_empty(part.parent)
    return PullResult(model.name, target, digest, model.sha256 is not None, size)
