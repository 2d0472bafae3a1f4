"""Print the dependencies of one image from pyproject.toml: the base list, the chosen extras, and the Paddle
wheel of the device (``paddlepaddle-gpu`` of the same version on GPU, from Paddle's own package index).

Used by ``service.Dockerfile`` so the dependency layer is built from pyproject.toml alone and stays cached
while only the source changes.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import tomllib

_PADDLE = re.compile(r"^paddlepaddle(?=\s*(?:[=<>~!;\[]|$))")


def requirements(pyproject: dict, extras: list[str], device: str) -> list[str]:
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    unknown = sorted(set(extras) - set(optional))
    if unknown:
        raise ValueError(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    lines = list(project["dependencies"])
    for extra in extras:
        lines.extend(optional[extra])
    if device == "gpu":
        lines = [_PADDLE.sub("paddlepaddle-gpu", line) for line in lines]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--extras", default="", help="comma-separated extras of pyproject.toml")
    arguments = parser.parse_args(argv)
    extras = [extra.strip() for extra in arguments.extras.split(",") if extra.strip()]
    with arguments.pyproject.open("rb") as source:
        lines = requirements(tomllib.load(source), extras, arguments.device)
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
