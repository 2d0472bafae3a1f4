from __future__ import annotations

import importlib.util
import shlex
from types import ModuleType

import pytest

from tests.deploy.deployment_files import (
    REPO,
    env_assignments,
    final_stage,
    is_in_build_context,
    read_dockerfile,
)
from tests.deploy.settings_names import assert_real_settings

INSTRUCTIONS = read_dockerfile()
RUNTIME = final_stage(INSTRUCTIONS)


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docker_{name}", REPO / "docker" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copies() -> list[tuple[dict[str, str], list[str]]]:
    return [instruction.flags_and_words() for instruction in INSTRUCTIONS if instruction.keyword == "COPY"]


def test_every_file_the_image_copies_exists_and_is_in_the_build_context() -> None:
    sources = [source for flags, words in _copies() if "from" not in flags for source in words[:-1]]

    assert {"service", "trainer", "shitu", "pyproject.toml"} <= set(sources)  # every package the wheel holds
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert is_in_build_context(source), f"COPY {source}: excluded by .dockerignore"


def test_build_context_leaves_out_models_data_and_the_virtualenv() -> None:
    for path in ("model_store/embedder/default/inference.pdiparams", ".venv/bin/python", "data/gallery/x", ".git/HEAD"):
        assert not is_in_build_context(path), path
    assert not is_in_build_context("service/__pycache__/cli.cpython-311.pyc")


def test_device_argument_selects_one_of_two_base_stages() -> None:
    stages = {instruction.arguments.split()[-1] for instruction in INSTRUCTIONS if instruction.keyword == "FROM"}
    froms = [instruction.arguments for instruction in INSTRUCTIONS if instruction.keyword == "FROM"]

    assert {"base-cpu", "base-gpu", "builder", "runtime"} <= stages
    assert sum(source.startswith("base-${DEVICE}") for source in froms) == 2
    assert INSTRUCTIONS[0].arguments == "DEVICE=cpu"


def test_runtime_stage_runs_as_a_non_root_user() -> None:
    users = [instruction.arguments for instruction in RUNTIME if instruction.keyword == "USER"]

    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    assert any("useradd" in instruction.arguments and users[-1] in instruction.arguments for instruction in RUNTIME)


def test_runtime_stage_takes_only_the_virtualenv_from_the_builder() -> None:
    from_builder = [words for flags, words in _copies() if flags.get("from") == "builder"]

    assert from_builder == [["/opt/venv", "/opt/venv"]]


def test_healthcheck_runs_the_probe_the_image_copies() -> None:
    (healthcheck,) = [instruction for instruction in RUNTIME if instruction.keyword == "HEALTHCHECK"]
    command = healthcheck.arguments.split("CMD", 1)[1]
    copied = {words[-1]: words[0] for flags, words in _copies() if "from" not in flags}

    probe = shlex.split(command.replace("[", "").replace("]", "").replace(",", " "))[-1]
    assert copied[probe] == "docker/healthcheck.py"
    assert _load_script("healthcheck").ready_url().endswith("/ready")


def test_every_shitu_variable_of_the_image_is_a_setting() -> None:
    environment = {
        name: value
        for instruction in RUNTIME
        if instruction.keyword == "ENV"
        for name, value in env_assignments(instruction).items()
    }
    named = {name for name in environment if name.startswith("SHITU_")}

    assert {"SHITU_SERVER__HOST", "SHITU_MODELS__STORE", "SHITU_GALLERY__PATH"} <= named
    assert_real_settings(named)
    assert environment["SHITU_MODELS__STORE"] == "/models" and environment["SHITU_GALLERY__PATH"].startswith("/data/")


def test_image_command_is_shitu_serve() -> None:
    (entrypoint,) = [instruction.exec_form() for instruction in RUNTIME if instruction.keyword == "ENTRYPOINT"]
    (command,) = [instruction.exec_form() for instruction in RUNTIME if instruction.keyword == "CMD"]

    assert entrypoint + command == ["shitu", "serve"]


@pytest.fixture(scope="module")
def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ (the images run 3.11 and 3.12)")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_requirements_swap_paddle_for_the_gpu_wheel_of_the_same_version(pyproject: dict) -> None:
    requirements = _load_script("requirements").requirements

    cpu = requirements(pyproject, [], "cpu")
    gpu = requirements(pyproject, ["trainer"], "gpu")

    paddle = next(line for line in cpu if line.startswith("paddlepaddle"))
    assert paddle.startswith("paddlepaddle==")
    assert paddle.replace("paddlepaddle", "paddlepaddle-gpu") in gpu and paddle not in gpu
    assert set(pyproject["project"]["optional-dependencies"]["trainer"]) <= set(gpu)
    assert not any(line.startswith("pytest") for line in gpu)


def test_requirements_refuse_an_unknown_extra(pyproject: dict) -> None:
    with pytest.raises(ValueError, match="unknown extras"):
        _load_script("requirements").requirements(pyproject, ["no-such-extra"], "cpu")
