from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import typer

from service.config import Device, Settings
from shitu.cli import app
from tests.deploy.deployment_files import (
    COMPOSE_FILE,
    REPO,
    final_stage,
    interpolations,
    read_compose,
    read_dockerfile,
    resolve_defaults,
)
from tests.deploy.settings_names import assert_real_settings

COMPOSE = read_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROFILES = ("gpu", "models", "trainer", "cluster")
# services of images built from this repository (the others are the cluster profile's servers)
BUILT = sorted(name for name, service in SERVICES.items() if "build" in service)
REPLICAS = sorted(name for name in SERVICES if name.startswith("shitu-replica-"))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {name: resolve_defaults(str(value)) for name, value in (service.get("environment") or {}).items()}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> source (a ``./path`` bind mount or a volume name) with options."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *options = entry.split(":")
        mounts[target] = ":".join([source, *options])
    return mounts


def _image_argv(service: dict[str, Any]) -> list[str]:
    runtime = final_stage(read_dockerfile(REPO / service["build"]["dockerfile"]))
    entrypoint = service.get("entrypoint") or next(i.exec_form() for i in runtime if i.keyword == "ENTRYPOINT")
    command = service.get("command") or next(i.exec_form() for i in runtime if i.keyword == "CMD")
    return [*entrypoint, *command]


def _cli_command(argv: list[str]) -> Any:
    """The ``shitu`` command that ``argv`` names; fails on an unknown command or option."""
    assert argv[0] == "shitu"
    command = typer.main.get_command(app)
    for word in argv[1:]:
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            assert word in subcommands, f"`{' '.join(argv)}`: no command {word!r}"
            command = subcommands[word]
        elif word.startswith("--"):
            options = {option for parameter in command.params for option in parameter.opts}
            assert word.split("=")[0] in options, f"`{' '.join(argv)}`: no option {word}"
    return command


def test_default_service_needs_no_profile_and_serves_the_model_store_and_a_gallery_volume() -> None:
    default = [name for name, service in SERVICES.items() if not service.get("profiles")]

    assert default == ["shitu"]
    service = SERVICES["shitu"]
    mounts = _mounts(service)
    assert mounts["/models"] == "./model_store:ro" and (REPO / "model_store").is_dir()
    gallery_volume = mounts["/data"]
    assert gallery_volume in COMPOSE["volumes"]
    environment = _environment(service)
    assert environment["SHITU_SERVER__HOST"] == "0.0.0.0"
    assert environment["SHITU_MODELS__STORE"] == "/models"
    assert environment["SHITU_GALLERY__PATH"] == "/data/gallery"
    # Published on the host's loopback only by default; inside, the service listens beyond loopback, so
    # anonymous requests may only read (writes need SHITU_AUTH__KEYS).
    assert resolve_defaults(service["ports"][0]) == f"127.0.0.1:8000:{environment['SHITU_SERVER__PORT']}"
    assert environment["SHITU_AUTH__KEYS"] == "[]"


def test_every_profile_exists() -> None:
    profiles = {profile for service in SERVICES.values() for profile in service.get("profiles", [])}

    assert profiles == set(PROFILES)


def test_gpu_service_reserves_an_nvidia_gpu_and_turns_tensorrt_on() -> None:
    service = SERVICES["shitu-gpu"]

    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert service["build"]["args"]["DEVICE"] == "gpu"
    environment = _environment(service)
    assert environment["SHITU_RUNTIME__DEVICE"] == "gpu" and environment["SHITU_RUNTIME__TENSORRT"] == "true"
    assert environment["SHITU_RUNTIME__TENSORRT_CACHE_DIR"].startswith("/data/")


@pytest.mark.parametrize("name", BUILT)
def test_service_environment_builds_valid_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = _environment(SERVICES[name])
    assert_real_settings(key for key in environment if key.startswith("SHITU_"))
    for key, value in environment.items():
        monkeypatch.setenv(key, value)

    settings = Settings()

    assert settings.models.store.as_posix() == "/models"
    assert settings.runtime.device is (Device.gpu if name == "shitu-gpu" else Device.cpu)


def test_every_shitu_variable_interpolated_in_the_compose_file_is_a_setting() -> None:
    names = interpolations(COMPOSE_FILE.read_text())

    assert_real_settings(name for name in names if name.startswith("SHITU_"))
    assert all(default is not None for default in names.values()), "every variable needs a default"


@pytest.mark.parametrize("name", BUILT)
def test_service_builds_from_the_repository_and_runs_a_real_shitu_command(name: str) -> None:
    service = SERVICES[name]
    build = service["build"]

    assert (REPO / build["context"] / build["dockerfile"]).is_file()
    assert build["args"]["DEVICE"] in ("cpu", "gpu")
    command = _cli_command(_image_argv(service))
    assert not hasattr(command, "commands"), f"{name} runs a command group, not a command"


def _image_paths() -> dict[str, str]:
    """Absolute paths in the image that the Dockerfile copies from the repository -> their repository source."""
    copies = [instruction.flags_and_words() for instruction in read_dockerfile() if instruction.keyword == "COPY"]
    return {words[-1]: words[0] for flags, words in copies if "from" not in flags and words[-1].startswith("/")}


@pytest.mark.parametrize("name", BUILT)
def test_image_files_a_command_names_come_from_the_repository(name: str) -> None:
    copied = _image_paths()
    for argument in _image_argv(SERVICES[name]):
        for target, source in copied.items():
            if argument.startswith(target + "/"):
                assert (REPO / source / argument.removeprefix(target + "/")).is_file(), argument


def test_trainer_profile_runs_shitu_train_with_a_writable_model_store() -> None:
    trainer = SERVICES["trainer"]

    assert _image_argv(trainer)[:2] == ["shitu", "train"]
    assert trainer["build"]["args"]["EXTRAS"] == "trainer"
    assert _mounts(trainer)["/models"] == "./model_store"


def test_bind_mounts_exist_and_named_volumes_are_declared() -> None:
    for service in SERVICES.values():
        for source in _mounts(service).values():
            path = source.split(":")[0]
            if path.startswith("."):
                assert (REPO / path).exists(), path  # a directory, or a config file (the balancer's)
            else:
                assert path in COMPOSE["volumes"], path


def test_healthchecks_run_the_probe_the_image_carries() -> None:
    for name in ("shitu", "shitu-gpu"):
        assert SERVICES[name]["healthcheck"]["test"] == ["CMD", "python", "/opt/shitu/healthcheck.py"]


def test_non_root_users_in_every_image_of_this_repository() -> None:
    for service in (SERVICES[name] for name in BUILT):
        user = resolve_defaults(service.get("user", "shitu"))
        assert user.split(":")[0] not in ("root", "0")


def _compose_client() -> list[str] | None:
    for client in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(client[0]) is None:
            continue
        if subprocess.run([*client, "version"], capture_output=True).returncode == 0:
            return client
    return None


def test_docker_compose_accepts_the_file_with_every_profile() -> None:
    client = _compose_client()
    if client is None:
        pytest.skip("neither `docker compose` nor `docker-compose` works here")
    profiles = [word for profile in PROFILES for word in ("--profile", profile)]

    result = subprocess.run(
        [*client, "-f", str(COMPOSE_FILE), *profiles, "config", "-q"], capture_output=True, text=True, cwd=REPO
    )

    assert result.returncode == 0, result.stderr
