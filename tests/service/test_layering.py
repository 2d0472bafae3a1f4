"""The architecture rules that keep the core reusable: checked on the source, not by convention."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_exactly_one_module_imports_paddle_inference() -> None:
    importers = sorted(
        str(path.relative_to(REPO))
        for package in ("service", "trainer")
        for path in (REPO / package).rglob("*.py")
        if any(name == "paddle.inference" or name.startswith("paddle.inference.") for name in _imports(path))
    )

    assert importers == ["service/inference/runtime.py"]


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
