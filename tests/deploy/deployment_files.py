"""Readers for the deployment files the static tests check: the Dockerfile, .dockerignore and the compose file."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "service.Dockerfile"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERIGNORE = REPO / ".dockerignore"

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?+]([^}]*))?\}")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """JSON exec form (``["shitu", "serve"]``) or shell words."""
        text = self.arguments.strip()
        return json.loads(text) if text.startswith("[") else shlex.split(text)

    def flags_and_words(self) -> tuple[dict[str, str], list[str]]:
        words = shlex.split(self.arguments)
        flags = dict(word[2:].split("=", 1) for word in words if word.startswith("--") and "=" in word)
        return flags, [word for word in words if not word.startswith("--")]


def read_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions in order; comments dropped, ``\\`` continuation lines joined."""
    instructions: list[Instruction] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\") if pending else stripped.removesuffix("\\")
        if stripped.endswith("\\"):
            continue
        keyword, _, arguments = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last_from = max(index for index, instruction in enumerate(instructions) if instruction.keyword == "FROM")
    return instructions[last_from:]


def env_assignments(instruction: Instruction) -> dict[str, str]:
    """``ENV A=1 B=2`` (the only ENV form the Dockerfile uses)."""
    return dict(word.split("=", 1) for word in shlex.split(instruction.arguments))


def is_in_build_context(relative: str, ignore_file: Path = DOCKERIGNORE) -> bool:
    """Docker's rule: the last matching pattern wins, and a pattern matches a path or any of its parents."""
    patterns = [line.strip() for line in ignore_file.read_text().splitlines() if line.strip() and line[0] != "#"]
    parts = Path(relative).parts
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    included = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        cleaned = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(candidate, cleaned) for candidate in candidates):
            included = negated
    return included


def read_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def interpolations(text: str) -> dict[str, str | None]:
    """Every ``${NAME}`` / ``${NAME:-default}`` in the compose file, with its default."""
    return {match.group(1): match.group(2) for match in _INTERPOLATION.finditer(text)}


def resolve_defaults(value: str) -> str:
    """A compose value as ``docker compose up`` sees it with no variables set."""
    return _INTERPOLATION.sub(lambda match: match.group(2) or "", value)
