"""What ``shitu models list`` and ``shitu models pull`` print: a table and a download progress bar."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn
from rich.table import Table

from service.inference.manifest import ManifestError, load_manifest
from service.registry.known import ArtifactKind, KnownModel, UnknownModelError, get_known_model
from service.registry.pull import PullError, PullResult, pull_model

_SETTING_OF_KIND = {ArtifactKind.embedder: "SHITU_MODELS__EMBEDDER", ArtifactKind.detector: "SHITU_MODELS__DETECTOR"}


def _size_text(model: KnownModel) -> str:
    if model.size_bytes is not None:
        return f"{model.size_bytes / 1e6:.1f} MB"
    if model.reported_size_mb is not None:
        return f"~{model.reported_size_mb:g} MB"
    return "unknown"


MODEL_COLUMNS = ("name", "kind", "size", "sha256", "installed", "description")
STORE_COLUMNS = ("directory", "model", "architecture")


def model_rows(models: Iterable[KnownModel], store: Path) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for model in models:
        installed = str(model.install_path(store)) if model.is_installed(store) else "no"
        checksum = model.sha256[:12] if model.sha256 else "unknown"
        rows.append((model.name, model.kind.value, _size_text(model), checksum, installed, model.description))
    return rows


def _describe(model_dir: Path) -> tuple[str, str]:
    try:
        manifest = load_manifest(model_dir)
    except ManifestError as error:
        return "unreadable", str(error)
    return manifest.model_id, manifest.architecture


def store_rows(store: Path) -> list[tuple[str, ...]]:
    """Every model directory of the store, by the name the ``SHITU_MODELS__*`` settings take."""
    rows: list[tuple[str, ...]] = []
    for kind in (ArtifactKind.embedder, ArtifactKind.detector):
        for model_dir in sorted(path for path in (store / kind.value).glob("*") if path.is_dir()):
            rows.append((f"{kind.value}/{model_dir.name}", *_describe(model_dir)))
    return rows


def print_table(console: Console, title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table on a terminal; elsewhere (pipes, logs, CI) tab-separated lines, so that nothing is cut to fit."""
    if not console.is_terminal:
        # Straight to the stream: rich would expand the tabs and wrap at its idea of the width.
        lines = [f"# {title}", *("\t".join(row) for row in (columns, *rows))]
        console.file.write("\n".join(lines) + "\n")
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column != columns[-1])
    for row in rows:
        table.add_row(*row)
    console.print(table)


class _ProgressBar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def __call__(self, done: int, total: int | None) -> None:
        self._progress.update(self._task, completed=done, total=total)


def _pull_with_progress(model: KnownModel, store: Path, url: str | None, force: bool, console: Console) -> PullResult:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"pull {model.name}", total=None)
        return pull_model(model, store, url=url, force=force, on_progress=_ProgressBar(progress, task))


def pull_command(name: str, store: Path, url: str | None, force: bool, console: Console) -> int:
    """Run one pull for the CLI; returns the exit code."""
    try:
        model = get_known_model(name)
        result = _pull_with_progress(model, store, url, force, console)
    except (UnknownModelError, PullError, OSError) as error:
        console.print(f"[red]error:[/red] {error}", highlight=False)
        return 1
    check = "verified" if result.verified else "not verified (the registry has no checksum for it)"
    console.print(f"installed {result.name} at {result.path}", highlight=False)
    console.print(f"sha256 {result.sha256}, {check}", highlight=False)
    setting = _SETTING_OF_KIND.get(model.kind)
    if setting is not None:
        console.print(f"load it with {setting}={model.kind.value}/{model.name}", highlight=False)
    return 0
