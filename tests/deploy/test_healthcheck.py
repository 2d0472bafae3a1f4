from __future__ import annotations

import importlib.util
import socket
from types import ModuleType

import pytest

from tests.deploy.deployment_files import REPO
from tests.deploy.file_server import FileServer


@pytest.fixture(scope="module")
def probe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docker_healthcheck", REPO / "docker" / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _port_of(url: str) -> str:
    return url.split(":")[2].split("/")[0]


def test_probe_passes_when_ready_answers_200(
    probe: ModuleType, file_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHITU_SERVER__PORT", _port_of(file_server.serve("ready", b'{"ready": true}')))

    assert probe.main() == 0


def test_probe_fails_when_ready_answers_an_error(
    probe: ModuleType, file_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHITU_SERVER__PORT", _port_of(file_server.serve("health", b"{}")))

    assert probe.main() == 1


def test_probe_fails_when_nothing_listens(probe: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("SHITU_SERVER__PORT", str(port))

    assert probe.main() == 1
