"""The compose file's cluster profile (scale-out, docs/scale-out.md), checked statically: no Docker engine here."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest
import tomllib

from service.config import GalleryBackend, Settings
from tests.deploy.deployment_files import REPO, read_compose, resolve_defaults

COMPOSE = read_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
CLUSTER = sorted(name for name, service in SERVICES.items() if "cluster" in service.get("profiles", []))
REPLICAS = sorted(name for name in CLUSTER if name.startswith("shitu-replica-"))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {name: resolve_defaults(str(value)) for name, value in (service.get("environment") or {}).items()}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    return {entry.split(":")[1]: entry.split(":")[0] for entry in service.get("volumes", [])}


def test_the_profile_holds_milvus_standalone_postgres_two_replicas_and_a_balancer() -> None:
    assert set(CLUSTER) == {"milvus-etcd", "milvus-minio", "milvus", "postgres", "balancer", *REPLICAS}
    assert len(REPLICAS) == 2
    assert SERVICES["milvus"]["command"] == ["milvus", "run", "standalone"]
    milvus = _environment(SERVICES["milvus"])
    assert milvus["ETCD_ENDPOINTS"].split(":")[0] == "milvus-etcd"
    assert milvus["MINIO_ADDRESS"].split(":")[0] == "milvus-minio"


def test_third_party_images_are_pinned_and_checked_for_health() -> None:
    for name in CLUSTER:
        service = SERVICES[name]
        if "build" in service:
            continue
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), image
        assert service["healthcheck"]["test"][0] == "CMD"


@pytest.mark.parametrize("name", REPLICAS)
def test_replicas_use_the_cluster_back_end_on_the_profile_servers(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = SERVICES[name]
    for key, value in _environment(service).items():
        monkeypatch.setenv(key, value)

    settings = Settings()

    cluster = settings.gallery.cluster
    assert settings.gallery.backend is GalleryBackend.cluster
    milvus = urlparse(cluster.milvus_uri)
    assert (milvus.hostname, milvus.port) == ("milvus", 19530)
    postgres = urlparse(cluster.postgres_dsn)
    assert (postgres.hostname, postgres.port, postgres.path) == ("postgres", 5432, "/shitu")
    assert postgres.username == _environment(SERVICES["postgres"])["POSTGRES_USER"]
    assert postgres.password == _environment(SERVICES["postgres"])["POSTGRES_PASSWORD"]
    assert {dependency for dependency, rule in service["depends_on"].items()
            if rule["condition"] == "service_healthy"} == {"milvus", "postgres"}
    assert "ports" not in service  # only through the balancer
    assert service["build"]["args"]["EXTRAS"] == "cluster"


def test_the_cluster_extra_brings_both_clients() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = {re.split(r"[\[<>=~ ]", requirement)[0] for requirement in pyproject["project"]["optional-dependencies"]
             ["cluster"]}

    assert {"pymilvus", "psycopg", "psycopg-pool"} <= names


def test_replicas_share_one_gallery_volume_and_the_model_store() -> None:
    mounts = [_mounts(SERVICES[name]) for name in REPLICAS]

    assert all(mount == mounts[0] for mount in mounts)
    assert mounts[0]["/data"] in COMPOSE["volumes"] and mounts[0]["/models"] == "./model_store"
    environment = _environment(SERVICES[REPLICAS[0]])
    assert environment["SHITU_GALLERY__PATH"].startswith("/data/")


def test_the_balancer_spreads_over_exactly_the_replicas_on_their_port() -> None:
    balancer = SERVICES["balancer"]
    source = next(entry.split(":")[0] for entry in balancer["volumes"] if entry.endswith("default.conf:ro"))
    config = (REPO / source).read_text()
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", config, flags=re.MULTILINE)
    replica_port = _environment(SERVICES[REPLICAS[0]])["SHITU_SERVER__PORT"]

    assert sorted(host for host, _ in servers) == REPLICAS
    assert {port for _, port in servers} == {replica_port}
    listen = re.search(r"^\s*listen\s+(\d+);", config, flags=re.MULTILINE)
    assert listen is not None and resolve_defaults(balancer["ports"][0]).endswith(f":{listen.group(1)}")
    assert resolve_defaults(balancer["ports"][0]).startswith("127.0.0.1:")
    assert set(balancer["depends_on"]) == set(REPLICAS)
