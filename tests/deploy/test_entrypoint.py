"""The container's command, run outside a container: the image's ENTRYPOINT + CMD with the environment the
image and the compose file give it, on real exported models, until ``/ready`` answers 200."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.inference.manifest import load_manifest
from tests.deploy.deployment_files import (
    REPO,
    env_assignments,
    final_stage,
    read_compose,
    read_dockerfile,
    resolve_defaults,
)

READY_TIMEOUT_S = 120


def _image_command_and_environment() -> tuple[list[str], dict[str, str]]:
    runtime = final_stage(read_dockerfile())
    entrypoint = next(instruction.exec_form() for instruction in runtime if instruction.keyword == "ENTRYPOINT")
    command = next(instruction.exec_form() for instruction in runtime if instruction.keyword == "CMD")
    image_env: dict[str, str] = {}
    for instruction in runtime:
        if instruction.keyword == "ENV":
            image_env.update(env_assignments(instruction))
    compose_env = read_compose()["services"]["shitu"]["environment"]
    environment = {name: value.replace("${DEVICE}", "cpu") for name, value in image_env.items() if "SHITU_" in name}
    environment.update({name: resolve_defaults(str(value)) for name, value in compose_env.items()})
    return [*entrypoint, *command], environment


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _executable(argv: list[str]) -> list[str]:
    """``shitu`` from this interpreter's environment, as the image finds it in /opt/venv/bin."""
    script = shutil.which(argv[0], path=str(Path(sys.executable).parent))
    return [script, *argv[1:]] if script else [sys.executable, "-m", "shitu", *argv[1:]]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], subprocess.Popen]]:
    argv, environment = _image_command_and_environment()
    port = _free_port()
    # Only what a container has at other paths changes: the mounts (the repository's model_store, as
    # docker-compose.yml mounts it), and loopback instead of 0.0.0.0.
    environment.update(
        SHITU_MODELS__STORE=str(REPO / "model_store"),
        SHITU_GALLERY__PATH=str(tmp_path / "data" / "gallery"),
        SHITU_SERVER__HOST="127.0.0.1",
        SHITU_SERVER__PORT=str(port),
    )
    clean = {name: value for name, value in os.environ.items() if not name.startswith("SHITU_")}
    # the image installs the project into its venv; here the checkout may not be installed
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), clean.get("PYTHONPATH")]))
    log = (tmp_path / "service.log").open("w")
    process = subprocess.Popen(
        _executable(argv), env={**clean, **environment}, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield f"http://127.0.0.1:{port}", environment, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_ready(base_url: str, process: subprocess.Popen, log: Path) -> httpx.Response:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`shitu serve` exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            response = httpx.get(f"{base_url}/ready", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"/ready did not answer 200 within {READY_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


@pytest.mark.slow  # a real server process
def test_image_command_serves_the_default_models_until_ready(
    served: tuple[str, dict[str, str], subprocess.Popen], tmp_path: Path
) -> None:
    base_url, environment, process = served

    ready = _wait_until_ready(base_url, process, tmp_path / "service.log")

    assert ready.json()["ready"] is True
    info = httpx.get(f"{base_url}/info", timeout=5).json()
    shipped = load_manifest(REPO / "model_store" / "embedder" / "default")
    assert info["embedder"]["model_id"] == shipped.model_id
    detector = load_manifest(REPO / "model_store" / "detector" / "default")
    assert info["detector"]["model_id"] == detector.model_id  # the shipped detector is the image's default
    assert info["runtime"]["cpu_threads"] == int(environment["SHITU_RUNTIME__CPU_THREADS"])
    probe = subprocess.run(
        [sys.executable, str(REPO / "docker" / "healthcheck.py")],
        env={**os.environ, "SHITU_SERVER__PORT": environment["SHITU_SERVER__PORT"]},
    )
    assert probe.returncode == 0
