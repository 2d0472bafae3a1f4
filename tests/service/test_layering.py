"""The architecture rules that keep the core reusable: checked on the source, not by convention."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "trainer", "shitu")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _importers(packages: tuple[str, ...], *modules: str) -> list[str]:
    """Source files of ``packages`` that import any of ``modules`` or a submodule of one."""
    return sorted(
        str(path.relative_to(REPO))
        for package in packages
        for path in (REPO / package).rglob("*.py")
        if any(name == module or name.startswith(f"{module}.") for name in _imports(path) for module in modules)
    )


def test_exactly_one_module_imports_paddle_inference() -> None:
    assert _importers(PACKAGES, "paddle.inference") == ["service/inference/runtime.py"]


def test_the_model_classes_and_routes_see_the_runtime_only_through_the_session_protocol() -> None:
    # The loader builds PaddleModel sessions; Detector, Embedder, the pipeline and the routes take a Session.
    assert _importers(("service",), "service.inference.runtime") == ["service/inference/models.py"]


def test_the_service_imports_nothing_from_the_trainer() -> None:
    assert _importers(("service",), "trainer") == []


def test_the_trainer_does_not_import_the_web_framework() -> None:
    assert _importers(("trainer",), "fastapi", "starlette", "uvicorn") == []
    code = (
        "import importlib, pkgutil, sys\n"
        "import trainer\n"
        "for module in pkgutil.walk_packages(trainer.__path__, 'trainer.'):\n"
        "    importlib.import_module(module.name)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in {'fastapi', 'starlette', 'uvicorn'})\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)

    assert result.stdout.strip() == ""


def test_the_core_does_not_import_the_web_framework() -> None:
    code = (
        "import sys\n"
        "import service.inference.pipeline, service.inference.models, service.gallery, service.registration\n"
        "import service.importing, service.registry\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in {'fastapi', 'starlette', 'uvicorn'})\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)

    assert result.stdout.strip() == ""
