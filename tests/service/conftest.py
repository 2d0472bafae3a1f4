from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings


def service_settings(store: Path, gallery: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "models": {"store": str(store), "embedder": "embedder/default", "detector": "detector/default"},
        "gallery": {"path": str(gallery)},
        "runtime": {"cpu_threads": 1},
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
def client(model_store_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    """A service with a fresh, empty gallery for each test: no test depends on what another registered."""
    settings = service_settings(model_store_dir, tmp_path / "gallery",
                                limits={"max_upload_mb": 1.0, "max_concurrent_requests": 4})
    with TestClient(create_app(settings)) as test_client:
        yield test_client
