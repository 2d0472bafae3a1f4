"""The service's commands: serve, manage the gallery and the model store (``python -m service``).

``shitu`` (:mod:`shitu.cli`) adds the trainer's commands beside them; nothing here imports the trainer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import typer

from service.config import GalleryBackend, GallerySettings

app = typer.Typer(help="PP-ShiTuV2 product recognition: service, gallery and models.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
gallery_app = typer.Typer(help="Import and export the gallery in PaddleClas list format.")
models_app = typer.Typer(help="List and pull known models into the model store.")
keys_app = typer.Typer(help="API keys for SHITU_AUTH__KEYS or SHITU_AUTH__KEYS_FILE.")
app.add_typer(gallery_app, name="gallery")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")

# Writes the demo gallery (gallery_list.txt and its images) into a directory. The trainer renders it, so the
# composed ``shitu`` command passes one in as the context object; ``python -m service`` has none.
DemoBuilder = Callable[[Path], object]


def register(target: typer.Typer) -> None:
    """Add every command of this CLI to ``target`` (the composed ``shitu`` command)."""
    target.registered_commands += app.registered_commands
    target.registered_groups += app.registered_groups


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STORE_OPTION = typer.Option(None, "--store", help="model store directory (default: SHITU_MODELS__STORE)")


@models_app.command("list")
def list_models(store: Path | None = _STORE_OPTION) -> None:
    """Show the known models (sizes, installed or not) and every model directory in the store."""
    from rich.console import Console

    from service.config import get_settings
    from service.registry.known import KNOWN_MODELS
    from service.registry.terminal import MODEL_COLUMNS, STORE_COLUMNS, model_rows, print_table, store_rows

    store = store or get_settings().models.store
    console = Console()
    print_table(console, f"Known models (store: {store})", MODEL_COLUMNS, model_rows(KNOWN_MODELS.values(), store))
    print_table(console, "In the store (values for SHITU_MODELS__EMBEDDER / SHITU_MODELS__DETECTOR)", STORE_COLUMNS,
                store_rows(store))


@models_app.command("pull")
def pull_model(
    name: str = typer.Argument(..., help="a name from `shitu models list`"),
    store: Path | None = _STORE_OPTION,
    url: str | None = typer.Option(None, help="download from this URL instead (a mirror)"),
    force: bool = typer.Option(False, "--force", help="replace an installed copy"),
) -> None:
    """Download a known model, verify it and install it into the model store (resumes interrupted downloads)."""
    from rich.console import Console

    from service.config import get_settings
    from service.registry.terminal import pull_command

    code = pull_command(name, store or get_settings().models.store, url, force, Console())
    raise typer.Exit(code)


@models_app.command("manifest")
def write_manifest(
    model_dir: Path = typer.Argument(..., exists=True, file_okay=False,
                                     help="a plain PaddleClas/PaddleDetection export"),
    config: Path | None = typer.Option(None, "--config", "-c", exists=True, dir_okay=False,
                                       help="the training YAML the model was exported with (tools/export_model.py -c)"),
    preset: str | None = typer.Option(None, help="ppshituv2-rec | ppshituv2-det: PP-ShiTuV2's preprocessing"),
    name: str | None = typer.Option(None, help="model name (default: the directory's name)"),
    version: str = typer.Option("0", help="model version"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing manifest.json"),
) -> None:
    """Write manifest.json for an export that has none (no inference.yml / infer_cfg.yml), so the service loads it."""
    from service.config import get_settings
    from service.errors import ModelError
    from service.inference.manifest import ManifestError
    from service.registry.describe import describe_plain_export

    try:
        manifest = describe_plain_export(model_dir, get_settings().runtime, preset=preset, config=config, name=name,
                                         version=version, overwrite=overwrite)
    except (ManifestError, ModelError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    size = "x".join(str(side) for side in manifest.preprocess.size)
    typer.echo(f"wrote {model_dir / 'manifest.json'}: {manifest.kind.value} {manifest.model_id}, {size} "
               f"{manifest.preprocess.interpolation.value}" + (f", {manifest.embedding_dim}-d" if manifest.embedding_dim
                                                                else ""))


@keys_app.command("new")
def new_key(
    name: str = typer.Argument(..., help="who the key is for (shown in logs, counted by the rate limit)"),
    scopes: list[str] = typer.Option(["read"], "--scope", help="read | write | admin (repeatable)"),
) -> None:
    """Make a random key: prints the key once (give it to the client) and the entry to configure (its hash)."""
    import json
    import secrets

    from service.auth import key_digest
    from service.config import ApiKey

    key = "shitu_" + secrets.token_urlsafe(32)
    entry = ApiKey(name=name, sha256=key_digest(key), scopes=scopes)
    typer.echo(f"key: {key}")
    typer.echo(f"entry: {json.dumps(entry.model_dump(mode='json'))}")


def main() -> None:
    run(app)


def run(cli: typer.Typer) -> None:
    """Run a CLI; service errors (a bad model directory, a locked gallery) end with their message, exit 2."""
    from service.errors import ServiceError

    try:
        cli()
    except ServiceError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise SystemExit(2) from error


@app.command()
def serve(
    context: typer.Context,
    host: str = typer.Option(None, help="bind address (default: SHITU_SERVER__HOST)"),
    port: int = typer.Option(None, help="port (default: SHITU_SERVER__PORT)"),
    demo: bool = typer.Option(False, help="generate the demo gallery if needed and load it into an empty gallery"),
) -> None:
    """Run the HTTP service with the models and gallery the SHITU_* settings name."""
    from service.config import get_settings
    from service.server import run_server

    settings = get_settings()
    if host:
        settings.server.host = host
    if port is not None:
        settings.server.port = port
    if demo:
        settings.gallery.demo = _demo_list(settings.gallery.path.parent / "demo", context.obj)
    logging.basicConfig(level=settings.server.log_level.upper(), format=LOG_FORMAT)
    run_server(settings)


def _demo_list(directory: Path, build: DemoBuilder | None) -> Path:
    list_file = directory / "gallery_list.txt"
    if not list_file.is_file():
        if build is None:
            raise typer.BadParameter(f"no demo gallery in {directory}: `shitu data demo --out {directory}` renders it",
                                     param_hint="--demo")
        build(directory)
    return list_file


@gallery_app.command("import")
def gallery_import(
    list_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="PaddleClas list: path<TAB>label"),
    root: Path = typer.Option(None, "--root", help="directory the listed paths are relative to (default: the list's)"),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root",
                                            help="read listed paths outside the root (absolute, ../, symlinks)"),
    detect: bool = typer.Option(
        False, "--detect/--whole-image",
        help="--whole-image (default) embeds each whole image, as PaddleClas's gallery builder does, so the same "
        "list gives PaddleClas's index; --detect crops the best detection first (as POST /gallery does)",
    ),
) -> None:
    """Register every image of a PaddleClas gallery list file (the service must not be running on this gallery)."""
    from rich.progress import Progress

    from service.config import get_settings
    from service.gallery import Gallery, read_list_file
    from service.importing import import_entries
    from service.inference.models import load_recognizer

    settings = get_settings()
    entries = read_list_file(list_file, root or list_file.parent, allow_outside_root=allow_outside_root)
    recognizer = load_recognizer(settings.models, settings.runtime, settings.pipeline)
    embedder = recognizer.embedder
    gallery = Gallery.open(settings.gallery, embedding_dim=embedder.embedding_dim, model_id=embedder.manifest.model_id)
    if detect and recognizer.detector is None:
        typer.echo("--detect: no detector is configured (SHITU_MODELS__DETECTOR), so whole images are embedded")
    elif detect:
        typer.echo("embedding the best detection of each image (--detect)")
    else:
        typer.echo("embedding whole images, as PaddleClas's gallery builder (--detect crops the best detection)")
    try:
        with Progress() as progress:
            task = progress.add_task("registering", total=len(entries))
            report = import_entries(recognizer, gallery, entries, limits=settings.limits,
                                    options=recognizer.default_options(settings.pipeline), detect=detect,
                                    advance=lambda: progress.advance(task))
    finally:
        gallery.close()
    typer.echo(f"added {report.added}, unchanged {report.unchanged}, failed {len(report.failed)}")
    for path, message in report.failed:
        typer.echo(f"  {path}: {message}", err=True)
    if report.failed:
        raise typer.Exit(code=1)


@gallery_app.command("backup")
def gallery_backup(out: Path = typer.Argument(..., help="new directory for the backup")) -> None:
    """A consistent copy of the gallery (SHITU_GALLERY__PATH), also while the service is writing to it."""
    from service.config import get_settings
    from service.gallery.backup import backup_gallery

    summary = backup_gallery(_embedded_gallery(get_settings().gallery, "backup").path, out)
    typer.echo(f"backed up {summary.items} items, {summary.images} images ({summary.files} files) to {out}")


@gallery_app.command("restore")
def gallery_restore(backup: Path = typer.Argument(..., exists=True, file_okay=False, help="backup directory")) -> None:
    """Verify a backup, then install it as the gallery SHITU_GALLERY__PATH names (which must not exist yet)."""
    from service.config import get_settings
    from service.gallery.backup import restore_gallery

    target = _embedded_gallery(get_settings().gallery, "restore").path
    summary = restore_gallery(backup, target)
    typer.echo(f"verified and restored {summary.items} items, {summary.images} images to {target}")


def _embedded_gallery(settings: GallerySettings, command: str) -> GallerySettings:
    """backup, restore and reembed work on the embedded back end's files; a cluster gallery is backed up with
    its servers' own tools (docs/scale-out.md) or moved to an embedded gallery first."""
    if settings.backend is not GalleryBackend.embedded:
        typer.echo(f"`shitu gallery {command}` works on an embedded gallery: back a cluster gallery up with "
                   "pg_dump and Milvus's backup tool, or `shitu gallery migrate --to embedded` first", err=True)
        raise typer.Exit(code=2)
    return settings


@gallery_app.command("migrate")
def gallery_migrate(
    to: GalleryBackend = typer.Option(..., "--to", help="the back end to move the gallery into"),
    target_path: Path | None = typer.Option(None, "--target-path",
                                            help="image files (and SQLite) directory of the target; default: "
                                            "SHITU_GALLERY__PATH"),
    target_name: str | None = typer.Option(None, "--target-name",
                                           help="PostgreSQL schema and Milvus collection of a cluster target; "
                                           "default: SHITU_GALLERY__CLUSTER__NAME"),
) -> None:
    """Move the gallery of the settings (SHITU_GALLERY__BACKEND) into the other back end, with its embeddings.

    Stop the service first when the source is embedded. Resumable: run it again after an interruption.
    """
    from rich.progress import Progress

    from service.config import get_settings
    from service.gallery.migrate import migrate_gallery

    source = get_settings().gallery
    cluster = source.cluster.model_copy(update={"name": target_name}) if target_name else source.cluster
    target = GallerySettings.model_validate({**source.model_dump(), "backend": to, "path": target_path or source.path,
                                             "cluster": cluster.model_dump()})
    with Progress() as progress:
        task = progress.add_task(f"{source.backend.value} -> {to.value}", total=None)
        report = migrate_gallery(source, target, progress=lambda done: progress.update(task, completed=done))
    typer.echo(f"moved {report.moved} images ({report.already_there} already there): the {to.value} gallery holds "
               f"{report.items} items, {report.images} images")


@gallery_app.command("export")
def gallery_export(out: Path = typer.Argument(..., help="directory for images/ and gallery_list.txt")) -> None:
    """Write the gallery as a PaddleClas list file with copies of the images."""
    from service.config import get_settings
    from service.gallery import Gallery, export_gallery

    with Gallery.open_stored(get_settings().gallery) as gallery:
        list_file = export_gallery(gallery, out)
    typer.echo(f"wrote {list_file}")


@gallery_app.command("reembed")
def gallery_reembed() -> None:
    """Re-embed every stored image with the configured embedder (after a model change); resumable."""
    from rich.progress import Progress

    from service.config import get_settings
    from service.gallery.reembed import reembed_gallery
    from service.importing import stored_image_embedder
    from service.inference.models import load_embedder

    settings = get_settings()
    _embedded_gallery(settings.gallery, "reembed")
    embedder = load_embedder(settings.models.embedder_dir, settings.runtime,
                             max_batch_size=settings.pipeline.max_batch_size)
    with Progress() as progress:
        task = progress.add_task("re-embedding", total=None)
        done = reembed_gallery(settings.gallery, embedding_dim=embedder.embedding_dim,
                               model_id=embedder.manifest.model_id,
                               embed=stored_image_embedder(embedder, settings.limits),
                               progress=lambda finished, total: progress.update(task, completed=finished, total=total))
    typer.echo(f"re-embedded {done} images with {embedder.manifest.model_id}")
