"""What `.ci/run` (= `make test`) runs: lint, the type check, and every test, slow ones included, in random order."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def _recipe(target: str) -> list[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    body = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert body, f"no {target} target in the Makefile"
    return [line.strip() for line in body.group(1).splitlines()]


def test_ci_is_make_test() -> None:
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_make_test_lints_type_checks_and_runs_every_test_in_random_order() -> None:
    lint, test = _recipe("lint"), _recipe("test")
    pytest_line = next(line for line in test if "-m pytest" in line)

    assert any(line.startswith("$(BIN)/ruff check") for line in lint)
    assert any(line.startswith("$(BIN)/mypy") for line in lint)
    assert "-p randomly" in pytest_line
    # nothing deselected: the slow tests run in CI too
    options = pytest_line.split("-m pytest", 1)[1]
    assert not re.search(r"\s(-m|-k|--deselect|--ignore)\b", options)
    assert "-m" not in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]


def test_mypy_checks_the_three_packages() -> None:
    mypy = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    assert set(mypy["files"]) == {"service", "trainer", "shitu"}
